# common.sh — helpers shared by the integration tests, sourced after scripts/testbed.sh: checks and
# their tally, SA and stats queries, pings, a TCP transfer compared byte for byte.
set -uo pipefail
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")/tools" && pwd)
FAILS=0
CHECKS=0

ok() { CHECKS=$((CHECKS + 1)); echo "  ok   $*"; }
bad() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "  FAIL $*"; }
# check WHAT CMD...: one named check; CMD's exit status decides. CMD's output is shown only when it
# fails (its last lines).
check() {
    local what=$1 out=${TB_DIR:-/tmp}/check.out; shift
    if "$@" >"$out" 2>&1; then ok "$what"; else bad "$what"; tail -n 8 "$out" | sed 's/^/       | /'; fi
}
# finish: the last line of every test: the tally, and the exit status
finish() {
    echo "$(basename "$0"): $((CHECKS - FAILS)) passed, $FAILS failed"
    [ "$FAILS" = 0 ] && [ "$CHECKS" -gt 0 ]
}
# die MSG: the test bed itself failed: no point going on
die() { echo "  FAIL $*"; echo "$(basename "$0"): aborted"; exit 1; }

sa() { tb_sa "$@"; }
st() { tb_stat "$@"; }

ping_ok() { tb_nsx "$1" ping -c "${3:-3}" -i 0.2 -W 2 -q "$2" >/dev/null 2>&1; }

# The node that holds an address of the bed.
node_of() {
    case $1 in
        10.2.*|fd02:*) echo h2 ;; 10.1.*|fd01:*) echo h1 ;;
        172.16.0.2|fd00::2) echo g2 ;; 172.16.0.1|fd00::1) echo g1 ;;
        *) return 1 ;;
    esac
}

# xfer FROM TO_ADDR BYTES [PORT]: send BYTES random bytes over TCP from node FROM to TO_ADDR, and
# compare what arrived with what was sent (SHA-256). Bounded: 60 s.
xfer() {
    local from=$1 to=$2 bytes=$3 port=${4:-5001} to_ns spid rc
    to_ns=$(node_of "$to") || return 1
    head -c "$bytes" /dev/urandom >"$TB_DIR/xfer.in"
    rm -f "$TB_DIR/xfer.out"
    tb_bg "$to_ns" timeout 60 python3 "$TOOLS/xfer.py" serve "$port" "$TB_DIR/xfer.out"
    spid=${TB_PIDS[-1]}
    tb_nsx "$from" timeout 60 python3 "$TOOLS/xfer.py" send "$to" "$port" "$TB_DIR/xfer.in"
    rc=$?
    wait "$spid"
    tb_kill "$spid"
    [ $rc = 0 ] && [ "$(sha256sum <"$TB_DIR/xfer.in")" = "$(sha256sum <"$TB_DIR/xfer.out" 2>/dev/null)" ]
}
