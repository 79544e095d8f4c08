#!/bin/sh
# Mint a private CA, the broker's server certificate and per-identity client certificates for the
# TLS listener in mosquitto.conf. See README.md in this directory for the identity scheme.
#
#   mint-certs.sh ca     DIR                      CA key + certificate (DIR/ca.key, DIR/ca.crt)
#   mint-certs.sh server DIR DNS_NAME [IP]        broker certificate (DIR/server.{key,crt})
#   mint-certs.sh client DIR IDENTITY             client certificate, CN = IDENTITY
#
# IDENTITY is "<site>/<station>" for a station (e.g. dc-north/pack-01) or one word for a backend
# service (wms, reissue). Files are named after it with "/" as "_": dc-north_pack-01.{key,crt}.
# Keys are EC P-256 and unencrypted (a station starts unattended): protect them with file
# permissions (0600, owned by the daemon's user). DAYS (env) sets the lifetime; default 825.
set -eu

DAYS="${DAYS:-825}"
umask 077

usage() {
    sed -n '5,7p' "$0" >&2
    exit 2
}

newkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

[ $# -ge 2 ] || usage
command="$1"
dir="$2"
mkdir -p "$dir"

case "$command" in
ca)
    newkey "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -out "$dir/ca.crt" -days "$DAYS" \
        -subj "/CN=packstation MQTT CA" \
        -addext "basicConstraints=critical,CA:true" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    ;;
server)
    [ $# -ge 3 ] || usage
    san="DNS:$3"
    [ $# -ge 4 ] && san="$san,IP:$4"
    newkey "$dir/server.key"
    openssl req -new -key "$dir/server.key" -out "$dir/server.csr" -subj "/CN=$3"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:false\n' "$san" \
        > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/server.crt" -days "$DAYS" -extfile "$dir/server.ext" 2>/dev/null
    rm -f "$dir/server.csr" "$dir/server.ext"
    ;;
client)
    [ $# -eq 3 ] || usage
    identity="$3"
    # One "site/station" or one service word; nothing MQTT treats as a wildcard or level.
    if ! printf '%s' "$identity" | grep -Eq '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$'; then
        echo "bad identity '$identity': use <site>/<station> or a service name ([A-Za-z0-9._-])" >&2
        exit 2
    fi
    name=$(printf '%s' "$identity" | tr '/' '_')
    # "/" separates RDNs in -subj: escape it so the CN holds the whole identity.
    subject_cn=$(printf '%s' "$identity" | sed 's#/#\\/#g')
    newkey "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$subject_cn"
    printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:false\n' > "$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/$name.crt" -days "$DAYS" -extfile "$dir/$name.ext" 2>/dev/null
    rm -f "$dir/$name.csr" "$dir/$name.ext"
    ;;
*)
    usage
    ;;
esac
