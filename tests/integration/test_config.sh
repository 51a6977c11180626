#!/usr/bin/env bash
# test_config.sh — an invalid configuration is refused with file:line, at start and on reload, and
# a refused reload leaves the running SAs, their counters and the traffic untouched; a good reload
# keeps unchanged SAs with their sequence numbers and replaces changed ones.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init cfg
tb_topology
TB_PROPOSAL=aes128gcm16; tb_keys
tb_conf g1 "$TB_DIR/g1.conf"; tb_conf g2 "$TB_DIR/g2.conf"

# 1. refused at start
sed 's/esp_proposals = aes128gcm16/esp_proposals = aes128gcm17/' "$TB_DIR/g1.conf" >"$TB_DIR/bad.conf"
out=$(tb_nsx g1 "$BATOND" -c "$TB_DIR/bad.conf" -s "$TB_DIR/x.sock" 2>&1); rc=$?
check "start with a bad proposal: exit 1 ($rc)" test "$rc" = 1
check "start with a bad proposal: says file:line ($out)" grep -qE "bad.conf:[0-9]+: esp_proposals: unknown" <<<"$out"
out=$(tb_nsx g1 "$BATOND" 2>&1); rc=$?
check "start without -c: usage, exit 2" test "$rc" = 2
out=$(tb_nsx g1 "$BATOND" -c "$TB_DIR/g1.conf" --bogus 2>&1); rc=$?
check "unknown option: exit 2" test "$rc" = 2

tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf" || exit 1
ping_ok h1 10.2.0.2 5
seq0=$(sa g1 out "s['seq_out']")

# 2. refused reload: a truncated file and a wrong key length
head -n 12 "$TB_DIR/g1.conf" >"$TB_DIR/trunc.conf"
out=$(tb_ctl g1 load "$TB_DIR/trunc.conf" 2>&1); rc=$?
check "reload of a truncated file refused: exit 1" test "$rc" = 1
check "reload of a truncated file: says file:line ($out)" grep -qE "trunc.conf:[0-9]+: " <<<"$out"
sed 's/\(enc_key_out = 0x\)..../\1/' "$TB_DIR/g1.conf" >"$TB_DIR/short.conf"
out=$(tb_ctl g1 load "$TB_DIR/short.conf" 2>&1); rc=$?
check "reload with a short key refused with file:line ($out)" grep -qE "short.conf:[0-9]+: enc_key_out: aes128gcm16 needs 20 bytes" <<<"$out"
check "after refused reloads: same SAs, sequence continues ($seq0 -> $(sa g1 out "s['seq_out']"))" \
  test "$(sa g1 out "s['seq_out']")" = "$seq0"
check "after refused reloads: traffic flows" ping_ok h1 10.2.0.2
check "after refused reloads: the original file is still the one in force" tb_ctl g1 load

# 3. good reload that changes nothing: SAs kept, counters go on
seq1=$(sa g1 out "s['seq_out']")
out=$(tb_ctl g1 --json load "$TB_DIR/g1.conf")
check "identical reload keeps both SAs ($out)" python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(not (r['kept']==2 and r['added']==0))" "$out"
check "identical reload: sequence numbers kept ($seq1)" test "$(sa g1 out "s['seq_out']")" -ge "$seq1"

# 4. a reload with a new replay window replaces the inbound SA only
sed 's/spi_out = /replay_window = 256\n                spi_out = /' "$TB_DIR/g1.conf" >"$TB_DIR/win.conf"
out=$(tb_ctl g1 --json load "$TB_DIR/win.conf")
check "changed window: inbound replaced, outbound kept ($out)" python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(not (r['kept']==1 and r['added']==1 and r['removed']==1))" "$out"
check "changed window in force" test "$(sa g1 in "s['replay']['window']")" = 256
check "traffic still flows" ping_ok h1 10.2.0.2
# 5. batonctl usage errors
tb_ctl g1 frobnicate >/dev/null 2>&1; rc=$?
check "batonctl unknown command: exit 2" test "$rc" = 2
tb_nsx g1 "$BATONCTL" -s "$TB_DIR/none.sock" stats >/dev/null 2>&1; rc=$?
check "batonctl without a daemon: exit 2" test "$rc" = 2
finish
