#!/usr/bin/env bash
# test_tunnel.sh — traffic through two baton gateways (h1 — g1 ==== g2 — h2) for every ESP proposal
# in tunnel mode, ESP in UDP over IPv4: a ping, a TCP transfer each way compared byte for byte, and
# the SA counters of both gateways, which must match each other. Then with AES-128-GCM the variants:
# raw ESP, IPv6 inside and outside, no offloads with one worker, the shared port 4500 (IKE and NAT
# keepalives told apart from ESP), ESN. Transport mode: test_transport.sh; the ESP on the wire judged
# by tshark: test_tshark.sh.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init tun
tb_topology || die "tb_topology failed"

PROPOSALS=(aes128gcm16 aes256gcm16 chacha20poly1305 aes128-sha1 aes128-sha256 aes256-sha384
           aes256-sha512 aes128ctr-sha256 null-sha256 3des-md5 3des-sha1)

restart() {
    tb_stop g1; tb_stop g2
    tb_keys || return 1
    tb_conf g1 "$TB_DIR/g1.conf" && tb_conf g2 "$TB_DIR/g2.conf" &&
    tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf"
}

# What one gateway sent on its outbound SA, the other must have received on its inbound one, and
# nothing may have been dropped there. Polled briefly: the last ACKs may still be on their way.
counters_match() {
    local tag=$1 a b c d
    for _ in $(seq 1 30); do
        a=$(sa g1 out "s['packets'], s['bytes']"); b=$(sa g2 in "s['packets'], s['bytes']")
        c=$(sa g2 out "s['packets'], s['bytes']"); d=$(sa g1 in "s['packets'], s['bytes']")
        [ "$a" = "$b" ] && [ "$c" = "$d" ] && break
        sleep 0.1
    done
    check "$tag: g1 -> g2: g1 sent (packets, bytes) $a, g2 received $b" test "$a" = "$b" -a "${a%% *}" -ge 10
    check "$tag: g2 -> g1: g2 sent $c, g1 received $d" test "$c" = "$d" -a "${c%% *}" -ge 10
    check "$tag: no drops on either inbound SA" test "$(sa g1 in "sum(s['drops'].values())") $(sa g2 in "sum(s['drops'].values())")" = "0 0"
}

for p in "${PROPOSALS[@]}"; do
    echo "== $p"
    TB_PROPOSAL=$p
    restart || { bad "$p: gateways did not start"; continue; }
    want=$p; case $p in *gcm16|chacha20poly1305) want=$p-none ;; esac
    got=$(sa g1 out "s['enc'] + '-' + s['integ']")
    check "$p: the SAs report the suite ($got)" test "$got" = "$want" -a "$(sa g2 in "s['enc'] + '-' + s['integ']")" = "$want"
    check "$p: ping h1 -> h2" ping_ok h1 10.2.0.2
    check "$p: 1 MiB h1 -> h2 over TCP arrives intact" xfer h1 10.2.0.2 1048576
    check "$p: 256 KiB h2 -> h1 over TCP arrives intact" xfer h2 10.1.0.2 262144 5002
    counters_match "$p"
done

echo "== raw ESP (IP protocol 50, encap = no)"
TB_PROPOSAL=aes128gcm16 TB_ENCAP=no
if restart; then
    check "raw: SAs report raw encapsulation" test "$(sa g1 out "s['encap']")" = raw
    check "raw: ping" ping_ok h1 10.2.0.2
    check "raw: 512 KiB over TCP intact" xfer h1 10.2.0.2 524288
    tb_capture g2 out0 "$TB_DIR/raw.pcap" "ip proto 50 or udp port 4500"
    ping_ok h1 10.2.0.2 2
    tb_capture_stop "$TB_CAP_PID"
    n50=$(tcpdump -r "$TB_DIR/raw.pcap" -n "ip proto 50" 2>/dev/null | wc -l)
    nudp=$(tcpdump -r "$TB_DIR/raw.pcap" -n "udp" 2>/dev/null | wc -l)
    check "raw: ESP travels as IP protocol 50 ($n50 packets), not in UDP ($nudp)" test "$n50" = 4 -a "$nudp" = 0
    counters_match raw
else
    bad "raw: gateways did not start"
fi
TB_ENCAP=yes

echo "== IPv6 inside over IPv4 outside; IPv4 and IPv6 inside over IPv6 outside"
if restart; then
    check "v6 in v4: ping6" ping_ok h1 fd02::2
    check "v6 in v4: 512 KiB over TCP intact" xfer h1 fd02::2 524288
else
    bad "v6 in v4: gateways did not start"
fi
TB_FAMILY=6
for enc in yes no; do
    TB_ENCAP=$enc
    restart || { bad "v6 outer encap=$enc: gateways did not start"; continue; }
    check "v6 outer encap=$enc: SA remote is fd00::2" test "$(sa g1 out "s['remote']")" = fd00::2
    check "v6 outer encap=$enc: ping (v4 inside)" ping_ok h1 10.2.0.2
    check "v6 outer encap=$enc: ping6 (v6 inside)" ping_ok h1 fd02::2
    check "v6 outer encap=$enc: 512 KiB over TCP intact (v6 inside)" xfer h1 fd02::2 524288
    check "v6 outer encap=$enc: 512 KiB over TCP intact (v4 inside)" xfer h2 10.1.0.2 524288
done
TB_FAMILY=4 TB_ENCAP=yes

echo "== without offloads (TSO, UDP GSO/GRO off) and with one worker"
TB_BATON_EXTRA="    offload = no
    workers = 1"
if restart; then
    check "no offload: stats say so" test "$(st g1 "(s['offload']['tso'], s['offload']['udp_gso'], s['offload']['udp_gro'], s['lanes'])")" = "(False, False, False, 1)"
    check "no offload: ping" ping_ok h1 10.2.0.2
    check "no offload: 4 MiB over TCP intact" xfer h1 10.2.0.2 4194304
    check "no offload: 4 MiB back over TCP intact" xfer h2 10.1.0.2 4194304 5004
else
    bad "no offload: gateways did not start"
fi
TB_BATON_EXTRA=

echo "== the encapsulation port is shared: IKE (non-ESP marker) and NAT keepalives are told apart"
restart || die "gateways did not start"
i0=$(st g2 "s['ike_rx']"); k0=$(st g2 "s['keepalive_rx']")
tb_nsx g1 python3 -c "
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('172.16.0.1', 4600))
s.sendto(b'\\0\\0\\0\\0' + b'\\x01' * 40, ('172.16.0.2', 4500)); s.sendto(b'\\xff', ('172.16.0.2', 4500))"
for _ in $(seq 1 40); do [ "$(st g2 "s['ike_rx'] + s['keepalive_rx']")" = $((i0 + k0 + 2)) ] && break; sleep 0.05; done
check "IKE on 4500 counted ($i0 -> $(st g2 "s['ike_rx']"))" test "$(st g2 "s['ike_rx']")" = $((i0 + 1))
check "NAT keepalive counted ($k0 -> $(st g2 "s['keepalive_rx']"))" test "$(st g2 "s['keepalive_rx']")" = $((k0 + 1))
check "neither was taken for ESP (no_sa $(st g2 "s['drops']['no_sa']"), malformed $(st g2 "s['drops']['malformed']"))" \
    test "$(st g2 "s['drops']['no_sa'] + s['drops']['malformed']")" = 0

echo "== ESN"
TB_ESN=yes
if restart; then
    check "esn: SAs report ESN" test "$(sa g1 out "s['esn']") $(sa g2 in "s['esn']")" = "True True"
    check "esn: ping" ping_ok h1 10.2.0.2
    check "esn: 512 KiB over TCP intact" xfer h1 10.2.0.2 524288
    counters_match esn
else
    bad "esn: gateways did not start"
fi
TB_ESN=no
finish
