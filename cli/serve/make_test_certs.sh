#!/bin/sh
# Test certificates for the https tests of `stowage serve`, made with the
# openssl command at test time (nothing secret is committed, nothing
# expires in the repository). Usage: make_test_certs.sh OUT_DIR
#   ca.pem            a test CA (the one the clients trust)
#   server.pem/.key   CN "stowage serve test 1", serial 1001, signed by ca.pem,
#                     subjectAltName IP 127.0.0.1 and DNS localhost
#   server2.pem/.key  the same with CN "stowage serve test 2", serial 1002
#                     (what a SIGHUP reload switches to)
#   other-ca.pem      a second CA nobody trusts
#   other.pem/.key    a server certificate signed by other-ca.pem
set -eu
out=$1
mkdir -p "$out"
cd "$out"
cat > openssl.cnf <<'CONF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
CONF
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # ca NAME CN
  key "$1.key"
  openssl req -config openssl.cnf -new -x509 -key "$1.key" -subj "/CN=$2" -days 3650 \
    -extensions ca -out "$1.pem"
}
leaf() {  # leaf NAME CN SERIAL CA
  key "$1.key"
  openssl req -config openssl.cnf -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -set_serial "$3" -days 3650 \
    -extfile openssl.cnf -extensions leaf -out "$1.pem" 2>/dev/null
  rm -f "$1.csr"
}
ca ca "stowage serve test CA"
leaf server "stowage serve test 1" 1001 ca
leaf server2 "stowage serve test 2" 1002 ca
ca other-ca "stowage untrusted CA"
leaf other "stowage serve untrusted" 1003 other-ca
