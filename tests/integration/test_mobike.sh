#!/usr/bin/env bash
# test_mobike.sh — MOBIKE (RFC 4555, issue 4) on the bed of mobike_lib.sh: client c with two uplinks
# (r1, r2) to gateway g, host h behind g. For each case the uplink carrying the tunnel goes away
# (link down, or its address removed; also with a NAT on the r2 path) under a paced TCP transfer
# c -> h and a 10 ms ping; checked: the transfer arrives intact, the ping resumes, the traffic moved
# to r2, the IKE SA is the same one and no IKE_SA_INIT/IKE_AUTH crossed g's interfaces (captured
# there, decoded by tshark), baton's counters of initiated/established IKE SAs did not move, and
# the Child SA's SPIs: the same after the move between batonds (and no CREATE_CHILD_SA); strongSwan's
# kernel-libipsec cannot change an SA's addresses, so charon rekeys after a move (new SPIs between
# charons; with charon at one end: the same SPIs, or new ones by CREATE_CHILD_SA).
#   test_mobike.sh [--parts ss-ss,baton-baton,baton-ss,ss-baton]   (CLIENT-GATEWAY; default all)
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
. "$(dirname "$0")/mobike_lib.sh"
PARTS=ss-ss,baton-baton,baton-ss,ss-baton
while [ $# -gt 0 ]; do
    case $1 in
        --parts) PARTS=${2:-}; shift ;;
        *) echo "usage: test_mobike.sh [--parts ss-ss,baton-baton,baton-ss,ss-baton]" >&2; exit 2 ;;
    esac
    shift
done
for p in ${PARTS//,/ }; do case $p in ss-ss|baton-baton|baton-ss|ss-baton) ;; *) echo "test_mobike: unknown part $p" >&2; exit 2 ;; esac; done
case $PARTS in *baton*) mb_init mobike ;; *) mb_init mobike nobins ;; esac

name() { case $1 in ss) echo strongSwan ;; *) echo baton ;; esac; }

# the IKE SA's SPIs at NODE, whichever daemon runs there
ike_spis() {
    if [ "${MB_KIND[$1]}" = baton ]; then ike_sa "$1" "s.get('spi_i', '') + s.get('spi_r', '')"
    else mb_ss "$1" --list-sas --raw 2>/dev/null | grep -o 'initiator-spi=[0-9a-f]* responder-spi=[0-9a-f]*' | head -n 1; fi
}
ike_counts() { st "$1" "s['ike']['initiated'], s['ike']['established']"; }

# case_run KIND_C KIND_G MODE NAT
case_run() {
    local kc=$1 kg=$2 mode=$3 nat=$4 rc n spis0 spis1 ike0 ike1 cnt0= cnt1= gcnt0= gcnt1= cap types xpid ppid
    echo "== $(name "$kc") client, $(name "$kg") gateway: primary uplink $([ "$mode" = link ] && echo "link down" || echo "address removed")$([ "$nat" = 1 ] && echo ", NAT on the r2 path")"
    MB_NAT=$nat mb_topology || die "mb_topology failed"
    mb_up "$kc" "$kg"
    rc=$?
    if [ $rc = 3 ]; then bad "batond accepts the configuration ($MB_REFUSED)"; mb_stop_all; return; fi
    if [ $rc != 0 ]; then bad "the tunnel comes up, h answers c's inner address"; mb_stop_all; return; fi
    ok "the tunnel comes up, h answers c's inner address"
    check "the traffic leaves c through r1" test "$(mb_path 0.3 & tb_nsx c ping -c 20 -i 0.01 -q -I $MB_INNER $MB_HOST >/dev/null; wait)" = r1
    spis0=$(mb_spis); ike0=$(ike_spis c)
    [ "$kc" = baton ] && cnt0=$(ike_counts c)
    [ "$kg" = baton ] && gcnt0=$(ike_counts g)
    cap="$TB_DIR/ike-$kc-$kg-$mode-$nat.pcap"
    mb_ike_capture "$cap" || { bad "IKE capture on g starts"; mb_stop_all; return; }
    # 2 MB at 1 MB/s: the move happens 0.7 s into the transfer; a 10 ms ping over 4 s
    head -c 2000000 /dev/urandom >"$TB_DIR/xfer.in"
    rm -f "$TB_DIR/xfer.out"
    tb_bg h timeout 20 python3 "$TOOLS/xfer.py" serve 5001 "$TB_DIR/xfer.out"; xpid=${TB_PIDS[-1]}
    tb_bg c timeout 20 python3 "$TOOLS/xfer.py" send $MB_HOST 5001 "$TB_DIR/xfer.in" 1000000; local spid=${TB_PIDS[-1]}
    tb_bg c timeout 20 ping -c 400 -i 0.01 -W 1 -I $MB_INNER $MB_HOST >"$TB_DIR/ping.out" 2>&1; ppid=${TB_PIDS[-1]}
    sleep 0.7
    mb_event_down 1 "$mode" "$TB_DIR/events" || bad "the uplink event ran"
    wait "$spid"; rc=$?
    wait "$xpid"; wait "$ppid"
    tb_kill "$spid"; tb_kill "$xpid"; tb_kill "$ppid"
    check "the TCP transfer c -> h completes intact across the move" test $rc = 0 -a "$(sha256sum <"$TB_DIR/xfer.in")" = "$(sha256sum <"$TB_DIR/xfer.out" 2>/dev/null)"
    local loss
    loss=$(grep -o '[0-9]* received' "$TB_DIR/ping.out" | cut -d' ' -f1)
    check "the 10 ms ping resumes (last of 400 answered; $((400 - ${loss:-0})) lost)" grep -q 'icmp_seq=400 ' "$TB_DIR/ping.out"
    check "the traffic now leaves c through r2" test "$(mb_path 0.3 & tb_nsx c ping -c 20 -i 0.01 -q -I $MB_INNER $MB_HOST >/dev/null; wait)" = r2
    sleep 0.5
    tb_capture_stop "$TB_CAP_PID"
    types=$(mb_ike_types "$cap" | sort | uniq -c | awk '{printf "%s%sx%s", sep, $1, $2; sep=" "}')
    echo "       IKE exchanges seen at g during the move (count x type; 34 SA_INIT, 35 AUTH, 36 CREATE_CHILD_SA, 37 INFORMATIONAL): ${types:-none}"
    check "no IKE_SA_INIT or IKE_AUTH crossed g during the move" test -z "$(mb_ike_types "$cap" | grep -xE '34|35')"
    check "INFORMATIONAL exchanges crossed g (MOBIKE: encrypted, so counted, not read)" test -n "$(mb_ike_types "$cap" | grep -x 37)"
    local peer=192.168.2.2
    [ "$nat" = 1 ] && peer=172.16.2.2
    check "c's IKE SA moved to its r2 address" test "$(mb_ike_addrs c)" = "192.168.2.2 $MB_GW"
    check "g's IKE SA follows it to $peer" test "$(mb_ike_addrs g)" = "$MB_GW $peer"
    [ "$kg" = baton ] && check "g's outbound ESP SA goes to $peer" test "$(sa g out "s.get('remote')")" = "$peer"
    ike1=$(ike_spis c)
    check "the same IKE SA at c before and after ($ike0)" test -n "$ike0" -a "$ike0" = "$ike1"
    if [ "$kc" = baton ]; then cnt1=$(ike_counts c); check "c's batond initiated and established no IKE SA during the move ($cnt0 -> $cnt1)" test "$cnt0" = "$cnt1"; fi
    if [ "$kg" = baton ]; then gcnt1=$(ike_counts g); check "g's batond established no IKE SA during the move ($gcnt0 -> $gcnt1)" test "$gcnt0" = "$gcnt1"; fi
    spis1=$(mb_spis)
    if [ "$kc" = baton ] && [ "$kg" = baton ]; then
        check "the Child SA keeps its SPIs ($spis0)" test -n "$spis0" -a "$spis0" = "$spis1"
        check "... and no CREATE_CHILD_SA was needed" test -z "$(mb_ike_types "$cap" | grep -x 36)"
    elif [ "$kc" = ss ] && [ "$kg" = ss ]; then
        check "charon rekeyed the Child SA after the move (kernel-libipsec): new SPIs ($spis0 -> $spis1)" test -n "$spis1" -a "$spis0" != "$spis1"
    else
        # charon at one end: it rekeys if its kernel-libipsec SA had to change addresses
        check "the Child SA kept its SPIs, or a CREATE_CHILD_SA replaced it ($spis0 -> $spis1)" \
            test -n "$spis1" -a \( "$spis0" = "$spis1" -o -n "$(mb_ike_types "$cap" | grep -x 36)" \)
    fi
    mb_stop_all
}

for p in ${PARTS//,/ }; do
    kc=${p%-*} kg=${p#*-}
    case_run "$kc" "$kg" link 0
    case_run "$kc" "$kg" addr 0
    case_run "$kc" "$kg" link 1
done
finish
