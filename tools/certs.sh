#!/bin/sh
# Makes a throw-away certificate authority and one certificate per Pando role
# for tests and `make run`: `sh tools/certs.sh DIR [ROLE...]`.
# Writes DIR/ca.pem (and ca.key), DIR/ROLE.pem + DIR/ROLE.key for each role
# (default: coordinator ps worker selector admin), and DIR/token (a random
# cluster token, mode 0600). Each certificate's common name is its role (the
# role Pando reads under mTLS) and it is valid for 127.0.0.1 and localhost,
# for serving and as a client certificate. PANDO_CERT_HOSTS="NAME ..." adds
# host names every certificate is valid for too (the names peers dial, e.g.
# the docker-compose services: see docker-compose.yml); PANDO_CERT_DAYS
# (default 2) how long they are valid. Needs the openssl tool.
set -eu
dir=$1
shift
roles=${*:-coordinator ps worker selector admin}
days=${PANDO_CERT_DAYS:-2}
sans="IP:127.0.0.1, DNS:localhost"
for host in ${PANDO_CERT_HOSTS:-}; do sans="$sans, DNS:$host"; done
mkdir -p "$dir"
umask 077
cat >"$dir/ext.cnf" <<CNF
subjectAltName = $sans
extendedKeyUsage = serverAuth, clientAuth
basicConstraints = CA:FALSE
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=pando-test-ca" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
for role in $roles; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/O=pando/CN=$role" -keyout "$dir/$role.key" -out "$dir/$role.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$role.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days "$days" -extfile "$dir/ext.cnf" -out "$dir/$role.pem" 2>/dev/null
  rm -f "$dir/$role.csr"
done
[ -f "$dir/token" ] || openssl rand -hex 32 >"$dir/token"
rm -f "$dir/ext.cnf" "$dir/ca.srl"
