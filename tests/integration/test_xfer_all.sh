#!/usr/bin/env bash
# test_xfer_all.sh — two sessions at one Mono-LAN shared address (xfer_lib.sh's bed): client c holds
# two IKE SAs to 192.0.2.1 (connections gw for 10.1.0.1 and gw2 for 10.1.0.2), both on g1. The shared
# address moves as a whole, so migrating one of them alone is refused and changes nothing; with
# --all both move to g2, keep their SPIs, and their traffic goes on (10 ms pings from both inner
# addresses), without IKE_SA_INIT or IKE_AUTH.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
. "$(dirname "$0")/xfer_lib.sh"
xf_init all
xf_topology mono || die "the Mono-LAN bed could not be built"
INNER2=10.1.0.2

# the configurations of xf_up, with a second connection at c and gateways that accept both
for n in g1 g2 c; do xf_conf "$n" "$TB_DIR/$n.conf" || die "no config for $n"; done
sed -i "s#remote_ts = $XF_INNER/32#remote_ts = 10.1.0.0/24#" "$TB_DIR/g1.conf" "$TB_DIR/g2.conf"
python3 - "$TB_DIR/c.conf" "$XF_INNER" "$INNER2" <<'PY'
import sys
path, inner, inner2 = sys.argv[1:]
s = open(path).read()
a = s.index("    gw {")
depth, i = 0, a
while True:  # the block of connection gw, to its closing brace
    if s[i] == "{": depth += 1
    elif s[i] == "}":
        depth -= 1
        if depth == 0: break
    i += 1
gw2 = s[a:i + 1].replace("    gw {", "    gw2 {", 1).replace("local_ts = %s/32" % inner, "local_ts = %s/32" % inner2)
open(path, "w").write(s[:i + 1] + "\n" + gw2 + s[i + 1:])
PY
grep -q "gw2 {" "$TB_DIR/c.conf" || die "c's second connection is missing"
for g in g1 g2; do
    TB_ROUTES_g1="$XF_INNER/32 $INNER2/32" TB_ROUTES_g2="$XF_INNER/32 $INNER2/32" tb_start "$g" "$TB_DIR/$g.conf" ||
        die "$g did not start"
done
tb_nsx c ip addr add $INNER2/32 dev lo
mb_baton_start c "$TB_DIR/c.conf" || die "c did not start"
tb_ctl c initiate gw >/dev/null && tb_ctl c initiate gw2 >/dev/null || die "initiate failed"
tb_wait 15 tb_nsx c ping -c 1 -W 1 -I $XF_INNER $XF_HOST || die "gw did not come up"
tb_wait 15 tb_nsx c ping -c 1 -W 1 -I $INNER2 $XF_HOST || die "gw2 did not come up"

n_sas() { tb_ctl "$1" --json list-sas | python3 -c "import json,sys; print(len(json.load(sys.stdin)['ike_sas']))"; }
spis() { tb_ctl "$1" --json list-sas | python3 -c "
import json,sys
print(' '.join(sorted(s['spi_i'] + '/' + s['child_sa']['spi_in'] + '/' + s['child_sa']['spi_out'] for s in json.load(sys.stdin)['ike_sas'])))"; }
inits() { st "$1" "s['ike']['tx_ike_sa_init'] + s['ike']['tx_ike_auth']"; }

check "g1 holds both sessions, at the shared address" test "$(n_sas g1) $(n_sas g2)" = "2 0"
spi=$(ike_sa g1 "s['spi_i']")
before=$(spis g1) init0=$(( $(inits c) ))

echo "== one session alone: refused"
out=$(tb_ctl g1 migrate "$spi" --to g2 2>&1); rc=$?
echo "       $out"
check "migrating one of them alone is refused" test "$rc" != 0 -a -n "$(echo "$out" | grep 'here end at the shared address')"
check "... both stay on g1, unchanged" test "$(spis g1)" = "$before"
check "... and g2 holds none" test "$(n_sas g2)" = 0
check "... traffic of both goes on" tb_nsx c ping -c 2 -i 0.2 -W 1 -q -I $INNER2 $XF_HOST

echo "== --all: both move, under 10 ms pings from both inner addresses"
tb_bg c timeout 20 ping -c 300 -i 0.01 -W 1 -I $XF_INNER $XF_HOST >"$TB_DIR/p1" 2>&1; p1=${TB_PIDS[-1]}
tb_bg c timeout 20 ping -c 300 -i 0.01 -W 1 -I $INNER2 $XF_HOST >"$TB_DIR/p2" 2>&1; p2=${TB_PIDS[-1]}
sleep 1
out=$(tb_ctl g1 --json migrate "$spi" --to g2 --all)
echo "       $out"
check "migrate --all succeeds for both" test "$(python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(r['ok'], r['migrated'], r['sessions'])" "$out")" = "True 2 2"
wait "$p1"; wait "$p2"
read -r s1 r1 < <(xf_ping_loss "$TB_DIR/p1"); read -r s2 r2 < <(xf_ping_loss "$TB_DIR/p2")
echo "       10 ms pings: gw $r1 of $s1, gw2 $r2 of $s2 answered"
check "g2 holds both sessions with the same SPIs, g1 none" test "$(spis g2) $(n_sas g1)" = "$before 0"
check "both pings go on (at most 3 of 300 lost each)" test $((s1 - r1)) -le 3 -a $((s2 - r2)) -le 3
check "h answers both inner addresses through g2" \
    eval 'tb_nsx c ping -c 2 -i 0.2 -W 1 -q -I $XF_INNER $XF_HOST && tb_nsx c ping -c 2 -i 0.2 -W 1 -q -I $INNER2 $XF_HOST'
check "no IKE_SA_INIT or IKE_AUTH from c after the setup" test "$(inits c)" = "$init0"
finish
