#!/usr/bin/env bash
# test_ike_tshark.sh — wire truth for IKEv2: baton <-> baton (PSK) captured between the gateways and
# decrypted by tshark (Wireshark 4.0, ikev2_decryption_table and esp_sa UATs) with the keys batond
# logs at log_level = private. tshark must see IDi/IDr, AUTH, SA, TSi, TSr inside IKE_AUTH, the
# configured identities, the ESP SPIs batonctl lists, a Delete inside the INFORMATIONAL, and every
# ESP packet authenticated and decrypted; nothing malformed, no checksum or decryption errors.
# Two suites: AES-GCM (AEAD) and AES-CBC + HMAC-SHA-256, for IKE and ESP.
. "$(dirname "$0")/../../scripts/testbed.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/ike_lib.sh"
command -v tshark >/dev/null || die "tshark not installed (scripts/deps)"
tb_init iketsk
tb_topology || die "tb_topology failed"

# Wireshark 4.0's names in the ikev2_decryption_table UAT (epan/dissectors/packet-isakmp.c)
ws_ike_enc() {
    case $1 in
        aes128gcm16-*) echo "AES-GCM-128 with 16 octet ICV [RFC5282]" ;; aes256gcm16-*) echo "AES-GCM-256 with 16 octet ICV [RFC5282]" ;;
        aes128-*) echo "AES-CBC-128 [RFC3602]" ;; aes256-*) echo "AES-CBC-256 [RFC3602]" ;; *) return 1 ;;
    esac
}
ws_ike_integ() {
    case $1 in
        *gcm16-*) echo "NONE [RFC4306]" ;; *-sha256-*) echo "HMAC_SHA2_256_128 [RFC4868]" ;;
        *-sha384-*) echo "HMAC_SHA2_384_192 [RFC4868]" ;; *-sha1-*) echo "HMAC_SHA1_96 [RFC2404]" ;; *) return 1 ;;
    esac
}
# ... and in the esp_sa UAT (epan/dissectors/packet-ipsec.c)
ws_esp_enc() { case $1 in aes*gcm16) echo "AES-GCM with 16 octet ICV [RFC4106]" ;; aes*-*) echo "AES-CBC [RFC3602]" ;; *) return 1 ;; esac; }
ws_esp_auth() { case $1 in *gcm16) echo NULL ;; *-sha256) echo "HMAC-SHA-256-128 [RFC4868]" ;; *) return 1 ;; esac; }

test_zero() { test "$(sa_count "$1")" = 0; }

# suite NAME IKE_PROPOSAL ESP_PROPOSAL
suite() {
    local name=$1 ike=$2 esp=$3 pcap="$TB_DIR/$1.pcap" tsk="$TB_DIR/$1.tshark" kl k2 ispi rspi ei er ai ar
    local spi_in spi_out uat=() l f src dst spi ek ik
    echo "== $name: IKE $ike, ESP $esp"
    tb_stop g1; tb_stop g2
    IKE_LOG=private IKE_PROPOSALS=$ike ESP_PROPOSALS=$esp ike_conf g1 "$TB_DIR/g1.conf" &&
    IKE_LOG=private IKE_PROPOSALS=$ike ESP_PROPOSALS=$esp ike_conf g2 "$TB_DIR/g2.conf" &&
    tb_start g2 "$TB_DIR/g2.conf" && tb_start g1 "$TB_DIR/g1.conf" || { bad "$name: gateways did not start"; return; }
    tb_capture g1 out0 "$pcap" udp port 500 or udp port 4500 || { bad "$name: no capture"; return; }
    tb_ctl g1 initiate gw >/dev/null
    check "$name: IKE SA and Child SA up" ike_up g1 5
    check "$name: ping h1 -> h2 through the tunnel" ping_ok h1 10.2.0.2 3
    spi_in=$(ike_sa g1 "s['child_sa']['spi_in']") spi_out=$(ike_sa g1 "s['child_sa']['spi_out']")
    ispi=$(ike_sa g1 "s['spi_i']") rspi=$(ike_sa g1 "s['spi_r']")
    check "$name: terminate" tb_ctl g1 terminate gw
    check "$name: both ends drop the SAs" tb_wait 5 test_zero g2
    tb_capture_stop "$TB_CAP_PID"

    kl=$(grep -o 'ikev2_decryption_table: .*' "$TB_DIR/g1.log" | tail -n 1)
    k2=$(grep -o 'ikev2_decryption_table: .*' "$TB_DIR/g2.log" | tail -n 1)
    check "$name: both ends log the same IKE keys for SPIs $ispi/$rspi" test -n "$kl" -a "$kl" = "$k2" -a "${kl#*: }" != "${kl#*: $ispi,$rspi,}"
    IFS=, read -r ispi rspi ei er ai ar <<<"${kl#*: }"
    # (hex fields unquoted in a UAT record, strings quoted)
    uat=(-o "uat:ikev2_decryption_table:$ispi,$rspi,$ei,$er,\"$(ws_ike_enc "$ike")\",$ai,$ar,\"$(ws_ike_integ "$ike")\"")
    # the Child SA keys g1 logged, one line per direction: family,src,dst,spi,enc key,integ key
    while read -r l; do
        IFS=, read -r f src dst spi ek ik <<<"${l#*: }"
        uat+=(-o "uat:esp_sa:\"$f\",\"$src\",\"$dst\",\"$spi\",\"$(ws_esp_enc "$esp")\",\"$ek\",\"$(ws_esp_auth "$esp")\",\"$ik\"")
    done < <(grep -o 'esp_sa: .*' "$TB_DIR/g1.log")
    check "$name: g1 logged the Child SA keys of both directions" test "${#uat[@]}" = 6

    tshark -r "$pcap" "${uat[@]}" -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
        -T fields -E separator=/t -E occurrence=a -E aggregator=, \
        -e ip.src -e isakmp.exchangetype -e isakmp.flag_r -e isakmp.typepayload -e isakmp.id.data.ipv4_addr \
        -e isakmp.spi -e isakmp.delete.spi -e isakmp.enc.decrypted -e esp.spi -e esp.icv_good -e esp.icv_bad \
        -e icmp.type -e _ws.expert.message >"$tsk" 2>"$tsk.err"
    tshark -r "$pcap" "${uat[@]}" -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
        -V >"$tsk.V" 2>/dev/null
    python3 - "$tsk" "$spi_in" "$spi_out" >"$tsk.verdict" <<'EOF'
import sys
path, spi_in, spi_out = sys.argv[1], sys.argv[2], sys.argv[3]
SA, IDI, IDR, AUTH, N, D, TSI, TSR, SK = 33, 35, 36, 39, 41, 42, 44, 45, 46
v = {k: 0 for k in ("auth_req", "auth_resp", "info_req", "info_resp", "esp", "esp_good", "esp_bad", "echo",
                    "errors")}
ids, sa_spis, notes = {}, {}, []
for line in open(path):
    f = line.rstrip("\n").split("\t")
    f += [""] * (13 - len(f))
    src, exch, resp, pls, idv4, spis, dspi, dec, espspi, good, badicv, icmp, expert = f[:13]
    pl = {int(x) for x in pls.split(",") if x}
    if expert:
        v["errors"] += 1
        notes.append(expert)
    if espspi:
        v["esp"] += 1
        v["esp_good"] += good == "1"
        v["esp_bad"] += badicv == "1"
        v["echo"] += icmp in ("8", "0")
        continue
    if exch == "35" and dec:  # IKE_AUTH, decrypted
        k = "auth_resp" if resp in ("1", "True") else "auth_req"
        need = {IDR if k == "auth_resp" else IDI, AUTH, SA, TSI, TSR}
        if need <= pl:
            v[k] += 1
        ids[k] = idv4
        sa_spis[k] = spis.replace("0x", "")
    if exch == "37" and dec:  # INFORMATIONAL, decrypted
        if resp in ("1", "True"):
            v["info_resp"] += SK in pl
        else:
            v["info_req"] += D in pl
print(" ".join(f"{k}={x}" for k, x in v.items()))
print("idi=%s idr=%s" % (ids.get("auth_req"), ids.get("auth_resp")))
# the initiator's SA payload carries its inbound SPI, the responder's its own (g1's outbound)
print("spis_ok=%s" % (sa_spis.get("auth_req") == spi_in and sa_spis.get("auth_resp") == spi_out))
print("notes=%s" % "|".join(sorted(set(notes))))
EOF
    echo "       | $(head -n 1 "$tsk.verdict")"
    has() { grep -q -- "$1" "$tsk.verdict"; }
    check "$name: tshark decrypts the IKE_AUTH request: IDi, AUTH, SA, TSi, TSr" has "auth_req=1 "
    check "$name: ... and the response: IDr, AUTH, SA, TSi, TSr" has "auth_resp=1 "
    check "$name: the ID data are the configured identities (IDi 172.16.0.1, IDr 172.16.0.2)" has "idi=172.16.0.1 idr=172.16.0.2"
    check "$name: the SPIs in the decrypted SA payloads are batonctl's ($spi_in, $spi_out)" has "spis_ok=True"
    check "$name: the INFORMATIONAL request decrypts to a Delete, its response decrypts" has "info_req=1 info_resp=1 "
    check "$name: no expert info (malformed, bad checksum, decryption error): $(sed -n 's/^notes=//p' "$tsk.verdict")" \
        bash -c "has() { grep -q -- \"\$1\" '$tsk.verdict'; }; has 'errors=0' && has '^notes=\$' && ! grep -qi malformed '$tsk.V'"
    check "$name: every ESP packet authenticated (esp_good = esp, esp_bad=0) and 6 ICMP echoes decrypted" \
        python3 -c "
import re, sys
d = dict(re.findall(r'(\w+)=(\d+)', open('$tsk.verdict').readline()))
sys.exit(not (int(d['esp']) >= 6 and d['esp_good'] == d['esp'] and d['esp_bad'] == '0' and int(d['echo']) >= 6))"

    # negative control: with a wrong SK_ai (AEAD: SK_ei) the judge must say no
    local bad_uat
    if [ -n "$ai" ]; then
        bad_uat="uat:ikev2_decryption_table:$ispi,$rspi,$ei,$er,\"$(ws_ike_enc "$ike")\",$(tb_key $(( ${#ai} / 2 ))),$ar,\"$(ws_ike_integ "$ike")\""
    else
        bad_uat="uat:ikev2_decryption_table:$ispi,$rspi,$(tb_key $(( ${#ei} / 2 ))),$er,\"$(ws_ike_enc "$ike")\",$ai,$ar,\"$(ws_ike_integ "$ike")\""
    fi
    tshark -r "$pcap" -o "$bad_uat" -Y "isakmp.exchangetype == 35 && isakmp.flag_r == 0" -T fields \
        -e isakmp.id.data.ipv4_addr -e _ws.expert.message >"$tsk.neg" 2>/dev/null
    check "$name: with a wrong $([ -n "$ai" ] && echo SK_ai || echo 'SK_ei, no IDi and') the IKE_AUTH request's checksum is flagged: $(tr '\t\n' '  ' <"$tsk.neg")" \
        bash -c "grep -qi 'checksum.*incorrect' '$tsk.neg' && { [ -n '$ai' ] || ! grep -q 172.16.0.1 '$tsk.neg'; }"
}

suite gcm aes128gcm16-prfsha256-x25519 aes128gcm16
suite cbc aes256-sha256-ecp256 aes256-sha256
finish
