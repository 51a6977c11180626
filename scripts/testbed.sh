# testbed.sh — a bash library for namespace test beds: source it, then call its functions.
#
#   tb_init TAG            names namespaces bt-TAG-ID-{h1,g1,g2,h2} (ID unique to this run, so beds
#                          of parallel runs never collide); sets a cleanup trap (EXIT INT TERM)
#   tb_topology [v6]       host1 — gw1 ==== gw2 — host2 (veth), addresses below, forwarding on
#   tb_conf GW FILE        write a batond config for GW (g1|g2) to FILE from $TB_* variables
#   tb_start GW FILE       start batond in GW's namespace; waits for its socket and TUN; routes
#   tb_stop GW             stop that batond (by PID)
#   tb_ctl GW ARGS...      run batonctl against GW's daemon
#   tb_nsx NS CMD...       run CMD in namespace NS (h1, g1, g2, h2)
#   tb_bg NS CMD...        start CMD in NS in the background; its PID is killed on cleanup
#
# Addresses: h1 10.1.0.2 (fd01::2) — g1 10.1.0.1 (fd01::1) | 172.16.0.1 (fd00::1) —
#            g2 172.16.0.2 (fd00::2) | 10.2.0.1 (fd02::1) — h2 10.2.0.2 (fd02::2)
# Everything is bounded: waits time out, and cleanup kills only the PIDs started here.

TB_BIN=${TB_BIN:-}
tb_bins() {
  local src; src=${BATON_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
  BATOND=${BATOND:-$src/build/release/batond}
  BATONCTL=${BATONCTL:-$src/build/release/batonctl}
  [ -x "$BATOND" ] && [ -x "$BATONCTL" ] || { echo "testbed: no batond/batonctl (set BATOND, BATONCTL or build)" >&2; return 1; }
}

tb_init() {
  TB_ID=$(printf '%05x' $(( ($$ * 7919 + RANDOM) % 1048576 )))
  TB_TAG=$1-$TB_ID
  TB_DIR=$(mktemp -d "/tmp/bt-$TB_TAG.XXXXXX")
  TB_PIDS=()
  declare -gA TB_DAEMON=()
  trap tb_cleanup EXIT
  trap 'exit 130' INT TERM
  tb_bins || exit 1
}

tb_ns() { echo "bt-$TB_TAG-$1"; }
tb_nsx() { local ns; ns=$(tb_ns "$1"); shift; ip netns exec "$ns" "$@"; }
tb_bg() { local ns; ns=$(tb_ns "$1"); shift; ip netns exec "$ns" "$@" & TB_PIDS+=($!); }

tb_cleanup() {
  local rc=$?
  set +e
  for pid in "${TB_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${TB_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  for n in h1 g1 g2 h2; do ip netns del "bt-$TB_TAG-$n" 2>/dev/null; done
  if [ "$rc" != 0 ] && [ -n "${TB_DIR:-}" ]; then
    for f in "$TB_DIR"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done
  fi
  rm -rf "${TB_DIR:-/nonexistent}"
  exit $rc
}

tb_topology() {
  local n
  for n in h1 g1 g2 h2; do
    ip netns del "$(tb_ns $n)" 2>/dev/null || true
    ip netns add "$(tb_ns $n)"
    tb_nsx $n ip link set lo up
  done
  # veth names must be unique machine-wide while they exist in the root namespace
  local t=$TB_ID
  ip link add "bt$t-a" type veth peer name "bt$t-b"
  ip link set "bt$t-a" netns "$(tb_ns h1)"; ip link set "bt$t-b" netns "$(tb_ns g1)"
  ip link add "bt$t-c" type veth peer name "bt$t-d"
  ip link set "bt$t-c" netns "$(tb_ns g1)"; ip link set "bt$t-d" netns "$(tb_ns g2)"
  ip link add "bt$t-e" type veth peer name "bt$t-f"
  ip link set "bt$t-e" netns "$(tb_ns g2)"; ip link set "bt$t-f" netns "$(tb_ns h2)"
  tb_nsx h1 ip link set "bt$t-a" name eth0; tb_nsx g1 ip link set "bt$t-b" name in0
  tb_nsx g1 ip link set "bt$t-c" name out0; tb_nsx g2 ip link set "bt$t-d" name out0
  tb_nsx g2 ip link set "bt$t-e" name in0; tb_nsx h2 ip link set "bt$t-f" name eth0
  for n in h1 h2; do tb_nsx $n ip link set eth0 up; done
  for n in g1 g2; do
    tb_nsx $n ip link set in0 up; tb_nsx $n ip link set out0 up
    tb_nsx $n sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  done
  for n in h1 g1 g2 h2; do tb_nsx $n sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0; done
  tb_nsx h1 ip addr add 10.1.0.2/24 dev eth0; tb_nsx h1 ip -6 addr add fd01::2/64 dev eth0 nodad
  tb_nsx h1 ip route add default via 10.1.0.1; tb_nsx h1 ip -6 route add default via fd01::1
  tb_nsx g1 ip addr add 10.1.0.1/24 dev in0; tb_nsx g1 ip -6 addr add fd01::1/64 dev in0 nodad
  tb_nsx g1 ip addr add 172.16.0.1/24 dev out0; tb_nsx g1 ip -6 addr add fd00::1/64 dev out0 nodad
  tb_nsx g2 ip addr add 172.16.0.2/24 dev out0; tb_nsx g2 ip -6 addr add fd00::2/64 dev out0 nodad
  tb_nsx g2 ip addr add 10.2.0.1/24 dev in0; tb_nsx g2 ip -6 addr add fd02::1/64 dev in0 nodad
  tb_nsx h2 ip addr add 10.2.0.2/24 dev eth0; tb_nsx h2 ip -6 addr add fd02::2/64 dev eth0 nodad
  tb_nsx h2 ip route add default via 10.2.0.1; tb_nsx h2 ip -6 route add default via fd02::1
}

# Wait (bounded) until CMD succeeds: tb_wait SECONDS CMD...
tb_wait() {
  local t=$1; shift
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.05
  done
}

# Start batond in a gateway with config FILE, then route the peer's inner networks into its TUN.
# Routes: TB_ROUTES_g1 / TB_ROUTES_g2 (space-separated prefixes) override the defaults.
tb_start() {
  local gw=$1 conf=$2 sock="$TB_DIR/$1.sock"
  tb_bg "$gw" "$BATOND" -c "$conf" -s "$sock" >"$TB_DIR/$gw.log" 2>&1
  TB_DAEMON[$gw]=${TB_PIDS[-1]}
  if ! tb_wait 10 test -S "$sock" || ! tb_wait 5 tb_nsx "$gw" ip link show "${TB_TUN:-bt0}"; then
    echo "testbed: batond in $gw did not come up" >&2; cat "$TB_DIR/$gw.log" >&2; return 1
  fi
  local routes
  if [ "$gw" = g1 ]; then routes=${TB_ROUTES_g1:-10.2.0.0/24 fd02::/64}; else routes=${TB_ROUTES_g2:-10.1.0.0/24 fd01::/64}; fi
  for r in $routes; do tb_nsx "$gw" ip route replace "$r" dev "${TB_TUN:-bt0}"; done
}

tb_stop() {
  local pid=${TB_DAEMON[$1]:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  unset "TB_DAEMON[$1]"
}

tb_ctl() { local gw=$1; shift; tb_nsx "$gw" "$BATONCTL" -s "$TB_DIR/$gw.sock" "$@"; }

# Random hex key of N bytes.
tb_key() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# tb_conf GW FILE: a tunnel between the gateways from TB_PROPOSAL, TB_ENCAP (yes|no), TB_FAMILY
# (4|6, outer), TB_MODE, TB_ESN, TB_EKEY_A/B and TB_IKEY_A/B (keys a->b, b->a), TB_EXTRA (lines in
# the child), TB_LOCAL_TS / TB_REMOTE_TS as seen from g1.
tb_conf() {
  local gw=$1 file=$2
  local la=172.16.0.1 ra=172.16.0.2
  [ "${TB_FAMILY:-4}" = 6 ] && la=fd00::1 ra=fd00::2
  local lts=${TB_LOCAL_TS:-10.1.0.0/24, fd01::/64} rts=${TB_REMOTE_TS:-10.2.0.0/24, fd02::/64}
  local spi_in=0xc0000001 spi_out=0xc0000002 ek_in=$TB_EKEY_B ek_out=$TB_EKEY_A ik_in=$TB_IKEY_B ik_out=$TB_IKEY_A
  if [ "$gw" = g2 ]; then
    local t=$la; la=$ra; ra=$t; t=$lts; lts=$rts; rts=$t
    spi_in=0xc0000002 spi_out=0xc0000001 ek_in=$TB_EKEY_A ek_out=$TB_EKEY_B ik_in=$TB_IKEY_A ik_out=$TB_IKEY_B
  fi
  {
    echo "baton {"
    echo "    tun = ${TB_TUN:-bt0}"
    echo "    log_level = ${TB_LOG:-info}"
    [ -n "${TB_BATON_EXTRA:-}" ] && echo "$TB_BATON_EXTRA"
    echo "}"
    echo "connections {"
    echo "    gw {"
    echo "        local_addrs = $la"
    echo "        remote_addrs = $ra"
    echo "        encap = ${TB_ENCAP:-yes}"
    echo "        children {"
    echo "            net {"
    echo "                mode = ${TB_MODE:-tunnel}"
    if [ "${TB_MODE:-tunnel}" = tunnel ]; then
      echo "                local_ts = $lts"
      echo "                remote_ts = $rts"
    fi
    echo "                esp_proposals = ${TB_PROPOSAL:-aes128gcm16}$([ "${TB_ESN:-no}" = yes ] && echo -esn)"
    echo "                spi_in = $spi_in"
    echo "                spi_out = $spi_out"
    [ -n "$ek_in" ] && echo "                enc_key_in = 0x$ek_in"
    [ -n "$ek_out" ] && echo "                enc_key_out = 0x$ek_out"
    [ -n "$ik_in" ] && echo "                integ_key_in = 0x$ik_in"
    [ -n "$ik_out" ] && echo "                integ_key_out = 0x$ik_out"
    [ -n "${TB_EXTRA:-}" ] && echo "$TB_EXTRA"
    echo "            }"
    echo "        }"
    echo "    }"
    echo "}"
    if [ -n "${TB_POLICIES:-}" ]; then echo "$TB_POLICIES"; fi
  } >"$file"
}

# Key lengths (bytes) for a proposal: prints "ENC INTEG".
tb_keylens() {
  case $1 in
    aes128gcm16) echo "20 0" ;; aes256gcm16) echo "36 0" ;; chacha20poly1305) echo "36 0" ;;
    aes128-sha1) echo "16 20" ;; aes128-sha256) echo "16 32" ;; aes256-sha384) echo "32 48" ;;
    aes256-sha512) echo "32 64" ;; aes128ctr-sha256) echo "20 32" ;; null-sha256) echo "0 32" ;;
    3des-md5) echo "24 16" ;; 3des-sha1) echo "24 20" ;; aes192-sha256) echo "24 32" ;;
    *) echo "testbed: unknown proposal $1" >&2; return 1 ;;
  esac
}

# Fresh keys for TB_PROPOSAL into TB_EKEY_A/B, TB_IKEY_A/B.
tb_keys() {
  local l; l=$(tb_keylens "${TB_PROPOSAL:-aes128gcm16}") || return 1
  set -- $l
  TB_EKEY_A=; TB_EKEY_B=; TB_IKEY_A=; TB_IKEY_B=
  [ "$1" -gt 0 ] && TB_EKEY_A=$(tb_key "$1") && TB_EKEY_B=$(tb_key "$1")
  [ "$2" -gt 0 ] && TB_IKEY_A=$(tb_key "$2") && TB_IKEY_B=$(tb_key "$2")
  return 0
}
