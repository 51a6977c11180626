#!/usr/bin/env bash
# test_transport.sh — transport mode between the two gateways themselves (host-to-host): their own
# ICMP and TCP go through the TUN in ESP, while the ESP packets, which have the same addresses, do
# not (policy routing by IP protocol keeps them out of the tunnel).
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init trn
tb_topology
TB_PROPOSAL=aes128-sha256 TB_MODE=transport; tb_keys
tb_conf g1 "$TB_DIR/g1.conf"; tb_conf g2 "$TB_DIR/g2.conf"
TB_ROUTES_g1=" " TB_ROUTES_g2=" " tb_start g1 "$TB_DIR/g1.conf" && TB_ROUTES_g1=" " TB_ROUTES_g2=" " tb_start g2 "$TB_DIR/g2.conf" || exit 1
for gw in g1 g2; do
  me=172.16.0.1 peer=172.16.0.2; [ $gw = g2 ] && me=172.16.0.2 peer=172.16.0.1
  tb_nsx $gw ip route add "$peer/32" dev bt0 src "$me" table 100
  for proto in icmp tcp; do tb_nsx $gw ip rule add to "$peer" ipproto $proto table 100 priority 100; done
  tb_nsx $gw sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.bt0.rp_filter=0 net.ipv4.conf.bt0.accept_local=1
done
check "transport: SAs in transport mode" test "$(sa g1 out "s['mode']")" = transport
check "transport: ping g1 -> g2 (outer addresses)" ping_ok g1 172.16.0.2
check "transport: TCP g1 -> g2 intact" xfer g1 172.16.0.2 1048576
check "transport: counted on g2's inbound SA ($(sa g2 in "s['packets']") packets)" test "$(sa g2 in "s['packets']")" -ge 10
tb_bg g2 timeout 5 tcpdump -i out0 -U -n -w "$TB_DIR/t.pcap" -c 4 "host 172.16.0.1" 2>/dev/null
dump=${TB_PIDS[-1]}; sleep 0.5; ping_ok g1 172.16.0.2 2; wait "$dump" 2>/dev/null
check "transport: on the wire only ESP-in-UDP between the hosts, no ICMP in clear" \
  test "$(tcpdump -r "$TB_DIR/t.pcap" -n icmp 2>/dev/null | wc -l)" = 0 -a "$(tcpdump -r "$TB_DIR/t.pcap" -n 'udp port 4500' 2>/dev/null | wc -l)" -ge 4
finish
