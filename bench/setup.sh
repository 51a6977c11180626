#!/usr/bin/env bash
# setup.sh — IKE tunnel-setup benchmark (issue 3): N tunnels (one IKE SA + one Child SA each, PSK,
# X25519, AES-GCM) from gateway g1 to g2 with at most K exchanges in flight, baton → baton and
# strongSwan → strongSwan in the same run; total time, tunnels/s, setup latency, CPU and memory per
# tunnel, and baton's ratio to strongSwan. Both daemons are restarted for every N.
#   bash bench/setup.sh [--n 10,100,1000,10000] [--inflight 32] [--timeout SECS] [--ss-untuned] [--only baton|strongswan] [--out DIR]
# --timeout bounds each N's initiation phase (default 60 s + 50 ms per tunnel); a timed-out or
# incomplete N is reported as failed. --ss-untuned runs charon with its default IKE_SA table (one
# bucket, one segment) instead of one sized for 10,000 SAs.
set -uo pipefail
cd "$(dirname "$0")/.."
NS=10,100,1000,10000 K=32 TMO= OUT= SS_TUNED=1 ONLY=
usage() { echo "usage: bench/setup.sh [--n N,N,...] [--inflight K] [--timeout SECS] [--ss-untuned] [--only baton|strongswan] [--out DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --n) NS=${2:-}; shift ;;
    --inflight) K=${2:-}; shift ;;
    --timeout) TMO=${2:-}; shift ;;
    --ss-untuned) SS_TUNED=0 ;;
    --only) ONLY=${2:-}; shift ;;
    --out) OUT=${2:-}; shift ;;
    *) usage ;;
  esac
  shift
done
[[ $NS =~ ^[0-9]+(,[0-9]+)*$ ]] || usage
[[ $K =~ ^[1-9][0-9]*$ ]] || usage
case $ONLY in ''|baton|strongswan) ;; *) usage ;; esac
[ -z "$TMO" ] || [[ $TMO =~ ^[1-9][0-9]*$ ]] || usage
for n in ${NS//,/ }; do
  # tunnel i's selectors use UDP port 10000 + i (setup_drive.py ts_pair)
  [ "$n" -ge 1 ] && [ "$n" -le 55535 ] || { echo "bench: N must be 1..55535" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 2; }
. scripts/testbed.sh
. bench/peers.sh
tb_init setup # finds batond/batonctl (build/release first)
OUT=${OUT:-$TB_DIR/results}
mkdir -p "$OUT"
declare -A R # R[impl,N,field]

# --- strongSwan → strongSwan -------------------------------------------------------------------

# The responder accepts K half-open IKE SAs from one address: charon's defaults would drop all but 5
# (block_threshold) and demand cookies beyond 10 (cookie_threshold), or beyond 3 from one address
# (cookie_threshold_ip, new in 5.9.6; it made nearly every tunnel take a COOKIE round trip), which measures retransmission
# timers, not setup. reuse_ikesa = no: the N connections differ only in their Child SA, and charon
# would otherwise put every Child SA into the first IKE SA (one IKE SA per tunnel is the task). The
# tuned table: the default IKE_SA manager is one hash bucket and one lock.
ss_bench_conf() {
  SS_LOG_LEVEL=${SETUP_SS_LOG:-0} # SETUP_SS_LOG=1 or 2 to debug (costs setup rate)
  SS_INSTALL_ROUTES=no # routes are not part of setup (kernel-libipsec still wants a local address in each local_ts: see ts_pair)
  SS_CHARON_EXTRA="  reuse_ikesa = no
  block_threshold = 100000
  cookie_threshold = 100000
  cookie_threshold_ip = 100000"
  [ "$SS_TUNED" = 1 ] && SS_CHARON_EXTRA+="
  ikesa_table_size = 16384
  ikesa_table_segments = 16"
  return 0
}

# charon's PID once the started shell has exec'd into it
ss_pid() {
  local pid=${PEER_PIDS[-1]}
  tb_wait 5 grep -qx charon "/proc/$pid/comm" || { echo "bench: charon PID $pid not found" >&2; return 1; }
  echo "$pid"
}

ss_setup_run() {
  local n=$1 k=$2 tmo=${TMO:-$((60 + n / 20))} d1="$TB_DIR/ss-g1" d2="$TB_DIR/ss-g2" p1 p2 t0 t1 rc
  R[ss,$n,status]=failed
  tb_topology || return 1
  PEER_PIDS=()
  ss_bench_conf
  ss_charon g2 "$d2" && p2=$(ss_pid) && ss_charon g1 "$d1" && p1=$(ss_pid) || return 1
  python3 bench/setup_drive.py conf responder "$n" "$d2/swanctl.conf" &&
    python3 bench/setup_drive.py conf initiator "$n" "$d1/swanctl.conf" || return 1
  t0=$(date +%s.%N)
  for g in g2 g1; do
    local d="$TB_DIR/ss-$g"
    tb_nsx "$g" timeout "$tmo" swanctl --load-all --file "$d/swanctl.conf" --uri "unix://$d/charon.vici" >"$d/load.log" 2>&1 ||
      { echo "bench: swanctl --load-all failed in $g" >&2; tail -3 "$d/load.log" >&2; return 1; }
  done
  t1=$(date +%s.%N)
  R[ss,$n,load]=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$t1")
  echo "strongswan n=$n: daemons up, $n connections loaded in ${R[ss,$n,load]} s; initiating, $k in flight" >&2
  python3 bench/setup_drive.py drive --uri "$d1/charon.vici" --peer-uri "$d2/charon.vici" --n "$n" --inflight "$k" \
    --pids "$p1,$p2" --timeout "$tmo" --out "$OUT/strongswan-$n.json"
  rc=$?
  ss_record "$n" "$OUT/strongswan-$n.json"
  cp "$d1/charon.log" "$OUT/strongswan-$n-g1.log"; cp "$d2/charon.log" "$OUT/strongswan-$n-g2.log"
  if [ $rc != 0 ]; then
    echo "strongswan n=$n: FAILED (see $OUT/strongswan-$n.json and the charon logs there)" >&2
  fi
  ss_stop
  return $rc
}

# Copy the driver's JSON into R (fields as printed in the table).
ss_record() {
  local n=$1 f=$2 impl=${3:-ss} line
  [ -s "$f" ] || return 0
  while IFS='=' read -r key val; do R[$impl,$n,$key]=$val; done < <(python3 - "$f" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda v, fmt: "n/a" if v is None else fmt % v
print("status=%s" % ("ok" if r["ok"] else "failed"))
print("up=%d" % r["established"])
print("wall=%s" % f(r["wall_s"], "%.2f"))
print("rate=%s" % f(r["rate"], "%.0f"))
print("med=%s" % f(r["lat_med_ms"], "%.1f"))
print("p90=%s" % f(r["lat_p90_ms"], "%.1f"))
print("max=%s" % f(r["lat_max_ms"], "%.1f"))
print("cpu_i=%.2f" % r["cpu_ms_per_tunnel"][0])
print("cpu_r=%.2f" % r["cpu_ms_per_tunnel"][1])
print("mem_i=%.1f" % r["kib_per_tunnel"][0])
print("mem_r=%.1f" % r["kib_per_tunnel"][1])
print("drv=%.0f" % (100 * r["driver_cpu_s"] / r["wall_s"] if r["wall_s"] else 0))
print("sas=%s/%s" % ("+".join(map(str, r["sas_initiator"])) if "sas_initiator" in r else "?",
                    "+".join(map(str, r["sas_responder"])) if "sas_responder" in r else "?"))
d = r.get("daemon_setup_ms")
if d:
    print("dmed=%.1f" % d["med"]); print("dp90=%.1f" % d["p90"]); print("dmax=%.1f" % d["max"])
PY
)
}

# Stop this N's charons (by PID) and wait, bounded, until they are gone.
ss_stop() {
  local pid
  for pid in "${PEER_PIDS[@]}"; do tb_kill "$pid"; done
  PEER_PIDS=()
}

# --- baton → baton -----------------------------------------------------------------------------

# baton_drive N K: batond in g1 (N connections t1..tN, 10.1.X.Y/32 <-> 10.2.X.Y/32) and g2 (one
# responder connection 10.2.0.0/16 <-> 10.1.0.0/16, narrowed per tunnel), PSK, X25519, AES-GCM;
# initiate N tunnels from g1 over its control socket with at most K outstanding (setup_drive.py
# bdrive), record the same fields as ss_record under R[baton,N,*].
baton_drive() {
  local n=$1 k=$2 tmo=${TMO:-$((60 + n / 20))} c1="$TB_DIR/baton-g1.conf" c2="$TB_DIR/baton-g2.conf" t0 t1 rc g
  python3 bench/setup_drive.py bconf responder "$n" "$c2" && python3 bench/setup_drive.py bconf initiator "$n" "$c1" || return 1
  t0=$(date +%s.%N)
  tb_start g2 "$c2" && tb_start g1 "$c1" || return 1
  t1=$(date +%s.%N)
  for g in g1 g2; do
    [ "$(cat "/proc/${TB_DAEMON[$g]}/comm" 2>/dev/null)" = batond ] || { echo "bench: batond PID in $g not found" >&2; return 1; }
  done
  R[baton,$n,load]=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$t1")
  echo "baton n=$n: daemons up with $n connections in ${R[baton,$n,load]} s; initiating, $k in flight" >&2
  python3 bench/setup_drive.py bdrive --sock "$TB_DIR/g1.sock" --peer-sock "$TB_DIR/g2.sock" --log "$TB_DIR/g1.log" \
    --n "$n" --inflight "$k" --pids "${TB_DAEMON[g1]},${TB_DAEMON[g2]}" --timeout "$tmo" --out "$OUT/baton-$n.json"
  rc=$?
  ss_record "$n" "$OUT/baton-$n.json" baton
  cp "$TB_DIR/g1.log" "$OUT/baton-$n-g1.log"; cp "$TB_DIR/g2.log" "$OUT/baton-$n-g2.log"
  [ $rc = 0 ] || echo "baton n=$n: FAILED (see $OUT/baton-$n.json and the batond logs there)" >&2
  return $rc
}

baton_setup_run() {
  local n=$1 k=$2 g
  R[baton,$n,status]=failed
  tb_topology || return 1
  baton_drive "$n" "$k"
  for g in g1 g2; do tb_stop "$g"; done
}

# --- run and report -----------------------------------------------------------------------------

for n in ${NS//,/ }; do
  echo "=== N=$n, $K in flight" >&2
  [ "$ONLY" = strongswan ] || baton_setup_run "$n" "$K"
  [ "$ONLY" = baton ] || ss_setup_run "$n" "$K"
  sleep 1
done

echo
echo "IKE tunnel setup g1 → g2, $(date -u +%Y-%m-%d), $(nproc) cores, $K exchanges in flight; PSK, $(
  python3 -c 'import sys; sys.path.insert(0, "bench"); import setup_drive as s; print(s.IKE_PROPOSAL, "/ ESP", s.ESP_PROPOSAL)')"
echo "baton: batond $("$BATOND" -V 2>/dev/null | head -1) (log_level info; completions read from its log, see setup_drive.py bdrive)"
echo "strongSwan 5.9.8 kernel-libipsec, $([ "$SS_TUNED" = 1 ] && echo "IKE_SA table 16384x16" || echo "default IKE_SA table"); both daemons restarted per N"
echo "(latency: initiate request to Child SA up; CPU: utime+stime of the daemon per tunnel, i = initiator g1, r = responder g2;"
echo " memory: RSS growth per tunnel; drv: the driver's own CPU in % of one core; load: swanctl --load-all,"
echo " for baton both batonds started with their configurations; not in the total)"
printf "%-10s %6s %7s %8s %8s %7s %7s %7s %7s %7s %7s %7s %4s %6s %s\n" impl N status "total s" "tun/s" "med ms" \
  "p90 ms" "max ms" "CPUi ms" "CPUr ms" "KiB i" "KiB r" drv "load s" "SAs i/r"
row() {
  local impl=$1 n=$2 name=$3
  printf "%-10s %6s %7s %8s %8s %7s %7s %7s %7s %7s %7s %7s %4s %6s %s\n" "$name" "$n" "${R[$impl,$n,status]:-n/a}" \
    "${R[$impl,$n,wall]:-n/a}" "${R[$impl,$n,rate]:-n/a}" "${R[$impl,$n,med]:-n/a}" "${R[$impl,$n,p90]:-n/a}" \
    "${R[$impl,$n,max]:-n/a}" "${R[$impl,$n,cpu_i]:-n/a}" "${R[$impl,$n,cpu_r]:-n/a}" "${R[$impl,$n,mem_i]:-n/a}" \
    "${R[$impl,$n,mem_r]:-n/a}" "${R[$impl,$n,drv]:-}" "${R[$impl,$n,load]:-}" "${R[$impl,$n,sas]:-}"
}
for n in ${NS//,/ }; do
  row baton "$n" baton
  row ss "$n" strongswan
done
echo
echo "baton daemon-side setup time (g1 list-sas setup_ms: IKE_SA_INIT sent to IKE SA established)"
for n in ${NS//,/ }; do
  printf "N=%-6s med %s ms  p90 %s ms  max %s ms\n" "$n" "${R[baton,$n,dmed]:-n/a}" "${R[baton,$n,dp90]:-n/a}" "${R[baton,$n,dmax]:-n/a}"
done
echo
echo "baton / strongSwan (target: rate ≥ 3x at every N, not falling with N; ≤ 8 KiB per tunnel)"
for n in ${NS//,/ }; do
  if [ "${R[baton,$n,status]:-}" = ok ] && [ "${R[ss,$n,status]:-}" = ok ]; then
    python3 -c 'import sys
n, br, sr, bl, sl, bm, sm = sys.argv[1:]
print("N=%-6s rate %.2fx   median latency strongSwan/baton %.2fx   KiB/tunnel (i) %s vs %s" % (n, float(br) / float(sr),
      float(sl) / float(bl) if float(bl) else 0, bm, sm))' "$n" "${R[baton,$n,rate]}" "${R[ss,$n,rate]}" \
      "${R[baton,$n,med]}" "${R[ss,$n,med]}" "${R[baton,$n,mem_i]}" "${R[ss,$n,mem_i]}" 2>/dev/null || echo "N=$n n/a"
  else
    echo "N=$n n/a (baton ${R[baton,$n,status]:-n/a}, strongSwan ${R[ss,$n,status]:-n/a})"
  fi
done
echo "driver JSON in $OUT (removed on exit unless --out was given)"
fail=0
for n in ${NS//,/ }; do
  [ "$ONLY" = baton ] || [ "${R[ss,$n,status]:-}" = ok ] || fail=1
  [ "$ONLY" = strongswan ] || [ "${R[baton,$n,status]:-}" = ok ] || fail=1
done
exit $fail
