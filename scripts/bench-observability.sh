#!/bin/sh
# scripts/bench-observability.sh [bench/run options]: the cost of
# observability on one route, side by side (../shared/bench/run): all off
# (metrics: false on the route, no access log, no tracing), each of metrics
# (the default), a JSON access log and tracing at 1% alone, and all three.
# The issue's target: "all" keeps >= 0.95x the req/s of "off".  Tracing
# exports OTLP JSON to a collector stub this script starts (and stops).
# Default: req/s (-c 64 -d 5 -k 3); pass --instructions ... for callgrind.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/collector-env.sh"
b="$here/scripts/bench-portico.sh"
off="PORTICO_BENCH_ROUTE='metrics: false'"
log="PORTICO_BENCH_LOG='path: $dir/access.log, format: json'"
trace="PORTICO_BENCH_EXTRA='tracing: { endpoint: \"http://127.0.0.1:$cport/v1/traces\", sample: 0.01 }'"
targets="off=cmd:$off $b"
targets="$targets|metrics=cmd:$b"
targets="$targets|json-log=cmd:$off $log $b"
targets="$targets|trace-1pct=cmd:$off $trace $b"
targets="$targets|all=cmd:$log $trace $b"
IFS='|'
# shellcheck disable=SC2086
"$here/../shared/bench/run" --base off "$@" $targets
