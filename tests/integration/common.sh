# common.sh — helpers shared by the integration tests (sourced after scripts/testbed.sh).
set -uo pipefail
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")/tools" && pwd)
FAILS=0
CHECKS=0

ok() { CHECKS=$((CHECKS + 1)); echo "  ok   $*"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "  FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() {
  echo "$(basename "$0"): $((CHECKS - FAILS)) passed, $FAILS failed"
  [ "$FAILS" = 0 ]
}

# sa GW DIR EXPR: evaluate a python expression over the SA dict of direction DIR (first match).
sa() {
  tb_ctl "$1" --json list-sas | python3 -c "
import json,sys
sas=[s for s in json.load(sys.stdin)['sas'] if s['dir']=='$2']
s=sas[0] if sas else {}
print($3)"
}
# st GW EXPR: evaluate an expression over the stats dict.
st() { tb_ctl "$1" --json stats | python3 -c "import json,sys; s=json.load(sys.stdin)['stats']; print($2)"; }

# xfer FROM TO_ADDR BYTES: send random bytes over TCP and compare hashes. Returns 0 if intact.
xfer() {
  local from=$1 to=$2 bytes=$3 port=${4:-5001} to_ns
  case $to in 10.2.*|fd02:*) to_ns=h2 ;; 10.1.*|fd01:*) to_ns=h1 ;; 172.16.0.2|fd00::2) to_ns=g2 ;; *) to_ns=g1 ;; esac
  head -c "$bytes" /dev/urandom >"$TB_DIR/xfer.in"
  tb_nsx "$to_ns" timeout 60 python3 "$TOOLS/xfer.py" serve "$port" "$TB_DIR/xfer.out" &
  local spid=$!
  sleep 0.3
  tb_nsx "$from" timeout 60 python3 "$TOOLS/xfer.py" send "$to" "$port" "$TB_DIR/xfer.in"
  wait $spid
  cmp -s "$TB_DIR/xfer.in" "$TB_DIR/xfer.out"
}

ping_ok() { tb_nsx "$1" ping -c "${3:-3}" -i 0.2 -W 2 "$2" >/dev/null 2>&1; }
