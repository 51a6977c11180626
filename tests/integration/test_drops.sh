#!/usr/bin/env bash
# test_drops.sh — a replayed packet, a forged packet and an unknown SPI are each dropped and counted
# on the receiving gateway, and the tunnel keeps working. The packets are real ESP captured on the
# wire and re-sent from the peer's address.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init drop
tb_topology
TB_PROPOSAL=aes128-sha256; tb_keys
tb_conf g1 "$TB_DIR/g1.conf"; tb_conf g2 "$TB_DIR/g2.conf"
tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf" || exit 1

tb_bg g2 timeout 10 tcpdump -i out0 -U -w "$TB_DIR/esp.pcap" -c 6 "udp port 4500" 2>/dev/null
dump=${TB_PIDS[-1]}
sleep 1
check "ping before" ping_ok h1 10.2.0.2
wait "$dump" 2>/dev/null

inj() { tb_nsx g1 python3 "$TOOLS/inject.py" "$TB_DIR/esp.pcap" 172.16.0.1 172.16.0.2 "$1"; sleep 0.3; }

r0=$(sa g2 in "s['drops']['replay']")
inj replay
check "replayed packet dropped and counted (replay $r0 -> $(sa g2 in "s['drops']['replay']"))" \
  test "$(sa g2 in "s['drops']['replay']")" = $((r0 + 1))

a0=$(sa g2 in "s['drops']['auth']")
inj tamper
check "tampered packet dropped and counted (auth $a0 -> $(sa g2 in "s['drops']['auth']"))" \
  test "$(sa g2 in "s['drops']['auth']")" = $((a0 + 1))
check "the forged packet did not move the replay window" test "$(sa g2 in "s['replay']['top']")" -lt 1000

n0=$(st g2 "s['drops']['no_sa']")
inj spi
check "unknown SPI dropped and counted (no_sa $n0 -> $(st g2 "s['drops']['no_sa']"))" \
  test "$(st g2 "s['drops']['no_sa']")" = $((n0 + 1))

check "the tunnel still works" ping_ok h1 10.2.0.2
check "nothing else was dropped on g2's inbound SA" test "$(sa g2 in "s['drops']['replay']+s['drops']['auth']")" = 2
finish
