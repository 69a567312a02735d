#!/bin/sh
# The `cmd:` target for ../shared/bench/run: writes a configuration from
# PROXY_PORT, BACKEND_PORT and PROXY_WORKERS and runs portico in the
# foreground, with no access log.
#   ../shared/bench/run portico=cmd:scripts/bench-portico.sh nginx haproxy
# PORTICO_BENCH_FILTERS (a flow map: the route's filters) and
# PORTICO_BENCH_EXTRA (more top-level YAML: consumers) benchmark a route
# with filters, e.g. key-auth:
#   PORTICO_BENCH_FILTERS='key-auth: {}' \
#   PORTICO_BENCH_EXTRA='consumers: [{ name: b, credentials: [{ type: key-auth, key: bench-key }] }]' \
#   ../shared/bench/run -H 'apikey: bench-key' key=cmd:scripts/bench-portico.sh
# PORTICO_BENCH_ROUTE (more keys of the route, a flow map's inside:
# "metrics: false") and PORTICO_BENCH_LOG (a top-level access_log's
# inside: "path: /tmp/x.log, format: json") too.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${PORTICO_BIN:-$here/build/portico}
dir=$(mktemp -d)
cat > "$dir/portico.yaml" <<YAML
workers: ${PROXY_WORKERS:-1}
pid_file: $dir/portico.pid
error_log: { level: warn }
listeners:
  - { name: bench, address: "127.0.0.1:${PROXY_PORT:?}", backlog: 4096, max_connections: 100000 }
upstreams:
  - name: origin
    targets: ["127.0.0.1:${BACKEND_PORT:?}"]
    keepalive: { size: 1024, requests: 1000000 }
${PORTICO_BENCH_EXTRA:-}
${PORTICO_BENCH_LOG:+access_log: { $PORTICO_BENCH_LOG \}}
routes:
  - { name: all, match: { paths: ["/*"] }, upstream: origin, filters: { ${PORTICO_BENCH_FILTERS:-} }${PORTICO_BENCH_ROUTE:+, $PORTICO_BENCH_ROUTE} }
YAML
exec "$bin" -f -c "$dir/portico.yaml"
