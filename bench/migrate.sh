#!/usr/bin/env bash
# migrate.sh — context transfer benchmark (issue 5), printed beside the thesis (seed 003, fig. 3.4
# and ch. 5: strongSwan 4.5, GET 5-15 ms, PUT 2-22 ms, migration ~1.3 s).
#   (i)  GET/PUT latency with N sessions loaded: N tunnels g1 -> g2 on scripts/testbed.sh's bed,
#        brought up as bench/setup.sh does (setup_drive.py bconf/bdrive); then on g1 a sample of
#        them, spread over all N, taken out with get --detach and put back (migrate_drive.py): the
#        daemon's "ms" of each call and the control socket's round trip.
#   (ii) migration interruption on tests/integration/xfer_lib.sh's bed, Mono-LAN and Multi-LAN:
#        `batonctl migrate` between g1 and g2, RUNS times, under UDP probes (--interval, 5 ms) both ways between
#        c and h; per migration the interruption as the client sees it (last ESP packet from the old
#        gateway to the first from the new one, captured at c: switch.py), probes lost both ways
#        (probe.py report), and the daemon's total_ms.
#   bash bench/migrate.sh [--n 10,100,1000,10000] [--runs 20] [--sample 50] [--interval 0.005] [--only getput|mono|multi] [--out DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
NS=10,100,1000,10000 RUNS=20 SAMPLE=50 ONLY= OUT= IV=0.005
usage() { sed -n 's/^#   bash/bash/p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --n) NS=${2:-}; shift ;;
    --runs) RUNS=${2:-}; shift ;;
    --sample) SAMPLE=${2:-}; shift ;;
    --interval) IV=${2:-}; shift ;;
    --only) ONLY=${2:-}; shift ;;
    --out) OUT=${2:-}; shift ;;
    *) usage ;;
  esac
  shift
done
[[ $NS =~ ^[0-9]+(,[0-9]+)*$ ]] || usage
[[ $RUNS =~ ^[1-9][0-9]*$ ]] && [ "$RUNS" -le 500 ] || usage
[[ $SAMPLE =~ ^[1-9][0-9]*$ ]] || usage
[[ $IV =~ ^0\.[0-9]*[1-9][0-9]*$ ]] || usage
case $ONLY in ''|getput|mono|multi) ;; *) usage ;; esac
for n in ${NS//,/ }; do [ "$n" -ge 1 ] && [ "$n" -le 55535 ] || { echo "bench: N must be 1..55535" >&2; exit 2; }; done
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 2; }
. scripts/testbed.sh
. tests/integration/xfer_lib.sh
xf_init bench
OUT=${OUT:-$TB_DIR/results}
mkdir -p "$OUT"
PROBE="python3 $XF_TOOLS/probe.py"
declare -A R

# --- (i) GET / PUT latency with N sessions ---------------------------------------------------------

getput_run() {
  local n=$1 c1="$TB_DIR/gp-g1.conf" c2="$TB_DIR/gp-g2.conf" tmo=$((60 + n / 20)) g rc
  R[gp,$n]="failed"
  TB_NODES="h1 g1 g2 h2"
  tb_topology || return 1
  python3 bench/setup_drive.py bconf responder "$n" "$c2" && python3 bench/setup_drive.py bconf initiator "$n" "$c1" || return 1
  printf 'cluster {\n    name = g1\n    key = 0x%s\n}\n' "$XF_KEY" >>"$c1"
  tb_start g2 "$c2" && tb_start g1 "$c1" || return 1
  echo "getput n=$n: bringing up $n tunnels g1 -> g2" >&2
  python3 bench/setup_drive.py bdrive --sock "$TB_DIR/g1.sock" --peer-sock "$TB_DIR/g2.sock" --log "$TB_DIR/g1.log" \
    --n "$n" --inflight 32 --pids "${TB_DAEMON[g1]},${TB_DAEMON[g2]}" --timeout "$tmo" --out "$OUT/setup-$n.json" ||
    { echo "getput n=$n: the tunnels did not all come up (see $OUT/setup-$n.json)" >&2; for g in g1 g2; do tb_stop $g; done; return 1; }
  echo "getput n=$n: $n tunnels up; get --detach + put of $(( SAMPLE < n ? SAMPLE : n )) of them on g1" >&2
  tb_nsx g1 python3 bench/migrate_drive.py --sock "$TB_DIR/g1.sock" --n "$n" --sample "$SAMPLE" --out "$OUT/getput-$n.json"
  rc=$?
  R[gp,$n]=$(python3 - "$OUT/getput-$n.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda s: "%.3f/%.3f/%.3f" % (s["min"], s["med"], s["max"]) if s else "n/a"
print("%5d %-22s %-22s %-22s %-22s %6s %s" % (r["sample"], f(r["get_ms"]), f(r["get_rtt_ms"]), f(r["put_ms"]), f(r["put_rtt_ms"]),
      "%d" % r["bytes"]["med"] if r["bytes"] else "n/a", "; ".join(r["errors"][:2])))
PY
)
  echo "getput n=$n: ${R[gp,$n]}" >&2
  for g in g1 g2; do tb_stop $g; done
  tb_down
  return $rc
}

# --- (ii) migration interruption -------------------------------------------------------------------

# mig_run mono|multi: RUNS migrations, alternately g1 -> g2 and back
mig_run() {
  local lan=$1 i from to st ev="$OUT/$1.events" cap="$OUT/$1-esp.pcap" dur cnt pids=() p rtt js
  R[mig,$lan]="failed"
  TB_NODES="c r g1 g2 h sw"
  xf_topology "$lan" || return 1
  xf_up || { echo "$lan: the tunnel did not come up" >&2; xf_stop_all; return 1; }
  rtt=$(tb_nsx c ping -c 5 -i 0.2 -q "$XF_GW" | sed -n 's#.*= [0-9.]*/\([0-9.]*\)/.*#\1#p')
  R[rtt,$lan]=${rtt:-?}
  rm -f "$ev" "$OUT/$lan".*.recv "$OUT/$lan".mig.json
  dur=$((RUNS * 2 + 20))
  cnt=$(awk -v d=$dur -v i="$IV" 'BEGIN { print int(d / i) + 10 }')   # probe.py stops at --count too
  TB_CAP_SECS=$((dur + 10)) xf_esp_capture "$cap" || { xf_stop_all; return 1; }
  pids+=("$TB_CAP_PID")
  tb_bg h timeout $((dur + 10)) $PROBE sink --port 7777 --out "$OUT/$lan.up.recv" --duration $((dur + 5)) --idle $((dur + 5)); pids+=(${TB_PIDS[-1]})
  tb_bg c timeout $((dur + 10)) $PROBE sink --bind $XF_INNER --port 7778 --out "$OUT/$lan.down.recv" --duration $((dur + 5)) --idle $((dur + 5)); pids+=(${TB_PIDS[-1]})
  sleep 0.3
  tb_bg c timeout $((dur + 5)) $PROBE send --src $XF_INNER --dst $XF_HOST --port 7777 --interval "$IV" --count "$cnt" --duration $dur >/dev/null 2>&1; pids+=(${TB_PIDS[-1]})
  tb_bg h timeout $((dur + 5)) $PROBE send --dst $XF_INNER --port 7778 --interval "$IV" --count "$cnt" --duration $dur >/dev/null 2>&1; pids+=(${TB_PIDS[-1]})
  tb_wait 5 test -s "$OUT/$lan.up.recv" -a -s "$OUT/$lan.down.recv" || { echo "$lan: probes do not get through" >&2; R[mig,$lan]="failed: no probes"; }
  for ((i = 1; i <= RUNS; i++)); do
    [ "${R[mig,$lan]}" = failed ] || break
    from=$(xf_owner)
    [ -n "$from" ] || { R[mig,$lan]="failed: migration $i: no single gateway holds the session"; break; }
    to=$(xf_other "$from")
    sleep 0.5
    st=$($PROBE stamp -- sh -c 'ip netns exec "$1" timeout 10 "$2" -s "$3" --json migrate gw --to "$4" >"$5" 2>&1' - \
      "$(tb_ns "$from")" "$BATONCTL" "$TB_DIR/$from.sock" "$to" "$OUT/$lan.mig.$i")
    js=$(python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))" "$OUT/$lan.mig.$i" 2>/dev/null || head -n 1 "$OUT/$lan.mig.$i")
    echo "$js" >>"$OUT/$lan.mig.json"
    echo "${st#* } mig $from-$to" >>"$ev"
    if [ "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("ok"))' "$js" 2>/dev/null)" != True ]; then
      R[mig,$lan]="failed: migration $i $from -> $to: $(cut -c1-200 <<<"$js")"; break
    fi
    tb_wait 5 $PROBE since "$OUT/$lan.down.recv" "${st#* }" || { R[mig,$lan]="failed: migration $i: no traffic within 5 s"; break; }
    printf '   %s %2d/%d %s -> %s  %s\n' "$lan" "$i" "$RUNS" "$from" "$to" \
      "$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("total %.2f ms (export %.2f, ship %.2f, import %.2f)" % tuple(r.get(k, 0) for k in ("total_ms","export_ms","ship_ms","import_ms")))' "$js" 2>/dev/null)" >&2
  done
  sleep 0.5
  for p in "${pids[@]:3}"; do tb_kill "$p"; done
  sleep 0.3
  tb_kill "${pids[1]}"; tb_kill "${pids[2]}"
  tb_capture_stop "${pids[0]}"
  for p in c g1 g2; do cp "$TB_DIR/$p.log" "$OUT/$lan.$p.batond.log" 2>/dev/null; done
  xf_stop_all
  tb_down
  [ "${R[mig,$lan]}" = failed ] || return 1
  for d in up down; do $PROBE report --recv "$OUT/$lan.$d.recv" --events "$ev" --json >"$OUT/$lan.$d.json"; done
  python3 "$XF_TOOLS/switch.py" "$cap" "$XF_C" --json >"$OUT/$lan.switch.json"
  R[mig,$lan]=$(python3 - "$OUT/$lan" "$RUNS" <<'PY'
import json, statistics, sys
base, runs = sys.argv[1], int(sys.argv[2])
sw = json.load(open(base + ".switch.json"))["switches"]
up = json.load(open(base + ".up.json"))["events"]
down = json.load(open(base + ".down.json"))["events"]
mig = [json.loads(l) for l in open(base + ".mig.json") if l.strip()]
f = lambda v: "%.1f/%.1f/%.1f" % (min(v), statistics.median(v), max(v)) if v else "n/a"
gaps = [s["gap_ms"] for s in sw]
lost_up = [e.get("lost_window", 0) for e in up if e.get("recovered")]
lost_down = [e.get("lost_window", 0) for e in down if e.get("recovered")]
tot = [m.get("total_ms", 0) for m in mig if m.get("ok")]
print("%2d/%-2d %-20s %-18s %-10s %-10s %-18s" % (len(gaps), runs, f(gaps), f([e["max_gap_ms"] for e in down if e.get("max_gap_ms") is not None]),
      "%d/%d" % (sum(lost_up), max(lost_up) if lost_up else 0), "%d/%d" % (sum(lost_down), max(lost_down) if lost_down else 0), f(tot)))
PY
)
}


START=$(date -u +%Y-%m-%dT%H:%MZ)
if [ -z "$ONLY" ] || [ "$ONLY" = getput ]; then
  for n in ${NS//,/ }; do echo "=== GET/PUT with $n sessions" >&2; getput_run "$n"; done
fi
for lan in mono multi; do
  [ -z "$ONLY" ] || [ "$ONLY" = "$lan" ] || continue
  echo "=== migration interruption, $lan-LAN, $RUNS migrations" >&2
  mig_run "$lan"
done

echo
echo "Context transfer, $START, $(nproc) cores, batond $("$BATOND" -V 2>/dev/null | head -1)"
if [ -z "$ONLY" ] || [ "$ONLY" = getput ]; then
  echo
  echo "(i) GET (get --detach) and PUT on one gateway holding N sessions, a sample spread over them; ms min/median/max"
  echo "    daemon = batond's own \"ms\" of the call, rtt = control socket request to reply"
  printf '%6s %5s %-22s %-22s %-22s %-22s %6s\n' N sample "GET daemon ms" "GET rtt ms" "PUT daemon ms" "PUT rtt ms" bytes
  for n in ${NS//,/ }; do printf '%6s %s\n' "$n" "${R[gp,$n]:-n/a}"; done
  echo "    thesis (fig. 3.4, strongSwan 4.5): GET 5-15 ms, PUT 2-22 ms; target: GET and PUT <= 0.1 ms each at 10,000 sessions"
fi
for lan in mono multi; do
  [ -z "$ONLY" ] || [ "$ONLY" = "$lan" ] || continue
  [ -n "${HDR:-}" ] || {
    echo
    echo "(ii) migration interruption (batonctl migrate gw --to the other gateway, alternating), probes every $(python3 -c "print('%g' % (1000 * $IV))") ms both ways"
    echo "    interruption = last ESP packet from the old gateway -> first from the new one, at c (ms min/median/max;"
    echo "    no shorter than the probe interval: packets are that far apart anyway);"
    echo "    max gap = largest gap in h->c probe arrivals around the migration; lost = probes lost in all / worst migration"
    printf '%-6s %-5s %-20s %-18s %-10s %-10s %-18s %s\n' LAN runs "interruption ms" "h->c max gap ms" "lost c->h" "lost h->c" "migrate total ms" "c-gw RTT ms"
    HDR=1
  }
  printf '%-6s %s %s\n' "$lan" "${R[mig,$lan]:-n/a}" "${R[rtt,$lan]:-}"
done
if [ -n "${HDR:-}" ]; then
  echo "    thesis (seed 003 ch. 5, strongSwan 4.5): ~1.3 s; targets: Mono-LAN <= 10 ms with no packet lost, Multi-LAN <= RTT + 10 ms"
fi
echo "(raw data: $OUT, kept with --out DIR)"
fail=0
for k in "${!R[@]}"; do case $k in rtt,*) ;; *) case ${R[$k]} in failed*) fail=1 ;; esac ;; esac; done
exit $fail
