# xfer_lib.sh — the context-transfer test bed (issue 5), sourced after scripts/testbed.sh: a client c
# (batond, IKE initiator, MOBIKE on) with a tunnel to one of two baton gateways g1 and g2 that form
# a cluster (same connection, same key, transfer channel on a link of their own), a host h behind
# them. The configurations are mobike_lib.sh's (mb_baton_conf) plus a cluster { } section.
#
# Mono-LAN (xf_topology mono): one outer and one inner L2 segment (bridges bt-xo, bt-xi in the
# switch namespace sw); the gateways share 192.0.2.1 outside and 10.2.0.1 inside (h's default
# route), held by one of them at a time and moved by gratuitous ARP.
#
#   c eth0 192.0.2.10 --+-- bt-xo --+-- out0 g1 192.0.2.11 (+ 192.0.2.1) in0 10.2.0.11 (+ 10.2.0.1) --+-- bt-xi -- eth0 h
#                                   +-- out0 g2 192.0.2.12               in0 10.2.0.12               --+           10.2.0.2
#   g1 cl0 10.9.0.1 ======= cl0 g2 10.9.0.2   (the cluster link: transfer channel, port 4510)
#
# Multi-LAN (xf_topology multi): the gateways have addresses in different subnets, c reaches both
# through a router r; the inner side as above (shared 10.2.0.1).
#
#   c eth0 192.168.1.2 -- lan r wan1 172.16.1.254 -- out0 g1 172.16.1.1
#                             r wan2 172.16.2.254 -- out0 g2 172.16.2.1
#
# c's inner address is 10.1.0.1/32 (lo); the tunnel is 10.1.0.1/32 <-> 10.2.0.0/24. Namespaces
# bt-x*-ID-{c,r,g1,g2,h,sw}; every veth is created inside its namespaces (nothing in the root netns).
#
#   xf_init NAME [nobins]     tb_init (TAG xNAME) with this bed's node names, cluster key XF_KEY
#   xf_topology mono|multi    (re)build the bed; XF_LAN says which; XF_GW: c's remote address
#   xf_conf NODE FILE         batond's config for c, g1 or g2
#   xf_start NODE             batond in NODE with xf_conf's file (XF_CLUSTER=0: no cluster section)
#   xf_up                     start g1, g2 and c, initiate from c, wait until h answers
#   xf_stop_all               stop the daemons of xf_up
#   xf_session GW             1 if GW holds an IKE SA, else 0
#   xf_owner                  the gateway holding the session (empty: none, or both)
#   xf_other GW               the other gateway
#   xf_spis NODE              "IKE_SPI_I IKE_SPI_R CHILD_IN CHILD_OUT" of NODE's first IKE SA
#   xf_sas_json NODE FILE     NODE's list-sas JSON (normalised, sorted) to FILE
#   xf_ping_bg FILE [COUNT]   a 10 ms ping c -> h (COUNT, default 500) in the background: XF_PING_PID
#   xf_ping_loss FILE         "SENT RECEIVED" of a finished ping
#   xf_tcp_bg BYTES RATE      a paced TCP transfer c -> h (xfer.py) in the background
#   xf_tcp_ok                 wait for it; 0 when it arrived intact
#   xf_ike_capture NODE IFACE FILE   IKE only (no ESP) at NODE (mb_ike_types reads it)
#   xf_esp_capture FILE       ESP reaching c (switch.py reads it): who sent it, when it changed
#   xf_addr_move FROM TO      move the shared addresses by hand (what batond does on PUT): delete
#                             on FROM, add on TO, gratuitous ARP from TO
#   xf_migrate TO             batonctl migrate gw --to TO on the gateway that holds the session

XF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
declare -F mb_baton_conf >/dev/null || . "$XF_ROOT/tests/integration/mobike_lib.sh"
XF_TOOLS=$MB_TOOLS
XF_HOST=$MB_HOST       # 10.2.0.2
XF_INNER=$MB_INNER     # 10.1.0.1
XF_PORT=4510

xf_init() {
    tb_init "x$1" "${2:-}"
    TB_NODES="c r g1 g2 h sw"
    XF_KEY=$(tb_key 32)
    declare -gA MB_KIND=([c]=baton [g1]=baton [g2]=baton)
}

# xf_link NODE_A DEV_A NODE_B DEV_B: a veth pair made inside both namespaces, both ends up
xf_link() {
    ip -n "$(tb_ns "$1")" link add "$2" type veth peer name "$4" netns "$(tb_ns "$3")" &&
    tb_nsx "$1" ip link set "$2" up && tb_nsx "$3" ip link set "$4" up
}

xf_topology() {
    local n
    XF_LAN=$1
    tb_down
    for n in $TB_NODES; do
        [ "$XF_LAN" = mono ] && [ "$n" = r ] && continue
        ip netns add "$(tb_ns "$n")" || return 1
        tb_nsx "$n" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
            net.ipv4.conf.all.promote_secondaries=1 net.ipv4.conf.default.promote_secondaries=1 || return 1
        case $n in r|g1|g2) tb_nsx "$n" sysctl -qw net.ipv4.ip_forward=1 || return 1 ;; esac
        tb_nsx "$n" ip link set lo up
    done
    tb_nsx sw ip link add bt-xi type bridge && tb_nsx sw ip link set bt-xi up &&
    xf_link g1 in0 sw g1i && xf_link g2 in0 sw g2i && xf_link h eth0 sw ph &&
    for n in g1i g2i ph; do tb_nsx sw ip link set "$n" master bt-xi || return 1; done &&
    xf_link g1 cl0 g2 cl0 &&
    tb_nsx g1 ip addr add 10.9.0.1/24 dev cl0 && tb_nsx g2 ip addr add 10.9.0.2/24 dev cl0 &&
    tb_nsx g1 ip addr add 10.2.0.11/24 dev in0 && tb_nsx g2 ip addr add 10.2.0.12/24 dev in0 &&
    tb_nsx h ip addr add $XF_HOST/24 dev eth0 && tb_nsx h ip route add default via 10.2.0.1 &&
    tb_nsx c ip addr add $XF_INNER/32 dev lo || return 1
    if [ "$XF_LAN" = mono ]; then
        XF_GW=192.0.2.1 XF_C=192.0.2.10 XF_G1=192.0.2.11 XF_G2=192.0.2.12
        XF_SHARED="192.0.2.1/24%out0, 10.2.0.1/24%in0"
        tb_nsx sw ip link add bt-xo type bridge && tb_nsx sw ip link set bt-xo up &&
        xf_link c eth0 sw pc && xf_link g1 out0 sw g1o && xf_link g2 out0 sw g2o &&
        for n in pc g1o g2o; do tb_nsx sw ip link set "$n" master bt-xo || return 1; done &&
        tb_nsx c ip addr add $XF_C/24 dev eth0 &&
        tb_nsx g1 ip addr add $XF_G1/24 dev out0 && tb_nsx g2 ip addr add $XF_G2/24 dev out0 &&
        tb_nsx g1 ip addr add $XF_GW/24 dev out0 || return 1
    else
        XF_GW=172.16.1.1 XF_C=192.168.1.2 XF_G1=172.16.1.1 XF_G2=172.16.2.1
        XF_SHARED="10.2.0.1/24%in0"
        xf_link c eth0 r lan && xf_link r wan1 g1 out0 && xf_link r wan2 g2 out0 &&
        tb_nsx c ip addr add $XF_C/24 dev eth0 && tb_nsx c ip route add default via 192.168.1.1 &&
        tb_nsx r ip addr add 192.168.1.1/24 dev lan && tb_nsx r ip addr add 172.16.1.254/24 dev wan1 &&
        tb_nsx r ip addr add 172.16.2.254/24 dev wan2 &&
        tb_nsx g1 ip addr add $XF_G1/24 dev out0 && tb_nsx g1 ip route add default via 172.16.1.254 &&
        tb_nsx g2 ip addr add $XF_G2/24 dev out0 && tb_nsx g2 ip route add default via 172.16.2.254 || return 1
    fi
    tb_nsx g1 ip addr add 10.2.0.1/24 dev in0
}

# xf_conf NODE FILE: c: mobike_lib's client (local_addrs its outer address, remote XF_GW); g1, g2:
# mobike_lib's gateway with local_addrs every gateway address (each node uses the one it has) and
# the cluster section (XF_SEQ_JUMP, XF_CLUSTER_EXTRA: more lines in it; XF_CLUSTER=0: none).
xf_conf() {
    local node=$1 file=$2 me peer
    if [ "$node" = c ]; then
        MB_GW=$XF_GW MB_CLIENT_ADDRS=$XF_C mb_baton_conf c "$file"
        return
    fi
    if [ "$XF_LAN" = mono ]; then MB_GW=$XF_GW mb_baton_conf g "$file"
    else MB_GW="$XF_G1, $XF_G2" mb_baton_conf g "$file"; fi
    sed -i "s#socket = $TB_DIR/g.sock#socket = $TB_DIR/$node.sock#" "$file"
    [ "${XF_CLUSTER:-1}" = 1 ] || return 0
    if [ "$node" = g1 ]; then me=10.9.0.1 peer="g2 = 10.9.0.2"; else me=10.9.0.2 peer="g1 = 10.9.0.1"; fi
    cat >>"$file" <<CONF
cluster {
    name = $node
    key = 0x$XF_KEY
    listen = $me
    seq_jump = ${XF_SEQ_JUMP:-10000}
    shared_addrs = $XF_SHARED
${XF_CLUSTER_EXTRA:-}
    nodes {
        $peer
    }
}
CONF
}

# xf_start NODE: batond there with xf_conf's file, the tunnel's routes into bt0
xf_start() {
    local node=$1
    xf_conf "$node" "$TB_DIR/$node.conf"
    if [ "$node" = c ]; then
        mb_baton_start c "$TB_DIR/c.conf"
    else
        TB_ROUTES_g1=$XF_INNER/32 TB_ROUTES_g2=$XF_INNER/32 tb_start "$node" "$TB_DIR/$node.conf"
    fi
}

xf_up() {
    xf_start g1 && xf_start g2 && xf_start c || return 1
    tb_ctl c initiate gw >/dev/null || return 1
    tb_wait 15 tb_nsx c ping -c 1 -W 1 -I $XF_INNER $XF_HOST
}

xf_stop_all() { local n; for n in c g1 g2; do tb_stop "$n"; done; }

xf_session() { ike_sa "$1" "1 if s else 0"; }

xf_spis() {
    ike_sa "$1" "s.get('spi_i', ''), s.get('spi_r', ''), s.get('child_sa', {}).get('spi_in', ''), s.get('child_sa', {}).get('spi_out', '')" | tr -d "(),'"
}

# xf_sas_json NODE FILE: list-sas as sorted JSON, one key a line (diff-able)
xf_sas_json() { tb_ctl "$1" --json list-sas | python3 -c "import json,sys; json.dump(json.load(sys.stdin), sys.stdout, indent=1, sort_keys=True)" >"$2"; }

xf_ping_bg() {
    local file=$1 count=${2:-500}
    tb_bg c timeout $((count / 100 + 15)) ping -c "$count" -i 0.01 -W 1 -I $XF_INNER $XF_HOST >"$file" 2>&1
    XF_PING_PID=${TB_PIDS[-1]}
}
xf_ping_loss() { sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$1"; }

xf_tcp_bg() {
    local bytes=$1 rate=$2
    head -c "$bytes" /dev/urandom >"$TB_DIR/xfer.in"
    rm -f "$TB_DIR/xfer.out"
    tb_bg h timeout 40 python3 "$XF_TOOLS/xfer.py" serve 5001 "$TB_DIR/xfer.out"; XF_TCP_SRV=${TB_PIDS[-1]}
    tb_bg c timeout 40 python3 "$XF_TOOLS/xfer.py" send $XF_HOST 5001 "$TB_DIR/xfer.in" "$rate"; XF_TCP_SND=${TB_PIDS[-1]}
}
xf_tcp_ok() {
    local rc
    wait "$XF_TCP_SND"; rc=$?
    wait "$XF_TCP_SRV"
    tb_kill "$XF_TCP_SND"; tb_kill "$XF_TCP_SRV"
    [ $rc = 0 ] && [ "$(sha256sum <"$TB_DIR/xfer.in")" = "$(sha256sum <"$TB_DIR/xfer.out" 2>/dev/null)" ]
}

xf_ike_capture() { tb_capture "$1" "$2" "$3" 'udp port 500 or (udp port 4500 and udp[8:4] = 0)'; }
xf_esp_capture() { tb_capture c eth0 "$1" "dst host $XF_C and (ip proto 50 or (udp src port 4500 and udp[8:4] != 0))"; }

xf_addr_move() {
    local from=$1 to=$2 a dev
    for a in ${XF_SHARED//,/ }; do
        dev=${a#*%} a=${a%\%*}
        tb_nsx "$from" ip addr del "$a" dev "$dev" 2>/dev/null
        tb_nsx "$to" ip -4 addr show dev "$dev" | grep -q " $a " || tb_nsx "$to" ip addr add "$a" dev "$dev" || return 1
        tb_nsx "$to" python3 "$XF_TOOLS/garp.py" "$dev" "${a%/*}" || return 1
    done
}

# the gateway holding the session (g1 or g2), empty if none or both
xf_owner() {
    local a b
    a=$(xf_session g1) b=$(xf_session g2)
    if [ "$a" = 1 ] && [ "$b" = 0 ]; then echo g1; elif [ "$a" = 0 ] && [ "$b" = 1 ]; then echo g2; fi
}

xf_other() { [ "$1" = g1 ] && echo g2 || echo g1; }

xf_migrate() {
    local to=$1 from
    from=$(xf_owner) || return 1
    [ -n "$from" ] || { echo "xfer: no single gateway holds the session" >&2; return 1; }
    tb_ctl "$from" --json migrate gw --to "$to"
}
