#!/usr/bin/env bash
# throughput.sh — TCP and UDP throughput through two gateways, for baton and its peers measured in
# the same run on the same machine: plain veth (routing only), baton AES-128-GCM and
# AES-128-CBC/HMAC-SHA-256, strongSwan 5.9.8 kernel-libipsec (both suites), wireguard-go. Prints
# each figure, the CPU the tunnel daemons used, and baton's ratio to each peer.
#   bash bench/throughput.sh [--quick] [--out DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
T=5 TU=3 OUT=
while [ $# -gt 0 ]; do
  case $1 in
    --quick) T=2 TU=2 ;;
    --out) OUT=$2; shift ;;
    *) echo "usage: bench/throughput.sh [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 2; }
bash scripts/build >/dev/null || exit 1
export BATOND=${BATOND:-$PWD/build/release/batond} BATONCTL=${BATONCTL:-$PWD/build/release/batonctl}
. scripts/testbed.sh
. bench/peers.sh
tb_init bench
OUT=${OUT:-$TB_DIR/results}
mkdir -p "$OUT"

PATHS=(veth baton-gcm baton-cbc strongswan-gcm strongswan-cbc wireguard-go)
RATES=(500M 1G 2G 0)
declare -A R

ticks() { # CPU ticks used so far by the given PIDs (threads included)
  local t=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    for c in /proc/$pid/task/*/children; do :; done
  done
  echo $t
}

# the real daemon PIDs: for strongSwan/wireguard-go the started shell exec'd into the daemon
daemon_pids() { echo "${PEER_PIDS[@]:-}"; }

run_path() {
  local name=$1 i=$2 n=${#PATHS[@]}
  echo "[$i/$n] $name: setting up" >&2
  tb_topology
  PEER_PIDS=()
  case $name in
    veth) veth_up ;;
    baton-gcm) baton_up aes128gcm16 ;;
    baton-cbc) baton_up aes128-sha256 ;;
    strongswan-gcm) ss_up aes128gcm16 ;;
    strongswan-cbc) ss_up aes128-sha256 ;;
    wireguard-go) wg_up ;;
  esac || { echo "[$i/$n] $name: tunnel did not come up; skipped" >&2; R[$name,tcp]=n/a; return; }
  tb_bg h2 iperf3 -s >/dev/null 2>&1
  sleep 0.5
  local hz; hz=$(getconf CLK_TCK)
  echo "[$i/$n] $name: TCP ${T}s" >&2
  local t0; t0=$(ticks $(daemon_pids))
  tb_nsx h1 timeout $((T + 15)) iperf3 -c 10.2.0.2 -t "$T" -J >"$OUT/$name-tcp.json" 2>/dev/null
  local t1; t1=$(ticks $(daemon_pids))
  R[$name,tcp]=$(python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e9))' "$OUT/$name-tcp.json" 2>/dev/null || echo n/a)
  R[$name,cpu]=$(( (t1 - t0) * 100 / hz / T ))
  for rate in "${RATES[@]}"; do
    echo "[$i/$n] $name: UDP 1300 B at ${rate/#0/unlimited} for ${TU}s" >&2
    sleep 1 # let queues drain (strongSwan's are unbounded)
    tb_nsx h1 timeout $((TU + 15)) iperf3 -c 10.2.0.2 -u -l 1300 -b "$rate" -t "$TU" -J >"$OUT/$name-udp-$rate.json" 2>/dev/null
    R[$name,udp$rate]=$(python3 -c '
import json,sys
e=json.load(open(sys.argv[1]))["end"]["sum"]
print("%.2f/%.0f%%" % (e["bits_per_second"]*(100-e["lost_percent"])/100/1e9, e["lost_percent"]))' "$OUT/$name-udp-$rate.json" 2>/dev/null || echo n/a)
  done
  echo "[$i/$n] $name: TCP ${R[$name,tcp]} Gbit/s, daemons ${R[$name,cpu]}% of a core" >&2
  # stop this path's daemons (by PID) before the next one
  for pid in "${PEER_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for g in g1 g2; do tb_stop $g; done
  for pid in "${PEER_PIDS[@]}"; do # bounded wait until they are gone
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  sleep 1
}

i=0
for p in "${PATHS[@]}"; do i=$((i + 1)); run_path "$p" "$i"; done

echo
echo "Throughput through two gateways, $(date -u +%Y-%m-%d), $(nproc) cores, iperf3 ${T}s TCP / ${TU}s UDP (1300-byte datagrams; received Gbit/s / loss)"
echo "(TCP in Gbit/s; daemonCPU = CPU of both gateways' tunnel daemons during the TCP run, in % of one core)"
printf "%-16s %8s %9s %14s %14s %14s %14s\n" path "TCP" "daemonCPU" "UDP@500M" "UDP@1G" "UDP@2G" "UDP@max"
for p in "${PATHS[@]}"; do
  printf "%-16s %8s %8s%% %14s %14s %14s %14s\n" "$p" "${R[$p,tcp]:-n/a}" "${R[$p,cpu]:-?}" "${R[$p,udp500M]:-n/a}" \
    "${R[$p,udp1G]:-n/a}" "${R[$p,udp2G]:-n/a}" "${R[$p,udp0]:-n/a}"
done
echo
ratio() { python3 -c 'import sys
a,b=sys.argv[1].split("/")[0],sys.argv[2].split("/")[0]
try: print("%.2fx" % (float(a)/float(b)))
except Exception: print("n/a")' "$1" "$2"; }
for b in baton-gcm baton-cbc; do
  for peer in strongswan-gcm strongswan-cbc wireguard-go veth; do
    printf "%-10s / %-15s TCP %7s   UDP@max %7s\n" "$b" "$peer" "$(ratio "${R[$b,tcp]:-n/a}" "${R[$peer,tcp]:-n/a}")" \
      "$(ratio "${R[$b,udp0]:-n/a}" "${R[$peer,udp0]:-n/a}")"
  done
done
echo "(baton-gcm is compared with strongswan-gcm and baton-cbc with strongswan-cbc: same suites)"
echo "raw iperf3 JSON in $OUT (removed on exit unless --out was given)"
