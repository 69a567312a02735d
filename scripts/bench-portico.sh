#!/bin/sh
# The `cmd:` target for ../shared/bench/run: writes a configuration from
# PROXY_PORT, BACKEND_PORT and PROXY_WORKERS and runs portico in the
# foreground, with no access log.
#   ../shared/bench/run portico=cmd:scripts/bench-portico.sh nginx haproxy
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
routes:
  - { name: all, match: { paths: ["/*"] }, upstream: origin }
YAML
exec "$bin" -f -c "$dir/portico.yaml"
