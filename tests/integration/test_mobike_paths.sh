#!/usr/bin/env bash
# test_mobike_paths.sh — how batond's MOBIKE chooses and guards paths (issue 4), baton client and
# baton gateway on the bed of mobike_lib.sh:
#  1. the primary uplink comes back: c tests the path first (an INFORMATIONAL with COOKIE2 over
#     r1), then moves back to it; a 10 ms ping loses nothing (make before break), SPIs kept;
#  2. r1 silently stops forwarding (no local event at c): a DPD retransmission goes out over r2,
#     the update follows its answer, the traffic resumes over r2 with the same SPIs;
#  3. the update c sent is replayed from r1's address after the move, and a forged copy too: g's
#     SA does not move (g tests the return path first and nobody answers there), traffic flows on;
#  4. a NAT on r2: c learns it is behind it when it moves there, and that it is gone when it moves
#     back to r1.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
. "$(dirname "$0")/mobike_lib.sh"
mb_init mbpaths

gst() { st g "s['ike']$1"; }
ping_loss() { # ping_loss COUNT: a 10 ms ping c -> h in the background, its output in $TB_DIR/ping.out
    tb_bg c timeout 20 ping -c "$1" -i 0.01 -W 1 -I $MB_INNER $MB_HOST >"$TB_DIR/ping.out" 2>&1
    PING_PID=${TB_PIDS[-1]}
}
lost() { local r; r=$(grep -o '[0-9]* received' "$TB_DIR/ping.out" | cut -d' ' -f1); echo $(($1 - ${r:-0})); }

echo "== 1. the primary uplink goes and comes back: a path test, then the move back"
mb_topology || die "mb_topology failed"
mb_up baton baton || die "the tunnel did not come up"
spis0=$(mb_spis)
mb_uplink_down 1 link
tb_wait 5 test "$(mb_ike_addrs g)" = "$MB_GW 192.168.2.2" || bad "g follows c to r2"
probes0=$(st c "s['ike']['mobike_probes']")
ping_loss 300
sleep 0.5
mb_uplink_up 1
wait "$PING_PID"; tb_kill "$PING_PID"
check "c tested the path over r1 before moving back ($probes0 -> $(st c "s['ike']['mobike_probes']") path tests)" \
    test "$(st c "s['ike']['mobike_probes']")" -gt "$probes0"
check "g's IKE SA is back on c's r1 address" test "$(mb_ike_addrs g)" = "$MB_GW 192.168.1.2"
check "the traffic leaves c through r1 again" test "$(mb_path 0.3 & tb_nsx c ping -c 20 -i 0.01 -q -I $MB_INNER $MB_HOST >/dev/null; wait)" = r1
check "a 10 ms ping across the move back lost nothing ($(lost 300) of 300 lost)" test "$(lost 300)" = 0
check "the Child SA keeps its SPIs ($spis0)" test "$(mb_spis)" = "$spis0"
mb_stop_all

echo "== 2. r1 stops forwarding, nothing changes at c: DPD finds it and MOBIKE leaves the path"
DPD=1 IKE_RTX=0.3 mb_topology || die "mb_topology failed"
DPD=1 IKE_RTX=0.3 mb_up baton baton || die "the tunnel did not come up"
spis0=$(mb_spis)
ping_loss 600
sleep 0.3
tb_nsx r1 nft insert rule ip bt_provider fwd_from_client drop || bad "r1 drops c's traffic"
wait "$PING_PID"; tb_kill "$PING_PID"
n=$(lost 600)
check "c moved without a local event (mobike_failovers $(st c "s['ike']['mobike_failovers']"))" test "$(st c "s['ike']['mobike_failovers']")" -ge 1
check "g's IKE SA follows c to r2" test "$(mb_ike_addrs g)" = "$MB_GW 192.168.2.2"
check "the ping resumed ($n of 600 lost: dpd_delay 1 s + one retransmission timeout)" grep -q 'icmp_seq=600 ' "$TB_DIR/ping.out"
check "no new IKE SA (initiated $(st c "s['ike']['initiated']"))" test "$(st c "s['ike']['initiated']")" = 1
check "the Child SA keeps its SPIs ($spis0)" test "$(mb_spis)" = "$spis0"
mb_stop_all

echo "== 3. c's update replayed and forged from another path"
# one host address and a prefix: c announces no additional addresses, so its update stays the
# newest request g answered — what an attacker would replay
MB_CLIENT_ADDRS='192.168.1.2, 192.168.0.0/16' mb_topology || die "mb_topology failed"
MB_CLIENT_ADDRS='192.168.1.2, 192.168.0.0/16' mb_up baton baton || die "the tunnel did not come up"
mb_ike_capture "$TB_DIR/ike.pcap" || die "IKE capture on g"
mb_uplink_down 1 link
tb_wait 5 test "$(mb_ike_addrs g)" = "$MB_GW 192.168.2.2" || bad "g follows c to r2"
sleep 0.3
tb_capture_stop "$TB_CAP_PID"
ign0=$(gst "['drop_ignored']") probes0=$(gst "['mobike_probes']") fail0=$(gst "['mobike_probe_failures']")
n=$(tb_nsx r1 python3 "$TOOLS/ike_replay.py" --flip "$TB_DIR/ike.pcap" $MB_GW)
sleep 0.3
check "a forged copy of c's update ($n sent from r1) is dropped" test "$(gst "['drop_ignored']")" -gt "$ign0"
n=$(tb_nsx r1 python3 "$TOOLS/ike_replay.py" "$TB_DIR/ike.pcap" $MB_GW)
sleep 2.5
check "the replayed update ($n sent from r1) made g test the return path" test "$(gst "['mobike_probes']")" -gt "$probes0"
check "... which failed" test "$(gst "['mobike_probe_failures']")" -gt "$fail0"
check "g's IKE SA stays with c at 192.168.2.2" test "$(mb_ike_addrs g)" = "$MB_GW 192.168.2.2"
check "g's outbound ESP SA still goes to 192.168.2.2" test "$(sa g out "s.get('remote')")" = 192.168.2.2
check "traffic flows" ping_ok c $MB_HOST 5
mb_stop_all

echo "== 4. a NAT appears on the new path, and goes away on the way back"
MB_NAT=1 mb_topology || die "mb_topology failed"
mb_up baton baton || die "the tunnel did not come up"
spis0=$(mb_spis)
mb_uplink_down 1 link
tb_wait 5 test "$(mb_ike_addrs g)" = "$MB_GW 172.16.2.2" || bad "g follows c behind r2's NAT"
check "c knows it is behind a NAT now" test "$(ike_sa c "s['nat_local']")" = True
ping_loss 200
sleep 0.3
mb_uplink_up 1 # the preferred path is back: c tests it and moves there
wait "$PING_PID"; tb_kill "$PING_PID"
check "g's IKE SA is back on c's own address (no NAT)" test "$(mb_ike_addrs g)" = "$MB_GW 192.168.1.2"
check "c knows the NAT is gone" test "$(ike_sa c "s['nat_local']")" = False
check "a 10 ms ping across the move back lost nothing ($(lost 200) of 200 lost)" test "$(lost 200)" = 0
check "the Child SA keeps its SPIs ($spis0)" test "$(mb_spis)" = "$spis0"
mb_stop_all
finish
