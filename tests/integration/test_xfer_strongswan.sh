#!/usr/bin/env bash
# test_xfer_strongswan.sh — a standard RFC 4555 client whose gateway moves: strongSwan 5.9.8's charon
# (kernel-libipsec, encap = yes, MOBIKE) in c, its session on baton gateway g1, migrated to g2 with
# `batonctl migrate` under a 10 ms ping (xfer_lib.sh's bed).
#  Mono-LAN: charon sees nothing — the shared address moves by gratuitous ARP — and keeps its SPIs.
#  Multi-LAN: g2 sends charon, inside the IKE SA, UPDATE_SA_ADDRESSES from its own address; charon
#  follows (its IKE SA ends at g2), and since kernel-libipsec cannot change an installed SA's
#  addresses it rekeys its Child SA, with g2. No IKE_SA_INIT or IKE_AUTH after the setup either way.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
. "$(dirname "$0")/xfer_lib.sh"
xf_init ss

# ss_up: baton gateways g1 and g2, charon in c initiating to $XF_GW
ss_up() {
    xf_start g1 && xf_start g2 || return 1
    MB_GW=$XF_GW MB_SS_EXTRA_C= mb_ss_start c || return 1
    mb_ss c --initiate --child net --timeout 20 >"$TB_DIR/ss-c/initiate.log" 2>&1 || return 1
    tb_wait 15 tb_nsx c ping -c 1 -W 1 -I $XF_INNER $XF_HOST
}

ss_down() {
    local n
    for n in g1 g2; do tb_stop "$n"; done
    [ -n "${MB_SS_PID[c]:-}" ] && { tb_kill "${MB_SS_PID[c]}"; unset "MB_SS_PID[c]"; }
    return 0
}

# ss_ike_spi: charon's IKE SA, as its initiator SPI
ss_ike_spi() { mb_ss c --list-sas --raw 2>/dev/null | grep -o 'initiator-spi=[0-9a-f]*' | head -n 1; }

# ike_inits NODE: IKE_SA_INIT + IKE_AUTH messages batond at NODE sent
ike_inits() { st "$1" "s['ike']['tx_ike_sa_init'] + s['ike']['tx_ike_auth']"; }

for lan in mono multi; do
    echo "=== $lan-LAN: charon in c, batond in g1 and g2"
    xf_topology "$lan" || die "the $lan bed could not be built"
    ss_up || { ss_down; die "charon's tunnel to g1 did not come up"; }
    ok "charon's tunnel to g1 is up, h answers c"
    spis0=$(mb_ss_spis c) addrs0=$(mb_ss_addrs c) ike0=$(ss_ike_spi)
    init0=$(( $(ike_inits g1) + $(ike_inits g2) ))
    xf_ping_bg "$TB_DIR/$lan.ping" 300
    sleep 1
    out=$(xf_migrate g2)
    echo "       $out"
    check "migrate gw --to g2 succeeds" python3 -c "import json,sys; sys.exit(0 if json.loads(sys.argv[1])['ok'] else 1)" "$out"
    wait "$XF_PING_PID"
    read -r sent got < <(xf_ping_loss "$TB_DIR/$lan.ping")
    echo "       10 ms ping: $sent sent, $got received"
    check "g2 holds the session, g1 none" test "$(xf_owner)" = g2
    check "the ping goes on after the move (at most 3 of $sent lost)" test "$((sent - got))" -le 3
    check "h still answers c" tb_nsx c ping -c 3 -i 0.2 -W 1 -I $XF_INNER $XF_HOST
    check "no IKE_SA_INIT or IKE_AUTH from the gateways after the setup" \
        test "$(( $(ike_inits g1) + $(ike_inits g2) ))" = "$init0"
    check "charon's IKE SA is the same one ($ike0)" test -n "$ike0" -a "$(ss_ike_spi)" = "$ike0"
    if [ "$lan" = mono ]; then
        check "charon saw nothing: same addresses ($addrs0)" test "$(mb_ss_addrs c)" = "$addrs0"
        check "... and the same Child SA SPIs ($spis0)" test "$(mb_ss_spis c)" = "$spis0"
    else
        check "charon followed the gateway: its IKE SA ends at g2 ($(mb_ss_addrs c))" \
            test "$(mb_ss_addrs c | cut -d' ' -f2)" = "$XF_G2"
        check "g2 counted the gateway move" test "$(st g2 "s['ike']['mobike_gateway_moves']")" -ge 1
        tb_wait 5 test "$(mb_ss_spis c)" != "$spis0"
        check "charon rekeyed its Child SA with g2 (kernel-libipsec: $spis0 -> $(mb_ss_spis c))" \
            test "$(mb_ss_spis c)" != "$spis0"
    fi
    ss_down
done
finish
