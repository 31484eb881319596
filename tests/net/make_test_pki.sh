#!/bin/sh
# Test certificates for the secure channel (tests/net/test_channel.c, the
# channel benchmark): make_test_pki.sh OUTDIR.
#
# Everything is made with the openssl command line and `openssl ca`, the way
# an operator would, so the fixtures are what a real CA produces and not what
# our own code thinks a certificate looks like. OUTDIR is replaced; it holds:
#   ca.pem ca.key                 the federation's test CA (ECDSA P-256)
#   coordinator.pem/.key          CN and SAN DNS coordinator.test, serverAuth+clientAuth
#                                 and the publication-signing mark (net/pki.h)
#   alice.pem/.key                client alice (ECDSA P-256), clientAuth
#   bob.pem/.key                  client bob (Ed25519), clientAuth; revoked only in crl2.pem
#   mallory.pem/.key              client mallory, revoked in crl.pem and crl2.pem
#   expired.pem/.key              client "expired", valid 2020-01-01 to 2020-01-02 only
#   wrongname.pem/.key            CN and SAN wrong.test, serverAuth only
#   crl-empty.pem                 CRL before any revocation
#   crl.pem                       CRL revoking mallory
#   crl2.pem                      CRL revoking mallory and bob
#   crl-expired.pem               CRL whose nextUpdate is 2020-01-02
#   other-ca.pem                  a different CA
#   rogue.pem/.key                signed by other-ca: CN/SAN coordinator.test,
#                                 serverAuth+clientAuth (wrong CA either way)
#   other-crl.pem                 a CRL of the other CA
# Private keys are written 0600 (umask 077). Takes about a second.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: make_test_pki.sh OUTDIR" >&2
    exit 2
fi
out=$1
umask 077
rm -rf "$out"
mkdir -p "$out"
cd "$out"
dir=$(pwd)

# One configuration for both CAs; `-name` picks the CA section.
cat > openssl.cnf <<EOF
[ ca ]
default_ca = fed_ca

[ fed_ca ]
dir = $dir/fed
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = \$dir/serial
crlnumber = \$dir/crlnumber
default_md = sha256
default_days = 3650
default_crl_days = 3650
policy = policy_any
unique_subject = no
copy_extensions = none

[ other_ca ]
dir = $dir/other
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = $dir/other-ca.pem
private_key = $dir/other-ca.key
serial = \$dir/serial
crlnumber = \$dir/crlnumber
default_md = sha256
default_days = 3650
default_crl_days = 3650
policy = policy_any
unique_subject = no
copy_extensions = none

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth, 2.25.61096395399426130411232771718032252530
subjectAltName = DNS:coordinator.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ wrongname_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
export OPENSSL_CONF="$dir/openssl.cnf"

s_key() { # NAME [ed25519]
    if [ "${2:-}" = ed25519 ]; then
        openssl genpkey -algorithm ED25519 -out "$1.key"
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
    fi
}

s_ca() { # NAME CN SECTIONDIR
    mkdir -p "$3/newcerts"
    : > "$3/index.txt"
    echo 1000 > "$3/serial"
    echo 1000 > "$3/crlnumber"
    s_key "$1"
    openssl req -config openssl.cnf -x509 -new -key "$1.key" -subj "/CN=$2" -days 3650 \
        -sha256 -extensions v3_ca -out "$1.pem"
}

s_issue() { # CA-SECTION NAME CN EXTENSIONS [extra openssl ca options...]
    ca=$1 name=$2 cn=$3 ext=$4
    shift 4
    openssl req -config openssl.cnf -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
    openssl ca -config openssl.cnf -name "$ca" -batch -notext -extensions "$ext" \
        -in "$name.csr" -out "$name.pem" "$@" 2> "$name.log" || { cat "$name.log" >&2; exit 1; }
    rm -f "$name.csr" "$name.log"
}

s_crl() { # CA-SECTION OUT [extra options...]
    ca=$1 crl=$2
    shift 2
    openssl ca -config openssl.cnf -name "$ca" -gencrl -out "$crl" "$@" 2> crl.log ||
        { cat crl.log >&2; exit 1; }
    rm -f crl.log
}

s_ca ca "Glassbox Test CA" "$dir/fed"
s_ca other-ca "Some Other CA" "$dir/other"

s_key coordinator
s_issue fed_ca coordinator coordinator.test server_ext
s_key alice
s_issue fed_ca alice alice client_ext
s_key bob ed25519
s_issue fed_ca bob bob client_ext
s_key mallory
s_issue fed_ca mallory mallory client_ext
s_key expired
s_issue fed_ca expired expired client_ext -startdate 20200101000000Z -enddate 20200102000000Z
s_key wrongname
s_issue fed_ca wrongname wrong.test wrongname_ext
s_key rogue
s_issue other_ca rogue coordinator.test server_ext

s_crl fed_ca crl-empty.pem
openssl ca -config openssl.cnf -name fed_ca -revoke mallory.pem 2> /dev/null
s_crl fed_ca crl.pem
s_crl fed_ca crl-expired.pem -crl_lastupdate 20200101000000Z -crl_nextupdate 20200102000000Z
openssl ca -config openssl.cnf -name fed_ca -revoke bob.pem 2> /dev/null
s_crl fed_ca crl2.pem
s_crl other_ca other-crl.pem

# The certificates must say what the tests rely on.
openssl verify -CAfile ca.pem -purpose sslserver coordinator.pem > /dev/null
openssl verify -CAfile ca.pem -purpose sslclient alice.pem bob.pem > /dev/null
openssl verify -CAfile ca.pem -crl_check -CRLfile crl.pem alice.pem > /dev/null
if openssl verify -CAfile ca.pem -crl_check -CRLfile crl.pem mallory.pem > /dev/null 2>&1; then
    echo "make_test_pki.sh: mallory is not revoked in crl.pem" >&2
    exit 1
fi
echo "test PKI in $dir"
