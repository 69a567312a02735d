#!/bin/sh
# scripts/bench-cache.sh [bench/run options]: the response cache
# (../shared/bench/run).  Hits: Portico's cache filter beside nginx's
# proxy_cache (nginx-cache) and Varnish, on an origin whose responses say
# `Cache-Control: public, max-age=3600` (--body cached, or cached-64k), so
# every request after the first is a hit.  Misses: with --misses, the
# plain route against the same route with the cache filter on an origin
# whose responses may not be stored (--body small), which is what every
# request then costs.  Default: -c 64 -d 5 -k 3.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
b="$here/scripts/bench-portico.sh"
cache='caches: [{ name: bench, memory: 256MiB }]'
misses=false
if [ "${1:-}" = --misses ]; then misses=true; shift; fi
[ $# -eq 0 ] && set -- -c 64 -d 5 -k 3
if $misses; then
    targets="plain=cmd:$b|cache=cmd:PORTICO_BENCH_EXTRA='$cache' PORTICO_BENCH_FILTERS='cache: {}' $b"
    IFS='|'
    # shellcheck disable=SC2086
    exec "$here/../shared/bench/run" --base plain --body small "$@" $targets
fi
targets="portico=cmd:PORTICO_BENCH_EXTRA='$cache' PORTICO_BENCH_FILTERS='cache: {}' $b|nginx-cache"
command -v varnishd > /dev/null && targets="$targets|varnish"
IFS='|'
# shellcheck disable=SC2086
exec "$here/../shared/bench/run" --base nginx-cache --body cached "$@" $targets
