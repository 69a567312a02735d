#!/bin/sh
# scripts/bench-limits.sh [bench/run options]: the limit filters against the
# plain route, side by side (../shared/bench/run): limit-count and limit-req
# on the local policy, and limit-count with policy redis asked on every
# request (sync_interval 0s) and synced every 200 ms, against a
# redis-server this script starts on a free port (and stops).  The limits
# are high enough never to refuse: what is measured is their cost.
# Default: req/s (-c 64 -d 5 -k 3); pass --instructions ... for callgrind.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
rport=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --dir "$dir" > /dev/null
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0
while ! redis-cli -p "$rport" ping > /dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "redis-server did not start" >&2; exit 1; }
    sleep 0.05
done
export PORTICO_BENCH_EXTRA="redis: { addresses: [\"127.0.0.1:$rport\"], timeout: 200ms }"
[ $# -eq 0 ] && set -- -c 64 -d 5 -k 3
count='count: 1000000000, window: 3600s'
b="$here/scripts/bench-portico.sh"
targets="plain=cmd:$b"
targets="$targets|count=cmd:PORTICO_BENCH_FILTERS='limit-count: { $count }' $b"
targets="$targets|req=cmd:PORTICO_BENCH_FILTERS='limit-req: { rate: 1000000, burst: 1000000, nodelay: true }' $b"
targets="$targets|redis-0s=cmd:PORTICO_BENCH_FILTERS='limit-count: { $count, policy: redis }' $b"
targets="$targets|redis-200ms=cmd:PORTICO_BENCH_FILTERS='limit-count: { $count, policy: redis, sync_interval: 200ms }' $b"
IFS='|'
# shellcheck disable=SC2086
"$here/../shared/bench/run" --base plain "$@" $targets
