#!/bin/sh
# scripts/bench-transcode.sh [N] [CONNS]: what REST/JSON transcoding costs
# per call against the plain gRPC route, with nghttpd as the gRPC origin
# (a static answer, framed, with grpc-status as a trailer) and h2load as
# the client, both over HTTP/2:
#   plain: POST /library.v1.Library/Echo, a framed Everything message;
#   rest:  POST /v1/echo, the same message as JSON (about 200 bytes).
# Prints, for each: req/s (h2load, 3 runs of N calls, the median) and
# user-space instructions per call of Portico (callgrind, one worker:
# warm up, zero the counters, N calls, dump).  Needs nghttp2-server
# (nghttpd), nghttp2-client (h2load), valgrind, protobuf-compiler and
# python3-protobuf.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${PORTICO_BIN:-$here/build/portico}
n=${1:-20000} conns=${2:-16}
dir=$(mktemp -d)
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
cd "$dir"
protoc -I"$here/tests/integ/protos" -I/usr/include --include_imports --descriptor_set_out=library.pb \
    --python_out=. library.proto google/api/http.proto google/api/annotations.proto
mkdir -p htdocs/library.v1.Library
/usr/bin/python3 - <<'PY'
import json, struct, sys
sys.path.insert(0, '.')
import library_pb2 as pb
from google.protobuf import json_format
text = json.dumps({"fString": "a unary call of about two hundred bytes", "fInt32": 42, "fInt64": "1234567890123",
                   "fBool": True, "fEnum": "POETRY", "rString": ["alpha", "beta", "gamma"],
                   "fNested": {"s": "nested", "child": {"s": "deeper"}}}, separators=(',', ':'))
data = json_format.Parse(text, pb.Everything()).SerializeToString()
framed = struct.pack('>BI', 0, len(data)) + data
open('body.json', 'w').write(text)
open('body.grpc', 'wb').write(framed)
open('htdocs/library.v1.Library/Echo', 'wb').write(framed)
print(f'# request: {len(text)} bytes of JSON, {len(data)} bytes of protobuf', file=sys.stderr)
PY
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin=$(port)
nghttpd --no-tls -d htdocs --trailer 'grpc-status: 0' "$origin" > /dev/null 2>&1 &
pids="$pids $!"
config() { # port
    cat <<YAML
workers: 1
pid_file: $dir/portico-$1.pid
error_log: { level: warn }
listeners: [{ name: bench, address: "127.0.0.1:$1", http2: true, max_connections: 10000 }]
upstreams: [{ name: g, scheme: grpc, targets: ["127.0.0.1:$origin"] }]
routes:
  - { name: plain, match: { paths: ["/library.v1.Library/*"] }, upstream: g }
  - name: rest
    match: { paths: ["/v1/*"] }
    upstream: g
    filters: { grpc-transcode: { descriptor: $dir/library.pb, services: [library.v1.Library] } }
YAML
}
load() { # port kind calls
    if [ "$2" = plain ]; then
        h2load -n "$3" -c "$conns" -m 1 -d body.grpc -H 'content-type: application/grpc' -H 'te: trailers' \
            "http://127.0.0.1:$1/library.v1.Library/Echo"
    else
        h2load -n "$3" -c "$conns" -m 1 -d body.json -H 'content-type: application/json' "http://127.0.0.1:$1/v1/echo"
    fi
}
wait_port() { for _ in $(seq 1 900); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; return 1; }
# req/s
p=$(port)
config "$p" > req.yaml
"$bin" -f -c req.yaml > req.log 2>&1 &
pids="$pids $!"
wait_port "$p"
for kind in plain rest; do
    load "$p" $kind 2000 > /dev/null
    rps=$(for i in 1 2 3; do load "$p" $kind "$n" | awk '/^finished in/ { gsub(",", ""); print $4 }'; done |
          sort -n | sed -n 2p)
    ok=$(load "$p" $kind 1000 | awk '/^status codes:/ { print $3 }')
    echo "$kind: $rps req/s (median of 3 x $n calls, c=$conns), 2xx $ok/1000"
done
# instructions
for kind in plain rest; do
    p=$(port)
    config "$p" > "cg-$kind.yaml"
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$dir/cg-$kind.%p" \
        "$bin" -f -c "cg-$kind.yaml" > "cg-$kind.log" 2>&1 &
    vg=$!
    pids="$pids $vg"
    wait_port "$p"
    load "$p" $kind 1000 > /dev/null
    callgrind_control -z > /dev/null
    load "$p" $kind "$n" > /dev/null
    callgrind_control -d > /dev/null
    sleep 1
    total=$(cat "$dir"/cg-$kind.*.1 2>/dev/null | awk '/^summary:/ { s += $2 } END { printf "%.0f\n", s }')
    echo "$kind: $((total / n)) instructions per call (callgrind, c=$conns, $n calls)"
    kill "$vg" 2>/dev/null || true
    wait "$vg" 2>/dev/null || true
done
