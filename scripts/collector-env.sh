# Sourced by the tracing benchmarks (with $here set): starts the collector
# stub on a free port ($cport), makes a scratch directory ($dir), and
# removes both when the script exits.
dir=$(mktemp -d)
cport=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/python3 "$here/scripts/collector-stub" "$cport" > /dev/null 2>&1 &
cpid=$!
trap 'kill "$cpid" 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
if [ $# -eq 0 ]; then set -- -c 64 -d 5 -k 3; fi
