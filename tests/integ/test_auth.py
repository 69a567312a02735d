"""Issue 13: consumers and the auth filters (key-auth, basic-auth,
tls-auth, acl), through the real binary with a recording backend: what the
client gets (401 with its challenges, 403), what the upstream gets (the
consumer headers, never the client's copies, no credential with
hide_credentials), the access log's $consumer, per-consumer filter
settings, the failure counters in /status, and that no key or password
reaches a log, -T or /status."""
import base64
import json
import os
import re
import ssl
import subprocess

import pytest

import pki
from conftest import free_port, http_get, raw, run_portico

KEY = 'k3y-0f-acme-abcdef0123456789'
KEY2 = 'an0ther-key-for-beta-0011223344'
PASSWORD = 'pa55-w0rd-of-bob'


def htpasswd_bcrypt(user, password):
    out = subprocess.run(['htpasswd', '-nbB', '-C', '5', user, password], capture_output=True, text=True,
                         check=True).stdout.strip()
    return out.split(':', 1)[1]


def mkpasswd(method, password):
    return subprocess.run(['mkpasswd', '-m', method, password], capture_output=True, text=True,
                          check=True).stdout.strip()


def sha256_hex(s):
    import hashlib
    return hashlib.sha256(s.encode()).hexdigest()


def basic(user, password):
    return 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()


def config(port, bport, admin, alog, filters, consumers_extra='', listener_extra='', route_extra=''):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}{listener_extra} }}]
admin: {{ address: 127.0.0.1:{admin} }}
access_log: {{ path: {alog}, format: "$method $target $status consumer=$consumer" }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"] }}]
consumers:
  - name: acme
    groups: [partners, gold]
    credentials:
      - {{ type: key-auth, key: "{KEY}" }}
      - {{ type: basic-auth, username: bob, password: '{htpasswd_bcrypt("bob", PASSWORD)}' }}
  - name: beta
    groups: [trial]
    credentials:
      - {{ type: key-auth, key_sha256: "{sha256_hex(KEY2)}" }}
      - {{ type: basic-auth, username: sha, password: '{mkpasswd("sha512crypt", PASSWORD)}' }}
      - {{ type: basic-auth, username: yes, password: '{mkpasswd("yescrypt", PASSWORD)}', id: yes-cred }}
{consumers_extra}
routes:
  - name: api
    match: {{ paths: ["/api/*"] }}
    upstream: up
    filters: {{ {filters} }}
{route_extra}
  - name: open
    match: {{ paths: ["/open/*"] }}
    upstream: up
'''


@pytest.fixture
def setup(gateway, backends, tmpdir_path):
    def make(filters, **kw):
        b = backends()
        port, admin = free_port(), free_port()
        alog = os.path.join(tmpdir_path, 'access.log')
        g = gateway(config(port, b.port, admin, alog, filters, **kw), workers=1)
        return g, b, port, admin, alog
    return make


def status(admin):
    return json.loads(http_get(admin, '/status')[2])


def log_lines(path, n):
    import time
    for _ in range(100):
        if os.path.exists(path):
            lines = open(path).read().splitlines()
            if len(lines) >= n:
                return lines
        time.sleep(0.05)
    return open(path).read().splitlines() if os.path.exists(path) else []


def test_key_auth_in_a_header_or_the_query_names_the_consumer(setup):
    g, b, port, admin, alog = setup('key-auth: {}, response-headers: { set: { x-who: "${consumer}" } }')
    st, h, body = http_get(port, '/api/x', headers={'apikey': KEY})
    assert st == 200 and h['x-who'] == 'acme'
    r = b.requests[-1]
    assert r.header('x-consumer-username') == 'acme'
    assert r.header('x-consumer-groups') == 'partners, gold'
    assert r.header('x-credential-identifier') == 'acme:key-auth:0'
    assert r.header('apikey') == KEY  # not hidden unless asked
    st, _, _ = http_get(port, f'/api/q?a=1&apikey={KEY2}&b=2')
    assert st == 200
    r = b.requests[-1]
    assert r.header('x-consumer-username') == 'beta' and r.target == f'/api/q?a=1&apikey={KEY2}&b=2'
    assert 'x-consumer-groups' in {k.lower() for k, _ in r.headers}
    # a key escaped in the query is the same key
    esc = KEY.replace('-', '%2D')
    assert http_get(port, f'/api/e?apikey={esc}')[0] == 200 and b.requests[-1].header('x-consumer-username') == 'acme'
    # missing, wrong, empty
    n = len(b.requests)
    for headers, path, want in (({}, '/api/x', 'No credentials found in request'),
                                ({'apikey': 'nope'}, '/api/x', 'Invalid authentication credentials'),
                                ({'apikey': ''}, '/api/x', 'Invalid authentication credentials'),
                                ({}, '/api/x?apikey=', 'Invalid authentication credentials'),
                                ({'apikey': KEY + 'x'}, '/api/x', 'Invalid authentication credentials')):
        st, h, body = http_get(port, path, headers=headers)
        assert st == 401, (headers, path)
        assert h['WWW-Authenticate'] == 'Key realm="portico"'
        assert h['Content-Type'] == 'application/json' and json.loads(body) == {'message': want}
    assert len(b.requests) == n
    lines = log_lines(alog, 9)
    assert 'GET /api/x 200 consumer=acme' in lines
    assert 'GET /api/q?a=1&apikey=***&b=2 200 consumer=beta' in lines
    assert 'GET /api/x 401 consumer=-' in lines
    assert KEY not in open(alog).read() and KEY2 not in open(alog).read()
    fails = status(admin)['auth_failures']
    assert fails['missing'] == 1 and fails['invalid'] == 4


def test_hide_credentials_removes_the_key_from_header_query_and_cookie_only(setup):
    g, b, port, admin, alog = setup('key-auth: { hide_credentials: true }, basic-auth: { hide_credentials: true }')
    assert http_get(port, '/api/x', headers={'apikey': KEY, 'x-keep': '1'})[0] == 200
    r = b.requests[-1]
    assert r.header('apikey') is None and r.header('x-keep') == '1'
    assert http_get(port, f'/api/q?apikey={KEY}&b=2')[0] == 200
    assert b.requests[-1].target == '/api/q?b=2'
    # a name escaped is the same name, to us as to the upstream
    assert http_get(port, f'/api/q?a=1&api%6Bey={KEY}')[0] == 200
    assert b.requests[-1].target == '/api/q?a=1'
    assert http_get(port, f'/api/q?apikey={KEY}')[0] == 200
    assert b.requests[-1].target == '/api/q'
    assert http_get(port, '/api/b', headers={'Authorization': basic('bob', PASSWORD)})[0] == 200
    r = b.requests[-1]
    assert r.header('authorization') is None and r.header('x-consumer-username') == 'acme'


def test_basic_auth_with_bcrypt_sha512crypt_and_yescrypt(setup):
    g, b, port, admin, alog = setup('basic-auth: { realm: api }')
    for user, who, ident in (('bob', 'acme', 'bob'), ('sha', 'beta', 'sha'), ('yes', 'beta', 'yes-cred')):
        for _ in range(2):  # the second is answered from the worker's cache
            st, _, _ = http_get(port, '/api/x', headers={'Authorization': basic(user, PASSWORD)})
            assert st == 200, user
            r = b.requests[-1]
            assert (r.header('x-consumer-username'), r.header('x-credential-identifier')) == (who, ident)
            assert r.header('authorization') == basic(user, PASSWORD)
        st, h, body = http_get(port, '/api/x', headers={'Authorization': basic(user, PASSWORD + 'x')})
        assert st == 401 and h['WWW-Authenticate'] == 'Basic realm="api", charset="UTF-8"'
    for bad in ('Basic', 'Basic !!!!', 'Basic ' + base64.b64encode(b'no-colon').decode(),
                basic('nobody', PASSWORD), basic('bob', ''), 'Basic ' + base64.b64encode(b'bob:').decode()[:-1]):
        st, _, body = http_get(port, '/api/x', headers={'Authorization': bad})
        assert st == 401 and json.loads(body)['message'] == 'Invalid authentication credentials', bad
    # another scheme is no basic credential at all
    st, h, _ = http_get(port, '/api/x', headers={'Authorization': 'Bearer abc'})
    assert st == 401 and json.loads(_)['message'] == 'No credentials found in request'


def test_several_auth_filters_the_first_that_finds_its_kind_decides(setup):
    g, b, port, admin, alog = setup('key-auth: {}, basic-auth: { realm: api }')
    # a wrong key is refused even with a good password: key-auth found its kind first
    st, h, _ = http_get(port, '/api/x', headers={'apikey': 'wrong', 'Authorization': basic('bob', PASSWORD)})
    assert st == 401 and h['WWW-Authenticate'] == 'Key realm="portico"'
    # no key: basic-auth decides
    assert http_get(port, '/api/x', headers={'Authorization': basic('sha', PASSWORD)})[0] == 200
    assert b.requests[-1].header('x-consumer-username') == 'beta'
    # neither: 401 with both challenges
    out = raw(port, b'GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n').decode()
    assert out.startswith('HTTP/1.1 401 ')
    assert re.findall(r'WWW-Authenticate: (.*)\r\n', out) == ['Key realm="portico"',
                                                              'Basic realm="api", charset="UTF-8"']


def test_acl_allows_and_denies_by_group(setup):
    g, b, port, admin, alog = setup('key-auth: {}, acl: { allow: [partners] }')
    assert http_get(port, '/api/x', headers={'apikey': KEY})[0] == 200
    st, _, body = http_get(port, '/api/x', headers={'apikey': KEY2})
    assert st == 403 and json.loads(body) == {'message': 'You cannot consume this service'}
    assert status(admin)['auth_failures']['denied'] == 1


def test_acl_deny_and_acl_without_a_consumer(gateway, backends, tmpdir_path):
    b = backends()
    port, admin = free_port(), free_port()
    alog = os.path.join(tmpdir_path, 'a.log')
    gateway(config(port, b.port, admin, alog, 'key-auth: {}, acl: { deny: [trial] }',
                   route_extra='''  - name: nokey
    match: { paths: ["/nokey/*"] }
    upstream: up
    filters: { acl: { allow: [partners] } }'''), workers=1)
    assert http_get(port, '/api/x', headers={'apikey': KEY})[0] == 200
    assert http_get(port, '/api/x', headers={'apikey': KEY2})[0] == 403
    assert http_get(port, '/nokey/x', headers={'apikey': KEY})[0] == 401


def test_spoofed_consumer_headers_never_reach_the_upstream(setup):
    g, b, port, admin, alog = setup('key-auth: {}')
    spoof = {'X-Consumer-Username': 'admin', 'X-Credential-Identifier': 'root', 'X-Consumer-Groups': 'admins'}
    assert http_get(port, '/open/x', headers=spoof)[0] == 200  # a route without auth
    r = b.requests[-1]
    for k in spoof:
        assert r.header(k) is None, k
    assert http_get(port, '/api/x', headers={'apikey': KEY2, **spoof})[0] == 200
    r = b.requests[-1]
    assert r.header_all('x-consumer-username') == ['beta']
    assert r.header_all('x-credential-identifier') == ['beta:key-auth:0']
    assert r.header_all('x-consumer-groups') == ['trial']
    # spelt in other cases, and several times, over one keep-alive connection
    req = (b'GET /open/y HTTP/1.1\r\nHost: a\r\nx-consumer-USERNAME: a\r\nX-CONSUMER-USERNAME: b\r\n\r\n'
           b'GET /api/y HTTP/1.1\r\nHost: a\r\napikey: ' + KEY.encode() +
           b'\r\nx-credential-identifier: z\r\nConnection: close\r\n\r\n')
    out = raw(port, req)
    assert out.count(b'HTTP/1.1 200 ') == 2
    assert b.requests[-2].header('x-consumer-username') is None
    assert b.requests[-1].header_all('x-credential-identifier') == ['acme:key-auth:0']


def test_per_consumer_filter_settings_override_the_route(setup):
    g, b, port, admin, alog = setup(
        'key-auth: {}, request-headers: { set: { x-tier: route } }',
        consumers_extra='''    filters: { request-headers: { set: { x-tier: "beta-${consumer}" } } }''')
    assert http_get(port, '/api/x', headers={'apikey': KEY})[0] == 200
    assert b.requests[-1].header('x-tier') == 'route'
    assert http_get(port, '/api/x', headers={'apikey': KEY2})[0] == 200
    assert b.requests[-1].header('x-tier') == 'beta-beta'


def test_auth_over_http2(gateway, backends, tmpdir_path):
    b = backends()
    port, admin = free_port(), free_port()
    alog = os.path.join(tmpdir_path, 'a.log')
    gateway(config(port, b.port, admin, alog, 'key-auth: { hide_credentials: true }', listener_extra=', http2: true'),
            workers=1)

    def curl(*args):
        out = subprocess.run(['curl', '-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}',
                              *args], capture_output=True, text=True, timeout=10)
        return int(out.stdout)
    assert curl('-H', f'apikey: {KEY}', '-H', 'x-consumer-username: evil', f'http://127.0.0.1:{port}/api/h2') == 200
    r = b.requests[-1]
    assert r.header_all('x-consumer-username') == ['acme'] and r.header('apikey') is None
    assert curl(f'http://127.0.0.1:{port}/api/h2') == 401
    assert curl('-H', 'apikey: x', f'http://127.0.0.1:{port}/api/h2') == 401


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    return pki.make(str(tmp_path_factory.mktemp('pki')))


def test_tls_auth_names_the_consumer_by_san_or_subject(gateway, backends, certs, tmpdir_path):
    from test_tls import client_ctx, get
    b = backends()
    port = free_port()
    certs_l = ', '.join(f'{{ cert: {certs[n + ".crt"]}, key: {certs[n + ".key"]} }}' for n in ('a-rsa',))
    gateway(f'''listeners:
  - name: tls
    address: 127.0.0.1:{port}
    tls: {{ certificates: [{certs_l}], client_ca: {certs["ca.crt"]}, verify: optional }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
consumers:
  - name: ops
    credentials: [{{ type: tls-client, san: ops@example.com }}]
  - name: by-subject
    credentials: [{{ type: tls-client, subject: "CN=a.test,O=Portico Tests" }}]
  - name: keyed
    credentials: [{{ type: key-auth, key: "{KEY}" }}]
routes:
  - name: api
    match: {{ paths: ["/api/*"] }}
    upstream: up
    filters: {{ tls-auth: {{}}, key-auth: {{}} }}
''', workers=1)
    st, _, _ = get(port, client_ctx(certs, cert='client'), path='/api/c')
    assert st == 200
    r = b.requests[-1]
    assert (r.header('x-consumer-username'), r.header('x-credential-identifier')) == ('ops', 'ops@example.com')
    # a certificate of the CA that names no consumer: refused, though a key would have done
    crt, key = pki.client_with_sans(os.path.dirname(certs['ca.crt']), 'nobody', b'nobody.example')
    ctx = client_ctx(certs)
    ctx.load_cert_chain(crt, key)
    st, body, _ = get(port, ctx, path='/api/c', headers=f'apikey: {KEY}\r\n')
    assert st == 401 and b'names no consumer' in body
    # no certificate: key-auth decides
    st, _, _ = get(port, client_ctx(certs), path='/api/c', headers=f'apikey: {KEY}\r\n')
    assert st == 200 and b.requests[-1].header('x-consumer-username') == 'keyed'
    st, _, _ = get(port, client_ctx(certs), path='/api/c')
    assert st == 401


def test_tls_auth_by_subject(gateway, backends, certs):
    from test_tls import client_ctx, get
    b = backends()
    port = free_port()
    cl = f'{{ cert: {certs["a-rsa.crt"]}, key: {certs["a-rsa.key"]} }}'
    gateway(f'''listeners:
  - {{ name: tls, address: "127.0.0.1:{port}", tls: {{ certificates: [{cl}], client_ca: {certs["ca.crt"]} }} }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
consumers:
  - name: c1
    credentials: [{{ type: tls-client, subject: "O=Portico Tests,CN=client-1" }}]
routes:
  - {{ name: api, match: {{ paths: ["/*"] }}, upstream: up, filters: {{ tls-auth: {{ san: false }} }} }}
''', workers=1)
    assert get(port, client_ctx(certs, cert='client'), path='/s')[0] == 200
    assert b.requests[-1].header('x-consumer-username') == 'c1'


def test_configuration_errors_are_located(tmp_path):
    base = 'listeners: [{ name: m, address: "127.0.0.1:1" }]\nroutes: [{ name: r, respond: {} }]\nconsumers:\n'
    cases = [
        ('  - { name: a, credentials: [{ type: key-auth }] }\n', '4:30: error: consumers[0].credentials[0]: a '
         'key-auth credential has key or key_sha256 (one of them)'),
        ('  - { name: a, credentials: [{ type: key-auth, key_sha256: abc }] }\n',
         'key_sha256: 64 hex digits, not 3 characters'),
        ('  - { name: a, credentials: [{ type: basic-auth, username: u, password: plain }] }\n',
         'not a crypt(3) hash of bcrypt'),
        ('  - { name: a, credentials: [{ type: basic-auth, username: u, password: "$2y$05$short" }] }\n',
         'a malformed crypt(3) hash'),
        ('  - { name: a, credentials: [{ type: key-auth, key: k, username: u }] }\n',
         'a key-auth credential has no username'),
        ('  - { name: a, credentials: [{ type: password }] }\n', 'unknown value "password"'),
        ('  - { name: a, credentials: [{ type: key-auth, key: same }] }\n'
         '  - { name: b, credentials: [{ type: key-auth, key: same }] }\n',
         'consumer "b": a key-auth credential with the same API key as consumer "a"\'s'),
        ('  - { name: a, credentials: [{ type: tls-client, san: x, subject: y }] }\n',
         'a tls-client credential has san or subject (one of them)'),
    ]
    for text, want in cases:
        f = tmp_path / 'p.yaml'
        f.write_text(base + text)
        r = run_portico('-t', '-c', str(f))
        assert r.returncode == 1 and want in r.stderr, (want, r.stderr)
        assert 'same' not in r.stderr.replace('the same', '') or 'same' in want


def test_no_key_or_password_in_dump_status_or_logs(setup, tmp_path):
    g, b, port, admin, alog = setup('key-auth: {}, basic-auth: {}')
    http_get(port, f'/api/x?apikey={KEY}')
    http_get(port, '/api/x', headers={'Authorization': basic('bob', PASSWORD)})
    http_get(port, '/api/x', headers={'Authorization': basic('bob', 'wrong-' + PASSWORD)})
    http_get(port, '/api/x', headers={'apikey': KEY2 + 'x'})
    dump = run_portico('-T', '-c', g.conf).stdout
    st = http_get(admin, '/status')[2].decode()
    log_lines(alog, 4)
    for text in (dump, st, open(alog).read(), g.log()):
        for secret in (KEY, KEY2, PASSWORD, sha256_hex(KEY2)):
            assert secret not in text
    assert '<redacted>' in dump
