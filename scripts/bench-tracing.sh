#!/bin/sh
# scripts/bench-tracing.sh [bench/run options]: tracing against the plain
# route, side by side (../shared/bench/run): tracing with sample 0 (ids made
# and propagated, nothing recorded), 0.01 and 1, exporting OTLP JSON to a
# collector stub this script starts on a free port (and stops).
# Default: req/s (-c 64 -d 5 -k 3); pass --instructions ... for callgrind.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/collector-env.sh"
b="$here/scripts/bench-portico.sh"
t="tracing: { endpoint: \"http://127.0.0.1:$cport/v1/traces\", interval: 1s, sample"
targets="plain=cmd:$b"
targets="$targets|sample-0=cmd:PORTICO_BENCH_EXTRA='$t: 0 }' $b"
targets="$targets|sample-1pct=cmd:PORTICO_BENCH_EXTRA='$t: 0.01 }' $b"
targets="$targets|sample-all=cmd:PORTICO_BENCH_EXTRA='$t: 1 }' $b"
IFS='|'
# shellcheck disable=SC2086
"$here/../shared/bench/run" --base plain "$@" $targets
