#!/usr/bin/env bash
# test_cleartext.sh — traffic that a PROTECT policy covers but no SA can carry, traffic a DISCARD
# policy covers, and traffic routed into the tunnel that no policy covers are all dropped and
# counted, and none of it appears in clear on the wire between the gateways.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init clr
tb_topology
TB_PROPOSAL=aes128gcm16; tb_keys
# the outbound SA dies after 20 packets (hard lifetime): its PROTECT policy stays
TB_EXTRA="                life_packets = 20"
TB_POLICIES='policies {
    no-udp {
        action = discard
        local_ts = 10.1.0.0/24
        remote_ts = 10.2.0.0/24[udp]
        priority = 10
    }
}'
tb_conf g1 "$TB_DIR/g1.conf"
TB_EXTRA= TB_POLICIES= tb_conf g2 "$TB_DIR/g2.conf"
TB_ROUTES_g1="10.2.0.0/24 10.3.0.0/24" tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf" || exit 1

# everything leaving g1 towards g2 is watched for inner addresses in clear
tb_bg g1 timeout 30 tcpdump -i out0 -U -n -w "$TB_DIR/wire.pcap" 2>/dev/null
dump=${TB_PIDS[-1]}
sleep 1

tb_nsx h2 timeout 5 python3 -c "
import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 9999)); s.settimeout(2)
n=0
try:
    while True: s.recv(2000); n+=1
except OSError: pass
print(n)" >"$TB_DIR/udp.count" &
listener=$!
sleep 0.5
tb_nsx h1 python3 -c "
import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(10): s.sendto(b'x'*100, ('10.2.0.2', 9999))"
wait $listener
check "DISCARD: UDP to h2 is not delivered ($(cat "$TB_DIR/udp.count") received)" test "$(cat "$TB_DIR/udp.count")" = 0
check "DISCARD: counted ($(st g1 "s['discard']"))" test "$(st g1 "s['discard']")" -ge 10

tb_nsx h1 ping -c 30 -i 0.05 -W 1 10.2.0.2 >/dev/null 2>&1
sleep 1.5 # the daemon's lifetime check runs every second and removes the expired SA
check "the outbound SA expired and was removed" test "$(tb_ctl g1 --json list-sas | python3 -c 'import json,sys; print(len([s for s in json.load(sys.stdin)["sas"] if s["dir"]=="out"]))')" = 0
n0=$(st g1 "s['drops']['no_sa']")
check "PROTECT without an SA: ping fails" bash -c "! ip netns exec $(tb_ns h1) ping -c 5 -i 0.1 -W 1 10.2.0.2 >/dev/null"
check "PROTECT without an SA: dropped as no_sa ($n0 -> $(st g1 "s['drops']['no_sa']"))" test "$(st g1 "s['drops']['no_sa']")" -ge $((n0 + 5))

p0=$(st g1 "s['drops']['policy']")
tb_nsx h1 ping -c 5 -i 0.1 -W 1 10.3.0.9 >/dev/null 2>&1
check "no policy: dropped as policy ($p0 -> $(st g1 "s['drops']['policy']"))" test "$(st g1 "s['drops']['policy']")" -ge $((p0 + 5))

kill "$dump" 2>/dev/null; wait "$dump" 2>/dev/null
clear=$(tcpdump -r "$TB_DIR/wire.pcap" -n "host 10.1.0.2 or host 10.2.0.2 or host 10.3.0.9" 2>/dev/null | wc -l)
esp=$(tcpdump -r "$TB_DIR/wire.pcap" -n "udp port 4500" 2>/dev/null | wc -l)
check "no inner address in clear on the wire ($clear packets; $esp ESP packets seen)" test "$clear" = 0 -a "$esp" -ge 20
finish
