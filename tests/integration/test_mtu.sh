#!/usr/bin/env bash
# test_mtu.sh — packet sizes around the inner MTU. A packet of exactly the MTU passes with DF set and
# its ESP packet fits the outer link unfragmented; one byte more is refused with "fragmentation
# needed" / "packet too big" naming the MTU (path MTU discovery works through the gateway); packets
# without DF are fragmented and pass; 1-byte and empty payloads pass; large TCP transfers (full-size
# segments, TSO) arrive intact both ways. For the suite with the largest overhead (AES-256-CBC with
# HMAC-SHA-512) and for AES-128-GCM, with IPv4 and IPv6 outside, and with a smaller outer MTU.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init mtu
tb_topology || die "tb_topology failed"

restart() {
    tb_stop g1; tb_stop g2
    # the hosts remember the path MTU of the previous tunnel for minutes: forget it
    for n in h1 h2; do tb_nsx $n ip route flush cache; tb_nsx $n ip -6 route flush cache; done
    tb_keys || return 1
    tb_conf g1 "$TB_DIR/g1.conf" && tb_conf g2 "$TB_DIR/g2.conf" &&
    tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf"
}

# udp_sizes SIZES...: one datagram of each size h1 -> h2; prints the sizes that arrived, sorted.
udp_sizes() {
    tb_bg h2 timeout 5 python3 -c "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('10.2.0.2', 9999)); s.settimeout(1.5)
open(sys.argv[1], 'w').write('ready'); got = []
try:
    while True: got.append(len(s.recv(70000)))
except OSError: pass
open(sys.argv[1], 'w').write(' '.join(map(str, sorted(got))))" "$TB_DIR/udp.got"
    local pid=${TB_PIDS[-1]}
    tb_wait 5 grep -q ready "$TB_DIR/udp.got"
    tb_nsx h1 python3 -c "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in sys.argv[1:]: s.sendto(b'z' * int(n), ('10.2.0.2', 9999))" "$@"
    wait "$pid"; tb_kill "$pid"
    cat "$TB_DIR/udp.got"
}

# suite TAG OUTER_MTU: the checks for the running gateways.
suite() {
    local tag=$1 omtu=$2 mtu max4 max6 out big frag
    mtu=$(st g1 "s['mtu']")
    max4=$((mtu - 28)) max6=$((mtu - 48))
    check "$tag: the TUN has the MTU the daemon reports ($mtu)" \
        test "$(tb_nsx g1 cat /sys/class/net/bt0/mtu) $(st g2 "s['mtu']")" = "$mtu $mtu"
    tb_capture g1 out0 "$TB_DIR/m.pcap" "ip proto 17 or ip proto 50 or ip6 proto 17 or ip6 proto 50 or (ip[6:2] & 0x3fff != 0)" ||
        die "capture did not start"
    check "$tag: IPv4 ping, DF, $max4-byte payload (a packet of exactly the MTU)" \
        tb_nsx h1 ping -M do -c 2 -i 0.2 -W 2 -q -s $max4 10.2.0.2
    check "$tag: IPv6 ping, $max6-byte payload (exactly the MTU)" \
        tb_nsx h1 ping -6 -M do -c 2 -i 0.2 -W 2 -q -s $max6 fd02::2
    tb_capture_stop "$TB_CAP_PID"
    # the largest frame on the outer link, and whether any was an outer fragment
    big=$(tcpdump -r "$TB_DIR/m.pcap" -n -e 2>/dev/null | sed -n 's/.*length \([0-9]*\):.*/\1/p' | sort -n | tail -n 1)
    frag=$(tcpdump -r "$TB_DIR/m.pcap" -n "(ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44)" 2>/dev/null | wc -l)
    check "$tag: those ESP packets fit the outer link: largest frame ${big:-none} bytes (<= $omtu + 14), $frag outer fragments" \
        test -n "$big" -a "${big:-0}" -le $((omtu + 14)) -a "$frag" = 0
    out=$(tb_nsx h1 ping -M do -c 2 -i 0.3 -W 2 -s $((max4 + 1)) 10.2.0.2 2>&1)
    check "$tag: IPv4 ping, DF, one byte more: frag-needed back, mtu $mtu" grep -qE "mtu ?= ?$mtu" <<<"$out"
    out=$(tb_nsx h1 ping -6 -M do -c 2 -i 0.3 -W 2 -s $((max6 + 1)) fd02::2 2>&1)
    check "$tag: IPv6 ping, one byte more: packet too big back, mtu $mtu" grep -qE "mtu ?= ?$mtu" <<<"$out"
    check "$tag: IPv4 ping without DF, 4000 bytes (fragmented by h1 and g1)" \
        tb_nsx h1 ping -M dont -c 2 -i 0.2 -W 2 -q -s 4000 10.2.0.2
    check "$tag: IPv6 ping, 3000 bytes (fragmented by h1 after the packet-too-big)" \
        tb_nsx h1 ping -6 -c 2 -i 0.2 -W 2 -q -s 3000 fd02::2
    check "$tag: 1-byte and empty ICMP payloads (IPv4, IPv6)" bash -c "
        ip netns exec $(tb_ns h1) ping -c 2 -i 0.2 -W 2 -q -s 1 10.2.0.2 && ip netns exec $(tb_ns h1) ping -c 2 -i 0.2 -W 2 -q -s 0 10.2.0.2 &&
        ip netns exec $(tb_ns h1) ping -6 -c 2 -i 0.2 -W 2 -q -s 1 fd02::2"
    out=$(udp_sizes 0 1 2 3 4 5 15 16 17 $((max4 - 1)) $((max4 + 1)) 9000)
    check "$tag: UDP datagrams of 0..17, MTU-1, MTU+1 (fragmented) and 9000 bytes all arrive (sizes: $out)" \
        test "$out" = "0 1 2 3 4 5 15 16 17 $((max4 - 1)) $((max4 + 1)) 9000"
    check "$tag: nothing dropped for size or buffers on g1/g2 ($(st g1 "s['drops']['nobuf'] + s['drops']['io']"), $(st g2 "s['drops']['nobuf'] + s['drops']['io']"))" \
        test "$(st g1 "s['drops']['nobuf'] + s['drops']['io']") $(st g2 "s['drops']['nobuf'] + s['drops']['io']")" = "0 0"
}

echo "== aes256-sha512 (the largest overhead), IPv4 outside"
TB_PROPOSAL=aes256-sha512
restart || die "gateways did not start"
suite "cbc-v4" 1500
check "20 MiB TCP h1 -> h2 (IPv4) intact" xfer h1 10.2.0.2 20971520
check "8 MiB TCP h1 -> h2 (IPv6) intact" xfer h1 fd02::2 8388608 5002
check "8 MiB TCP h2 -> h1 (IPv4) intact" xfer h2 10.1.0.2 8388608 5003

echo "== aes256-sha512, IPv6 outside (40-byte outer header)"
TB_FAMILY=6
restart || die "gateways did not start"
suite "cbc-v6" 1500
check "8 MiB TCP h1 -> h2 intact" xfer h1 10.2.0.2 8388608 5004
TB_FAMILY=4

echo "== aes128gcm16, IPv4 outside"
TB_PROPOSAL=aes128gcm16
restart || die "gateways did not start"
suite "gcm-v4" 1500

echo "== aes128gcm16, outer links of MTU 1400 (outer_mtu = 1400)"
for gw in g1 g2; do tb_nsx $gw ip link set out0 mtu 1400; done
TB_BATON_EXTRA="    outer_mtu = 1400"
restart || die "gateways did not start"
suite "gcm-1400" 1400
check "8 MiB TCP h1 -> h2 intact" xfer h1 10.2.0.2 8388608 5005
TB_BATON_EXTRA=
finish
