#!/bin/sh
# scripts/bench-h2.sh: HTTP/2 over TLS, Portico against nginx, both
# terminating TLS with the same certificate and proxying to the same nginx
# origin; h2load for requests per second, `openssl s_time` for full TLS
# handshakes per second (new sessions, no resumption).  1 worker each.
#   scripts/bench-h2.sh [ROUNDS]       (needs nginx, nghttp2-client, openssl)
# Ports 18200-18203 on 127.0.0.1.  Everything it starts is stopped on exit.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${PORTICO_BIN:-$here/build/portico}
rounds=${1:-3}
dir=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test -keyout "$dir/k.pem" -out "$dir/c.pem" 2>/dev/null
mkdir -p "$dir/o" "$dir/n"
cat > "$dir/origin.conf" <<EOF
worker_processes 1; daemon off; pid $dir/o/pid; error_log $dir/o/err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $dir/o;
  server { listen 127.0.0.1:18200; location / { return 200 "hello, world\n"; } } }
EOF
cat > "$dir/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $dir/n/pid; error_log $dir/n/err warn;
events { worker_connections 16384; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $dir/n; proxy_temp_path $dir/n;
  upstream o { server 127.0.0.1:18200; keepalive 1024; }
  server { listen 127.0.0.1:18201 ssl http2; ssl_certificate $dir/c.pem; ssl_certificate_key $dir/k.pem;
    ssl_session_tickets off; ssl_session_cache off; http2_max_concurrent_streams 128;
    location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
cat > "$dir/portico.yaml" <<EOF
workers: 1
pid_file: $dir/portico.pid
error_log: { level: warn }
listeners:
  - name: h2
    address: 127.0.0.1:18202
    http2: true
    tls: { certificates: [{ cert: $dir/c.pem, key: $dir/k.pem }], session_tickets: false }
upstreams: [{ name: o, targets: ["127.0.0.1:18200"], keepalive: { size: 1024, requests: 1000000 } }]
routes: [{ name: all, match: { paths: ["/*"] }, upstream: o }]
EOF
nginx -c "$dir/origin.conf" -e "$dir/o/err" & pids="$pids $!"
nginx -c "$dir/nginx.conf" -e "$dir/n/err" & pids="$pids $!"
"$bin" -f -c "$dir/portico.yaml" & pids="$pids $!"
sleep 1

h2rps() {
    h2load -n 200000 -c 16 -m 32 -t 1 "https://127.0.0.1:$1/" 2>/dev/null |
        awk '/^finished in/ {rps = $4} /^status codes:/ {ok = $3} END {print rps " (" ok " 2xx)"}'
}
handshakes() {
    openssl s_time -connect "127.0.0.1:$1" -new -time 5 2>/dev/null |
        awk '/connections in .* real seconds/ {printf "%.0f\n", $1 / $4; exit}'
}
printf '%-8s %-10s %24s %16s\n' round server h2_req_per_s handshakes_per_s
i=1
while [ "$i" -le "$rounds" ]; do
    for t in nginx:18201 portico:18202; do
        name=${t%%:*} port=${t##*:}
        printf '%-8s %-10s %24s %16s\n' "$i" "$name" "$(h2rps "$port")" "$(handshakes "$port")"
    done
    i=$((i + 1))
done
