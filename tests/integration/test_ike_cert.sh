#!/usr/bin/env bash
# test_ike_cert.sh — IKEv2 with certificates between real daemons on the bed h1 — g1 ==== g2 — h2:
#  baton <-> baton: RSA-4096 (a chain made here, large enough that IKE_AUTH goes out in RFC 7383
#  fragments at the default fragment_size of 1280) against Ed25519 (key from secrets { private-* }, an FQDN
#  id, remote id %any); ECDSA with an intermediate sent in CERT, the peer named by its DN; the
#  authenticated identities in list-sas; a reload keeps the SA and a new one comes up after it; a
#  certificate from a CA the responder does not trust is refused (AUTHENTICATION_FAILED, nothing
#  installed). baton <-> strongSwan 5.9.8 with certificates, each as initiator.
# Certificates come from tests/unit/data/certs (copied next to the configurations, which name them
# by relative paths) plus the RSA-4096 pair made at the start.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
. "$(dirname "$0")/../../bench/peers.sh"
tb_init ikecert
tb_topology || die "tb_topology failed"
SRC=${BATON_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PKI=$TB_DIR/pki
mkdir -p "$PKI" && cp "$SRC"/tests/unit/data/certs/*.pem "$SRC"/tests/unit/data/certs/*.key "$PKI"/ || die "no test PKI"

# RSA-4096 CA and end entity, valid for two days
big_pki() {
    cd "$PKI" || return 1
    openssl req -x509 -newkey rsa:4096 -nodes -keyout ca-big.key -subj "/C=XX/O=Baton Test/CN=ca-big" -days 2 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca-big.pem &&
    openssl req -new -newkey rsa:4096 -nodes -keyout big.key -subj "/C=XX/O=Baton Test/CN=big" -out big.csr &&
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nsubjectAltName=DNS:big.baton.test\n' >big.ext &&
    openssl x509 -req -in big.csr -CA ca-big.pem -CAkey ca-big.key -CAcreateserial -days 2 -sha256 \
        -extfile big.ext -out big.pem
}
(big_pki) >"$TB_DIR/pki.log" 2>&1 || { cat "$TB_DIR/pki.log"; die "openssl could not make the RSA-4096 pair"; }

# cert_conf GW FILE: like ike_conf, with certificates. CERT (file in pki/), KEY (file, or empty: a
# secrets { private-gw } section), LOCAL_ID (empty: the certificate's subject), REMOTE_ID, CACERTS.
cert_conf() {
    local gw=$1 file=$2 la=172.16.0.1 ra=172.16.0.2 lts=10.1.0.0/24 rts=10.2.0.0/24 t key= id= secrets=
    if [ "$gw" = g2 ]; then t=$la; la=$ra; ra=$t; t=$lts; lts=$rts; rts=$t; fi
    if [ -n "${KEY:-}" ]; then key="key = pki/$KEY"; else secrets="secrets {
    private-gw {
        file = pki/${CERT%.pem}.key
    }
}"; fi
    [ -n "${LOCAL_ID:-}" ] && id="id = $LOCAL_ID"
    cat >"$file" <<CONF
baton {
    tun = bt0
    log_level = debug
    retransmit_timeout = 0.5
    retransmit_tries = 3
    socket = $TB_DIR/$gw.sock
}
connections {
    gw {
        local_addrs = $la
        remote_addrs = $ra
        proposals = aes128gcm16-prfsha256-x25519, aes128-sha256-ecp256
        local {
            auth = pubkey
            certs = pki/$CERT
            $key
            $id
        }
        remote {
            auth = pubkey
            id = ${REMOTE_ID:-%any}
            cacerts = $CACERTS
        }
        children {
            net {
                local_ts = $lts
                remote_ts = $rts
                esp_proposals = aes128gcm16
            }
        }
    }
}
$secrets
CONF
}

g1_conf() { CERT=big.pem KEY=big.key CACERTS="pki/ca-ec.pem, pki/ca-rsa.pem" cert_conf g1 "$TB_DIR/g1.conf"; }
start_both() {
    tb_stop g1; tb_stop g2
    tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf"
}
test_zero() { test "$(sa_count "$1")" = 0; }
DN_BIG="C=XX, O=Baton Test, CN=big"

echo "== baton (RSA-4096, DN) -> baton (Ed25519, FQDN, key from secrets, remote id %any)"
REMOTE_ID=@ed.baton.test g1_conf
CERT=ed25519.pem LOCAL_ID=@ed.baton.test CACERTS=pki/ca-big.pem cert_conf g2 "$TB_DIR/g2.conf"
start_both || die "gateways did not start"
tb_capture g1 out0 "$TB_DIR/auth.pcap" "udp port 4500 or udp port 500 or (ip[6:2] & 0x3fff != 0)" || die "capture did not start"
check "initiate is accepted" tb_ctl g1 initiate gw
check "the IKE SA and its Child SA come up on the initiator" ike_up g1 5
check "... and on the responder" ike_up g2 5
check "the initiator shows the peer's FQDN and certificate" \
    test "$(ike_sa g1 "s['peer_id'] + '|' + s['peer_auth'] + '|' + s['peer_cert']")" = "ed.baton.test|pubkey|C=XX, O=Baton Test, CN=ed25519"
check "the responder (remote id %any) shows the initiator's subject DN" \
    test "$(ike_sa g2 "s['peer_id'] + '|' + s['peer_cert']")" = "$DN_BIG|$DN_BIG"
check "batonctl list-sas prints the peer" eval "tb_ctl g2 list-sas | grep -F '  peer: $DN_BIG (pubkey, certificate $DN_BIG)'"
check "ping h1 -> h2 through the negotiated SA" ping_ok h1 10.2.0.2
tb_capture_stop "$TB_CAP_PID"
ipfrags() { tshark -r "$TB_DIR/auth.pcap" -Y "ip.src == 172.16.0.1 && ip.flags.mf == 1" 2>/dev/null | wc -l; }
skf() { tshark -r "$TB_DIR/auth.pcap" -Y "ip.src == 172.16.0.1 && isakmp.nextpayload == 53" 2>/dev/null | wc -l; }
check "IKE_AUTH with the RSA-4096 certificate went out as RFC 7383 fragments ($(skf) SKF messages), not IP fragments" \
    test "$(skf)" -ge 2 -a "$(ipfrags)" = 0
check "... and the engine counted them ($(ike_sa g1 "s['fragments_sent']") sent, $(ike_sa g2 "s['fragments_received']") reassembled)" \
    test "$(ike_sa g1 "s['fragments_sent']")" -ge 2 -a "$(ike_sa g2 "s['fragments_received']")" -ge 2
echo "       (largest IKE message from g1: $(tshark -r "$TB_DIR/auth.pcap" -Y "ip.src == 172.16.0.1 && udp.port == 4500" \
    -T fields -e udp.length 2>/dev/null | sort -n | tail -1) bytes of UDP)"
check "reload of the same file keeps the IKE SA" tb_ctl g1 load
same_sa() { test "$(ike_sa g1 "s['state'] + ' ' + s['spi_i']")" = "$(ike_sa g2 "s['state'] + ' ' + s['spi_i']")" -a "$(ike_sa g1 "s['state']")" = established; }
check "... still established with the same SPIs" same_sa
check "... ping" ping_ok h1 10.2.0.2
check "terminate" tb_ctl g1 terminate gw
check "... on both ends" tb_wait 5 test_zero g2
check "after the reload a new IKE SA authenticates with the reloaded certificates" tb_ctl g1 initiate gw
check "... up" ike_up g2 5
check "... ping" ping_ok h1 10.2.0.2

echo "== baton -> baton (ECDSA P-256 with an intermediate CA, the peer named by its DN)"
REMOTE_ID="C=XX, O=Baton Test, CN=sub" g1_conf
CERT=sub-chain.pem KEY=sub.key CACERTS=pki/ca-big.pem cert_conf g2 "$TB_DIR/g2.conf"
start_both || die "gateways did not start"
check "initiate is accepted" tb_ctl g1 initiate gw
check "up on both ends" eval "ike_up g1 5 && ike_up g2 5"
check "the peer's DN (its certificate chains through the intermediate it sent)" \
    test "$(ike_sa g1 "s['peer_id'] + '|' + s['peer_cert']")" = "C=XX, O=Baton Test, CN=sub|C=XX, O=Baton Test, CN=sub"
check "ping" ping_ok h1 10.2.0.2

echo "== a certificate from a CA the responder does not trust"
CERT=foreign.pem KEY=foreign.key LOCAL_ID=@gw.baton.test CACERTS=pki/ca-ec.pem cert_conf g1 "$TB_DIR/g1.conf"
CERT=ed25519.pem CACERTS=pki/ca-big.pem cert_conf g2 "$TB_DIR/g2.conf"
start_both || die "gateways did not start"
tb_ctl g1 initiate gw >/dev/null
check "the responder refuses the AUTH" tb_wait 5 grep -q "AUTHENTICATION_FAILED" "$TB_DIR/g2.log"
check "the initiator reports the failure" tb_wait 5 grep -q "negotiation failed" "$TB_DIR/g1.log"
check "no SAs on either end" test "$(sa_count g1) $(sa_count g2)" = "0 0"

echo "== a bad certificate file: the reload is refused and the running daemon keeps its configuration"
cp "$TB_DIR/g2.conf" "$TB_DIR/g2.good"
sed -i 's|certs = pki/ed25519.pem|certs = pki/nothing.pem|' "$TB_DIR/g2.conf"
bad_reload() { ! tb_ctl g2 load >"$TB_DIR/reload.out" 2>&1 && grep -q "g2.conf:[0-9]*: .*nothing.pem" "$TB_DIR/reload.out"; }
check "batonctl load reports file:line" bad_reload
cp "$TB_DIR/g2.good" "$TB_DIR/g2.conf"
check "... and the daemon still answers" tb_ctl g2 list-sas

# charon_cert GW CERT KEY CA: strongSwan in GW with certificates (absolute paths; the key in
# swanctl's private/ folder next to its swanctl.conf), the peer any ID its certificate (from CA) holds.
charon_cert() {
    local gw=$1 d="$TB_DIR/ss-$1" la=172.16.0.1 ra=172.16.0.2 lts=10.1.0.0/24 rts=10.2.0.0/24
    [ "$gw" = g2 ] && la=172.16.0.2 ra=172.16.0.1 lts=10.2.0.0/24 rts=10.1.0.0/24
    ss_charon "$gw" "$d" || return 1
    cat >"$d/swanctl.conf" <<CONF
connections {
  gw {
    version = 2
    encap = yes
    local_addrs = $la
    remote_addrs = $ra
    proposals = aes128-sha256-ecp256
    local {
      auth = pubkey
      certs = $PKI/$2
    }
    remote {
      auth = pubkey
      id = %any
      cacerts = $PKI/$4
    }
    children {
      net {
        mode = tunnel
        local_ts = $lts
        remote_ts = $rts
        esp_proposals = aes128gcm16
      }
    }
  }
}
CONF
    # charon's secrets { private-* } only hold passphrases: keys come from swanctl's private/ folder
    mkdir -p "$d/private" && cp "$PKI/$3" "$d/private/" || return 1
    tb_nsx "$gw" swanctl --load-all --file "$d/swanctl.conf" --uri "unix://$d/charon.vici" >"$d/load.log" 2>&1 ||
        { echo "swanctl --load-all failed in $gw" >&2; tail -5 "$d/load.log" >&2; return 1; }
}
stop_peers() { for p in "${PEER_PIDS[@]:-}"; do [ -n "$p" ] && tb_kill "$p"; done; PEER_PIDS=(); }

echo "== baton (initiator, RSA-4096) -> strongSwan 5.9.8 (responder, ECDSA P-256)"
tb_stop g1; tb_stop g2
g1_conf
if charon_cert g2 p256.pem p256.key ca-big.pem && tb_start g1 "$TB_DIR/g1.conf"; then
    tb_ctl g1 initiate gw >/dev/null
    check "baton's IKE SA with charon comes up" ike_up g1 10
    check "charon is its certificate's subject" test "$(ike_sa g1 "s['peer_id'] + '|' + s['peer_cert']")" = "C=XX, O=Baton Test, CN=p256|C=XX, O=Baton Test, CN=p256"
    check "ping h1 -> h2 (baton ESP -> kernel-libipsec)" tb_wait 5 ping_ok h1 10.2.0.2 1
    ss_auth() {
        tb_nsx g2 swanctl --list-sas --uri "unix://$TB_DIR/ss-g2/charon.vici" 2>/dev/null >"$TB_DIR/ss-sas.txt"
        grep -q ESTABLISHED "$TB_DIR/ss-sas.txt" && grep -qF "remote '$DN_BIG'" "$TB_DIR/ss-sas.txt" || { cat "$TB_DIR/ss-sas.txt"; false; }
    }
    check "charon lists the IKE SA as established with baton's DN" ss_auth
else
    bad "strongSwan or baton did not start"
fi
stop_peers
tb_stop g1

echo "== strongSwan 5.9.8 (initiator, ECDSA P-256) -> baton (responder, Ed25519)"
CERT=ed25519.pem LOCAL_ID=@ed.baton.test CACERTS=pki/ca-ec.pem cert_conf g2 "$TB_DIR/g2.conf"
if tb_start g2 "$TB_DIR/g2.conf" && charon_cert g1 p256.pem p256.key ca-ec.pem; then
    check "swanctl --initiate succeeds against baton" tb_nsx g1 swanctl --initiate --child net --timeout 20 --uri "unix://$TB_DIR/ss-g1/charon.vici"
    check "baton lists the IKE SA as responder, with charon's DN" \
        test "$(ike_sa g2 "s['state'] + ' ' + s['role'] + '|' + s['peer_id']")" = "established responder|C=XX, O=Baton Test, CN=p256"
    check "ping h1 -> h2 (kernel-libipsec -> baton)" tb_wait 5 ping_ok h1 10.2.0.2 1
else
    bad "strongSwan or baton did not start"
fi
stop_peers
finish
