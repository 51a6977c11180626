# testbed.sh — namespace test beds for baton (integration tests, scripts/demo, bench/): a bash library
# that builds host1 — gw1 ==== gw2 — host2 from network namespaces and veth pairs and runs batond in
# the gateways. Source it; it defines functions and variables only (no `set -e`, safe under `set -u`).
#
#   h1 eth0 ------ in0 g1 out0 ========= out0 g2 in0 ------ eth0 h2
#   10.1.0.2  10.1.0.1  172.16.0.1   172.16.0.2  10.2.0.1   10.2.0.2
#   fd01::2   fd01::1   fd00::1      fd00::2     fd02::1    fd02::2
#
# Namespaces are bt-TAG-{h1,g1,g2,h2}; tb_init makes TAG "NAME-ID" with an ID unique to the run, so
# parallel runs and leftovers never collide (veths are bt-ID-a..f while in the root namespace). The
# hosts route everything through their gateway; the gateways forward, but the inner prefixes are NOT
# routed between them: traffic from h1 reaches h2 only through a tunnel (or after tb_plain_routes),
# so whatever misses the tunnel is lost, never carried in clear.
#
# Set-up and teardown
#   tb_init NAME [nobins]  start a bed's life: TB_TAG, TB_ID, TB_DIR (scratch folder, logs), TB_PIDS,
#                          a trap on EXIT INT TERM running tb_cleanup; finds BATOND/BATONCTL unless
#                          `nobins`. (bench/ sets TB_TAG, TB_PIDS, TB_DAEMON itself instead.)
#   tb_topology            (re)build the four namespaces, links, addresses, routes, forwarding
#   tb_topology_nat        the same with a NAT router between the gateways (g1 behind it), see below
#   tb_plain_routes        route the inner prefixes between the gateways over the outer link (no
#                          tunnel: a baseline, and how the library tests itself)
#   tb_down                delete the bed's namespaces (and any of its veths left in the root netns)
#   tb_cleanup             kill every PID in TB_PIDS still ours (TERM, 5 s, KILL), tb_down, print the
#                          logs' tails if the exit status is non-zero, remove TB_DIR (kept if TB_KEEP=1)
# Processes and waits (every wait is bounded)
#   tb_ns NODE             namespace name of NODE (h1 g1 g2 h2)
#   tb_nsx NODE CMD...     run CMD in NODE's namespace
#   tb_bg NODE CMD...      start CMD in NODE in the background; its PID is appended to TB_PIDS
#   tb_kill PID            stop one PID we started (TERM, up to 5 s, KILL), reap it, forget it
#   tb_wait SECS CMD...    poll CMD every 50 ms until it succeeds; 1 after SECS seconds
#   tb_reach NODE ADDR [SECS]   wait until NODE pings ADDR (default 10 s)
# batond
#   tb_bins                set BATOND/BATONCTL (env, else $BATON_SRC/build/release, /work/build/integ,
#                          $BATON_SRC/build, ./build — the first holding both binaries)
#   tb_conf GW FILE        write GW's (g1|g2) config from TB_* variables (see tb_conf below)
#   tb_keys                fresh random keys for TB_PROPOSAL into TB_EKEY_A/B, TB_IKEY_A/B
#   tb_keylens PROPOSAL    prints "ENC_BYTES INTEG_BYTES"
#   tb_key BYTES           prints BYTES random bytes in hex
#   tb_start GW FILE       start batond (socket TB_DIR/GW.sock, log TB_DIR/GW.log), PID in TB_DAEMON[GW];
#                          waits for the socket and the TUN, then routes: tunnel mode the peer's inner
#                          prefixes (TB_ROUTES_g1 / TB_ROUTES_g2 override), transport mode tb_transport_routes
#   tb_stop GW             stop GW's batond
#   tb_transport_routes GW [TUN]  policy routing that sends GW's traffic to the peer's outer address
#                          into the TUN, except the ESP packets themselves (see the function)
#   tb_ctl GW ARGS...      batonctl against GW's daemon (bounded by a timeout)
#   tb_sa GW DIR EXPR      python expression over GW's first SA of direction DIR (in|out), dict `s`
#   tb_stat GW EXPR        python expression over GW's stats, dict `s`
# Capture
#   tb_capture NODE IFACE FILE [FILTER...]  tcpdump to FILE in the background, returns once it is
#                          listening; sets TB_CAP_PID; ends by itself after TB_CAP_SECS (30) or -c N
#   tb_capture_stop PID    let the capture settle (file unchanged for 0.3 s, at most 3 s), stop it
#
# Variables read by tb_conf: TB_PROPOSAL (aes128gcm16), TB_ESN (yes|no), TB_ENCAP (yes|no),
# TB_FAMILY (outer 4|6), TB_MODE (tunnel|transport), TB_LOCAL_TS / TB_REMOTE_TS (as seen from g1),
# TB_TUN (bt0), TB_LOG (info), TB_BATON_EXTRA (lines for baton {}), TB_EXTRA (lines for the child),
# TB_POLICIES (a policies {} section), TB_EKEY_A/B, TB_IKEY_A/B (hex; A: g1 -> g2, B: g2 -> g1).
# SPIs: 0xc0000002 carries g1 -> g2, 0xc0000001 carries g2 -> g1.

TB_NODES="h1 g1 g2 h2"

tb_bins() {
    local src d
    src=${BATON_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
    if [ -z "${BATOND:-}" ] || [ -z "${BATONCTL:-}" ]; then
        for d in "$src/build/release" /work/build/integ "$src/build" ./build; do
            if [ -x "$d/batond" ] && [ -x "$d/batonctl" ]; then
                BATOND=${BATOND:-$d/batond} BATONCTL=${BATONCTL:-$d/batonctl}
                break
            fi
        done
    fi
    if [ ! -x "${BATOND:-}" ] || [ ! -x "${BATONCTL:-}" ]; then
        echo "testbed: batond/batonctl not found (set BATOND and BATONCTL, or build into build/release)" >&2
        return 1
    fi
    export BATOND BATONCTL
}

tb_init() {
    if [ "$(id -u)" != 0 ]; then echo "testbed: run as root (namespaces, TUN)" >&2; exit 2; fi
    TB_ID=$(printf '%05x' $(( (BASHPID * 7919 + RANDOM) % 1048576 )))
    TB_TAG=$1-$TB_ID
    TB_DIR=$(mktemp -d "/tmp/bt-$TB_TAG.XXXXXX") || exit 1
    TB_PIDS=()
    declare -gA TB_DAEMON=()
    trap tb_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [ "${2:-}" != nobins ]; then tb_bins || exit 1; fi
    return 0
}

tb_ns() { echo "bt-$TB_TAG-$1"; }
tb_nsx() { local ns; ns=$(tb_ns "$1"); shift; ip netns exec "$ns" "$@"; }
tb_bg() { local ns; ns=$(tb_ns "$1"); shift; ip netns exec "$ns" "$@" & TB_PIDS+=($!); }

# A PID is ours while it is still a child of this shell: a PID that exited and was reused by someone
# else's process has another parent, so it is never signalled.
tb_ours() {
    local ppid
    ppid=$(awk '/^PPid:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$ppid" ] && { [ "$ppid" = "$$" ] || [ "$ppid" = "${BASHPID:-$$}" ]; }
}

tb_kill() {
    local pid=$1 i keep=() p
    [ -n "$pid" ] || return 0
    if tb_ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            tb_ours "$pid" && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break
            sleep 0.1
        done
        tb_ours "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    for p in "${TB_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    TB_PIDS=("${keep[@]}")
    return 0
}

tb_veths() { local t=${TB_ID:-${TB_TAG:0:8}}; echo "bt-$t-a bt-$t-b bt-$t-c bt-$t-d bt-$t-e bt-$t-f bt-$t-g bt-$t-h"; }

tb_down() {
    local n v
    for n in $TB_NODES; do ip netns del "$(tb_ns "$n")" 2>/dev/null; done
    for v in $(tb_veths); do ip link del "$v" 2>/dev/null; done
    return 0
}

tb_cleanup() {
    local rc=$? pid f
    trap - EXIT INT TERM
    set +e
    for pid in "${TB_PIDS[@]}"; do tb_ours "$pid" && kill -TERM "$pid" 2>/dev/null; done
    for pid in "${TB_PIDS[@]}"; do tb_kill "$pid"; done
    tb_down
    if [ "$rc" != 0 ] && [ -n "${TB_DIR:-}" ]; then
        for f in "$TB_DIR"/*.log; do [ -f "$f" ] && { echo "--- $f (last lines)"; tail -n 30 "$f"; }; done
    fi
    if [ "$rc" != 0 ] && [ "${TB_KEEP:-0}" = 1 ]; then
        echo "testbed: kept $TB_DIR"
    elif [ -n "${TB_DIR:-}" ]; then
        rm -rf "$TB_DIR"
    fi
    exit "$rc"
}

tb_topology() {
    local n t pair a b v node dev
    tb_down
    for n in $TB_NODES; do
        ip netns add "$(tb_ns "$n")" || return 1
        # before any link arrives: no duplicate address detection (addresses usable at once, and
        # link-local ones too, so neighbour discovery does not stall for a second), forwarding on
        # the gateways
        tb_nsx "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 || return 1
        case $n in g*) tb_nsx "$n" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
                          net.ipv6.conf.default.forwarding=1 || return 1 ;; esac
        tb_nsx "$n" ip link set lo up
    done
    set -- $(tb_veths)
    # root-netns-name:node:name-in-node, two ends per pair
    for pair in "$1:h1:eth0 $2:g1:in0" "$3:g1:out0 $4:g2:out0" "$5:g2:in0 $6:h2:eth0"; do
        a=${pair% *} b=${pair#* }
        ip link add "${a%%:*}" type veth peer name "${b%%:*}" || return 1
        for t in "$a" "$b"; do
            IFS=: read -r v node dev <<<"$t"
            ip link set "$v" netns "$(tb_ns "$node")" || return 1
            tb_nsx "$node" ip link set "$v" name "$dev" || return 1
            tb_nsx "$node" ip link set "$dev" up || return 1
        done
    done
    tb_nsx h1 ip addr add 10.1.0.2/24 dev eth0 && tb_nsx h1 ip -6 addr add fd01::2/64 dev eth0 nodad &&
    tb_nsx h1 ip route add default via 10.1.0.1 && tb_nsx h1 ip -6 route add default via fd01::1 &&
    tb_nsx g1 ip addr add 10.1.0.1/24 dev in0 && tb_nsx g1 ip -6 addr add fd01::1/64 dev in0 nodad &&
    tb_nsx g1 ip addr add 172.16.0.1/24 dev out0 && tb_nsx g1 ip -6 addr add fd00::1/64 dev out0 nodad &&
    tb_nsx g2 ip addr add 172.16.0.2/24 dev out0 && tb_nsx g2 ip -6 addr add fd00::2/64 dev out0 nodad &&
    tb_nsx g2 ip addr add 10.2.0.1/24 dev in0 && tb_nsx g2 ip -6 addr add fd02::1/64 dev in0 nodad &&
    tb_nsx h2 ip addr add 10.2.0.2/24 dev eth0 && tb_nsx h2 ip -6 addr add fd02::2/64 dev eth0 nodad &&
    tb_nsx h2 ip route add default via 10.2.0.1 && tb_nsx h2 ip -6 route add default via fd02::1
}

# tb_topology_nat: g1 sits in a private network behind a NAT router (node "nat"), which masquerades
# g1's traffic behind the outer address g1 has in tb_topology, mapping UDP to source ports from
# TB_NAT_PORTS (40000-40999), so the peer sees neither g1's address nor its ports:
#
#   h1 ---- in0 g1 out0 ---- lan0 nat wan0 ====== out0 g2 in0 ---- h2
#   10.1.0.2        192.168.77.2  192.168.77.1  172.16.0.1  172.16.0.2   10.2.0.2
#
# IPv4 only. g1 routes everything else via the NAT; g2 has no route into 192.168.77.0/24, and the NAT
# forwards nothing inbound that is not the reply of a mapping g1 made.
tb_topology_nat() {
    local n t pair a b v node dev
    tb_down
    TB_NODES="h1 g1 nat g2 h2"
    for n in $TB_NODES; do
        ip netns add "$(tb_ns "$n")" || return 1
        case $n in g*|nat) tb_nsx "$n" sysctl -qw net.ipv4.ip_forward=1 || return 1 ;; esac
        tb_nsx "$n" ip link set lo up
    done
    set -- $(tb_veths)
    for pair in "$1:h1:eth0 $2:g1:in0" "$3:g1:out0 $4:nat:lan0" "$7:nat:wan0 $8:g2:out0" "$5:g2:in0 $6:h2:eth0"; do
        a=${pair% *} b=${pair#* }
        ip link add "${a%%:*}" type veth peer name "${b%%:*}" || return 1
        for t in "$a" "$b"; do
            IFS=: read -r v node dev <<<"$t"
            ip link set "$v" netns "$(tb_ns "$node")" || return 1
            tb_nsx "$node" ip link set "$v" name "$dev" || return 1
            tb_nsx "$node" ip link set "$dev" up || return 1
        done
    done
    tb_nsx h1 ip addr add 10.1.0.2/24 dev eth0 && tb_nsx h1 ip route add default via 10.1.0.1 &&
    tb_nsx g1 ip addr add 10.1.0.1/24 dev in0 && tb_nsx g1 ip addr add 192.168.77.2/24 dev out0 &&
    tb_nsx g1 ip route add default via 192.168.77.1 &&
    tb_nsx nat ip addr add 192.168.77.1/24 dev lan0 && tb_nsx nat ip addr add 172.16.0.1/24 dev wan0 &&
    tb_nsx g2 ip addr add 172.16.0.2/24 dev out0 && tb_nsx g2 ip addr add 10.2.0.1/24 dev in0 &&
    tb_nsx h2 ip addr add 10.2.0.2/24 dev eth0 && tb_nsx h2 ip route add default via 10.2.0.1 || return 1
    local ports=${TB_NAT_PORTS:-40000-40999}
    tb_nsx nat nft -f - <<NFT
table ip bt_nat {
    chain masq {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" meta l4proto { tcp, udp } masquerade to :$ports
        oifname "wan0" masquerade
    }
    chain guard {
        type filter hook forward priority filter; policy drop;
        iifname "lan0" oifname "wan0" accept
        iifname "wan0" oifname "lan0" ct state established,related accept
    }
}
NFT
}

tb_plain_routes() {
    tb_nsx g1 ip route replace 10.2.0.0/24 via 172.16.0.2 && tb_nsx g1 ip -6 route replace fd02::/64 via fd00::2 &&
    tb_nsx g2 ip route replace 10.1.0.0/24 via 172.16.0.1 && tb_nsx g2 ip -6 route replace fd01::/64 via fd00::1
}

tb_wait() {
    local t=$1 end; shift
    end=$((SECONDS + t))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.05
    done
}

tb_reach() { tb_wait "${3:-10}" tb_nsx "$1" ping -c 1 -W 1 -q "$2"; }

# The TUN a config file names (baton { tun = X }), default bt0.
tb_conf_tun() {
    local t
    t=$(sed -n 's/^[[:space:]]*tun[[:space:]]*=[[:space:]]*"\{0,1\}\([^"[:space:]#]*\).*/\1/p' "$1" | head -n 1)
    echo "${t:-bt0}"
}

tb_start() {
    local gw=$1 conf=$2 sock="$TB_DIR/$1.sock" tun pid end r routes
    tun=$(tb_conf_tun "$conf")
    rm -f "$sock"
    tb_bg "$gw" "$BATOND" -c "$conf" -s "$sock" >"$TB_DIR/$gw.log" 2>&1 </dev/null
    pid=${TB_PIDS[-1]}
    TB_DAEMON[$gw]=$pid
    end=$((SECONDS + 10))
    until [ -S "$sock" ] && tb_nsx "$gw" ip link show "$tun" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $end ]; then
            echo "testbed: batond in $gw did not come up (socket $sock, TUN $tun):" >&2
            tail -n 20 "$TB_DIR/$gw.log" >&2
            return 1
        fi
        sleep 0.05
    done
    if grep -qE '^[[:space:]]*mode[[:space:]]*=[[:space:]]*transport' "$conf"; then
        tb_transport_routes "$gw" "$tun"
        return
    fi
    if [ "$gw" = g1 ]; then routes=${TB_ROUTES_g1:-10.2.0.0/24 fd02::/64}; else routes=${TB_ROUTES_g2:-10.1.0.0/24 fd01::/64}; fi
    for r in $routes; do tb_nsx "$gw" ip route replace "$r" dev "$tun" || return 1; done
}

tb_stop() {
    local pid=${TB_DAEMON[$1]:-}
    [ -n "$pid" ] || return 0
    tb_kill "$pid"
    unset "TB_DAEMON[$1]"
}

# Transport mode: the SA's endpoints are the traffic's endpoints, so "traffic to the peer goes into
# the TUN" must exclude the ESP packets batond itself sends to the same address. Policy routing does
# it: table 100 sends the peer's address into the TUN; rules before it keep ESP-in-UDP (port 4500
# either side) and raw ESP (protocol 50) in the main table. Everything else to the peer — ICMP, TCP,
# other UDP — is protected. Both families; decrypted packets come out of the TUN with the peer's
# address as source, so reverse-path filtering is off on it.
tb_transport_routes() {
    local gw=$1 tun=${2:-bt0} me4=172.16.0.1 peer4=172.16.0.2 me6=fd00::1 peer6=fd00::2 f me peer prio
    [ "$gw" = g2 ] && me4=172.16.0.2 peer4=172.16.0.1 me6=fd00::2 peer6=fd00::1
    tb_nsx "$gw" sysctl -qw net.ipv4.conf.all.rp_filter=0 "net.ipv4.conf.$tun.rp_filter=0" || return 1
    for f in 4 6; do
        if [ $f = 4 ]; then me=$me4 peer=$peer4; else me=$me6 peer=$peer6; fi
        for prio in 100 101 102 110; do   # a restarted daemon: the rules are still there
            while tb_nsx "$gw" ip -$f rule del priority $prio 2>/dev/null; do :; done
        done
        tb_nsx "$gw" ip -$f route replace "$peer" dev "$tun" src "$me" table 100 &&
        tb_nsx "$gw" ip -$f rule add to "$peer" ipproto udp dport 4500 lookup main priority 100 &&
        tb_nsx "$gw" ip -$f rule add to "$peer" ipproto udp sport 4500 lookup main priority 101 &&
        tb_nsx "$gw" ip -$f rule add to "$peer" ipproto 50 lookup main priority 102 &&
        tb_nsx "$gw" ip -$f rule add to "$peer" lookup 100 priority 110 || return 1
    done
}

tb_ctl() { local gw=$1; shift; tb_nsx "$gw" timeout 10 "$BATONCTL" -s "$TB_DIR/$gw.sock" "$@"; }

tb_sa() {
    tb_ctl "$1" --json list-sas | python3 -c "
import json, sys
sas = [s for s in json.load(sys.stdin)['sas'] if s['dir'] == sys.argv[1]]
s = sas[0] if sas else {}
print($3)" "$2"
}

tb_stat() { tb_ctl "$1" --json stats | python3 -c "import json, sys; s = json.load(sys.stdin)['stats']; print($2)"; }

tb_capture() {
    local node=$1 ifc=$2 file=$3 end; shift 3
    rm -f "$file" "$file.err"
    # --immediate-mode: packets reach tcpdump at once, not when a ring block fills or times out
    tb_bg "$node" timeout "${TB_CAP_SECS:-30}" tcpdump -Z root -i "$ifc" --immediate-mode -U -n -w "$file" "$@" 2>"$file.err"
    TB_CAP_PID=${TB_PIDS[-1]}
    end=$((SECONDS + 5))
    until grep -q "listening on" "$file.err" 2>/dev/null; do
        if [ $SECONDS -ge $end ] || ! kill -0 "$TB_CAP_PID" 2>/dev/null; then
            echo "testbed: tcpdump on $node/$ifc did not start: $(cat "$file.err" 2>/dev/null)" >&2
            return 1
        fi
        sleep 0.05
    done
}

tb_capture_stop() {
    local pid=$1 file size last= i
    file=$( { tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | sed -n '/^-w$/{n;p;q}')
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        size=$(stat -c %s "$file" 2>/dev/null)
        [ -n "$last" ] && [ "$size" = "$last" ] && [ $i -ge 3 ] && break
        last=$size
        sleep 0.1
    done
    tb_kill "$pid"
}

tb_key() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

tb_keylens() {
    local p=${1%-esn} e i
    p=${p%-noesn}
    case $p in
        aes128gcm16) echo "20 0"; return ;; aes192gcm16) echo "28 0"; return ;;
        aes256gcm16) echo "36 0"; return ;; chacha20poly1305) echo "36 0"; return ;;
    esac
    case ${p%%-*} in
        aes128) e=16 ;; aes192) e=24 ;; aes256) e=32 ;;
        aes128ctr) e=20 ;; aes192ctr) e=28 ;; aes256ctr) e=36 ;;
        3des) e=24 ;; null) e=0 ;;
        *) echo "testbed: unknown proposal $1" >&2; return 1 ;;
    esac
    case ${p#*-} in
        md5) i=16 ;; sha1) i=20 ;; sha256) i=32 ;; sha384) i=48 ;; sha512) i=64 ;;
        *) echo "testbed: unknown proposal $1" >&2; return 1 ;;
    esac
    echo "$e $i"
}

tb_keys() {
    local l
    l=$(tb_keylens "${TB_PROPOSAL:-aes128gcm16}") || return 1
    set -- $l
    TB_EKEY_A= TB_EKEY_B= TB_IKEY_A= TB_IKEY_B=
    if [ "$1" -gt 0 ]; then TB_EKEY_A=$(tb_key "$1"); TB_EKEY_B=$(tb_key "$1"); fi
    if [ "$2" -gt 0 ]; then TB_IKEY_A=$(tb_key "$2"); TB_IKEY_B=$(tb_key "$2"); fi
    return 0
}

# tb_conf GW FILE: one connection "gw" between the gateways' outer addresses with one child "net".
tb_conf() {
    local gw=$1 file=$2 la=172.16.0.1 ra=172.16.0.2 t esn=
    [ "${TB_FAMILY:-4}" = 6 ] && la=fd00::1 ra=fd00::2
    local lts=${TB_LOCAL_TS:-10.1.0.0/24, fd01::/64} rts=${TB_REMOTE_TS:-10.2.0.0/24, fd02::/64}
    local spi_in=0xc0000001 spi_out=0xc0000002
    local ek_in=${TB_EKEY_B:-} ek_out=${TB_EKEY_A:-} ik_in=${TB_IKEY_B:-} ik_out=${TB_IKEY_A:-}
    if [ "$gw" = g2 ]; then
        t=$la; la=$ra; ra=$t; t=$lts; lts=$rts; rts=$t
        spi_in=0xc0000002 spi_out=0xc0000001
        ek_in=${TB_EKEY_A:-} ek_out=${TB_EKEY_B:-} ik_in=${TB_IKEY_A:-} ik_out=${TB_IKEY_B:-}
    fi
    [ "${TB_ESN:-no}" = yes ] && esn=-esn
    {
        echo "baton {"
        echo "    tun = ${TB_TUN:-bt0}"
        echo "    log_level = ${TB_LOG:-info}"
        [ -n "${TB_BATON_EXTRA:-}" ] && echo "$TB_BATON_EXTRA"
        echo "}"
        echo "connections {"
        echo "    gw {"
        echo "        local_addrs = $la"
        echo "        remote_addrs = $ra"
        echo "        encap = ${TB_ENCAP:-yes}"
        echo "        children {"
        echo "            net {"
        echo "                mode = ${TB_MODE:-tunnel}"
        if [ "${TB_MODE:-tunnel}" = tunnel ]; then
            echo "                local_ts = $lts"
            echo "                remote_ts = $rts"
        fi
        echo "                esp_proposals = ${TB_PROPOSAL:-aes128gcm16}$esn"
        echo "                spi_in = $spi_in"
        echo "                spi_out = $spi_out"
        [ -n "$ek_in" ] && echo "                enc_key_in = 0x$ek_in"
        [ -n "$ek_out" ] && echo "                enc_key_out = 0x$ek_out"
        [ -n "$ik_in" ] && echo "                integ_key_in = 0x$ik_in"
        [ -n "$ik_out" ] && echo "                integ_key_out = 0x$ik_out"
        [ -n "${TB_EXTRA:-}" ] && echo "$TB_EXTRA"
        echo "            }"
        echo "        }"
        echo "    }"
        echo "}"
        [ -n "${TB_POLICIES:-}" ] && echo "$TB_POLICIES"
        true
    } >"$file"
}
