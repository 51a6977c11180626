#!/usr/bin/env bash
# handoff.sh — MOBIKE handoff benchmark (issue 4): on the bed of tests/integration/mobike_lib.sh (client c
# with uplinks via r1 and r2 to gateway g, host h behind g), a 5 ms UDP probe from c's inner address
# to h while the uplink carrying the tunnel is taken down N times (each time the one in use, then
# restored: the handoffs alternate r1 -> r2 and back), for each pair of implementations in the same
# run. Per row: interruption (last datagram over the old path -> first over the new one), time from
# "new path usable" (the uplink-down command returned) to the first datagram sent after it arriving,
# datagrams lost, the largest gap when the uplink comes back, how often the Child SA's SPIs changed.
#   bash bench/handoff.sh [--n 20] [--mode link|addr|alt] [--nat] [--rows ss-ss,baton-baton,baton-ss,ss-baton]
#                         [--recover SECS] [--out DIR]
# Rows are CLIENT-GATEWAY. A row with batond whose first handoff does not recover within --recover
# seconds (default 5), or whose batond refuses `mobike = yes`, is printed as skipped ("baton: MOBIKE
# not available in this build"). --nat: r2 masquerades (NAT on the second path).
set -uo pipefail
cd "$(dirname "$0")/.."
N=20 MODE=alt NAT=0 ROWS=ss-ss,baton-baton,baton-ss,ss-baton RECOVER=5 OUT=
usage() { sed -n 's/^#   //p' "$0" | head -n 2 >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --n) N=${2:-}; shift ;;
    --mode) MODE=${2:-}; shift ;;
    --nat) NAT=1 ;;
    --rows) ROWS=${2:-}; shift ;;
    --recover) RECOVER=${2:-}; shift ;;
    --out) OUT=${2:-}; shift ;;
    *) usage ;;
  esac
  shift
done
[[ $N =~ ^[1-9][0-9]*$ ]] && [ "$N" -le 500 ] || usage
[[ $RECOVER =~ ^[1-9][0-9]*$ ]] || usage
case $MODE in link|addr|alt) ;; *) usage ;; esac
for r in ${ROWS//,/ }; do case $r in ss-ss|baton-baton|baton-ss|ss-baton) ;; *) usage ;; esac; done
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 2; }
bash scripts/deps || exit 1
. scripts/testbed.sh
. tests/integration/mobike_lib.sh
BINS=nobins
case $ROWS in *baton*) BINS= ;; esac
mb_init handoff $BINS
OUT=${OUT:-$TB_DIR/results}
mkdir -p "$OUT"
export MB_NAT=$NAT
PROBE="python3 $MB_TOOLS/probe.py"
INTERVAL=0.005
SETTLE=${HANDOFF_SETTLE:-1.5} # after an uplink comes back, before the next handoff
declare -A RES                 # RES[row]="summary line" or a skip reason

name() { case $1 in ss) echo strongswan ;; *) echo baton ;; esac; }

# one row: $1 client kind, $2 gateway kind
run_row() {
  local kc=$1 kg=$2 row="$1-$2" i n mode p t rc spis0 spis1 spi_changes=0 sp dur label
  local recv="$OUT/$row.up.recv" back="$OUT/$row.down.recv" ev="$OUT/$row.events" res="$OUT/$row"
  rm -f "$recv" "$back" "$ev" "$res".*.json
  echo "== $(name "$kc") client -> $(name "$kg") gateway ($N handoffs, mode $MODE$([ "$NAT" = 1 ] && echo ", NAT on r2"))" >&2
  mb_topology || { RES[$row]="FAILED: topology"; return 1; }
  mb_up "$kc" "$kg"
  rc=$?
  if [ $rc = 3 ]; then
    RES[$row]="skipped: baton: MOBIKE not available in this build (batond refused its configuration: $MB_REFUSED)"
    echo "   ${RES[$row]}" >&2; mb_stop_all; return 0
  elif [ $rc != 0 ]; then
    RES[$row]="FAILED: the tunnel did not come up"; echo "   ${RES[$row]}" >&2; mb_stop_all; return 1
  fi
  dur=$((N * 8 + 20))
  # both directions: c -> h (the client's outbound SA follows its new address at once) and h -> c
  # (the gateway's outbound SA must learn it from MOBIKE)
  local pids=() pid
  tb_bg h timeout $((dur + 10)) $PROBE sink --port 7777 --out "$recv" --duration $((dur + 5)) --idle $((dur + 5)); pids+=(${TB_PIDS[-1]})
  tb_bg c timeout $((dur + 10)) $PROBE sink --bind $MB_INNER --port 7778 --out "$back" --duration $((dur + 5)) --idle $((dur + 5)); pids+=(${TB_PIDS[-1]})
  sleep 0.3
  tb_bg c timeout $((dur + 5)) $PROBE send --src $MB_INNER --dst $MB_HOST --port 7777 --interval $INTERVAL --duration $dur >"$OUT/$row.up.send" 2>&1; pids+=(${TB_PIDS[-1]})
  tb_bg h timeout $((dur + 5)) $PROBE send --dst $MB_INNER --port 7778 --interval $INTERVAL --duration $dur >"$OUT/$row.down.send" 2>&1; pids+=(${TB_PIDS[-1]})
  if ! tb_wait 5 test -s "$recv" -a -s "$back"; then
    RES[$row]="FAILED: the probes did not get through before the first handoff"
    for pid in "${pids[@]}"; do tb_kill "$pid"; done; mb_stop_all; return 1
  fi
  sleep 0.5
  for ((i = 1; i <= N; i++)); do
    p=none
    for t in 1 2 3 4 5 6 7 8 9 10; do p=$(mb_path 0.2); case $p in r1|r2) break ;; esac; done
    case $p in r1) n=1 ;; r2) n=2 ;; *) RES[$row]="FAILED: handoff $i: no single path carries the traffic ($p)"; break ;; esac
    mode=$MODE
    [ "$MODE" = alt ] && { [ $(((i - 1) / 2 % 2)) = 0 ] && mode=link || mode=addr; }
    spis0=$(mb_spis)
    mb_event_down $n $mode "$ev" || { RES[$row]="FAILED: handoff $i: uplink event"; break; }
    if ! tb_wait "$RECOVER" $PROBE since "$recv" "$MB_T" || ! tb_wait 1 $PROBE since "$back" "$MB_T"; then
      if { [ "$kc" = baton ] || [ "$kg" = baton ]; } && [ $i = 1 ]; then
        RES[$row]="skipped: baton: MOBIKE not available in this build (no traffic within ${RECOVER}s after handoff $i)"
      else
        RES[$row]="FAILED: handoff $i did not recover within ${RECOVER}s"
      fi
      echo "   ${RES[$row]}" >&2
      break
    fi
    sleep 0.5
    spis1=$(mb_spis)
    [ "$spis0" != "$spis1" ] && spi_changes=$((spi_changes + 1))
    sp=$(python3 "$MB_TOOLS/probe.py" stamp -- true) # the restore's time, as an "up" event
    mb_uplink_up $n || { RES[$row]="FAILED: handoff $i: uplink restore"; break; }
    echo "${sp#* } up r$n-back" >>"$ev"
    sleep "$SETTLE"
    label=
    for d in up down; do
      label+=$($PROBE report --recv "$OUT/$row.$d.recv" --events "$ev" --json | python3 -c "
import json, sys
e = [x for x in json.load(sys.stdin)['events'] if x['kind'] == 'down'][-1]
print('%s gap %5.1f ms lost %2d usable->first %5.1f ms;  ' % (sys.argv[1], e['gap_ms'], e['lost_in_gap'], e['usable_to_first_ms']) if e.get('gap_ms') is not None else sys.argv[1] + ' no analysis  ')" "$([ $d = up ] && echo "c->h" || echo "h->c")")
    done
    printf '   %2d/%d  r%d %-4s down: %s%s\n' "$i" "$N" "$n" "$mode" "${label%;  }" "$([ "$spis0" != "$spis1" ] && echo ", new SPIs")" >&2
  done
  tb_kill "${pids[2]}"; tb_kill "${pids[3]}"
  sleep 0.3
  tb_kill "${pids[0]}"; tb_kill "${pids[1]}"
  for d in c g; do # the daemons' logs, next to the probe data
    [ -f "$TB_DIR/ss-$d/charon.log" ] && cp "$TB_DIR/ss-$d/charon.log" "$OUT/$row.$d.charon.log"
    [ -f "$TB_DIR/$d.log" ] && cp "$TB_DIR/$d.log" "$OUT/$row.$d.batond.log"
  done
  [ -n "${RES[$row]:-}" ] && { mb_stop_all; return 0; }
  for d in up down; do $PROBE report --recv "$OUT/$row.$d.recv" --events "$ev" --json >"$res.$d.json"; done
  RES[$row]=$(for d in up down; do python3 - "$res.$d.json" "$spi_changes" "$N" "$([ $d = up ] && echo "c->h" || echo "h->c")" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
d = [e for e in r["events"] if e["kind"] == "down"]
u = [e for e in r["events"] if e["kind"] == "up" and e.get("gap_ms") is not None]
ok = [e for e in d if e.get("gap_ms") is not None]
f = lambda v: "%.0f/%.0f/%.0f" % (min(v), statistics.median(v), max(v)) if v else "n/a"
print("%s %5d/%-3s %20s %20s %12s %12s %8s/%s" % (
    sys.argv[4], len(ok), sys.argv[3], f([e["gap_ms"] for e in ok]), f([e["usable_to_first_ms"] for e in ok]),
    f([e["lost_in_gap"] for e in ok]), "%.0f" % max(e["gap_ms"] for e in u) if u else "n/a", sys.argv[2], sys.argv[3]))
PY
done)
  mb_stop_all
}

START=$(date -u +%Y-%m-%dT%H:%MZ)
for r in ${ROWS//,/ }; do run_row "${r%-*}" "${r#*-}"; done

echo
echo "MOBIKE handoffs, $START, $(nproc) cores: 5 ms UDP probes c (10.1.0.1) -> h (10.2.0.2) and back through the tunnel;"
echo "the uplink in use taken down ($MODE: $( [ "$MODE" = alt ] && echo "link down / address removed, two of each in turn" || echo "$MODE"))$([ "$NAT" = 1 ] && echo ", NAT on the r2 path"), restored ${SETTLE}s before the next"
echo "interruption = last datagram over the old path -> first over the new; usable->first = uplink-down done -> first datagram sent after it arrives (ms, min/median/max)"
printf '%-26s %4s %9s %20s %20s %12s %12s %10s\n' "client -> gateway" dir handoffs "interruption ms" "usable->first ms" "lost" "restore gap" "new SPIs"
for r in ${ROWS//,/ }; do
  while IFS= read -r line; do
    printf '%-26s %s\n' "$(name "${r%-*}") -> $(name "${r#*-}")" "$line"
  done <<<"${RES[$r]:-FAILED}"
done
cat <<'SEED'

references (other papers' set-ups, not measured here):
  seed 002: re-establishing IPsec 12.2 s, IPsec over Mobile IP 1.3 s, DynIPsec 2.3 s
  seed 004: 56-105 ms
  strongSwan 5.9.8 MOBIKE with kernel-libipsec, measured earlier on this machine (shared/PEERS.md): 105-118 ms
SEED
echo "(per-event data: $OUT/*.json, kept with TB_KEEP=1 or --out DIR)"
