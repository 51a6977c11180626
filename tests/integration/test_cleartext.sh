#!/usr/bin/env bash
# test_cleartext.sh — nothing routed into the tunnel leaves in clear. On g1: UDP covered by a DISCARD
# policy, traffic to a network no policy covers, and traffic whose PROTECT policy has lost its SA (a
# hard packet lifetime removes the outbound SA; the policy stays) are all dropped and counted
# (discard, policy, no_sa), while a capture on the outer link sees only ESP — no packet with an inner
# address in clear. And on g2: a packet that authenticates but whose inner addresses are outside the
# SA's selectors (sent by g1 through a PROTECT policy that borrows the child) is dropped after
# decryption (RFC 4301 inbound check), not delivered.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init clr
tb_topology || die "tb_topology failed"
TB_PROPOSAL=aes128gcm16; tb_keys
# g1: the outbound SA dies after 60 packets; UDP to h2 is discarded; 10.4.0.0/24 is sent through the
# child "net" although the child's selectors (and g2's inbound check) say 10.2.0.0/24
TB_EXTRA="                life_packets = 60"
TB_POLICIES='policies {
    no-udp {
        action = discard
        local_ts = 10.1.0.0/24
        remote_ts = 10.2.0.0/24[udp]
        priority = 10
    }
    borrow {
        action = protect
        local_ts = 10.1.0.0/24
        remote_ts = 10.4.0.0/24
        child = gw/net
        priority = 20
    }
}'
tb_conf g1 "$TB_DIR/g1.conf"
TB_EXTRA= TB_POLICIES= tb_conf g2 "$TB_DIR/g2.conf"
TB_ROUTES_g1="10.2.0.0/24 10.3.0.0/24 10.4.0.0/24" tb_start g1 "$TB_DIR/g1.conf" || die "g1 did not start"
tb_start g2 "$TB_DIR/g2.conf" || die "g2 did not start"
# h2 answers for 10.4.0.9 too, so a packet that got through would be seen
tb_nsx h2 ip addr add 10.4.0.9/32 dev lo
tb_nsx g2 ip route add 10.4.0.9/32 via 10.2.0.2

# everything on the outer link is recorded; inner addresses must never appear in it
TB_CAP_SECS=120 tb_capture g1 out0 "$TB_DIR/wire.pcap" || die "capture did not start"
check "the tunnel carries h1 -> h2" ping_ok h1 10.2.0.2 2

echo "== DISCARD"
tb_bg h2 timeout 5 python3 -c "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 9999)); s.settimeout(1.5)
open(sys.argv[1], 'w').write('ready'); n = 0
try:
    while True: s.recv(2000); n += 1
except OSError: pass
open(sys.argv[1], 'w').write(str(n))" "$TB_DIR/udp.count"
lpid=${TB_PIDS[-1]}
tb_wait 5 grep -q ready "$TB_DIR/udp.count"
d0=$(st g1 "s['discard']")
tb_nsx h1 python3 -c "
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(10): s.sendto(b'x' * 100, ('10.2.0.2', 9999))"
wait "$lpid"; tb_kill "$lpid"
check "UDP h1 -> h2 is not delivered ($(cat "$TB_DIR/udp.count") of 10 received)" test "$(cat "$TB_DIR/udp.count")" = 0
check "counted as discard ($d0 -> $(st g1 "s['discard']"))" test "$(st g1 "s['discard']")" = $((d0 + 10))

echo "== no policy"
p0=$(st g1 "s['drops']['policy']")
tb_nsx h1 ping -c 5 -i 0.1 -W 1 -q 10.3.0.9 >/dev/null 2>&1
check "traffic to 10.3.0.9 (routed into the TUN, no policy): dropped as policy ($p0 -> $(st g1 "s['drops']['policy']"))" \
    test "$(st g1 "s['drops']['policy']")" -ge $((p0 + 5))

echo "== inbound selector check"
q0=$(sa g2 in "s['drops']['policy']")
check "ping h1 -> 10.4.0.9 (protected by g1 with the child's SA) gets no answer" \
    bash -c "! ip netns exec $(tb_ns h1) ping -c 3 -i 0.1 -W 1 -q 10.4.0.9"
check "g2 authenticated and decrypted it, then dropped it as outside the SA's selectors (policy $q0 -> $(sa g2 in "s['drops']['policy']"))" \
    test "$(sa g2 in "s['drops']['policy']")" -ge $((q0 + 3))

echo "== PROTECT without an SA"
tb_nsx h1 ping -c 60 -i 0.02 -W 1 -q 10.2.0.2 >/dev/null 2>&1
nout() { tb_ctl g1 --json list-sas | python3 -c 'import json, sys; print(len([s for s in json.load(sys.stdin)["sas"] if s["dir"] == "out"]))'; }
for _ in $(seq 1 60); do [ "$(nout)" = 0 ] && break; sleep 0.1; done
check "the outbound SA reached its hard lifetime (60 packets) and was removed" test "$(nout)" = 0
check "its PROTECT policy is still in place" bash -c "ip netns exec $(tb_ns g1) timeout 10 $BATONCTL -s $TB_DIR/g1.sock --json list-pols | grep -q '\"protect\"'"
n0=$(st g1 "s['drops']['no_sa']")
check "ping h1 -> h2 fails" bash -c "! ip netns exec $(tb_ns h1) ping -c 5 -i 0.1 -W 1 -q 10.2.0.2"
check "dropped as no_sa ($n0 -> $(st g1 "s['drops']['no_sa']"))" test "$(st g1 "s['drops']['no_sa']")" -ge $((n0 + 5))
n1=$(st g1 "s['drops']['no_sa']")
check "TCP h1 -> h2 cannot connect" bash -c "! ip netns exec $(tb_ns h1) timeout 5 python3 -c \"import socket; socket.create_connection(('10.2.0.2', 5009), timeout=2)\""
check "its SYNs dropped as no_sa too ($n1 -> $(st g1 "s['drops']['no_sa']"))" test "$(st g1 "s['drops']['no_sa']")" -gt "$n1"

tb_capture_stop "$TB_CAP_PID"
clear=$(tcpdump -r "$TB_DIR/wire.pcap" -n "net 10.0.0.0/8 or host fd01::2 or host fd02::2" 2>/dev/null | wc -l)
esp=$(tcpdump -r "$TB_DIR/wire.pcap" -n "udp port 4500" 2>/dev/null | wc -l)
other=$(tcpdump -r "$TB_DIR/wire.pcap" -n "not udp port 4500 and not arp and not (icmp6 and ip6[40] >= 133 and ip6[40] <= 137) and not (ip6 dst net ff02::/16)" 2>/dev/null | wc -l)
check "on the outer link: $esp ESP packets, $clear with an inner address in clear, $other anything else" \
    test "$clear" = 0 -a "$other" = 0 -a "$esp" -ge 60
finish
