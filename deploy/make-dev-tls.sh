#!/usr/bin/env bash
# Development certificates for deploy/: a CA and one server certificate valid for
# localhost, 127.0.0.1, nats-1..3 (compose) and nats-0..2.nats (Kubernetes), plus any DNS
# names given after DIR. Production uses certificates from your own CA.
# Usage: deploy/make-dev-tls.sh DIR [DNS-NAME...]
#   (writes DIR/ca.pem, DIR/server.pem, DIR/server-key.pem, and the CA's key DIR/ca-key.pem:
#    keep that one off the servers)
set -euo pipefail
dir="${1:?usage: $0 DIR [DNS-NAME...]}"
shift
names="DNS:localhost,IP:127.0.0.1,DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:nats-0.nats,DNS:nats-1.nats,DNS:nats-2.nats"
for name in "$@"; do names="$names,DNS:$name"; done
mkdir -p "$dir" && cd "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=InMail dev CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=nats" -keyout server-key.pem -out server.csr 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$names" > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 365 \
  -extfile ext.cnf -out server.pem 2>/dev/null
rm -f server.csr ext.cnf ca.srl
# The certificates are public; the keys stay 0600.
chmod 644 ca.pem server.pem
echo "wrote $dir/ca.pem, $dir/server.pem, $dir/server-key.pem"
