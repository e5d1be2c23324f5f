#!/usr/bin/env bash
# Makes TEST certificates for the R2F broker's TLS listener (configs/mosquitto/r2f-tls.conf):
#
#   configs/mosquitto/make_test_certs.sh DIR [CLIENT...]
#
# DIR/ca.crt, ca.key             a throwaway certificate authority (10 days)
# DIR/server.crt, server.key     the broker, for the host names and addresses in
#                                $R2F_CERT_HOSTS (space-separated; default "localhost 127.0.0.1",
#                                e.g. "broker.lan 10.0.0.5 localhost 127.0.0.1")
# DIR/<client>.crt, .key         one per CLIENT argument, CN = the client's name (a device id or
#                                a server user), for listeners with require_certificate and
#                                use_identity_as_username
#
# Keys are EC P-256, unencrypted, mode 600. Test use only: production certificates come from
# your own CA, with the broker's real host name. Needs openssl.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [CLIENT...]" >&2
  exit 2
fi
dir="$1"
shift
days="${R2F_CERT_DAYS:-10}"
mkdir -p "$dir"
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The CA.
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=R2F test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.crt

# Signs NAME.csr with the CA using the extensions in NAME.ext, giving NAME.crt.
sign() {
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

# The broker.
hosts=(${R2F_CERT_HOSTS:-localhost 127.0.0.1})
san=""
for h in "${hosts[@]}"; do
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
done
san="${san#,}"
key server.key
openssl req -new -key server.key -subj "/CN=${hosts[0]}" -out server.csr
printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth" "subjectAltName=$san" >server.ext
sign server

# Clients.
for name in "$@"; do
  if [[ ! "$name" =~ ^[A-Za-z0-9._-]+$ ]]; then
    echo "$0: client name '$name' must be a device id or user name ([A-Za-z0-9._-]+)" >&2
    exit 2
  fi
  key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr"
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" >"$name.ext"
  sign "$name"
done

rm -f ca.srl
# Certificates are public; the broker (user mosquitto) must read server.key: chgrp mosquitto.
chmod 644 ./*.crt
echo "test certificates in $(pwd): ca.crt, server.crt/key ($san)${*:+, clients: }$*" >&2
