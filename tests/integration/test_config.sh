#!/usr/bin/env bash
# test_config.sh — an invalid configuration is refused as a whole with file:line, at start (exit 1,
# no TUN, no socket left) and on reload (`batonctl load`: exit 1, the message, and the running SAs
# with their counters, sequence numbers and replay windows untouched, traffic flowing). A good reload
# keeps unchanged SAs with their counters and sequence numbers and replaces changed ones; SIGHUP
# reloads the file batond started with. batonctl's exit codes for usage errors and no daemon.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init cfg
tb_topology || die "tb_topology failed"
TB_PROPOSAL=aes128gcm16; tb_keys
tb_conf g1 "$TB_DIR/g1.conf"; tb_conf g2 "$TB_DIR/g2.conf"

# bad NAME PYTHON: write $TB_DIR/NAME.conf from g1.conf by a python expression over its lines `l`
# (a list, changed in place); prints the number of the line the change is on (`at`).
bad_conf() {
    python3 - "$TB_DIR/g1.conf" "$TB_DIR/$1.conf" <<EOF
import sys
l = open(sys.argv[1]).read().splitlines()
def at(key): return next(i for i, s in enumerate(l) if s.strip().startswith(key))
$2
open(sys.argv[2], 'w').write('\n'.join(l) + '\n')
print(n + 1)
EOF
}
# name | python making the change and setting n (0-based line) | what the message must say
CASES=(
  "proposal|n = at('esp_proposals'); l[n] = l[n].replace('aes128gcm16', 'aes128gcm17')|esp_proposals: unknown"
  "unknown-key|n = at('spi_in') + 1; l.insert(n, '                frobnicate = 1')|unknown setting 'frobnicate'"
  "short-key|n = at('enc_key_out'); l[n] = l[n][:-4]|enc_key_out: aes128gcm16 needs 20 bytes"
  "bad-addr|n = at('remote_addrs'); l[n] = '        remote_addrs = 300.1.1.1'|remote_addrs: '300.1.1.1'"
  "bad-ts|n = at('local_ts'); l[n] = '                local_ts = 10.1.0.0/33'|local_ts: bad address"
  "no-spi|n = at('net {'); del l[at('spi_in')]|spi_in is required"
  "unclosed|del l[at('net {') + 2:]; n = len(l) - 1|section 'net' (line $(grep -n 'net {' "$TB_DIR/g1.conf" | cut -d: -f1)) is not closed"
  "dup-child|s = at('net {'); e = at('enc_key_out') + 2; l[e:e] = l[s:e]; n = e|duplicate section 'net'"
  "dup-spi|s = at('net {'); e = at('enc_key_out') + 2; l[e:e] = [x.replace('net {', 'net2 {').replace('0xc0000002', '0xc0000009') for x in l[s:e]]; n = e|spi_in 0xc0000001 is already used"
)

echo "== refused at start"
for c in "${CASES[@]}"; do
    IFS='|' read -r name py msg <<<"$c"
    line=$(bad_conf "$name" "$py") || die "could not write $name.conf"
    out=$(tb_nsx g1 timeout 10 "$BATOND" -c "$TB_DIR/$name.conf" -s "$TB_DIR/x.sock" 2>&1); rc=$?
    check "$name: exit 1 ($rc), '$name.conf:$line: ...$msg...' ($out)" \
        bash -c "[ $rc = 1 ] && grep -qF -- '$name.conf:$line: ' <<<\"\$1\" && grep -qF -- \"\$2\" <<<\"\$1\"" _ "$out" "$msg"
done
check "after the refusals: no TUN, no socket left in g1" \
    bash -c "! ip netns exec $(tb_ns g1) ip link show bt0 2>/dev/null && [ ! -e '$TB_DIR/x.sock' ]"
tb_nsx g1 "$BATOND" >/dev/null 2>&1; rc=$?
check "batond without -c: usage, exit 2 ($rc)" test "$rc" = 2
tb_nsx g1 "$BATOND" -c "$TB_DIR/g1.conf" --bogus >/dev/null 2>&1; rc=$?
check "batond with an unknown option: exit 2 ($rc)" test "$rc" = 2

echo "== refused on reload"
tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf" || die "gateways did not start"
ping_ok h1 10.2.0.2 5 || die "no traffic through the tunnel"
state() { tb_ctl g1 --json list-sas | python3 -c '
import json, sys
for s in sorted(json.load(sys.stdin)["sas"], key=lambda s: s["spi"]):
    print(s["dir"], s["spi"], s["enc"], s["packets"], s["bytes"], s.get("seq_out"), s.get("replay"), sum(s["drops"].values()))'; }
s0=$(state)
for c in "${CASES[@]}"; do
    IFS='|' read -r name py msg <<<"$c"
    line=$(bad_conf "$name" "$py")
    out=$(tb_ctl g1 load "$TB_DIR/$name.conf" 2>&1); rc=$?
    check "load $name.conf: exit 1 ($rc), '$name.conf:$line: ...$msg...'" \
        bash -c "[ $rc = 1 ] && grep -qF -- '$name.conf:$line: ' <<<\"\$1\" && grep -qF -- \"\$2\" <<<\"\$1\"" _ "$out" "$msg"
done
out=$(tb_ctl g1 load "$TB_DIR/none.conf" 2>&1); rc=$?
check "load of a missing file: exit 1 ($rc) with the file's name ($out)" bash -c "[ $rc = 1 ] && grep -q none.conf <<<\"\$1\"" _ "$out"
check "after the refused reloads: the SAs, counters, sequence numbers and windows are unchanged" test "$(state)" = "$s0"
check "after the refused reloads: traffic flows" ping_ok h1 10.2.0.2
check "after the refused reloads: 'load' without a file reloads the file in force, which is still g1.conf" \
    bash -c "ip netns exec $(tb_ns g1) timeout 10 $BATONCTL -s $TB_DIR/g1.sock --json load | python3 -c 'import json, sys; r = json.load(sys.stdin); sys.exit(not (r[\"kept\"] == 2 and r[\"added\"] == 0 and r[\"removed\"] == 0))'"

echo "== good reloads"
seq1=$(sa g1 out "s['seq_out']"); pk1=$(sa g1 in "s['packets']")
out=$(tb_ctl g1 --json load "$TB_DIR/g1.conf")
check "identical file: both SAs kept ($(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(r["added"], r["removed"], r["kept"])' "$out"))" \
    python3 -c "import json, sys; r = json.loads(sys.argv[1]); sys.exit(not (r['kept'] == 2 and r['added'] == 0 and r['removed'] == 0))" "$out"
check "identical file: no warning about the baton section (mtu and workers stay auto)" \
    python3 -c "import json, sys; r = json.loads(sys.argv[1]); sys.exit(bool(r.get('warnings')))" "$out"
ping_ok h1 10.2.0.2 2
check "identical file: the outbound sequence goes on ($seq1 -> $(sa g1 out "s['seq_out']")), inbound counter too ($pk1 -> $(sa g1 in "s['packets']"))" \
    test "$(sa g1 out "s['seq_out']")" = $((seq1 + 2)) -a "$(sa g1 in "s['packets']")" = $((pk1 + 2))
sed 's/spi_out = /replay_window = 256\n                spi_out = /' "$TB_DIR/g1.conf" >"$TB_DIR/win.conf"
seq2=$(sa g1 out "s['seq_out']")
out=$(tb_ctl g1 --json load "$TB_DIR/win.conf")
check "a new replay window: the inbound SA replaced, the outbound kept ($(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(r["added"], r["removed"], r["kept"])' "$out"))" \
    python3 -c "import json, sys; r = json.loads(sys.argv[1]); sys.exit(not (r['kept'] == 1 and r['added'] == 1 and r['removed'] == 1))" "$out"
check "the new window is in force ($(sa g1 in "s['replay']['window']")), the new inbound SA starts from zero ($(sa g1 in "s['packets']"))" \
    test "$(sa g1 in "s['replay']['window']") $(sa g1 in "s['packets']")" = "256 0"
check "traffic flows" ping_ok h1 10.2.0.2 2
check "the kept outbound SA's sequence went on ($seq2 -> $(sa g1 out "s['seq_out']"))" test "$(sa g1 out "s['seq_out']")" = $((seq2 + 2))

echo "== SIGHUP reloads the file batond started with"
sed -i 's/spi_out = /replay_window = 512\n                spi_out = /' "$TB_DIR/g2.conf"
kill -HUP "${TB_DAEMON[g2]}"
for _ in $(seq 1 40); do [ "$(sa g2 in "s['replay']['window']")" = 512 ] && break; sleep 0.05; done
check "after SIGHUP g2's inbound window is 512 ($(sa g2 in "s['replay']['window']"))" test "$(sa g2 in "s['replay']['window']")" = 512
check "traffic flows" ping_ok h1 10.2.0.2 2
echo "frobnicate = 1" >>"$TB_DIR/g2.conf"
kill -HUP "${TB_DAEMON[g2]}"
tb_wait 3 grep -q "g2.conf:[0-9]*: .*frobnicate" "$TB_DIR/g2.log"
check "a bad file on SIGHUP: refused with file:line in the log, daemon still running, traffic flows" \
    bash -c "grep -q 'g2.conf:[0-9]*: .*frobnicate' '$TB_DIR/g2.log' && kill -0 ${TB_DAEMON[g2]} && ip netns exec $(tb_ns h1) ping -c 2 -i 0.2 -W 2 -q 10.2.0.2"

echo "== batonctl"
tb_ctl g1 frobnicate >/dev/null 2>&1; rc=$?
check "unknown command: exit 2 ($rc)" test "$rc" = 2
tb_nsx g1 "$BATONCTL" -s "$TB_DIR/none.sock" stats >/dev/null 2>&1; rc=$?
check "no daemon on the socket: exit 2 ($rc)" test "$rc" = 2
check "version answers" bash -c "ip netns exec $(tb_ns g1) timeout 10 $BATONCTL -s $TB_DIR/g1.sock version | grep -q '[0-9]\.[0-9]'"
echo "== a second daemon on the same port"
sed 's/tun = bt0/tun = bt9/' "$TB_DIR/g1.conf" >"$TB_DIR/second.conf"
out=$(tb_nsx g1 timeout 10 "$BATOND" -c "$TB_DIR/second.conf" -s "$TB_DIR/second.sock" 2>&1); rc=$?
check "refused with exit 1 ($rc): the port is taken ($out)" bash -c "[ $rc = 1 ] && grep -q 'already in use' <<<\"\$1\"" _ "$out"
check "and the first one still carries traffic" ping_ok h1 10.2.0.2
finish
