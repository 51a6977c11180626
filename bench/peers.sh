# peers.sh — the tunnels we compare against, one per gateway namespace of the test bed:
# strongSwan 5.9.8 with kernel-libipsec (user-space ESP) and wireguard-go. Sourced by
# throughput.sh after scripts/testbed.sh. See shared/PEERS.md for why each step is as it is.

# ss_charon GW DIR: write DIR/strongswan.conf and start charon in GW's namespace with a private /run
# (its pid file is fixed); waits for its vici socket DIR/charon.vici. SS_CHARON_EXTRA: more lines for
# the charon {} section; SS_LOG_LEVEL: the file log's default level (1); SS_INSTALL_ROUTES (yes). The charon PID ends up last
# in TB_PIDS and PEER_PIDS (ip netns exec, unshare and sh all exec into it).
ss_charon() {
  local gw=$1 d=$2
  rm -rf "$d" # a stale vici socket from an earlier run would look like a live one
  mkdir -p "$d/run"
  cat >"$d/strongswan.conf" <<CONF
charon {
  load_modular = no
  load = openssl random nonce aes sha1 sha2 hmac gcm kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici updown
  install_routes = ${SS_INSTALL_ROUTES:-yes}
${SS_CHARON_EXTRA:-}
  plugins {
    vici {
      socket = unix://$d/charon.vici
    }
  }
  filelog {
    main {
      path = $d/charon.log
      default = ${SS_LOG_LEVEL:-1}
      ${SS_LOG_EXTRA:-}
    }
  }
}
CONF
  ip netns exec "$(tb_ns "$gw")" unshare -m --propagation private sh -c \
    'mount --bind "$0" /run && exec env STRONGSWAN_CONF="$1" /usr/lib/ipsec/charon' "$d/run" "$d/strongswan.conf" \
    >"$d/stdout.log" 2>&1 &
  TB_PIDS+=($!)
  PEER_PIDS+=($!)
  tb_wait 10 test -S "$d/charon.vici" || { echo "bench: charon did not start in $gw" >&2; cat "$d/charon.log" >&2; return 1; }
}

# ss_start GW ESP_PROPOSAL: charon in GW with one connection gw/net between the gateways.
ss_start() {
  local gw=$1 esp=$2 d="$TB_DIR/ss-$1" la=172.16.0.1 ra=172.16.0.2 lts=10.1.0.0/24 rts=10.2.0.0/24
  [ "$gw" = g2 ] && la=172.16.0.2 ra=172.16.0.1 lts=10.2.0.0/24 rts=10.1.0.0/24
  ss_charon "$gw" "$d" || return 1
  cat >"$d/swanctl.conf" <<CONF
connections {
  gw {
    version = 2
    encap = yes
    local_addrs = $la
    remote_addrs = $ra
    proposals = aes128-sha256-ecp256
    local {
      auth = psk
      id = $la
    }
    remote {
      auth = psk
      id = $ra
    }
    children {
      net {
        mode = tunnel
        local_ts = $lts
        remote_ts = $rts
        esp_proposals = $esp
      }
    }
  }
}
secrets {
  ike-gw {
    id-1 = 172.16.0.1
    id-2 = 172.16.0.2
    secret = "baton-bench-only-psk"
  }
}
CONF
  tb_nsx "$gw" swanctl --load-all --file "$d/swanctl.conf" --uri "unix://$d/charon.vici" >"$d/load.log" 2>&1 ||
    { echo "bench: swanctl --load-all failed in $gw" >&2; tail -3 "$d/load.log" >&2; return 1; }
}

ss_up() {
  local esp=$1
  ss_start g1 "$esp" && ss_start g2 "$esp" || return 1
  tb_nsx g1 swanctl --initiate --child net --timeout 20 --uri "unix://$TB_DIR/ss-g1/charon.vici" >"$TB_DIR/ss-initiate.log" 2>&1 || { tail -5 "$TB_DIR/ss-initiate.log" >&2; return 1; }
  tb_wait 10 tb_nsx h1 ping -c 1 -W 1 10.2.0.2
}

wg_start() {
  local gw=$1 d="$TB_DIR/wg-$1" addr peer_ep allowed
  rm -rf "$d"
  mkdir -p "$d/run"
  if [ "$gw" = g1 ]; then peer_ep=172.16.0.2; allowed=10.2.0.0/24; else peer_ep=172.16.0.1; allowed=10.1.0.0/24; fi
  WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 ip netns exec "$(tb_ns "$gw")" unshare -m --propagation private \
    sh -c 'mount --bind "$0" /run && exec wireguard-go -f wg0' "$d/run" >"$d/wg.log" 2>&1 &
  local pid=$!
  TB_PIDS+=($pid)
  PEER_PIDS+=($pid)
  tb_wait 10 tb_nsx "$gw" ip link show wg0 || { echo "bench: wireguard-go did not start" >&2; return 1; }
  tb_wait 10 nsenter -t "$pid" -m test -S /run/wireguard/wg0.sock
  cat >"$d/wg.conf" <<CONF
[Interface]
PrivateKey = $(cat "$TB_DIR/wg-$gw.key")
ListenPort = 51820

[Peer]
PublicKey = $(cat "$TB_DIR/wg-$([ "$gw" = g1 ] && echo g2 || echo g1).pub")
AllowedIPs = $allowed
Endpoint = $peer_ep:51820
CONF
  nsenter -t "$pid" -m -n wg setconf wg0 "$d/wg.conf"
  tb_nsx "$gw" ip link set wg0 up
  tb_nsx "$gw" ip route replace "$allowed" dev wg0
}

wg_up() {
  for gw in g1 g2; do
    (umask 077; wg genkey >"$TB_DIR/wg-$gw.key")
    wg pubkey <"$TB_DIR/wg-$gw.key" >"$TB_DIR/wg-$gw.pub"
  done
  wg_start g1 && wg_start g2 || return 1
  tb_wait 10 tb_nsx h1 ping -c 1 -W 1 10.2.0.2
}

veth_up() {
  tb_nsx g1 ip route replace 10.2.0.0/24 via 172.16.0.2
  tb_nsx g2 ip route replace 10.1.0.0/24 via 172.16.0.1
  tb_wait 5 tb_nsx h1 ping -c 1 -W 1 10.2.0.2
}

baton_up() {
  TB_PROPOSAL=$1; tb_keys
  tb_conf g1 "$TB_DIR/g1.conf"; tb_conf g2 "$TB_DIR/g2.conf"
  tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf" || return 1
  PEER_PIDS+=("${TB_DAEMON[g1]}" "${TB_DAEMON[g2]}")
  tb_wait 10 tb_nsx h1 ping -c 1 -W 1 10.2.0.2
}
