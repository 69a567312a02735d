#!/bin/sh
# scripts/bench-auth.sh [bench/run options]: the auth filters against the
# plain route, side by side (../shared/bench/run): key-auth, and jwt-auth
# with HS256, RS256, ES256 and EdDSA tokens, with and without the
# verified-token cache.  Each jwt target reads its token from a header of
# its own (x-tok-hs, ...), so one set of -H options serves every target.
# Default: callgrind instructions per request; pass other options (e.g.
# "-c 64 -d 5 -k 3") for req/s instead.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key 2>/dev/null
openssl genpkey -algorithm ED25519 -out ed.key 2>/dev/null
for k in rsa ec ed; do openssl pkey -in $k.key -pubout -out $k.pub 2>/dev/null; done
secret=bench-secret-of-thirty-two-bytes-or-more
/usr/bin/python3 - "$dir" "$secret" > tokens <<'PY'
import base64, hashlib, hmac, json, subprocess, sys, time
d, secret = sys.argv[1], sys.argv[2].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
def der_to_raw(der, size):
    i, out = 2, b''
    for _ in range(2):
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b'\0').rjust(size, b'\0')
        i += 2 + n
    return out
for alg, iss in (('HS256', 'hs'), ('RS256', 'rs'), ('ES256', 'es'), ('EdDSA', 'ed')):
    si = (b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode()) + '.' +
          b64(json.dumps({'iss': iss, 'sub': 'bench', 'exp': int(time.time()) + 86400}).encode())).encode()
    if alg == 'HS256':
        sig = hmac.new(secret, si, hashlib.sha256).digest()
    elif alg == 'RS256':
        sig = subprocess.run(['openssl', 'dgst', '-sha256', '-sign', f'{d}/rsa.key'], input=si, capture_output=True).stdout
    elif alg == 'ES256':
        sig = der_to_raw(subprocess.run(['openssl', 'dgst', '-sha256', '-sign', f'{d}/ec.key'], input=si,
                                        capture_output=True).stdout, 32)
    else:
        open(f'{d}/in', 'wb').write(si)
        sig = subprocess.run(['openssl', 'pkeyutl', '-sign', '-inkey', f'{d}/ed.key', '-rawin', '-in', f'{d}/in'],
                             capture_output=True).stdout
    print(iss, si.decode() + '.' + b64(sig))
PY
extra="consumers: [{ name: b, credentials: [{ type: key-auth, key: bench-key-0123456789 },
  { type: jwt-auth, key: hs, algorithm: HS256, secret: $secret },
  { type: jwt-auth, key: rs, algorithm: RS256, public_key: $dir/rsa.pub },
  { type: jwt-auth, key: es, algorithm: ES256, public_key: $dir/ec.pub },
  { type: jwt-auth, key: ed, algorithm: EdDSA, public_key: $dir/ed.pub }] }]"
export PORTICO_BENCH_EXTRA="$extra"
set -- "$@"
[ $# -eq 0 ] && set -- --instructions -c 16 -n 20000 --reps 2
targets="plain=cmd:$here/scripts/bench-portico.sh"
targets="$targets|key=cmd:PORTICO_BENCH_FILTERS='key-auth: {}' $here/scripts/bench-portico.sh"
headers="-H|apikey: bench-key-0123456789"
for t in hs rs es ed; do
    tok=$(awk -v t=$t '$1 == t { print $2 }' tokens)
    headers="$headers|-H|x-tok-$t: Bearer $tok"
    for cache in true false; do
        label=jwt-$t$([ $cache = true ] && echo "" || echo "-nocache")
        targets="$targets|$label=cmd:PORTICO_BENCH_FILTERS='jwt-auth: { header: x-tok-$t, query: \"\", cache: $cache }' $here/scripts/bench-portico.sh"
    done
done
IFS='|'
# shellcheck disable=SC2086
"$here/../shared/bench/run" "$@" $headers $targets
