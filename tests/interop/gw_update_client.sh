#!/usr/bin/env bash
# gw_update_client.sh — does a MOBIKE client (the original initiator: strongSwan's charon or
# batond) follow a gateway's UPDATE_SA_ADDRESSES sent from a new address (a Multi-LAN transfer)?
# The gateway is the engine itself (gw_update_peer.c): it answers the client at 10.77.0.1, then
# sends ike_mobike_gw_update from 10.77.0.3. Checks: the client answers, its IKE SA now ends at
# 10.77.0.3; charon: a Child SA is installed (kernel-libipsec cannot change an SA's addresses, so
# charon rekeys it with the new gateway: new SPIs); batond: the same SPIs, the move counted.
# The work folder stays in /tmp when a check fails. Root; namespaces bt-gw-c and bt-gw-g, removed on every exit.
#   tests/interop/gw_update_client.sh BUILD_DIR [ss|baton]   (BUILD_DIR: a built tree, e.g. build/dev;
#                                                           the client: charon (default) or batond)
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: gw_update_client.sh BUILD_DIR [ss|baton]}" && pwd)
kind=${2:-ss}
d=$(mktemp -d /tmp/bt-gw-interop.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    ip netns del bt-gw-c 2>/dev/null
    ip netns del bt-gw-g 2>/dev/null
    ip link del bt-gw-a 2>/dev/null
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL $*"; tail -n 30 "$d/client.log" 2>/dev/null | sed 's/^/  | /'; exit 1; }

cc -std=gnu11 -O1 -g -I"$src/src" "$src/tests/interop/gw_update_peer.c" "$build/libbt_ike.a" "$build/libbt_policy.a" \
    "$build/libbt_esp.a" "$build/libbt_util.a" -lcrypto -lpthread -o "$d/gw_update_peer" || fail "build"

ip netns add bt-gw-c && ip netns add bt-gw-g || fail "netns"
ip link add bt-gw-a type veth peer name bt-gw-b || fail "veth"
ip link set bt-gw-a netns bt-gw-c && ip link set bt-gw-b netns bt-gw-g
ip -n bt-gw-c addr add 10.77.0.2/24 dev bt-gw-a
ip -n bt-gw-c addr add 10.1.0.1/32 dev lo # the tunnel's inner address: charon routes 10.2.0.0/24 from it
ip -n bt-gw-g addr add 10.77.0.1/24 dev bt-gw-b
ip -n bt-gw-g addr add 10.77.0.3/24 dev bt-gw-b
for n in bt-gw-c bt-gw-g; do ip -n $n link set lo up; done
ip -n bt-gw-c link set bt-gw-a up && ip -n bt-gw-g link set bt-gw-b up
sleep 2 # duplicate address detection is not an issue for IPv4; give the links a moment

# --- strongSwan's charon (kernel-libipsec, encap = yes) as the client
ss() { ip netns exec bt-gw-c swanctl "$@" --uri "unix://$d/charon.vici"; }
ss_start() {
    mkdir -p "$d/run"
    cat >"$d/strongswan.conf" <<CONF
charon {
  load_modular = no
  load = openssl random nonce aes sha1 sha2 hmac gcm kdf curve25519 kernel-libipsec kernel-netlink socket-default vici updown
  install_routes = no
  plugins {
    vici {
      socket = unix://$d/charon.vici
    }
  }
  filelog {
    main {
      path = $d/client.log
      default = 1
      ike = 2
    }
  }
}
CONF
    cat >"$d/swanctl.conf" <<CONF
connections {
  gw {
    version = 2
    encap = yes
    mobike = yes
    local_addrs = 10.77.0.2
    remote_addrs = 10.77.0.1
    proposals = aes128gcm16-prfsha256-x25519
    local {
      auth = psk
      id = 10.77.0.2
    }
    remote {
      auth = psk
      id = 10.77.0.1
    }
    children {
      net {
        local_ts = 10.1.0.1/32
        remote_ts = 10.2.0.0/24
        esp_proposals = aes128gcm16
      }
    }
  }
}
secrets {
  ike {
    id-1 = 10.77.0.2
    id-2 = 10.77.0.1
    secret = "gw-update-interop"
  }
}
CONF
    ip netns exec bt-gw-c unshare -m --propagation private sh -c \
        'mount --bind "$0" /run && exec env STRONGSWAN_CONF="$1" /usr/lib/ipsec/charon' "$d/run" "$d/strongswan.conf" \
        >"$d/charon.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do [ -S "$d/charon.vici" ] && break; sleep 0.2; done
    [ -S "$d/charon.vici" ] || fail "charon did not start"
    ss --load-all --file "$d/swanctl.conf" >"$d/load.log" 2>&1 || fail "swanctl --load-all"
}
ss_initiate() { ss --initiate --child net --timeout 15 >"$d/initiate.log" 2>&1; }
ss_list() { ss --list-sas 2>&1 | grep -v "^plugin"; }
spis() { grep -oE "(in|out) +[0-9a-f]{8}" "$1" | awk '{print $2}' | tr '\n' ' '; }
ss_check() {
    grep -q "remote .* @ 10.77.0.3\[4500\]" "$d/after.txt" || fail "charon's IKE SA does not end at 10.77.0.3"
    grep -q "INSTALLED" "$d/after.txt" || fail "charon has no installed Child SA after the move"
    echo "PASS: charon followed the gateway to 10.77.0.3; Child SA SPIs $(spis "$d/before.txt")-> $(spis "$d/after.txt")"
}

# --- batond as the client
bt() { ip netns exec bt-gw-c timeout 10 "$build/batonctl" -s "$d/c.sock" "$@"; }
baton_start() {
    cat >"$d/c.conf" <<CONF
baton {
    tun = bt0
    log_level = debug
    retransmit_timeout = 0.5
    retransmit_tries = 3
}
connections {
    gw {
        local_addrs = 10.77.0.2
        remote_addrs = 10.77.0.1
        encap = yes
        mobike = yes
        proposals = aes128gcm16-prfsha256-x25519
        local {
            auth = psk
            id = 10.77.0.2
        }
        remote {
            auth = psk
            id = 10.77.0.1
        }
        children {
            net {
                local_ts = 10.1.0.1/32
                remote_ts = 10.2.0.0/24
                esp_proposals = aes128gcm16
            }
        }
    }
}
secrets {
    ike {
        id = 10.77.0.2
        id-2 = 10.77.0.1
        secret = "gw-update-interop"
    }
}
CONF
    ip netns exec bt-gw-c "$build/batond" -c "$d/c.conf" -s "$d/c.sock" >"$d/client.log" 2>&1 </dev/null &
    pids+=($!)
    for _ in $(seq 50); do [ -S "$d/c.sock" ] && break; sleep 0.2; done
    [ -S "$d/c.sock" ] || fail "batond did not start"
}
baton_initiate() {
    bt initiate gw/net >"$d/initiate.log" 2>&1 || return 1
    for _ in $(seq 50); do [ -n "$(baton_list | grep '"state": "established"')" ] && return 0; sleep 0.2; done
    return 1
}
# the IKE SA, then one line per ESP SA: direction, SPI, the peer's outer address
baton_list() { bt --json list-sas | python3 -c "
import json, sys
j = json.load(sys.stdin)
for s in j.get('ike_sas', []):
    print(json.dumps({k: s.get(k) for k in ('state', 'local', 'local_port', 'remote', 'remote_port', 'spi_i', 'spi_r')}))
for s in j.get('sas', []):
    print(s.get('dir'), s.get('spi'), s.get('remote'))"; }
baton_check() {
    grep -q '"remote": "10.77.0.3", "remote_port": 4500' "$d/after.txt" || fail "batond's IKE SA does not end at 10.77.0.3:4500"
    local moves
    moves=$(bt --json stats | python3 -c "
import json, sys
s = json.load(sys.stdin)['stats']
print(s.get('ike', s).get('mobike_gateway_moves'))")
    [ "$moves" = 1 ] || fail "mobike_gateway_moves is $moves, not 1"
    [ -n "$(grep -E '^(in|out) ' "$d/after.txt")" ] && [ -z "$(grep -E '^(in|out) ' "$d/after.txt" | grep -v ' 10.77.0.3$')" ] ||
        fail "batond's ESP SAs are not all bound to 10.77.0.3"
    [ "$(grep -E '^(in|out) ' "$d/before.txt" | cut -d' ' -f1-2)" = "$(grep -E '^(in|out) ' "$d/after.txt" | cut -d' ' -f1-2)" ] ||
        fail "the ESP SAs' SPIs changed"
    echo "PASS: batond followed the gateway to 10.77.0.3 (mobike_gateway_moves 1, same SPIs)"
}

case $kind in ss|baton) ;; *) fail "client: ss or baton" ;; esac
${kind}_start
ip netns exec bt-gw-g "$d/gw_update_peer" 10.77.0.1 10.77.0.3 10.77.0.2 gw-update-interop >"$d/peer.log" 2>&1 &
peer=$!
pids+=($peer)
sleep 0.5
${kind}_initiate || { cat "$d/peer.log"; ${kind}_list; fail "initiate"; }
${kind}_list >"$d/before.txt" 2>&1
wait "$peer"
rc=$?
cat "$d/peer.log"
${kind}_list >"$d/after.txt" 2>&1
echo "--- the client's SAs before:"; head -8 "$d/before.txt"
echo "--- after:"; head -8 "$d/after.txt"
echo "--- the client's log on the update:"
grep -iE "N\(UPD|endpoint changed|gateway moved|rebind|updat|INFORMATIONAL|received packet: from 10.77.0.3|to 10.77.0.3" \
    "$d/client.log" | tail -n 12 | sed 's/^/  | /'
[ $rc = 0 ] || fail "the gateway's update was not answered"
${kind}_check || exit 1
rm -rf "$d"
