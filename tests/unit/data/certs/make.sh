#!/usr/bin/env bash
# make.sh — the test PKI for test_ike_cert.c, made once with the openssl CLI; the output is committed
# so the tests do not depend on when this ran. Also signatures by openssl itself (an independent
# implementation) over a fixed octet string, which ike_cert_verify must accept.
set -euo pipefail
cd "$(dirname "$0")"
days=7305 # 20 years

ca() { # name keyopts... : self-signed CA
  local n=$1; shift
  openssl genpkey "$@" -out "$n.key"
  openssl req -x509 -new -key "$n.key" -days $days -subj "/C=XX/O=Baton Test/CN=$n" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -sha256 -out "$n.pem"
}

ee() { # name ca san keyopts... : end entity signed by ca
  local n=$1 ca=$2 san=$3; shift 3
  openssl genpkey "$@" -out "$n.key"
  openssl req -new -key "$n.key" -subj "/C=XX/O=Baton Test/CN=$n" -out "$n.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nsubjectAltName=%s\n' "$san" >"$n.ext"
  openssl x509 -req -in "$n.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial -days $days -sha256 \
    -extfile "$n.ext" -out "$n.pem"
  rm -f "$n.csr" "$n.ext"
}

ca ca-rsa -algorithm RSA -pkeyopt rsa_keygen_bits:2048
ca ca-ec -algorithm EC -pkeyopt ec_paramgen_curve:P-384
ca ca-foreign -algorithm EC -pkeyopt ec_paramgen_curve:P-256

# an intermediate under the RSA CA, for chain tests
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca-sub.key
openssl req -new -key ca-sub.key -subj "/C=XX/O=Baton Test/CN=ca-sub" -out ca-sub.csr
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >ca-sub.ext
openssl x509 -req -in ca-sub.csr -CA ca-rsa.pem -CAkey ca-rsa.key -CAcreateserial -days $days -sha256 \
  -extfile ca-sub.ext -out ca-sub.pem
rm -f ca-sub.csr ca-sub.ext

ee rsa ca-rsa "DNS:gw.baton.test,email:rsa@baton.test,IP:172.16.0.1,IP:2001:db8::1" \
  -algorithm RSA -pkeyopt rsa_keygen_bits:2048
ee p256 ca-ec "DNS:p256.baton.test,email:p256@baton.test,IP:172.16.0.2" \
  -algorithm EC -pkeyopt ec_paramgen_curve:P-256
ee p384 ca-ec "DNS:p384.baton.test,IP:172.16.0.3" -algorithm EC -pkeyopt ec_paramgen_curve:P-384
ee p521 ca-ec "DNS:p521.baton.test" -algorithm EC -pkeyopt ec_paramgen_curve:P-521
ee ed25519 ca-ec "DNS:ed.baton.test,email:ed@baton.test" -algorithm ED25519
ee sub ca-sub "DNS:sub.baton.test" -algorithm EC -pkeyopt ec_paramgen_curve:P-256
ee foreign ca-foreign "DNS:gw.baton.test" -algorithm EC -pkeyopt ec_paramgen_curve:P-256
rm -f ./*.srl

# openssl's own signatures over octets.bin
printf 'InitiatorSignedOctets: RealMessage1 | NonceR | prf(SK_pi, IDi)' >octets.bin
openssl dgst -sha256 -sign rsa.key -out openssl-rsa-sha256.sig octets.bin
openssl dgst -sha384 -sign p256.key -out openssl-p256-sha384.sig octets.bin # DER Ecdsa-Sig-Value
openssl dgst -sha1 -sign rsa.key -out openssl-rsa-sha1.sig octets.bin       # AUTH method 1
openssl pkeyutl -sign -rawin -inkey ed25519.key -in octets.bin -out openssl-ed25519.sig
openssl dgst -sha256 -sign rsa.key -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
  -sigopt rsa_mgf1_md:sha256 -out openssl-rsa-pss-sha256.sig octets.bin

# our certificate followed by its intermediate, as a gateway's certificate file holds them
cat sub.pem ca-sub.pem >sub-chain.pem
