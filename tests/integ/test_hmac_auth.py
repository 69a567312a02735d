"""Issue 13: hmac-auth with a client written here to Kong's documented
format (Authorization: hmac username=..., algorithm=..., headers=...,
signature=base64(HMAC(secret, signing string))) and draft-cavage's
Signature keyId=...: each algorithm, the clock skew, enforce_headers, the
body digest (the upstream never gets a whole request whose body is not the
one signed), and what the upstream and the logs see."""
import base64
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import time
from email.utils import formatdate

import pytest

from conftest import free_port, http_get, read_all, run_portico

SECRET = 'hmac-secret-of-alice-0123456789'
ALGS = {'hmac-sha1': hashlib.sha1, 'hmac-sha256': hashlib.sha256, 'hmac-sha384': hashlib.sha384,
        'hmac-sha512': hashlib.sha512}


def sign(method, target, headers, signed, alg='hmac-sha256', key='alice', secret=SECRET, scheme='hmac',
         version='HTTP/1.1'):
    lines = []
    for name in signed:
        if name == 'request-line':
            lines.append(f'{method} {target} {version}')
        elif name in ('(request-target)', '@request-target'):
            lines.append(f'{method.lower()} {target}')
        else:
            lines.append(f'{name}: {headers[name]}')
    mac = base64.b64encode(hmac.new(secret.encode(), '\n'.join(lines).encode(), ALGS[alg]).digest()).decode()
    hs = ' '.join(signed)
    if scheme == 'hmac':
        return f'hmac username="{key}", algorithm="{alg}", headers="{hs}", signature="{mac}"'
    return f'Signature keyId="{key}",algorithm="{alg}",headers="{hs}",signature="{mac}"'


def now_date(offset=0):
    return formatdate(time.time() + offset, usegmt=True)


def send(port, method, target, headers, body=b''):
    """One request on its own connection, as given: status, headers, body."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    head = f'{method} {target} HTTP/1.1\r\nHost: h.test\r\n'
    for k, v in headers.items():
        head += f'{k}: {v}\r\n'
    if body:
        head += f'Content-Length: {len(body)}\r\n'
    s.sendall(head.encode() + b'Connection: close\r\n\r\n' + body)
    data = read_all(s)
    s.close()
    h, _, b = data.partition(b'\r\n\r\n')
    lines = h.decode().split('\r\n')
    return int(lines[0].split()[1]), {l.split(':', 1)[0].lower(): l.split(':', 1)[1].strip() for l in lines[1:]}, b


def config(port, bport, admin, filters):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
admin: {{ address: 127.0.0.1:{admin} }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"] }}]
consumers:
  - name: alice
    credentials: [{{ type: hmac-auth, key_id: alice, secret: "{SECRET}" }}]
routes:
  - name: api
    match: {{ paths: ["/api/*"] }}
    upstream: up
    filters: {{ hmac-auth: {{ {filters} }} }}
'''


@pytest.fixture
def gw(gateway, backends):
    def make(filters=''):
        b = backends(keep_body=1 << 20)
        port, admin = free_port(), free_port()
        g = gateway(config(port, b.port, admin, filters), workers=1)
        return g, b, port, admin
    return make


def test_each_algorithm_and_both_formats(gw):
    g, b, port, admin = gw()
    for alg in ALGS:
        for scheme, signed in (('hmac', ['date', 'request-line']), ('Signature', ['(request-target)', 'date']),
                               ('hmac', ['@request-target', 'x-date', 'host'])):
            hdrs = {'Date': now_date(), 'X-Date': now_date()}
            auth = sign('GET', '/api/x?q=1', {'date': hdrs['Date'], 'x-date': hdrs['X-Date'], 'host': 'h.test'},
                        signed, alg=alg, scheme=scheme)
            st, _, body = send(port, 'GET', '/api/x?q=1', {**hdrs, 'Authorization': auth})
            assert st == 200, (alg, scheme, signed, body)
            r = b.requests[-1]
            assert r.header('x-consumer-username') == 'alice' and r.header('x-credential-identifier') == 'alice'
            assert r.header('authorization') == auth


def test_refusals(gw):
    g, b, port, admin = gw('clock_skew: 60s, enforce_headers: [request-line]')
    d = now_date()
    good = sign('GET', '/api/x', {'date': d}, ['date', 'request-line'])
    assert send(port, 'GET', '/api/x', {'Date': d, 'Authorization': good})[0] == 200
    n = len(b.requests)
    cases = [
        ('a tampered target', 'GET', '/api/y', {'Date': d, 'Authorization': good}, 'does not match'),
        ('another secret', 'GET', '/api/x', {'Date': d, 'Authorization': sign('GET', '/api/x', {'date': d},
                                             ['date', 'request-line'], secret='nope')}, 'does not match'),
        ('an unknown key', 'GET', '/api/x', {'Date': d, 'Authorization': sign('GET', '/api/x', {'date': d},
                                            ['date', 'request-line'], key='mallory')}, 'unknown key'),
        ('date too old', 'GET', '/api/x', {'Date': now_date(-120), 'Authorization': sign(
            'GET', '/api/x', {'date': now_date(-120)}, ['date', 'request-line'])}, 'clock skew'),
        ('date in the future', 'GET', '/api/x', {'Date': now_date(120), 'Authorization': sign(
            'GET', '/api/x', {'date': now_date(120)}, ['date', 'request-line'])}, 'clock skew'),
        ('date not signed', 'GET', '/api/x', {'Date': d, 'Authorization': sign('GET', '/api/x', {},
                                             ['request-line'])}, 'date or x-date header is required'),
        ('no date', 'GET', '/api/x', {'Authorization': good}, 'date or x-date header is required'),
        ('request-line not signed', 'GET', '/api/x', {'Date': d, 'Authorization': sign('GET', '/api/x',
                                                      {'date': d}, ['date'])}, 'cover every header'),
        ('garbage', 'GET', '/api/x', {'Date': d, 'Authorization': 'hmac what'}, 'Invalid HMAC signature header'),
        ('a bad date', 'GET', '/api/x', {'Date': 'yesterday', 'Authorization': sign(
            'GET', '/api/x', {'date': 'yesterday'}, ['date', 'request-line'])}, 'not an HTTP-date'),
    ]
    for what, m, t, h, want in cases:
        st, hdrs, body = send(port, m, t, h)
        assert st == 401, what
        assert want in json.loads(body)['message'], (what, body)
        assert hdrs['www-authenticate'] == 'hmac realm="portico"'
    assert len(b.requests) == n
    fails = json.loads(http_get(admin, '/status')[2])['auth_failures']
    assert fails['bad_signature'] == 2 and fails['unknown_key'] == 1 and fails['expired'] == 2
    # at the edge of the skew, either way
    for off in (-55, 55):
        dd = now_date(off)
        assert send(port, 'GET', '/api/x', {'Date': dd, 'Authorization': sign(
            'GET', '/api/x', {'date': dd}, ['date', 'request-line'])})[0] == 200


def test_algorithms_can_be_limited(gw):
    g, b, port, admin = gw('algorithms: [hmac-sha256]')
    d = now_date()
    assert send(port, 'GET', '/api/x', {'Date': d, 'Authorization': sign('GET', '/api/x', {'date': d},
                                        ['date'], alg='hmac-sha1')})[0] == 401
    assert send(port, 'GET', '/api/x', {'Date': d, 'Authorization': sign('GET', '/api/x', {'date': d},
                                        ['date'])})[0] == 200


def digest(body):
    return 'SHA-256=' + base64.b64encode(hashlib.sha256(body).digest()).decode()


def test_validate_body(gw):
    g, b, port, admin = gw('validate_body: true, hide_credentials: true')
    for size in (1, 1000, 300000):
        body = os.urandom(size)
        d = now_date()
        hd = {'date': d, 'digest': digest(body)}
        auth = sign('POST', '/api/up', hd, ['date', 'request-line', 'digest'])
        st, _, _ = send(port, 'POST', '/api/up', {'Date': d, 'Digest': hd['digest'], 'Authorization': auth}, body)
        assert st == 200
        r = b.requests[-1]
        assert r.body_len == size and r.body_md5 == hashlib.md5(body).hexdigest()
        assert r.header('authorization') is None
        # the same head with another body of the same length: refused, and the upstream never gets it whole
        n = len(b.requests)
        other = bytes(x ^ 1 for x in body)
        st, _, _ = send(port, 'POST', '/api/up', {'Date': d, 'Digest': hd['digest'], 'Authorization': auth}, other)
        assert st == 401
        assert all(r.body_md5 != hashlib.md5(other).hexdigest() for r in b.requests[n:])
    # a body without a signed Digest
    d = now_date()
    st, _, body = send(port, 'POST', '/api/up', {'Date': d, 'Authorization': sign(
        'POST', '/api/up', {'date': d}, ['date', 'request-line'])}, b'hello')
    assert st == 401 and b'signed Digest' in body
    # no body, no digest: fine
    assert send(port, 'GET', '/api/x', {'Date': d, 'Authorization': sign(
        'GET', '/api/x', {'date': d}, ['date'])})[0] == 200


def test_over_http2(gw):
    g, b, port, admin = gw('enforce_headers: [request-line]')
    d = now_date()
    auth = sign('GET', '/api/h2', {'date': d}, ['date', 'request-line'], version='HTTP/2.0')
    out = subprocess.run(['curl', '-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}',
                          '-H', f'Date: {d}', '-H', f'Authorization: {auth}', f'http://127.0.0.1:{port}/api/h2'],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout == '200'
    assert b.requests[-1].header('x-consumer-username') == 'alice'


def test_the_secret_is_nowhere(gw):
    g, b, port, admin = gw()
    d = now_date()
    send(port, 'GET', '/api/x', {'Date': d, 'Authorization': sign('GET', '/api/x', {'date': d}, ['date'])})
    send(port, 'GET', '/api/x', {'Date': d, 'Authorization': sign('GET', '/api/x', {'date': d}, ['date'],
                                                                  secret='wrong')})
    dump = run_portico('-T', '-c', g.conf).stdout
    for text in (dump, g.log(), http_get(admin, '/status')[2].decode()):
        assert SECRET not in text
