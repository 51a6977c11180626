#!/usr/bin/env bash
# test_testbed.sh — the test-bed library itself (scripts/testbed.sh), with plain routing and no baton:
# the bed isolates the inner networks until something carries them, routes both families at once,
# captures what passes, and leaves no namespace, veth, process or folder behind, whether the script
# ends normally, fails, or is killed.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
LIB=$(cd "$(dirname "$0")/../../scripts" && pwd)/testbed.sh
tb_init lib nobins
echo "== the bed"
tb_topology || die "tb_topology failed"
n=$(ip netns list | grep -cE "^bt-$TB_TAG-(h1|g1|g2|h2)( |$)")
check "four namespaces bt-$TB_TAG-{h1,g1,g2,h2} ($n)" test "$n" = 4
check "no veth of the bed left in the root namespace" bash -c "! ip -o link | grep -q 'bt-$TB_ID-'"
check "the gateways forward IPv4 and IPv6" \
    test "$(tb_nsx g1 sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding | tr -d '\n')$(tb_nsx g2 sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding | tr -d '\n')" = 1111
check "without a tunnel h1 cannot reach h2 (IPv4)" bash -c "! ip netns exec $(tb_ns h1) ping -c 1 -W 1 -q 10.2.0.2"
check "without a tunnel h1 cannot reach h2 (IPv6)" bash -c "! ip netns exec $(tb_ns h1) ping -6 -c 1 -W 1 -q fd02::2"
check "the gateways reach each other (IPv4, IPv6)" bash -c \
    "ip netns exec $(tb_ns g1) ping -c 1 -W 1 -q 172.16.0.2 && ip netns exec $(tb_ns g1) ping -6 -c 1 -W 1 -q fd00::2"

echo "== plain routing between the gateways"
tb_plain_routes || die "tb_plain_routes failed"
rtt6=$(tb_nsx h1 ping -6 -c 1 -W 2 fd02::2 | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p')
check "IPv6 h1 -> h2, first packet (neighbour discovery on three links) answered at once (${rtt6:-none} ms)" \
    python3 -c "import sys; sys.exit(not ('${rtt6}' and float('${rtt6}') < 200))"
check "IPv4 h1 -> h2" ping_ok h1 10.2.0.2 2
check "TCP h1 -> h2, 1 MiB intact (IPv4)" xfer h1 10.2.0.2 1048576
check "TCP h2 -> h1, 1 MiB intact (IPv6)" xfer h2 fd01::2 1048576 5002

echo "== capture"
tb_capture g1 out0 "$TB_DIR/c.pcap" icmp || die "tb_capture failed"
ping_ok h1 10.2.0.2 3
tb_capture_stop "$TB_CAP_PID"
c=$(tcpdump -r "$TB_DIR/c.pcap" -n 2>/dev/null | grep -c "ICMP echo")
check "tb_capture saw every echo request and reply ($c of 6)" test "$c" = 6

echo "== cleanup on every exit path"
for how in term error normal; do
    out="$TB_DIR/child-$how"
    bash -c '
        . "$1"; tb_init lbx nobins; tb_topology || exit 9
        tb_bg h2 sleep 300; echo "${TB_PIDS[-1]} $TB_DIR $TB_TAG $TB_ID" >"$2"
        case $3 in error) exit 3 ;; normal) exit 0 ;; esac
        tb_wait 30 false' _ "$LIB" "$out" "$how" >/dev/null 2>&1 &
    child=$!
    tb_wait 10 test -s "$out"
    [ $how = term ] && kill -TERM $child
    for _ in $(seq 1 100); do kill -0 $child 2>/dev/null || break; sleep 0.1; done
    kill -0 $child 2>/dev/null && { kill -KILL $child; bad "$how: the bed's script did not exit"; }
    wait $child 2>/dev/null
    read -r spid sdir stag sid <"$out" || spid=
    check "$how: namespaces, veths, processes and folder gone" bash -c "
        [ -n '$spid' ] && ! ip netns list | grep -q '^bt-$stag-' && ! ip -o link | grep -q 'bt-$sid-' &&
        ! kill -0 $spid 2>/dev/null && [ ! -e '$sdir' ]"
done
finish
