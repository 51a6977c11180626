#!/usr/bin/env bash
# test_transport.sh — transport mode between the two gateways themselves (host to host): the SA's
# endpoints are the traffic's endpoints, so everything g1 sends to g2's address goes into the TUN
# except the ESP packets batond sends to that same address. The bed does it with policy routing
# (scripts/testbed.sh, tb_transport_routes): ESP in UDP (port 4500) and raw ESP (protocol 50) stay
# in the main table, all else to the peer goes to a table that routes it into bt0. Checked in ESP in
# UDP and raw ESP over IPv4 and in ESP in UDP over IPv6: ICMP, TCP and UDP between the gateways
# arrive, are counted on the transport-mode SAs, and on the wire between them there is nothing but
# ESP (and address resolution).
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init trn
tb_topology || die "tb_topology failed"
TB_PROPOSAL=aes128-sha256 TB_MODE=transport

restart() {
    tb_stop g1; tb_stop g2
    tb_keys || return 1
    tb_conf g1 "$TB_DIR/g1.conf" && tb_conf g2 "$TB_DIR/g2.conf" &&
    tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf"
}

# udp_count NODE ADDR: send 10 datagrams from g1 to ADDR:9999, print how many NODE received.
udp_count() {
    tb_bg "$1" timeout 5 python3 -c "
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', 9999)); s.settimeout(1.5); open(sys.argv[1], 'w').write('ready'); n = 0
try:
    while True: s.recv(2000); n += 1
except OSError: pass
open(sys.argv[1], 'w').write(str(n))" "$TB_DIR/udp.count"
    local pid=${TB_PIDS[-1]}
    tb_wait 5 grep -q ready "$TB_DIR/udp.count"
    tb_nsx g1 python3 -c "
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(10): s.sendto(b'u' * 200, (sys.argv[1], 9999))" "$2"
    wait "$pid"; tb_kill "$pid"
    cat "$TB_DIR/udp.count"
}

for v in "4 yes" "4 no" "6 yes"; do
    read -r TB_FAMILY TB_ENCAP <<<"$v"
    me=172.16.0.1 peer=172.16.0.2 esp="udp port 4500"
    [ "$TB_FAMILY" = 6 ] && me=fd00::1 peer=fd00::2
    [ "$TB_ENCAP" = no ] && esp="ip proto 50 or ip6 proto 50"
    tag="IPv$TB_FAMILY encap=$TB_ENCAP"
    echo "== $tag"
    restart || { bad "$tag: gateways did not start"; continue; }
    check "$tag: SAs in transport mode, $me -> $peer" test "$(sa g1 out "s['mode'], s['local'], s['remote']")" = "transport $me $peer"
    tb_capture g2 out0 "$TB_DIR/t.pcap" || die "capture did not start"
    check "$tag: ping g1 -> g2" ping_ok g1 "$peer"
    check "$tag: 1 MiB TCP g1 -> g2 intact" xfer g1 "$peer" 1048576
    check "$tag: 256 KiB TCP g2 -> g1 intact" xfer g2 "$me" 262144 5002
    n=$(udp_count g2 "$peer")
    check "$tag: UDP g1 -> g2 through the SA ($n of 10 datagrams)" test "$n" = 10
    tb_capture_stop "$TB_CAP_PID"
    pin=$(sa g2 in "s['packets']"); pout=$(sa g1 out "s['packets']")
    check "$tag: g1 sent $pout packets on its outbound SA, g2 received $pin" test "$pin" -ge 700 -a "$pin" = "$pout"
    # (UDP GSO: one captured packet may be many ESP packets on a veth, so few are seen)
    nesp=$(tcpdump -r "$TB_DIR/t.pcap" -n "$esp" 2>/dev/null | wc -l)
    tcpdump -r "$TB_DIR/t.pcap" -n "host $me and host $peer and not ($esp) and not arp and not (icmp6 and ip6[40] >= 133 and ip6[40] <= 137)" 2>/dev/null >"$TB_DIR/clear.txt"
    clear=$(wc -l <"$TB_DIR/clear.txt")
    check "$tag: between $me and $peer only ESP ($nesp packets) and address resolution; in clear: $clear" test "$nesp" -ge 20 -a "$clear" = 0
    [ "$clear" = 0 ] || head -n 5 "$TB_DIR/clear.txt"
done
finish
