#!/usr/bin/python3
"""TAP: the layering holds (issue 10).  No file in src/net/ includes, even
through other headers, an HTTP-layer header: sockets, TLS, timers and
buffers know nothing of requests.  src/conf/ builds no TLS context: it
includes neither tls.h nor OpenSSL's SSL API.  src/auth/'s pure modules
(signatures, tokens: functions over strings the auth filters call) use core
only: they include, even through other headers, nothing but the headers of
src/core/, err-t.h and each other's.  auth.c (what the auth filters share:
it sees the request), credentials.c (the consumers' configuration) and
jwks.c (key sets fetched by the worker) are the ones that are not pure."""
import os
import re
import sys

src = os.environ.get('PORTICO_SRCDIR', os.path.join(os.path.dirname(__file__), '..', '..'))
HTTP = {'router.h', 'proxy.h', 'h2.h', 'admin.h', 'grpc.h', 'request.h', 'filter.h', 'h1_server.h',
        'response.h', 'h1_parser.h', 'accesslog.h', 'http.h', 'route_conf.h', 'path.h'}
INC = re.compile(r'^#include "portico/([^"]+)"', re.M)


def includes(path):
    with open(path) as f:
        return INC.findall(f.read())


def closure(path):
    seen, todo = set(), list(includes(path))
    while todo:
        h = todo.pop()
        if h in seen:
            continue
        seen.add(h)
        hp = os.path.join(src, 'include', 'portico', h)
        if os.path.exists(hp):
            todo.extend(includes(hp))
    return seen


n = failed = 0


def ok(cond, what):
    global n, failed
    n += 1
    print(f'{"" if cond else "not "}ok {n} - {what}')
    failed += not cond


def modules(d):
    """The headers named after the .c files of src/<d>/."""
    return {n[:-2] + '.h' for n in os.listdir(os.path.join(src, 'src', d)) if n.endswith('.c')}


AUTH_NOT_PURE = {'auth.c', 'credentials.c', 'jwks.c'}
CORE = modules('core') | {'err-t.h'}
AUTH = CORE | modules('auth') - {n[:-2] + '.h' for n in AUTH_NOT_PURE}

for d, rule in (('net', 'no HTTP-layer header'), ('conf', 'no TLS'), ('auth', 'core only')):
    for name in sorted(os.listdir(os.path.join(src, 'src', d))):
        if not name.endswith('.c') or (d == 'auth' and name in AUTH_NOT_PURE):
            continue
        path = os.path.join(src, 'src', d, name)
        if d == 'net':
            bad = sorted(closure(path) & HTTP)
            ok(not bad, f'src/net/{name} includes {rule}' + (f': {", ".join(bad)}' if bad else ''))
        elif d == 'auth':
            bad = sorted(closure(path) - AUTH)
            ok(not bad, f'src/auth/{name} includes {rule}' + (f': {", ".join(bad)}' if bad else ''))
        else:
            text = open(path).read()
            bad = 'tls.h' in closure(path) or re.search(r'\bSSL_CTX_\w+\(|openssl/ssl\.h', text)
            ok(not bad, f'src/conf/{name} builds no TLS context')

print(f'1..{n}')
sys.exit(1 if failed else 0)
