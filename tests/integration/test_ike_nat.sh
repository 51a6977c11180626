#!/usr/bin/env bash
# test_ike_nat.sh — IKEv2 through a real NAT: g1 in 192.168.77.0/24 behind an nftables masquerade
# that maps UDP to ports 40000-40999 (tb_topology_nat), g1 initiates to g2.
#  baton <-> baton (encap = no, so UDP encapsulation comes only from NAT detection): both ends detect
#  the NAT on the right side, IKE and ESP float to 4500, g2 talks to the NAT's mapped port (as seen on
#  its wire), no raw ESP crosses the NAT, ping and TCP both ways, NAT keepalives (keepalive = 1s)
#  reach g2.
#  baton (initiator, behind the NAT) -> strongSwan 5.9.8 (responder): the same, seen from charon.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
. "$(dirname "$0")/../../bench/peers.sh"
command -v nft >/dev/null || die "nft not installed"
tb_init ikenat
tb_topology_nat || die "tb_topology_nat failed"
check "the NAT is in place: g1 reaches g2, g2 cannot reach g1's private address" \
    bash -c "ip netns exec $(tb_ns g1) ping -c 1 -W 1 -q 172.16.0.2 && ! ip netns exec $(tb_ns g2) ping -c 1 -W 1 -q 192.168.77.2"

in_range() { [ "$1" -ge 40000 ] 2>/dev/null && [ "$1" -le 40999 ]; }
# fields FILTER FIELD...: tshark over the capture on g2's side
fields() { local f=$1; shift; tshark -r "$TB_DIR/g2side.pcap" -Y "$f" -T fields $(printf -- '-e %s ' "$@") 2>/dev/null; }

echo "== baton (behind the NAT) -> baton"
export IKE_ENCAP=no IKE_BATON_EXTRA="    keepalive = 1s"
IKE_LOCAL_ADDRS=192.168.77.2 ike_conf g1 "$TB_DIR/g1.conf" && ike_conf g2 "$TB_DIR/g2.conf" &&
    tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf" || die "gateways did not start"
TB_CAP_SECS=60 tb_capture g2 out0 "$TB_DIR/g2side.pcap" udp or ip proto 50 || die "no capture"
cap=$TB_CAP_PID
tb_ctl g1 initiate gw >/dev/null
check "the IKE SA and its Child SA come up on g1" ike_up g1 5
check "... and on g2" ike_up g2 5
check "g1 finds itself behind a NAT, its peer not (nat_local, nat_remote)" test "$(ike_sa g1 "s['nat_local'], s['nat_remote']")" = "True False"
check "g2 finds its peer behind a NAT, itself not" test "$(ike_sa g2 "s['nat_local'], s['nat_remote']")" = "False True"
check "g1 floated IKE and ESP to g2's port 4500" test "$(ike_sa g1 "s['remote'], s['remote_port'], s['udp_encap']")" = "172.16.0.2 4500 True"
g2port=$(ike_sa g2 "s['remote_port']")
check "g2 talks to the NAT's public address at a mapped port ($g2port), UDP-encapsulated" \
    test "$(ike_sa g2 "s['remote'], s['udp_encap']")" = "172.16.0.1 True" -a -n "$g2port" -a "$g2port" != 4500 -a "$g2port" != 500
check "... a port from the NAT's range" in_range "$g2port"
check "g1's inbound SPI is g2's outbound SPI" test "$(ike_sa g1 "s['child_sa']['spi_in']")" = "$(ike_sa g2 "s['child_sa']['spi_out']")"
check "ping h1 -> h2 through the tunnel" ping_ok h1 10.2.0.2
check "ping h2 -> h1 (inbound through the NAT mapping)" ping_ok h2 10.1.0.2
check "1 MiB h1 -> h2 over TCP arrives intact" xfer h1 10.2.0.2 1048576
check "256 KiB h2 -> h1 over TCP arrives intact" xfer h2 10.1.0.2 262144 5002
ka0=$(st g2 "s['keepalive_rx']")
ka_grew() { test "$(st g2 "s['keepalive_rx']")" -ge $((ka0 + 2)); }
check "NAT keepalives from g1 arrive at g2 (keepalive_rx was $ka0, grows by 2 within 4 s)" tb_wait 4 ka_grew
tb_capture_stop "$cap"
# what crossed g2's wire: IKE_SA_INIT from a mapped port to 500, the rest from the other mapped port
# to 4500, ESP-in-UDP both ways, keepalives (tshark: one byte 0xff to 4500)
init_sport=$(fields "isakmp.exchangetype == 34 && ip.src == 172.16.0.1" udp.srcport udp.dstport | sort -u)
check "IKE_SA_INIT reached g2 on port 500 from a mapped port ($init_sport)" \
    bash -c "[ \"\$(echo '$init_sport' | wc -l)\" = 1 ] && [ \"\$(echo '$init_sport' | cut -f2)\" = 500 ] && p=\$(echo '$init_sport' | cut -f1) && [ \$p -ge 40000 ] && [ \$p -le 40999 ]"
float=$(fields "ip.src == 172.16.0.1 && udp.dstport == 4500" udp.srcport | sort -u | tr '\n' ' ')
check "everything g1 sent to 4500 came from one mapped port, the one g2 lists ($float)" test "$float" = "$g2port "
check "IKE_AUTH went over 4500" test -n "$(fields "isakmp.exchangetype == 35 && udp.dstport == 4500" frame.number)"
check "ESP in UDP both ways (g2 -> 172.16.0.1:$g2port too)" \
    test -n "$(fields "esp && ip.src == 172.16.0.1 && udp.dstport == 4500" frame.number)" -a \
    -n "$(fields "esp && ip.src == 172.16.0.2 && udp.dstport == $g2port && udp.srcport == 4500" frame.number)"
check "no raw ESP crossed" test -z "$(fields "ip.proto == 50" frame.number)"
nka=$(fields "ip.src == 172.16.0.1 && udp.dstport == 4500 && udpencap.nat_keepalive" frame.number | wc -l)
check "keepalives on the wire: 1-byte 0xff datagrams to 4500 ($nka)" test "$nka" -ge 2
check "terminate" tb_ctl g1 terminate gw
tb_stop g1; tb_stop g2
unset IKE_ENCAP

echo "== baton (behind the NAT) -> strongSwan 5.9.8"
IKE_PROPOSALS=aes128-sha256-ecp256 PSK=baton-bench-only-psk IKE_LOCAL_ADDRS=192.168.77.2 ike_conf g1 "$TB_DIR/g1.conf"
if ss_start g2 aes128gcm16 && tb_start g1 "$TB_DIR/g1.conf"; then
    TB_CAP_SECS=60 tb_capture g2 out0 "$TB_DIR/g2side.pcap" udp or ip proto 50 || die "no capture"
    cap=$TB_CAP_PID
    tb_ctl g1 initiate gw >/dev/null
    check "baton's IKE SA with charon comes up" ike_up g1 10
    check "baton finds itself behind the NAT, floated to 4500" test "$(ike_sa g1 "s['nat_local'], s['remote_port'], s['udp_encap']")" = "True 4500 True"
    check "ping h1 -> h2 (baton ESP -> kernel-libipsec)" tb_wait 5 ping_ok h1 10.2.0.2 1
    check "ping h2 -> h1" ping_ok h2 10.1.0.2
    check "512 KiB h1 -> h2 over TCP intact" xfer h1 10.2.0.2 524288
    check "256 KiB h2 -> h1 over TCP intact" xfer h2 10.1.0.2 262144 5002
    tb_nsx g2 swanctl --list-sas --uri "unix://$TB_DIR/ss-g2/charon.vici" >"$TB_DIR/ss-sas.txt" 2>&1
    ssport=$(sed -n 's/.*remote .* @ 172\.16\.0\.1\[\([0-9]*\)\].*/\1/p' "$TB_DIR/ss-sas.txt" | head -n 1)
    check "charon lists the IKE SA established with 172.16.0.1 at a mapped port ($ssport)" \
        bash -c "grep -q ESTABLISHED '$TB_DIR/ss-sas.txt' && [ '${ssport:-0}' -ge 40000 ] && [ '${ssport:-0}' -le 40999 ]"
    check "charon's Child SA is UDP-encapsulated" grep -q "INSTALLED, TUNNEL-in-UDP" "$TB_DIR/ss-sas.txt"
    sleep 2.5
    tb_capture_stop "$cap"
    nka=$(fields "ip.src == 172.16.0.1 && udp.dstport == 4500 && udpencap.nat_keepalive" frame.number | wc -l)
    check "baton's keepalives reach charon's side ($nka)" test "$nka" -ge 2
    float=$(fields "ip.src == 172.16.0.1 && udp.dstport == 4500" udp.srcport | sort -u | tr '\n' ' ')
    check "everything baton sent to 4500 came from the port charon lists ($float)" test "$float" = "$ssport "
else
    bad "strongSwan or baton did not start"
fi
finish
