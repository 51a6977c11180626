#!/usr/bin/env bash
# test_drops.sh — real ESP packets, captured on the wire and sent again from g1 (tools/inject.py),
# are judged by g2's inbound SA: a packet with one ciphertext byte flipped is dropped as `auth` and
# does not move the replay window; a fresh packet re-sent verbatim is accepted (the injection path
# works), and again is dropped as `replay`; an older packet the forgery had the sequence number of is
# still accepted (the window moves only after authentication); an unknown SPI is dropped as `no_sa`,
# a truncated packet as `malformed`; afterwards the tunnel still works. The fresh packets come from
# a ping captured at g1 while g2's firewall kept them from batond. ESP in UDP with HMAC-SHA-256, raw
# ESP with AES-GCM, and ESP in UDP over IPv6 with ChaCha20-Poly1305.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init drop
tb_topology || die "tb_topology failed"

restart() {
    tb_stop g1; tb_stop g2
    tb_keys || return 1
    tb_conf g1 "$TB_DIR/g1.conf" && tb_conf g2 "$TB_DIR/g2.conf" &&
    tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf"
}

# inj INDEX HOW: send captured packet INDEX, altered by HOW, from g1 to g2.
inj() { tb_nsx g1 python3 "$TOOLS/inject.py" send "$TB_DIR/cap.pcap" "$O1" "$O2" "$1" "$2" >/dev/null; }
# settle EXPR VALUE: wait (2 s at most) until g2's inbound-SA expression has VALUE.
settle() { local i; for ((i = 0; i < 40; i++)); do [ "$(sa g2 in "$1")" = "$2" ] && return 0; sleep 0.05; done; return 1; }
# stsettle EXPR VALUE: the same for g2's stats.
stsettle() { local i; for ((i = 0; i < 40; i++)); do [ "$(st g2 "$1")" = "$2" ] && return 0; sleep 0.05; done; return 1; }
insa() { sa g2 in "s['packets'], s['replay']['top'], s['drops']['auth'], s['drops']['replay']"; }

for v in "4 yes aes128-sha256" "4 no aes128gcm16" "6 yes chacha20poly1305"; do
    read -r TB_FAMILY TB_ENCAP TB_PROPOSAL <<<"$v"
    O1=172.16.0.1 O2=172.16.0.2 NFFAM=ip
    [ "$TB_FAMILY" = 6 ] && O1=fd00::1 O2=fd00::2 NFFAM=ip6
    tag="IPv$TB_FAMILY encap=$TB_ENCAP $TB_PROPOSAL"
    echo "== $tag"
    restart || { bad "$tag: gateways did not start"; continue; }
    tb_reach h1 10.2.0.2 || { bad "$tag: no traffic through the tunnel"; continue; }

    # three fresh ESP packets g1 -> g2 that g2's batond never sees
    tb_nsx g2 nft -f - <<EOF || die "nft failed"
table inet bt_hold {
    chain in { type filter hook input priority -10; $NFFAM saddr $O1 meta l4proto { udp, esp } drop; }
}
EOF
    tb_capture g1 out0 "$TB_DIR/cap.pcap" "src host $O1 and (udp port 4500 or ip proto 50 or ip6 proto 50)" || die "capture did not start"
    tb_nsx h1 ping -c 3 -i 0.1 -W 1 -q 10.2.0.2 >/dev/null 2>&1
    tb_capture_stop "$TB_CAP_PID"
    tb_nsx g2 nft delete table inet bt_hold
    mapfile -t caps < <(python3 "$TOOLS/inject.py" list "$TB_DIR/cap.pcap" "$O1")
    check "$tag: captured 3 held-back ESP packets on SPI 0xc0000002 (${caps[*]})" \
        test "${#caps[@]}" = 3 -a "$(printf '%s\n' "${caps[@]}" | grep -c ' 0xc0000002 ')" = 3
    [ "${#caps[@]}" = 3 ] || continue
    s0=$(cut -d' ' -f3 <<<"${caps[0]}") s1=$(cut -d' ' -f3 <<<"${caps[1]}") s2=$(cut -d' ' -f3 <<<"${caps[2]}")
    read -r p top a r <<<"$(insa)"
    check "$tag: g2 has not seen them (replay top $top < $s0)" test "$top" -lt "$s0"

    inj 0 flip; settle "s['drops']['auth']" $((a + 1))
    check "$tag: one ciphertext byte flipped (seq $s0): dropped as auth; packets and window unchanged ($(insa))" \
        test "$(insa)" = "$p $top $((a + 1)) $r"
    inj 1 verbatim; settle "s['packets']" $((p + 1))
    check "$tag: a fresh packet re-sent verbatim (seq $s1) is accepted ($(insa))" \
        test "$(insa)" = "$((p + 1)) $s1 $((a + 1)) $r"
    inj 1 verbatim; settle "s['drops']['replay']" $((r + 1))
    check "$tag: the same packet again: dropped as replay ($(insa))" \
        test "$(insa)" = "$((p + 1)) $s1 $((a + 1)) $((r + 1))"
    inj 0 verbatim; settle "s['packets']" $((p + 2))
    check "$tag: the genuine packet of seq $s0, older than the top, still accepted: the forgery did not mark the window ($(insa))" \
        test "$(insa)" = "$((p + 2)) $s1 $((a + 1)) $((r + 1))"
    n0=$(st g2 "s['drops']['no_sa']")
    inj 2 spi; stsettle "s['drops']['no_sa']" $((n0 + 1))
    check "$tag: unknown SPI: dropped as no_sa ($n0 -> $(st g2 "s['drops']['no_sa']")), the SA untouched" \
        test "$(st g2 "s['drops']['no_sa']") $(insa)" = "$((n0 + 1)) $((p + 2)) $s1 $((a + 1)) $((r + 1))"
    m0=$(st g2 "s['drops']['malformed']")
    inj 2 short; stsettle "s['drops']['malformed']" $((m0 + 1))
    check "$tag: a packet cut to 12 bytes: dropped as malformed ($m0 -> $(st g2 "s['drops']['malformed']"))" \
        test "$(st g2 "s['drops']['malformed']")" = $((m0 + 1))
    inj 2 verbatim; settle "s['packets']" $((p + 3))
    check "$tag: after all that, the genuine packet of seq $s2 is accepted ($(insa))" \
        test "$(insa)" = "$((p + 3)) $s2 $((a + 1)) $((r + 1))"
    check "$tag: the tunnel still works" ping_ok h1 10.2.0.2
    d=$(sa g2 in "sorted((k, v) for k, v in s['drops'].items() if v)")
    check "$tag: g2's inbound SA dropped exactly those: $d" test "$d" = "[('auth', 1), ('malformed', 1), ('replay', 1)]"
done
TB_FAMILY=4 TB_ENCAP=yes
finish
