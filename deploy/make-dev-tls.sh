#!/usr/bin/env bash
# Development certificates for deploy/: a CA and one server certificate valid for
# localhost, 127.0.0.1 and nats-1..3. Production uses certificates from your own CA.
# Usage: deploy/make-dev-tls.sh DIR   (writes DIR/ca.pem, DIR/server.pem, DIR/server-key.pem)
set -euo pipefail
dir="${1:?usage: $0 DIR}"
mkdir -p "$dir" && cd "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=InMail dev CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=nats" -keyout server-key.pem -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:nats-1,DNS:nats-2,DNS:nats-3\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 365 \
  -extfile ext.cnf -out server.pem 2>/dev/null
rm -f server.csr ext.cnf ca.srl
echo "wrote $dir/ca.pem, $dir/server.pem, $dir/server-key.pem"
