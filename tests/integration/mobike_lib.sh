# mobike_lib.sh — the MOBIKE test bed (issue 4), sourced after scripts/testbed.sh: a mobile client c
# with two uplinks through routers r1 and r2 to a security gateway g, a host h behind g; batond or
# strongSwan's charon (kernel-libipsec) in c and g; uplink events; which path carries the traffic.
#
#   c eth1 -------- lan r1 wan -------- out1 g in0 -------- eth0 h
#     192.168.1.2   192.168.1.1  172.16.1.2   172.16.1.1  10.2.0.1   10.2.0.2
#   c eth2 -------- lan r2 wan -------- out2 g
#     192.168.2.2   192.168.2.1  172.16.2.2   172.16.2.1
#   c lo 10.1.0.1/32 (the inner address)         g lo 172.16.0.1/32 (the gateway's IKE address)
#
# c has two default routes, via r1 (metric 100, the primary) and via r2 (metric 200): taking an
# uplink's link down or its address away removes its route, and the other one takes over. Source
# routing (rules 101, 102) sends what bears an uplink's address out of that uplink only, as a
# multihomed host must when its providers filter sources (they do here, BCP 38, and forward from c
# only to 172.16.0.1, so g's link addresses never become MOBIKE paths). The routers route
# 172.16.0.1 to g; g routes each client prefix back over its own router (MB_NAT=1: r2
# masquerades c's traffic behind 172.16.2.2 and g has no route to 192.168.2.0/24). The tunnel is
# 10.1.0.1/32 <-> 10.2.0.0/24. Namespaces bt-TAG-{c,r1,r2,g,h}; veths bt-ID-a..j in the root netns.
#
#   mb_init NAME [nobins]      tb_init plus this bed's nodes and its two extra veth names in the cleanup
#   mb_topology                (re)build the bed (MB_NAT=1: NAT on the r2 path)
#   mb_uplink_down N [link|addr]   uplink N (1|2) of c: link down, or its address removed
#   mb_uplink_up N             undo either: link up, address and default route back
#   mb_event_down N MODE FILE  mb_uplink_down timed: appends "T_AFTER down LABEL" to FILE and sets
#                              MB_T to T_AFTER (CLOCK_MONOTONIC, as probe.py)
#   mb_counts                  "R1 R2": packets c sent into r1 and r2 so far
#   mb_path [SECS]             r1 | r2 | both | none: where c's packets went in the last SECS (0.3)
#   mb_baton_conf NODE FILE    batond's config for c (client) or g (gateway), knobs below
#   mb_baton_start NODE FILE   start batond there, the tunnel's routes into bt0
#   mb_ss_start NODE           charon with kernel-libipsec in NODE, its swanctl.conf loaded
#   mb_ss NODE ARGS...         swanctl against NODE's charon
#   mb_ss_spis NODE            "SPI_IN SPI_OUT" of NODE's Child SA as swanctl lists it
#   mb_ss_addrs NODE           "LOCAL REMOTE" of NODE's IKE SA
#   mb_up KIND_C KIND_G        start (baton|ss) in g and c, initiate from c, wait for h to answer;
#                              3 when batond refused its file (the reason in MB_REFUSED)
#   mb_stop_all                stop the daemons of mb_up
#   mb_ike_addrs NODE          "LOCAL REMOTE" of NODE's IKE SA (batond: needs ike_lib.sh's ike_sa)
#   mb_spis                    "IN OUT" SPIs of c's Child SA (batond's list-sas or swanctl)
#   mb_ike_capture FILE / mb_ike_types FILE   capture IKE (not ESP) on g / the exchange types in it
#
# Knobs (as ike_lib.sh's): IKE_PROPOSALS, ESP_PROPOSALS, IKE_RTX, IKE_TRIES, DPD, PSK, IKE_LOG,
# IKE_BATON_EXTRA, IKE_CONN_EXTRA, IKE_CHILD_EXTRA; MB_MOBIKE (yes; empty: no mobike key at all),
# MB_CLIENT_ADDRS (batond's local_addrs on c, "192.168.1.2, 192.168.2.2"); MB_SS_EXTRA_C,
# MB_SS_EXTRA_G (lines for charon's section, see mb_ss_start); MB_SS_LOG (charon's log level, 1).

MB_TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")/tools" && pwd)
MB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
declare -F ss_charon >/dev/null || . "$MB_ROOT/bench/peers.sh"
declare -F ike_sa >/dev/null || . "$MB_ROOT/tests/integration/ike_lib.sh"
MB_GW=172.16.0.1
MB_INNER=10.1.0.1
MB_HOST=10.2.0.2
MB_C_ID=client.mobike.test
MB_G_ID=gw.mobike.test

mb_veths() { local t=${TB_ID:-${TB_TAG:0:8}}; echo "$(tb_veths) bt-$t-i bt-$t-j"; }

mb_exit() {
    local rc=$? v t=${TB_ID:-${TB_TAG:0:8}}
    for v in "bt-$t-i" "bt-$t-j"; do ip link del "$v" 2>/dev/null; done
    (exit $rc)
    tb_cleanup
}

mb_init() {
    tb_init "$@"
    TB_NODES="c r1 r2 g h"
    declare -gA MB_KIND=()
    trap mb_exit EXIT
}

mb_topology() {
    local n t pair a b v node dev
    tb_down
    for v in $(mb_veths); do ip link del "$v" 2>/dev/null; done
    for n in $TB_NODES; do
        ip netns add "$(tb_ns "$n")" || return 1
        case $n in r1|r2|g) tb_nsx "$n" sysctl -qw net.ipv4.ip_forward=1 || return 1 ;; esac
        tb_nsx "$n" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 || return 1
        tb_nsx "$n" ip link set lo up
    done
    set -- $(mb_veths)
    for pair in "$1:c:eth1 $2:r1:lan" "$3:c:eth2 $4:r2:lan" "$5:r1:wan $6:g:out1" "$7:r2:wan $8:g:out2" "$9:g:in0 ${10}:h:eth0"; do
        a=${pair% *} b=${pair#* }
        ip link add "${a%%:*}" type veth peer name "${b%%:*}" || return 1
        for t in "$a" "$b"; do
            IFS=: read -r v node dev <<<"$t"
            ip link set "$v" netns "$(tb_ns "$node")" || return 1
            tb_nsx "$node" ip link set "$v" name "$dev" || return 1
            tb_nsx "$node" ip link set "$dev" up || return 1
        done
    done
    tb_nsx c ip addr add 192.168.1.2/24 dev eth1 && tb_nsx c ip addr add 192.168.2.2/24 dev eth2 &&
    tb_nsx c ip addr add $MB_INNER/32 dev lo &&
    tb_nsx c ip route add default via 192.168.1.1 metric 100 &&
    tb_nsx c ip route add default via 192.168.2.1 metric 200 &&
    tb_nsx c ip route add default via 192.168.1.1 dev eth1 table 101 &&
    tb_nsx c ip route add default via 192.168.2.1 dev eth2 table 102 &&
    tb_nsx c ip rule add from 192.168.1.2 lookup 101 priority 101 &&
    tb_nsx c ip rule add from 192.168.2.2 lookup 102 priority 102 &&
    tb_nsx r1 ip addr add 192.168.1.1/24 dev lan && tb_nsx r1 ip addr add 172.16.1.2/24 dev wan &&
    tb_nsx r1 ip route add $MB_GW/32 via 172.16.1.1 &&
    tb_nsx r2 ip addr add 192.168.2.1/24 dev lan && tb_nsx r2 ip addr add 172.16.2.2/24 dev wan &&
    tb_nsx r2 ip route add $MB_GW/32 via 172.16.2.1 &&
    tb_nsx g ip addr add $MB_GW/32 dev lo &&
    tb_nsx g ip addr add 172.16.1.1/24 dev out1 && tb_nsx g ip addr add 172.16.2.1/24 dev out2 &&
    tb_nsx g ip addr add 10.2.0.1/24 dev in0 &&
    tb_nsx g ip route add 192.168.1.0/24 via 172.16.1.2 &&
    tb_nsx h ip addr add $MB_HOST/24 dev eth0 && tb_nsx h ip route add default via 10.2.0.1 || return 1
    # The providers filter as real ones do (BCP 38): from c they forward only sources of their own
    # prefix — else, with the uplink's link down, c's kernel would send packets still bearing the
    # old address out of the other uplink and the c -> g direction would never need MOBIKE — and
    # only to the gateway's address: g's link addresses (which charon announces in
    # ADDITIONAL_IP4_ADDRESS) must not become MOBIKE paths.
    for n in 1 2; do
        tb_nsx r$n nft -f - <<NFT || return 1
table ip bt_provider {
    chain fwd_from_client {
        type filter hook forward priority filter - 10; policy accept;
        iifname "lan" ip saddr != 192.168.$n.0/24 counter drop
        iifname "lan" ip daddr != 172.16.0.1 counter drop
    }
}
NFT
    done
    if [ "${MB_NAT:-0}" = 1 ]; then
        tb_nsx r2 nft -f - <<'NFT' || return 1
table ip bt_nat {
    chain masq {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" meta l4proto { tcp, udp } masquerade to :40000-40999
        oifname "wan" masquerade
    }
    chain guard {
        type filter hook forward priority filter; policy drop;
        iifname "lan" oifname "wan" accept
        iifname "wan" oifname "lan" ct state established,related accept
    }
}
NFT
    else
        tb_nsx g ip route add 192.168.2.0/24 via 172.16.2.2 || return 1
    fi
}

# --- uplink events -------------------------------------------------------------------------------

mb_uplink_down() {
    local n=$1 mode=${2:-link}
    case $mode in
        link) tb_nsx c ip link set "eth$n" down ;;
        addr) tb_nsx c ip addr del "192.168.$n.2/24" dev "eth$n" ;;
        *) echo "mobike: mode link|addr, not $mode" >&2; return 2 ;;
    esac
}

mb_uplink_up() {
    local n=$1 metric=$((100 * $1))
    tb_nsx c ip link set "eth$n" up || return 1
    tb_nsx c ip -4 addr show dev "eth$n" | grep -q "192.168.$n.2/" || tb_nsx c ip addr add "192.168.$n.2/24" dev "eth$n" || return 1
    tb_nsx c ip route replace default via "192.168.$n.1" metric "$metric" &&
    tb_nsx c ip route replace default via "192.168.$n.1" dev "eth$n" table $((100 + n))
}

# mb_event_down N MODE FILE: the event time is when the command has returned (the old path is gone).
mb_event_down() {
    local n=$1 mode=$2 file=$3 ts
    ts=$(python3 "$MB_TOOLS/probe.py" stamp -- ip netns exec "$(tb_ns c)" sh -c \
        "$( [ "$mode" = link ] && echo "ip link set eth$n down" || echo "ip addr del 192.168.$n.2/24 dev eth$n")") || return 1
    echo "${ts#* } down r$n-$mode" >>"$file"
    MB_T=${ts#* }
}

mb_counts() {
    echo "$(tb_nsx r1 cat /sys/class/net/lan/statistics/rx_packets) $(tb_nsx r2 cat /sys/class/net/lan/statistics/rx_packets)"
}

mb_path() {
    local a b
    a=$(mb_counts); sleep "${1:-0.3}"; b=$(mb_counts)
    set -- $a $b
    local d1=$(($3 - $1)) d2=$(($4 - $2))
    if [ $d1 -gt 5 ] && [ $d2 -gt 5 ]; then echo both
    elif [ $d1 -gt 5 ]; then echo r1
    elif [ $d2 -gt 5 ]; then echo r2
    else echo none; fi
}

# --- batond --------------------------------------------------------------------------------------

# mb_baton_conf NODE FILE: c is the initiator (local_addrs: both uplinks), g answers any address.
mb_baton_conf() {
    local node=$1 file=$2 la ra lid rid lts rts
    if [ "$node" = c ]; then
        la=${MB_CLIENT_ADDRS:-192.168.1.2, 192.168.2.2} ra=$MB_GW lid=$MB_C_ID rid=$MB_G_ID lts=$MB_INNER/32 rts=10.2.0.0/24
    else
        la=$MB_GW ra=%any lid=$MB_G_ID rid=$MB_C_ID lts=10.2.0.0/24 rts=$MB_INNER/32
    fi
    cat >"$file" <<CONF
baton {
    tun = bt0
    log_level = ${IKE_LOG:-debug}
    retransmit_timeout = ${IKE_RTX:-0.5}
    retransmit_tries = ${IKE_TRIES:-3}
    socket = $TB_DIR/$node.sock
${IKE_BATON_EXTRA:-}
}
connections {
    gw {
        local_addrs = $la
        remote_addrs = $ra
        encap = yes
        proposals = ${IKE_PROPOSALS:-aes128gcm16-prfsha256-x25519, aes128-sha256-ecp256}
        dpd_delay = ${DPD:-0}
$( [ -n "${MB_MOBIKE-yes}" ] && echo "        mobike = ${MB_MOBIKE-yes}")
${IKE_CONN_EXTRA:-}
        local {
            auth = psk
            id = $lid
        }
        remote {
            auth = psk
            id = $rid
        }
        children {
            net {
                local_ts = $lts
                remote_ts = $rts
                esp_proposals = ${ESP_PROPOSALS:-aes128gcm16}
${IKE_CHILD_EXTRA:-}
            }
        }
    }
}
secrets {
    ike-mobike {
        id = $MB_C_ID
        id-2 = $MB_G_ID
        secret = "${PSK:-baton-test-psk-0123456789}"
    }
}
CONF
}

mb_baton_start() {
    local node=$1 file=$2
    if [ "$node" = c ]; then
        TB_ROUTES_g2=10.2.0.0/24 tb_start c "$file" || return 1
        tb_nsx c ip route replace 10.2.0.0/24 dev bt0 src $MB_INNER   # the inner address as source
    else
        TB_ROUTES_g2=$MB_INNER/32 tb_start g "$file"
    fi
}

# --- strongSwan ----------------------------------------------------------------------------------

mb_ss() { local node=$1; shift; tb_nsx "$node" timeout 25 swanctl "$@" --uri "unix://$TB_DIR/ss-$node/charon.vici"; }

# mb_ss_start NODE: c: local_addrs %any (charon picks the source by route, MOBIKE moves it), g: %any
# peer. mobike = yes is strongSwan's default; written out to be explicit. g's charon ignores its link
# interfaces (MB_SS_EXTRA_G, default "interfaces_ignore = out1, out2"): seeing them, it path-probes c
# from its link addresses, and after 8-12 moves it stopped taking c's probes (they reached g's
# kernel, charon logged nothing) and the handoff never recovered. MB_SS_EXTRA_C: lines for c's charon.
mb_ss_start() {
    local node=$1 d="$TB_DIR/ss-$1" ra lid rid lts rts
    local extra=${MB_SS_EXTRA_C:-}
    [ "$node" = g ] && extra=${MB_SS_EXTRA_G-interfaces_ignore = out1, out2}
    SS_CHARON_EXTRA="$extra" SS_LOG_LEVEL=${MB_SS_LOG:-1} ss_charon "$node" "$d" || return 1
    MB_SS_PID[$node]=${TB_PIDS[-1]}
    if [ "$node" = c ]; then ra=$MB_GW lid=$MB_C_ID rid=$MB_G_ID lts=$MB_INNER/32 rts=10.2.0.0/24
    else ra=%any lid=$MB_G_ID rid=$MB_C_ID lts=10.2.0.0/24 rts=$MB_INNER/32; fi
    cat >"$d/swanctl.conf" <<CONF
connections {
  gw {
    version = 2
    encap = yes
    mobike = yes
    local_addrs = $([ "$node" = c ] && echo %any || echo $MB_GW)
    remote_addrs = $ra
    proposals = aes128-sha256-ecp256
    dpd_delay = 0
    local {
      auth = psk
      id = $lid
    }
    remote {
      auth = psk
      id = $rid
    }
    children {
      net {
        mode = tunnel
        local_ts = $lts
        remote_ts = $rts
        esp_proposals = ${ESP_PROPOSALS:-aes128gcm16}
      }
    }
  }
}
secrets {
  ike-mobike {
    id-1 = $MB_C_ID
    id-2 = $MB_G_ID
    secret = "${PSK:-baton-test-psk-0123456789}"
  }
}
CONF
    mb_ss "$node" --load-all --file "$d/swanctl.conf" >"$d/load.log" 2>&1 ||
        { echo "mobike: swanctl --load-all failed in $node" >&2; tail -3 "$d/load.log" >&2; return 1; }
}

# swanctl --list-sas --raw: the Child SA's spi-in/spi-out, the IKE SA's local/remote hosts
# (the newest Child SA: after a rekey charon keeps the old one listed first for delete_rekeyed_delay, 5 s)
mb_ss_spis() { mb_ss "$1" --list-sas --raw 2>/dev/null | grep -o 'spi-in=[0-9a-f]* spi-out=[0-9a-f]*' | tail -n 1 | sed 's/spi-in=//; s/spi-out=//'; }
mb_ss_addrs() { mb_ss "$1" --list-sas --raw 2>/dev/null | sed -n 's/.*local-host=\([^ ]*\) .*remote-host=\([^ ]*\) .*/\1 \2/p' | head -n 1; }

# --- both ----------------------------------------------------------------------------------------

declare -gA MB_SS_PID=()

# mb_up KIND_C KIND_G: KIND baton|ss. g first, then c; c initiates; waits until h answers c's inner
# address. Returns 3 when batond refuses its configuration (e.g. an unknown `mobike` key).
mb_up() {
    local kc=$1 kg=$2
    MB_KIND[c]=$kc MB_KIND[g]=$kg
    if [ "$kg" = baton ]; then
        mb_baton_conf g "$TB_DIR/g.conf"
        mb_baton_try g || return $?
    else
        mb_ss_start g || return 1
    fi
    if [ "$kc" = baton ]; then
        mb_baton_conf c "$TB_DIR/c.conf"
        mb_baton_try c || return $?
        tb_ctl c initiate gw >/dev/null || return 1
    else
        mb_ss_start c || return 1
        mb_ss c --initiate --child net --timeout 20 >"$TB_DIR/ss-c/initiate.log" 2>&1 ||
            { tail -n 5 "$TB_DIR/ss-c/initiate.log" >&2; return 1; }
    fi
    tb_wait 15 tb_nsx c ping -c 1 -W 1 -I $MB_INNER $MB_HOST
}

# batond refusing its file is "this build has no such key", not a broken bed: 3, with the reason
mb_baton_try() {
    local node=$1
    MB_REFUSED=
    mb_baton_start "$node" "$TB_DIR/$node.conf" 2>"$TB_DIR/$node.start.err" && return 0
    MB_REFUSED=$(grep -h -m 1 -oE '[^ /]+\.conf:[0-9]+: .*' "$TB_DIR/$node.log" 2>/dev/null | head -n 1)
    [ -n "$MB_REFUSED" ] && return 3
    cat "$TB_DIR/$node.start.err" >&2
    return 1
}

mb_stop_all() {
    local n
    for n in c g; do
        [ -n "${TB_DAEMON[$n]:-}" ] && tb_stop "$n"
        [ -n "${MB_SS_PID[$n]:-}" ] && { tb_kill "${MB_SS_PID[$n]}"; unset "MB_SS_PID[$n]"; }
    done
    return 0
}

# SPIs of c's Child SA, whichever daemon runs there: "IN OUT" (lower-case hex, no 0x)
mb_spis() {
    if [ "${MB_KIND[c]:-}" = baton ]; then
        tb_ctl c --json list-sas | python3 -c "
import json, sys
a = json.load(sys.stdin).get('ike_sas', [])
c = a[0].get('child_sa', {}) if a else {}
print(c.get('spi_in', '').lower().replace('0x', ''), c.get('spi_out', '').lower().replace('0x', ''))"
    else
        mb_ss_spis c
    fi
}

# "LOCAL REMOTE" of NODE's IKE SA, whichever daemon runs there
mb_ike_addrs() {
    if [ "${MB_KIND[$1]:-}" = baton ]; then ike_sa "$1" "s.get('local', ''), s.get('remote', '')" | tr -d "(),'"
    else mb_ss_addrs "$1"; fi
}

# mb_ike_capture FILE: IKE on g's interfaces (UDP 500, and 4500 with the non-ESP marker), no ESP.
mb_ike_capture() { tb_capture g any "$1" 'udp port 500 or (udp port 4500 and udp[8:4] = 0)'; }
# mb_ike_types FILE: the exchange types seen, one per line ("34 IKE_SA_INIT" ... names as tshark's)
mb_ike_types() { tshark -r "$1" -Y isakmp -T fields -e isakmp.exchangetype 2>/dev/null | tr ',' '\n' | sed '/^$/d'; }
