#!/usr/bin/env bash
# test_tunnel.sh — traffic through two baton gateways for every ESP proposal, checked end to end
# (ping, a TCP transfer compared byte for byte, SA counters on both gateways) and on the wire by a
# decoder we did not write: tshark decrypts and authenticates our ESP with the configured keys.
# Then the variants: raw ESP, IPv6 inside and outside, ESN.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
tb_init tun
tb_topology

PROPOSALS=(aes128gcm16 aes256gcm16 chacha20poly1305 aes128-sha1 aes128-sha256 aes256-sha384
           aes256-sha512 aes128ctr-sha256 null-sha256 3des-md5 3des-sha1)

ws_enc() {
  case $1 in
    aes*gcm16) echo "AES-GCM with 16 octet ICV [RFC4106]" ;; aes*ctr-*) echo "AES-CTR [RFC3686]" ;;
    aes*) echo "AES-CBC [RFC3602]" ;; 3des-*) echo "TripleDES-CBC [RFC2451]" ;; null-*) echo "NULL" ;;
    *) return 1 ;;
  esac
}
ws_auth() {
  case $1 in
    *gcm16) echo "NULL" ;; *-sha1) echo "HMAC-SHA-1-96 [RFC2404]" ;; *-sha256) echo "HMAC-SHA-256-128 [RFC4868]" ;;
    *-sha384) echo "HMAC-SHA-384-192 [RFC4868]" ;; *-sha512) echo "HMAC-SHA-512-256 [RFC4868]" ;;
    *-md5) echo "HMAC-MD5-96 [RFC2403]" ;; *) return 1 ;;
  esac
}

restart() {
  tb_stop g1; tb_stop g2
  tb_keys
  tb_conf g1 "$TB_DIR/g1.conf"; tb_conf g2 "$TB_DIR/g2.conf"
  tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf"
}

# Capture ESP on the outer link while pinging, and have tshark decrypt and authenticate it.
wire_truth() {
  local p=$1 enc auth
  if ! enc=$(ws_enc "$p") || ! auth=$(ws_auth "$p"); then
    echo "  note tshark 4.0 (Debian 12) has no ESP decoder for $p; its correctness rests on the RFC 7539 vectors in test_esp_engine"
    return 0
  fi
  local cap="$TB_DIR/$p.pcap"
  tb_bg g2 timeout 10 tcpdump -i out0 -U -w "$cap" -c 4 "udp port 4500" 2>/dev/null
  local dump=${TB_PIDS[-1]}
  sleep 0.5
  ping_ok h1 10.2.0.2 2
  wait "$dump" 2>/dev/null
  local o="$TB_DIR/$p.tshark"
  tshark -r "$cap" -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
    -o "uat:esp_sa:\"IPv4\",\"172.16.0.1\",\"172.16.0.2\",\"0xc0000002\",\"$enc\",\"0x$TB_EKEY_A\",\"$auth\",\"0x$TB_IKEY_A\"" \
    -o "uat:esp_sa:\"IPv4\",\"172.16.0.2\",\"172.16.0.1\",\"0xc0000001\",\"$enc\",\"0x$TB_EKEY_B\",\"$auth\",\"0x$TB_IKEY_B\"" \
    -V >"$o" 2>&1
  local good wrong inner
  good=$(grep -cE "ESP ICV: .*\[correct\]" "$o")
  wrong=$(grep -E "ESP ICV: " "$o" | grep -vc "\[correct\]")
  inner=$(grep -cE "Internet Protocol Version 4, Src: 10\.(1|2)\.0\.2, Dst: 10\.(2|1)\.0\.2" "$o")
  check "$p: tshark authenticates our ESP ($good ICVs correct, $wrong not) and decrypts ICMP 10.1.0.2<->10.2.0.2 ($inner)" \
    test "$good" -ge 4 -a "$wrong" = 0 -a "$inner" -ge 4
  grep -q "Internet Control Message Protocol" "$o" || bad "$p: no ICMP inside the decrypted ESP"
}

for p in "${PROPOSALS[@]}"; do
  echo "== $p"
  TB_PROPOSAL=$p
  restart || { bad "$p: gateways did not start"; continue; }
  check "$p: ping h1 -> h2" ping_ok h1 10.2.0.2
  check "$p: 1 MiB over TCP arrives intact" xfer h1 10.2.0.2 1048576
  in=$(sa g2 in "s.get('packets',0)"); out=$(sa g1 out "s.get('packets',0)")
  check "$p: counters: g1 sent $out, g2 received $in packets" test "$in" -ge 10 -a "$out" -ge 10
  check "$p: no drops on g2's inbound SA" test "$(sa g2 in "sum(s['drops'].values())")" = 0
  wire_truth "$p"
done

echo "== raw ESP (IP protocol 50, encap = no)"
TB_PROPOSAL=aes128gcm16 TB_ENCAP=no
restart
check "raw: ping" ping_ok h1 10.2.0.2
check "raw: TCP intact" xfer h1 10.2.0.2 524288
check "raw: SAs report raw encapsulation" test "$(sa g1 out "s['encap']")" = raw
tb_bg g2 timeout 5 tcpdump -i out0 -U -w "$TB_DIR/raw.pcap" -c 2 "ip proto 50" 2>/dev/null
dump=${TB_PIDS[-1]}; sleep 0.5; ping_ok h1 10.2.0.2 2; wait "$dump" 2>/dev/null
check "raw: ESP travels as IP protocol 50" test "$(tcpdump -r "$TB_DIR/raw.pcap" 2>/dev/null | grep -c ESP)" -ge 2
TB_ENCAP=yes

echo "== IPv6 inner over IPv4, IPv4 and IPv6 inner over IPv6 outer"
restart
check "v6 inner over v4 outer: ping6" ping_ok h1 fd02::2
check "v6 inner over v4 outer: TCP intact" xfer h1 fd02::2 524288
TB_FAMILY=6 restart
check "v6 outer: ping (v4 inner)" ping_ok h1 10.2.0.2
check "v6 outer: ping6 (v6 inner)" ping_ok h1 fd02::2
check "v6 outer: TCP intact" xfer h1 fd02::2 524288
check "v6 outer: SA remote is fd00::2" test "$(sa g1 out "s['remote']")" = fd00::2
TB_FAMILY=4

echo "== without offloads (TSO, UDP GSO/GRO off) and with one worker"
TB_BATON_EXTRA="    offload = no
    workers = 1" restart
check "no offload: stats say so" test "$(st g1 "(s['offload']['tso'], s['offload']['udp_gso'], s['lanes'])")" = "(False, False, 1)"
check "no offload: ping" ping_ok h1 10.2.0.2
check "no offload: 4 MiB over TCP intact" xfer h1 10.2.0.2 4194304
check "no offload: 4 MiB back over TCP intact" xfer h2 10.1.0.2 4194304 5004
TB_BATON_EXTRA=

echo "== the encapsulation port is shared: IKE (non-ESP marker) and NAT keepalives are told apart"
i0=$(st g2 "s['ike_rx']"); k0=$(st g2 "s['keepalive_rx']")
tb_nsx g1 python3 -c "
import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('172.16.0.1', 4600))
s.sendto(b'\\0\\0\\0\\0' + b'\\x01' * 40, ('172.16.0.2', 4500)); s.sendto(b'\\xff', ('172.16.0.2', 4500))"
sleep 0.3
check "IKE on 4500 counted ($i0 -> $(st g2 "s['ike_rx']"))" test "$(st g2 "s['ike_rx']")" = $((i0 + 1))
check "NAT keepalive counted ($k0 -> $(st g2 "s['keepalive_rx']"))" test "$(st g2 "s['keepalive_rx']")" = $((k0 + 1))
check "neither was taken for ESP (no_sa $(st g2 "s['drops']['no_sa']"), malformed $(st g2 "s['drops']['malformed']"))" \
  test "$(st g2 "s['drops']['no_sa'] + s['drops']['malformed']")" = 0

echo "== ESN"
TB_ESN=yes restart
check "esn: SAs report ESN" test "$(sa g1 out "s['esn']")" = True
check "esn: ping" ping_ok h1 10.2.0.2
check "esn: TCP intact" xfer h1 10.2.0.2 524288
finish
