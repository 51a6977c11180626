#!/usr/bin/env bash
# test_xfer_put.sh — GET and PUT on the bed h1 — g1 ==== g2 — h2 (batond at both ends, g2 the IKE
# responder): the session taken out of g2 with get --detach and put back goes on with the same SPIs
# and no IKE_SA_INIT/IKE_AUTH; a context put where its inbound SPI is already held by another SA is
# installed without overwriting that SA and its Child SA is rekeyed at once; refused with nothing
# installed: another cluster's key, a connection not configured here, no key at all, the same
# context twice; get is refused for a session that does not exist or is ambiguous.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
tb_init xput
tb_topology || die "tb_topology failed"

KEY=0x$(printf '%064x' 7)
ike_conf g1 "$TB_DIR/g1.conf"
ike_conf g2 "$TB_DIR/g2.conf"
printf 'cluster {\n    key = %s\n}\n' "$KEY" >>"$TB_DIR/g2.conf"
tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf" || die "gateways did not start"
tb_ctl g1 initiate gw >/dev/null
ike_up g1 5 && ike_up g2 5 || die "the tunnel did not come up"
ping_ok h1 10.2.0.2 || die "no traffic through the tunnel"

# sas GW: "SPI:dir" of every ESP SA GW lists, sorted
sas() { tb_ctl "$1" --json list-sas | python3 -c "import json,sys; print(' '.join(sorted(s['spi'] + ':' + s['dir'] for s in json.load(sys.stdin)['sas'])))"; }
tx() { st "$1" "s['ike']['tx_ike_sa_init'] + s['ike']['tx_ike_auth']"; }
ctx=$TB_DIR/ctx.bin
# refused ARGS...: batonctl at g2 fails (its message in $TB_DIR/err)
refused() { ! tb_ctl g2 "$@" 2>"$TB_DIR/err" >/dev/null; }

echo "== get --detach, put back on the same node"
before=$(sas g2)
seq0=$(tb_ctl g2 --json list-sas | python3 -c "import json,sys; print([s['seq_out'] for s in json.load(sys.stdin)['sas'] if s['dir']=='out'][0])")
init0=$(tx g1)
check "get --detach writes a context" tb_ctl g2 get gw --detach -o "$ctx"
check "... and the session is gone from g2" test "$(sa_count g2)" = 0
check "a context is not in clear: the IKE SPI it carries is nowhere in its bytes" python3 -c "
import sys
sys.exit(bytes.fromhex(sys.argv[2]) in open(sys.argv[1], 'rb').read())" "$ctx" "$(tb_ctl g1 --json list-sas | python3 -c "import json,sys; print(json.load(sys.stdin)['ike_sas'][0]['spi_i'])")"
check "put installs it again" tb_ctl g2 put "$ctx"
check "... with the same SPIs" test "$(sas g2)" = "$before"
check "... the outbound sequence number jumped by 10000" test "$(tb_ctl g2 --json list-sas | python3 -c "import json,sys; print([s['seq_out'] for s in json.load(sys.stdin)['sas'] if s['dir']=='out'][0])")" -ge $((seq0 + 10000))
check "... traffic flows again" ping_ok h1 10.2.0.2
check "... g1 never negotiated again" test "$(tx g1)" = "$init0"
check "the same context put twice is refused" refused put "$ctx"
check "... saying the IKE SA is already here" grep -q "already here" "$TB_DIR/err"
check "a rekey from g1 is answered by the put session" tb_ctl g1 rekey gw
sleep 1
check "... traffic through the rekeyed Child SA" ping_ok h1 10.2.0.2

echo "== refusals leave nothing installed"
current=$(sas g2) # after the rekey
tb_ctl g2 get gw --detach -o "$ctx" >/dev/null 2>&1 || die "get failed"
cp "$TB_DIR/g2.conf" "$TB_DIR/g2-other.conf"
sed -i "s/key = $KEY/key = 0x$(printf '%064x' 8)/" "$TB_DIR/g2-other.conf"
tb_ctl g2 load "$TB_DIR/g2-other.conf" >/dev/null || die "reload failed"
check "another cluster's key: refused" refused put "$ctx"
check "... as not authentic" grep -q "does not authenticate" "$TB_DIR/err"
check "... nothing installed" test "$(sa_count g2)" = 0
sed "s/^    gw {/    gw2 {/" "$TB_DIR/g2.conf" >"$TB_DIR/g2-noconn.conf"
tb_ctl g2 load "$TB_DIR/g2-noconn.conf" >/dev/null || die "reload failed"
check "a connection not configured here: refused" refused put "$ctx"
check "... naming it" grep -q "connection 'gw'" "$TB_DIR/err"
check "... nothing installed" test "$(sa_count g2)" = 0
sed '/^cluster {/,/^}/d' "$TB_DIR/g2.conf" >"$TB_DIR/g2-nokey.conf"
tb_ctl g2 load "$TB_DIR/g2-nokey.conf" >/dev/null || die "reload failed"
check "no cluster key: refused" refused put "$ctx"
check "... saying so" grep -q "no cluster key" "$TB_DIR/err"
tb_ctl g2 load "$TB_DIR/g2.conf" >/dev/null || die "reload failed"

echo "== an inbound SPI held by another SA here: installed beside it, then rekeyed"
for x in $current; do case $x in *:in) spi_in=${x%:in} ;; esac; done
python3 - "$TB_DIR/g2.conf" "$TB_DIR/g2-squat.conf" "$spi_in" <<'PY'
import sys
src, dst, spi = sys.argv[1:]
static = """    squat {
        local_addrs = 172.16.0.2
        remote_addrs = 172.16.0.9
        children {
            s {
                local_ts = 10.7.0.0/24
                remote_ts = 10.8.0.0/24
                esp_proposals = aes128gcm16
                spi_in = %s
                spi_out = 0xc0000002
                enc_key_in = 0x%s
                enc_key_out = 0x%s
            }
        }
    }
""" % (spi, "11" * 20, "22" * 20)
open(dst, "w").write(open(src).read().replace("connections {\n", "connections {\n" + static, 1))
PY
tb_ctl g2 load "$TB_DIR/g2-squat.conf" >/dev/null || die "reload failed"
check "a static SA holds the session's inbound SPI $spi_in" test -n "$(sas g2 | tr ' ' '\n' | grep "^$spi_in:in$")"
check "put is accepted" eval 'tb_ctl g2 --json put "$ctx" >"$TB_DIR/put.json"'
check "... reporting one Child SA rekeyed" test "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['spi_rekeys'])" "$TB_DIR/put.json")" = 1
sleep 1
check "the static SA kept its SPI (never overwritten)" test -n "$(tb_ctl g2 --json list-sas | python3 -c "
import json,sys
print(' '.join(s['name'] for s in json.load(sys.stdin)['sas'] if s['spi'] == '$spi_in' and s['name'].startswith('squat')))")"
check "the session's Child SA has a new inbound SPI" test "$(ike_sa g2 "s['child_sa']['spi_in']")" != "$spi_in"
check "... the same on both ends" test "$(ike_sa g2 "s['child_sa']['spi_in']")" = "$(ike_sa g1 "s['child_sa']['spi_out']")"
check "... traffic flows" ping_ok h1 10.2.0.2
check "... still without IKE_SA_INIT or IKE_AUTH" test "$(tx g1)" = "$init0"
check "stats count the puts, refusals and the SPI rekey" test "$(st g2 "'%d %d %d' % (s['ike']['context_puts'], s['ike']['context_refused'], s['ike']['context_spi_rekeys'])")" = "2 4 1"

echo "== get names a session"
check "get of an unknown session is refused" refused get nosuch -o /dev/null
check "get by IKE SPI works" tb_ctl g2 get "$(ike_sa g2 "s['spi_i']")" -o "$TB_DIR/ctx2.bin"
check "get without --detach leaves the session running" ping_ok h1 10.2.0.2
finish
