#!/usr/bin/env bash
# test_ike.sh — IKEv2 between real daemons on the bed h1 — g1 ==== g2 — h2, PSK:
#  baton <-> baton: initiate by command, traffic (ping, TCP both ways), the same SPIs on both ends,
#  NAT-T float to 4500; start_action = trap (the first packet brings the tunnel up); terminate
#  (both ends drop the SAs); a wrong PSK fails on both ends and installs nothing; DPD notices a
#  vanished peer; a reload with the same file keeps the SAs.
#  baton <-> strongSwan 5.9.8 (charon, kernel-libipsec, encap = yes): baton as initiator and as
#  responder, traffic both ways.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
. "$(dirname "$0")/../../bench/peers.sh"
tb_init ike
tb_topology || die "tb_topology failed"

test_zero() { test "$(sa_count "$1") $(sa_count g1)" = "0 0"; }

start_both() {
    tb_stop g1; tb_stop g2
    ike_conf g1 "$TB_DIR/g1.conf" && ike_conf g2 "$TB_DIR/g2.conf" &&
    tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf"
}

echo "== baton -> baton, batonctl initiate"
start_both || die "gateways did not start"
check "initiate is accepted" tb_ctl g1 initiate gw
check "the IKE SA and its Child SA come up on the initiator" ike_up g1 5
check "... and on the responder" ike_up g2 5
check "same IKE SPIs on both ends" test "$(ike_sa g1 "s['spi_i'] + s['spi_r']")" = "$(ike_sa g2 "s['spi_i'] + s['spi_r']")"
check "g1's inbound SPI is g2's outbound SPI" test "$(ike_sa g1 "s['child_sa']['spi_in']")" = "$(ike_sa g2 "s['child_sa']['spi_out']")"
check "IKE and ESP floated to port 4500" test "$(ike_sa g1 "s['remote_port'], s['udp_encap']")" = "4500 True"
check "the negotiated proposals are listed" test "$(ike_sa g1 "s['proposal'] + ' ' + s['child_sa']['proposal']")" = "aes128gcm16-prfsha256-curve25519 aes128gcm16"
check "ping h1 -> h2 through the negotiated SA" ping_ok h1 10.2.0.2
check "1 MiB h1 -> h2 over TCP arrives intact" xfer h1 10.2.0.2 1048576
check "256 KiB h2 -> h1 over TCP arrives intact" xfer h2 10.1.0.2 262144 5002
check "a second initiate does not make a second SA" test "$(tb_ctl g1 initiate gw)" = "gw: gw/net is already up"
check "reload of the same file keeps the IKE SA" tb_ctl g1 load
check "... still established, same SPIs, traffic flows" test "$(ike_sa g1 "s['state'] + s['spi_i']")" = "$(ike_sa g2 "s['state'] + s['spi_i']")" -a "$(ike_sa g1 "s['state']")" = established
check "... ping" ping_ok h1 10.2.0.2
echo "== Child SA rekeys (CREATE_CHILD_SA) from both ends under a 10 ms ping: no loss"
spis() { echo "$(ike_sa g1 "s['child_sa']['spi_in'] + s['child_sa']['spi_out']")"; }
before=$(spis)
tb_nsx h1 ping -c 300 -i 0.01 -W 1 -q 10.2.0.2 >"$TB_DIR/rekey-ping.out" 2>&1 &
PING=$!
sleep 0.5; tb_ctl g1 rekey gw >/dev/null; sleep 0.7; tb_ctl g2 rekey gw >/dev/null; sleep 0.7; tb_ctl g1 rekey gw >/dev/null
wait "$PING"
check "three rekeys done on both ends" tb_wait 5 test "$(ike_sa g1 "s['child_rekeys']") $(ike_sa g2 "s['child_rekeys']")" = "3 3"
check "new SPIs, the same on both ends" test "$(spis)" != "$before" -a "$(ike_sa g1 "s['child_sa']['spi_in']")" = "$(ike_sa g2 "s['child_sa']['spi_out']")"
check "no ping lost across the rekeys ($(grep -o '[0-9]*% packet loss' "$TB_DIR/rekey-ping.out"))" grep -q " 0% packet loss" "$TB_DIR/rekey-ping.out"
check "only the new Child SA's two SAs remain on each end" test "$(tb_ctl g1 --json list-sas | python3 -c "import json,sys; print(len(json.load(sys.stdin)['sas']))")" = 2
check "TCP still flows" xfer h1 10.2.0.2 262144

echo "== IKE SA rekeys from both ends (the Child SA stays)"
ikespis() { echo "$(ike_sa g1 "s['spi_i'] + s['spi_r']")"; }
before=$(ikespis); child=$(spis)
tb_nsx h1 ping -c 200 -i 0.01 -W 1 -q 10.2.0.2 >"$TB_DIR/ikerekey-ping.out" 2>&1 &
PING=$!
sleep 0.3; tb_ctl g1 rekey-ike gw >/dev/null; sleep 0.6; tb_ctl g2 rekey-ike gw >/dev/null
wait "$PING"
check "two IKE rekeys on both ends" tb_wait 5 test "$(ike_sa g1 "s['ike_rekeys']") $(ike_sa g2 "s['ike_rekeys']")" = "2 2"
check "new IKE SPIs, the same on both ends" test "$(ikespis)" != "$before" -a "$(ikespis)" = "$(ike_sa g2 "s['spi_i'] + s['spi_r']")"
check "the Child SA kept its SPIs" test "$(spis)" = "$child"
check "no ping lost ($(grep -o '[0-9]*% packet loss' "$TB_DIR/ikerekey-ping.out"))" grep -q " 0% packet loss" "$TB_DIR/ikerekey-ping.out"
check "one IKE SA on each end" test "$(tb_ctl g1 --json list-sas | python3 -c "import json,sys; print(len(json.load(sys.stdin)['ike_sas']))")" = 1
check "a Child SA rekey over the rekeyed IKE SA" tb_ctl g2 rekey gw
check "... done" tb_wait 5 test "$(ike_sa g1 "s['child_rekeys']")" = 4
check "... traffic flows" ping_ok h1 10.2.0.2
check "the rekeyed IKE SA carried that exchange: g2 sent on it (message ID $(ike_sa g2 "s['message_id_out']"))" test "$(ike_sa g2 "s['message_id_out']")" -ge 1
check "terminate deletes the IKE SA" tb_ctl g1 terminate gw
check "... on both ends, with the Child SAs" tb_wait 5 test_zero g2
no_ping() { ! tb_nsx h1 ping -c 1 -W 1 -q 10.2.0.2; }
check "... and no traffic passes any more" no_ping

echo "== rekey_time on g1: the Child SA every 2 s, the IKE SA every 3 s, on their own; reloads"
tb_stop g1; tb_stop g2
ike_conf g2 "$TB_DIR/g2.conf"
IKE_CHILD_EXTRA="                rekey_time = 2s" IKE_CONN_EXTRA="        rekey_time = 3s" START=start ike_conf g1 "$TB_DIR/g1.conf"
tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf" || die "gateways did not start"
check "start_action = start brought it up" ike_up g1 5
check "list-sas shows when the next rekeys are due" tb_wait 2 bash -c "$BATONCTL -s $TB_DIR/g1.sock list-sas 2>/dev/null | grep -q 'IKE rekey in'"
tb_nsx h1 ping -c 350 -i 0.02 -W 1 -q 10.2.0.2 >"$TB_DIR/timed-ping.out" 2>&1
counts=$(ike_sa g1 "s['child_rekeys'], s['ike_rekeys']"); counts2=$(ike_sa g2 "s['child_rekeys'], s['ike_rekeys']")
check "after 7 s: Child and IKE rekeys happened by themselves (g1: $counts, g2: $counts2 child/IKE)" \
    test "$(ike_sa g1 "s['child_rekeys'] >= 2 and s['ike_rekeys'] >= 1")" = True
check "no ping lost meanwhile ($(grep -o '[0-9]*% packet loss' "$TB_DIR/timed-ping.out"))" grep -q " 0% packet loss" "$TB_DIR/timed-ping.out"
spi0=$(ike_sa g1 "s['spi_i']")
sed -i 's/^connections {/connections {\n    other {\n        local_addrs = 172.16.0.1\n        remote_addrs = 192.0.2.1\n        proposals = aes128gcm16-prfsha256-x25519\n        children {\n            c {\n                local_ts = 10.9.0.0\/24\n                remote_ts = 10.8.0.0\/24\n                esp_proposals = aes128gcm16\n            }\n        }\n    }/' "$TB_DIR/g1.conf"
sed -i 's/^secrets {/secrets {\n    ike-other {\n        id = 192.0.2.1\n        secret = another-secret\n    }/' "$TB_DIR/g1.conf"
check "a reload that adds an unrelated connection is accepted" tb_ctl g1 load
check "... and keeps the IKE SA" test "$(ike_sa g1 "s['spi_i'] + s['state']")" = "${spi0}established"
sed -i 's/proposals = aes128gcm16-prfsha256-x25519$/proposals = aes256gcm16-prfsha384-x25519/' "$TB_DIR/g1.conf"
check "a reload that changes the connection's proposals is accepted" tb_ctl g1 load
check "... and closes the SA it no longer allows (on both ends)" tb_wait 5 test_zero g2
check "start_action = start tries again with the new proposal, which g2 refuses (NO_PROPOSAL_CHOSEN)" \
    tb_wait 5 grep -q "negotiation failed: notify 14 (NO_PROPOSAL_CHOSEN)" "$TB_DIR/g1.log"

echo "== start_action = trap: the first packet starts the negotiation"
START=trap start_both || die "gateways did not start"
check "no IKE SA before traffic" test "$(ike_sa g1 "len(s)")" = 0
tb_nsx h1 ping -c 1 -W 1 -q 10.2.0.2 >/dev/null 2>&1
check "traffic for the trap policy brought the tunnel up" ike_up g1 5
check "ping" ping_ok h1 10.2.0.2
check "the acquire was counted" test "$(st g1 "s['ike']['acquires']")" -ge 1

echo "== the responder demands COOKIEs (cookie_threshold = 0) and wants ecp256 (INVALID_KE_PAYLOAD)"
tb_stop g1; tb_stop g2
IKE_PROPOSALS=aes128gcm16-prfsha256-ecp256 IKE_BATON_EXTRA="    cookie_threshold = 0" ike_conf g2 "$TB_DIR/g2.conf"
IKE_PROPOSALS=aes128gcm16-prfsha256-x25519-ecp256 ike_conf g1 "$TB_DIR/g1.conf"
tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf" || die "gateways did not start"
tb_ctl g1 initiate gw >/dev/null
check "up after a COOKIE round and a group change" ike_up g1 5
check "g2 sent COOKIEs and kept no state for them ($(st g2 "s['ike']['cookies_sent']") sent)" test "$(st g2 "s['ike']['cookies_sent']")" -ge 1
check "g1 started over for the COOKIE and for INVALID_KE_PAYLOAD" bash -c "grep -q 'IKE_SA_INIT again (COOKIE)' '$TB_DIR/g1.log' && grep -q 'IKE_SA_INIT again (INVALID_KE_PAYLOAD: group 19)' '$TB_DIR/g1.log'"
check "the SA uses ecp256" test "$(ike_sa g1 "s['proposal']")" = aes128gcm16-prfsha256-ecp256
check "ping" ping_ok h1 10.2.0.2

echo "== a wrong PSK: AUTHENTICATION_FAILED, nothing installed"
tb_stop g1; tb_stop g2
ike_conf g2 "$TB_DIR/g2.conf"; PSK=not-the-same-key ike_conf g1 "$TB_DIR/g1.conf"
tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf" || die "gateways did not start"
tb_ctl g1 initiate gw >/dev/null
check "the responder refuses the AUTH" tb_wait 5 grep -q "AUTHENTICATION_FAILED" "$TB_DIR/g2.log"
check "the initiator reports the failure" tb_wait 5 grep -q "negotiation failed" "$TB_DIR/g1.log"
check "no SAs on either end" test "$(sa_count g1) $(sa_count g2)" = "0 0"

echo "== the initiator restarts: INITIAL_CONTACT makes the responder drop the stale IKE SA"
start_both || die "gateways did not start"
tb_ctl g1 initiate gw >/dev/null
check "up" ike_up g1 5
old=$(ike_sa g2 "s['spi_i']")
kill -KILL "${TB_DAEMON[g1]}"; tb_stop g1
tb_start g1 "$TB_DIR/g1.conf" || die "g1 did not restart"
tb_ctl g1 initiate gw >/dev/null
check "a new IKE SA" ike_up g1 5
one_sa() { test "$(tb_ctl g2 --json list-sas | python3 -c "import json,sys; print(len(json.load(sys.stdin)['ike_sas']))")" = 1; }
check "g2 holds only the new IKE SA (the stale one dropped on INITIAL_CONTACT)" tb_wait 3 one_sa
check "... which is not the old one, and the drop was counted" test "$(ike_sa g2 "s['spi_i']")" != "$old" -a "$(st g2 "s['ike']['initial_contact_drops']")" = 1
check "traffic flows" ping_ok h1 10.2.0.2

echo "== a flood of IKE_SA_INIT requests: COOKIEs past the threshold, half-open SAs expire"
tb_stop g1; tb_stop g2
IKE_PROPOSALS=aes128-sha256-ecp256 IKE_BATON_EXTRA="    half_open_timeout = 2s
    cookie_threshold = 10" ike_conf g2 "$TB_DIR/g2.conf"
tb_start g2 "$TB_DIR/g2.conf" || die "g2 did not start"
flood() {
    tb_nsx g1 python3 - "${BATON_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/unit/data/strongswan-ike-sa-init-request.bin" <<'PY'
import os, socket, sys
msg = bytearray(open(sys.argv[1], "rb").read())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("172.16.0.1", 0))
for k in range(50):
    msg[0:8] = os.urandom(8)              # a new initiator SPI each time
    s.sendto(bytes(msg), ("172.16.0.2", 500))
PY
}
half_open() { st g2 "s['ike']['half_open']"; }
flood
check "50 requests: at most cookie_threshold half-open SAs ($(half_open)), the rest got COOKIEs ($(st g2 "s['ike']['cookies_sent']"))" \
    tb_wait 3 test "$(half_open)" -le 10 -a "$(st g2 "s['ike']['cookies_sent']")" -ge 40
expired() { test "$(half_open)" = 0 -a "$(st g2 "s['ike']['ike_sas']")" = 0; }
check "after half_open_timeout they are gone" tb_wait 6 expired
check "... each counted ($(st g2 "s['ike']['half_open_expired']") expired)" test "$(st g2 "s['ike']['half_open_expired']")" = 10

echo "== DPD: the peer vanishes"
DPD=1 IKE_RTX=1 start_both || die "gateways did not start"
tb_ctl g1 initiate gw >/dev/null
check "up" ike_up g1 5
dpd_sent() { test "$(st g1 "s['ike']['dpd_sent']")" -ge 2; }
gone() { test "$(sa_count g1)" = 0; }
check "liveness checks go out and get answered while the peer lives" tb_wait 6 dpd_sent
check "... no retransmission was needed" test "$(st g1 "s['ike']['retransmits']") $(st g2 "s['ike']['retransmits']")" = "0 0"
check "... and the SA stays" test "$(ike_sa g1 "s['state']")" = established
kill -KILL "${TB_DAEMON[g2]}" # vanished: no delete sent
tb_stop g2
check "with the peer gone, retransmissions give up and the SA is removed" tb_wait 25 gone
check "the give-up was logged" grep -q "giving up on the IKE SA" "$TB_DIR/g1.log"

echo "== baton (initiator) -> strongSwan 5.9.8 (responder), IKE fragments of 200 bytes both ways"
tb_stop g1; tb_stop g2
IKE_BATON_EXTRA="    fragment_size = 200" IKE_PROPOSALS=aes128-sha256-ecp256 PSK=baton-bench-only-psk ike_conf g1 "$TB_DIR/g1.conf"
if SS_CHARON_EXTRA="fragment_size = 200" ss_start g2 aes128gcm16 && tb_start g1 "$TB_DIR/g1.conf"; then
    tb_ctl g1 initiate gw >/dev/null
    check "baton's IKE SA with charon comes up" ike_up g1 10
    check "RFC 7383 negotiated; IKE_AUTH went out and came back in fragments ($(ike_sa g1 "s['fragments_sent'], s['fragments_received']"))" \
        test "$(ike_sa g1 "s['fragmentation'] and s['fragments_sent'] >= 2 and s['fragments_received'] >= 2")" = True
    check "the proposal is strongSwan's" test "$(ike_sa g1 "s['proposal']")" = aes128-sha256-prfsha256-ecp256
    check "ping h1 -> h2 (baton ESP -> kernel-libipsec)" tb_wait 5 ping_ok h1 10.2.0.2 1
    check "512 KiB h1 -> h2 over TCP intact" xfer h1 10.2.0.2 524288
    check "256 KiB h2 -> h1 over TCP intact" xfer h2 10.1.0.2 262144 5002
    ss_one() { test "$(tb_nsx g2 swanctl --list-sas --ike gw --uri "unix://$TB_DIR/ss-g2/charon.vici" | grep -c ESTABLISHED)" = 1; }
    ss_established() { tb_nsx g2 swanctl --list-sas --uri "unix://$TB_DIR/ss-g2/charon.vici" | grep -q ESTABLISHED; }
    check "charon lists the IKE SA as established" ss_established
    old=$(ike_sa g1 "s['child_sa']['spi_in']")
    tb_nsx h1 ping -c 200 -i 0.01 -W 1 -q 10.2.0.2 >"$TB_DIR/ss-rekey-ping.out" 2>&1 &
    PING=$!
    sleep 0.3; tb_ctl g1 rekey gw >/dev/null; sleep 0.8
    tb_nsx g2 swanctl --rekey --child net --uri "unix://$TB_DIR/ss-g2/charon.vici" >/dev/null 2>&1
    wait "$PING"
    check "baton's rekey and charon's rekey both went through" tb_wait 5 test "$(ike_sa g1 "s['child_rekeys']")" = 2
    check "new SPIs" test "$(ike_sa g1 "s['child_sa']['spi_in']")" != "$old"
    check "no ping lost across both rekeys ($(grep -o '[0-9]*% packet loss' "$TB_DIR/ss-rekey-ping.out"))" grep -q " 0% packet loss" "$TB_DIR/ss-rekey-ping.out"
    tb_ctl g1 rekey-ike gw >/dev/null; sleep 1
    tb_nsx g2 swanctl --rekey --ike gw --uri "unix://$TB_DIR/ss-g2/charon.vici" >/dev/null 2>&1
    check "IKE SA rekeys by baton and by charon" tb_wait 5 test "$(ike_sa g1 "s['ike_rekeys']")" = 2
    check "charon has exactly one IKE SA, established" ss_one
    check "traffic after the IKE rekeys" ping_ok h1 10.2.0.2
else
    bad "strongSwan or baton did not start"
fi
for p in "${PEER_PIDS[@]:-}"; do [ -n "$p" ] && tb_kill "$p"; done; PEER_PIDS=()
tb_stop g1

echo "== strongSwan 5.9.8 (initiator) -> baton (responder, demanding COOKIEs)"
IKE_BATON_EXTRA="    cookie_threshold = 0" IKE_PROPOSALS=aes128-sha256-ecp256 PSK=baton-bench-only-psk ike_conf g2 "$TB_DIR/g2.conf"
if tb_start g2 "$TB_DIR/g2.conf" && ss_start g1 aes128gcm16; then
    check "swanctl --initiate succeeds against baton" tb_nsx g1 swanctl --initiate --child net --timeout 20 --uri "unix://$TB_DIR/ss-g1/charon.vici"
    check "baton lists the IKE SA as responder" test "$(ike_sa g2 "s['state'] + ' ' + s['role']")" = "established responder"
    check "charon answered baton's COOKIE" test "$(st g2 "s['ike']['cookies_sent']")" -ge 1
    check "ping h1 -> h2 (kernel-libipsec -> baton)" tb_wait 5 ping_ok h1 10.2.0.2 1
    check "512 KiB h1 -> h2 over TCP intact" xfer h1 10.2.0.2 524288
    check "256 KiB h2 -> h1 over TCP intact" xfer h2 10.1.0.2 262144 5002
else
    bad "strongSwan or baton did not start"
fi
finish
