#!/usr/bin/env bash
# test_tshark.sh — wire truth: ESP captured between the gateways is decrypted and authenticated by
# decoders we did not write into batond. tshark (Wireshark 4.0, esp_sa UAT with the configured keys)
# judges every suite it knows, in ESP-in-UDP and raw ESP, IPv4 and IPv6 outside, tunnel and transport
# mode: every ESP packet's ICV checks good and the inner ICMP echo between the right addresses comes
# out. tools/esp_verify.py, a separate decoder on python3-cryptography, must agree with tshark on all
# of those, and then judges what tshark 4.0 cannot: ChaCha20-Poly1305 and ESN. Negative controls show
# the judges can say no: a wrong key gives a bad ICV in tshark, an ESN SA checked without ESN fails.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
command -v tshark >/dev/null || die "tshark not installed (scripts/deps)"
# the decoder needs python3-cryptography (Debian's python3 has it through scripts/deps)
PY=python3
$PY -c "import cryptography" 2>/dev/null || PY=/usr/bin/python3
$PY -c "import cryptography" 2>/dev/null || die "python3-cryptography not installed (scripts/deps)"
tb_init tsk
tb_topology || die "tb_topology failed"

PROPOSALS=(aes128gcm16 aes256gcm16 chacha20poly1305 aes128-sha1 aes128-sha256 aes256-sha384
           aes256-sha512 aes128ctr-sha256 null-sha256 3des-md5 3des-sha1)

# Wireshark 4.0's names in the esp_sa UAT (epan/dissectors/packet-ipsec.c); none for ChaCha20.
ws_enc() {
    case $1 in
        aes*gcm16*) echo "AES-GCM with 16 octet ICV [RFC4106]" ;; aes*ctr-*) echo "AES-CTR [RFC3686]" ;;
        aes*) echo "AES-CBC [RFC3602]" ;; 3des-*) echo "TripleDES-CBC [RFC2451]" ;; null-*) echo "NULL" ;;
        *) return 1 ;;
    esac
}
ws_auth() {
    case ${1%-esn} in
        *gcm16) echo "NULL" ;; *-sha1) echo "HMAC-SHA-1-96 [RFC2404]" ;; *-sha256) echo "HMAC-SHA-256-128 [RFC4868]" ;;
        *-sha384) echo "HMAC-SHA-384-192 [RFC4868]" ;; *-sha512) echo "HMAC-SHA-512-256 [RFC4868]" ;;
        *-md5) echo "HMAC-MD5-96 [RFC2403]" ;; *) return 1 ;;
    esac
}

# Addresses as the bed's variables make them: outer (O1, O2) and inner (I1, I2).
addrs() {
    if [ "${TB_FAMILY:-4}" = 6 ]; then O1=fd00::1 O2=fd00::2 UATFAM=IPv6; else O1=172.16.0.1 O2=172.16.0.2 UATFAM=IPv4; fi
    if [ "${TB_MODE:-tunnel}" = transport ]; then I1=$O1 I2=$O2; elif [ "${INNER:-4}" = 6 ]; then I1=fd01::2 I2=fd02::2; else I1=10.1.0.2 I2=10.2.0.2; fi
}

restart() {
    tb_stop g1; tb_stop g2
    tb_keys || return 1
    tb_conf g1 "$TB_DIR/g1.conf" && tb_conf g2 "$TB_DIR/g2.conf" &&
    tb_start g1 "$TB_DIR/g1.conf" && tb_start g2 "$TB_DIR/g2.conf"
}

# capture NAME: ping I1 -> I2 three times (after one to warm up) while capturing the ESP on g1's
# outer link, into $TB_DIR/NAME.pcap.
capture() {
    local from=h1 filter="udp port 4500"
    [ "${TB_ENCAP:-yes}" = no ] && filter="ip proto 50 or ip6 proto 50"
    [ "${TB_MODE:-tunnel}" = transport ] && from=g1
    tb_reach "$from" "$I2" 10 || { bad "$1: $I1 cannot reach $I2 through the tunnel"; return 1; }
    tb_capture g1 out0 "$TB_DIR/$1.pcap" "$filter" || return 1
    tb_nsx "$from" ping -c 3 -i 0.1 -W 2 -q "$I2" >/dev/null 2>&1
    tb_capture_stop "$TB_CAP_PID"
}

# tshark_judge NAME [wrong]: decode NAME.pcap with both SAs; prints "esp good bad req rep": ESP
# packets, ICVs good and bad, decrypted echo requests I1 -> I2 and replies I2 -> I1. wrong: a wrong
# integrity key (AEAD: encryption key) for g1 -> g2.
tshark_judge() {
    local p=$TB_PROPOSAL enc auth ka=$TB_EKEY_A ia=$TB_IKEY_A
    enc=$(ws_enc "$p") && auth=$(ws_auth "$p") || return 1
    if [ "${2:-}" = wrong ]; then
        if [ -n "$ia" ]; then ia=$(tb_key $(( ${#ia} / 2 ))); else ka=$(tb_key $(( ${#ka} / 2 ))); fi
    fi
    tshark -r "$TB_DIR/$1.pcap" -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
        -o "uat:esp_sa:\"$UATFAM\",\"$O1\",\"$O2\",\"0xc0000002\",\"$enc\",\"0x$ka\",\"$auth\",\"0x$ia\"" \
        -o "uat:esp_sa:\"$UATFAM\",\"$O2\",\"$O1\",\"0xc0000001\",\"$enc\",\"0x$TB_EKEY_B\",\"$auth\",\"0x$TB_IKEY_B\"" \
        -T fields -E separator=/t -E occurrence=a -e esp.spi -e esp.icv_good -e esp.icv_bad \
        -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e icmp.type -e icmpv6.type 2>/dev/null >"$TB_DIR/$1.tshark"
    python3 - "$TB_DIR/$1.tshark" "$I1" "$I2" <<'EOF'
import ipaddress, sys
path, i1, i2 = sys.argv[1], ipaddress.ip_address(sys.argv[2]), ipaddress.ip_address(sys.argv[3])
esp = good = bad = req = rep = 0
for line in open(path):
    f = line.rstrip("\n").split("\t")
    if len(f) < 9 or not f[0]:
        continue
    esp += 1
    good += f[1] == "1"
    bad += f[2] == "1"
    # every IP header of the frame, outer and (once decrypted) inner, either family
    srcs = {ipaddress.ip_address(a) for a in (f[3] + "," + f[5]).split(",") if a}
    dsts = {ipaddress.ip_address(a) for a in (f[4] + "," + f[6]).split(",") if a}
    t = (f[7] or f[8]).split(",")[-1]  # an ICMP type shows only after decryption
    req += i1 in srcs and i2 in dsts and t in ("8", "128")
    rep += i2 in srcs and i1 in dsts and t in ("0", "129")
print(esp, good, bad, req, rep)
EOF
}

# pyjudge NAME [--esn]: tools/esp_verify.py on both SPIs; prints "requests replies" verified and
# decrypted, each followed by (fail) if the tool failed on that SPI.
pyjudge() {
    local name=$1 p=${TB_PROPOSAL%-esn} a b n1 n2; shift
    $PY "$TOOLS/esp_verify.py" "$TB_DIR/$name.pcap" 0xc0000002 "$p" "${TB_EKEY_A:--}" "${TB_IKEY_A:--}" "$@" >"$TB_DIR/$name.py.out" 2>&1
    a=$?
    $PY "$TOOLS/esp_verify.py" "$TB_DIR/$name.pcap" 0xc0000001 "$p" "${TB_EKEY_B:--}" "${TB_IKEY_B:--}" "$@" >>"$TB_DIR/$name.py.out" 2>&1
    b=$?
    n1=$(grep -c "ICV ok.* inner $I1 > $I2 proto \(1 icmp-type 8\|58 icmp-type 128\)$" "$TB_DIR/$name.py.out")
    n2=$(grep -c "ICV ok.* inner $I2 > $I1 proto \(1 icmp-type 0\|58 icmp-type 129\)$" "$TB_DIR/$name.py.out")
    [ $a = 0 ] || n1="$n1(fail)"
    [ $b = 0 ] || n2="$n2(fail)"
    echo "$n1 $n2"
}

# judge NAME: capture, then both judges (tshark where it can), with the checks.
judge() {
    local name=$1 r esp good badn req rep esnarg=()
    addrs
    capture "$name" || return
    if ws_enc "$TB_PROPOSAL" >/dev/null && [ "${TB_ESN:-no}" = no ]; then
        read -r esp good badn req rep <<<"$(tshark_judge "$name")"
        check "$name: tshark authenticates every ESP packet ($good of $esp good, $badn bad) and decrypts 3 echo requests $I1 -> $I2 ($req) and 3 replies ($rep)" \
            test "$esp" = 6 -a "$good" = 6 -a "$badn" = 0 -a "$req" = 3 -a "$rep" = 3
    fi
    [ "${TB_ESN:-no}" = yes ] && esnarg=(--esn)
    r=$(pyjudge "$name" "${esnarg[@]}")
    check "$name: esp_verify.py authenticates and decrypts the same (requests, replies: $r)" test "$r" = "3 3"
}

for p in "${PROPOSALS[@]}"; do
    echo "== $p (ESP in UDP, IPv4)"
    TB_PROPOSAL=$p
    restart || { bad "$p: gateways did not start"; continue; }
    judge "$p"
    ws_enc "$p" >/dev/null || echo "  note tshark 4.0 has no ESP decoder for $p: esp_verify.py is the judge"
done

echo "== the judges can say no"
TB_PROPOSAL=aes128-sha256; restart || die "gateways did not start"
addrs; capture neg-cbc
read -r esp good badn req rep <<<"$(tshark_judge neg-cbc wrong)"
check "tshark with a wrong integrity key for g1 -> g2: those 3 ICVs bad ($badn), the other 3 good ($good)" test "$badn" = 3 -a "$good" = 3
check "esp_verify.py with the keys of the other direction fails" \
    bash -c "! $PY '$TOOLS/esp_verify.py' '$TB_DIR/neg-cbc.pcap' 0xc0000002 aes128-sha256 $TB_EKEY_B $TB_IKEY_B"
TB_PROPOSAL=aes128gcm16; restart || die "gateways did not start"
addrs; capture neg-gcm
read -r esp good badn req rep <<<"$(tshark_judge neg-gcm wrong)"
check "tshark with a wrong AES-GCM key for g1 -> g2: not authenticated ($good good of $esp; $req requests decrypted)" test "$good" = 3 -a "$req" = 0

echo "== raw ESP (IP protocol 50)"
for p in aes128gcm16 aes128-sha256; do
    TB_PROPOSAL=$p TB_ENCAP=no
    restart || { bad "raw $p: gateways did not start"; continue; }
    judge "raw-$p"
done
TB_ENCAP=yes

echo "== IPv6 outside (ESP in UDP and raw), IPv6 inside"
TB_FAMILY=6
for enc in yes no; do
    TB_PROPOSAL=aes256-sha384 TB_ENCAP=$enc
    restart || { bad "IPv6 outer: gateways did not start"; continue; }
    judge "v6outer-encap-$enc"
done
TB_ENCAP=yes INNER=6 TB_PROPOSAL=aes128gcm16
if restart; then judge "v6outer-v6inner"; else bad "v6outer-v6inner: gateways did not start"; fi
TB_FAMILY=4
if restart; then judge "v4outer-v6inner"; else bad "v4outer-v6inner: gateways did not start"; fi
INNER=4

echo "== ESN (the high 32 bits of the sequence number enter the ICV, not the packet)"
for p in aes128gcm16 aes128-sha256 chacha20poly1305; do
    TB_PROPOSAL=$p TB_ESN=yes
    restart || { bad "esn $p: gateways did not start"; continue; }
    judge "esn-$p"
    r=$(pyjudge "esn-$p")
    check "esn-$p: checked as without ESN, every ICV fails (verified: $r)" test "$r" = "0(fail) 0(fail)"
done
TB_ESN=no

echo "== transport mode (the SA's endpoints are the traffic's)"
for enc in yes no; do
    TB_PROPOSAL=aes128gcm16 TB_MODE=transport TB_ENCAP=$enc
    restart || { bad "transport: gateways did not start"; continue; }
    judge "transport-encap-$enc"
done
TB_MODE=tunnel TB_ENCAP=yes
finish
