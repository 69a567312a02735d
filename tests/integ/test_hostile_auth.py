"""Issue 13, from the hostile review of the auth filters: each test fails
on the code the review ran against (3c776b3)."""
import base64
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port, http_get, raw, request, run_portico

KEY, KEY2 = 'hostile-key-0123456789abcdef', 'other-key-0123456789abcdef'


def basic(user, password):
    return 'Basic ' + base64.b64encode(f'{user}:{password}'.encode()).decode()


@pytest.fixture
def allow_all():
    """An auth service that answers 200, with X-User-Id only for Bearer alice-token."""
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            if self.headers.get('authorization') == 'Bearer alice-token':
                self.send_header('X-User-Id', 'alice')
            self.send_header('Content-Length', '0')
            self.end_headers()
    srv = ThreadingHTTPServer(('127.0.0.1', 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_forward_auth_upstream_headers_come_from_the_service_only(gateway, backends, allow_all):
    b = backends()
    port = free_port()
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - {{ name: api, match: {{ paths: ["/*"] }}, upstream: up,
      filters: {{ forward-auth: {{ uri: "http://127.0.0.1:{allow_all}/check", upstream_headers: [x-user-id] }} }} }}
''', workers=1)
    assert request(port, 'GET', '/a', headers={'Authorization': 'Bearer alice-token', 'X-User-Id': 'admin'})[0] == 200
    assert b.requests[-1].header_all('x-user-id') == ['alice']
    assert request(port, 'GET', '/b', headers={'X-User-Id': 'admin', 'x-USER-id': 'root', 'X_User_Id': 'x'})[0] == 200
    r = b.requests[-1]
    assert r.header_all('x-user-id') == [] and r.header_all('x_user_id') == []


CONSUMERS = f'''consumers:
  - name: bob
    groups: [users]
    credentials:
      - {{ type: key-auth, key: "{KEY}" }}
      - {{ type: basic-auth, username: bob, password: "PASSWORD_HASH" }}
  - name: eve
    credentials: [{{ type: key-auth, key: "{KEY2}" }}]
'''


def config(port, bport, filters, extra='', alog=None):
    h = subprocess.run(['htpasswd', '-nbB', '-C', '5', 'bob', 'pw'], capture_output=True, text=True).stdout.strip()
    log = f'access_log: {{ path: {alog}, format: "$target $status", flush: 50ms }}\n' if alog else ''
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
{log}upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"] }}]
{CONSUMERS.replace("PASSWORD_HASH", h.split(":", 1)[1])}{extra}
routes:
  - {{ name: api, match: {{ paths: ["/api/*"] }}, upstream: up, filters: {{ {filters} }} }}
  - {{ name: open, match: {{ paths: ["/open/*"] }}, upstream: up }}
  - {{ name: walled, match: {{ paths: ["/walled/*"] }}, upstream: up,
      filters: {{ ip-restriction: {{ deny: [127.0.0.0/8] }} }} }}
'''


def test_consumer_headers_with_underscores_never_pass(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, 'key-auth: {}'), workers=1)
    spoof = {'X_Consumer_Username': 'admin', 'X_Consumer_Groups': 'admins', 'x_credential_identifier': 'root'}
    for path, hdrs in (('/open/x', spoof), ('/api/x', {'apikey': KEY, **spoof})):
        assert http_get(port, path, headers=hdrs)[0] == 200
        names = {k.lower().replace('_', '-') for k, _ in b.requests[-1].headers}
        assert b.requests[-1].header_all('x_consumer_username') == []
        assert b.requests[-1].header_all('x_consumer_groups') == []
        assert 'x-credential-identifier' not in names or path == '/api/x'
    assert b.requests[-1].header_all('x-consumer-username') == ['bob']
    out = subprocess.run(['curl', '-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}',
                          '-H', 'X_Consumer_Username: admin', f'http://127.0.0.1:{port}/open/h2'],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout == '200' and b.requests[-1].header_all('x_consumer_username') == []


def test_a_credential_sent_twice_is_400(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, 'key-auth: {}, basic-auth: {}'), workers=1)
    n = len(b.requests)
    for head in (f'apikey: {KEY}\r\napikey: {KEY2}\r\n',
                 f'Authorization: {basic("bob", "pw")}\r\nAuthorization: {basic("admin", "x")}\r\n'):
        out = raw(port, f'GET /api/x HTTP/1.1\r\nHost: a\r\n{head}Connection: close\r\n\r\n'.encode())
        assert out.startswith(b'HTTP/1.1 400 '), out[:60]
    assert http_get(port, f'/api/q?apikey={KEY}&apikey={KEY2}')[0] == 400
    assert len(b.requests) == n


def test_hide_credentials_hides_every_copy(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, 'key-auth: { hide_credentials: true }, basic-auth: { hide_credentials: true }'),
            workers=1)
    # key-auth decides; the password beside it goes too
    assert http_get(port, '/api/x', headers={'apikey': KEY, 'Authorization': basic('bob', 'pw')})[0] == 200
    assert b.requests[-1].header('authorization') is None
    # the header key decides; another key in the query goes too
    assert http_get(port, f'/api/x?apikey={KEY2}&k=1', headers={'apikey': KEY})[0] == 200
    assert b.requests[-1].target == '/api/x?k=1' and b.requests[-1].header('x-consumer-username') == 'bob'
    # escaped names
    assert http_get(port, f'/api/x?api%6Bey={KEY}')[0] == 200
    assert b.requests[-1].target == '/api/x'


def test_keys_in_the_query_never_reach_the_access_log(gateway, backends, tmpdir_path):
    b = backends()
    port = free_port()
    alog = os.path.join(tmpdir_path, 'a.log')
    gateway(config(port, b.port, 'key-auth: {}', alog=alog), workers=1)
    for path in (f'/walled/x?apikey={KEY}', f'/nowhere?apikey={KEY}', f'/open/x?a=1&apikey={KEY2}',
                 f'/api/x?apikey={KEY}&b=1'):
        http_get(port, path, headers={'apikey': KEY})
    time.sleep(0.3)
    text = open(alog).read()
    assert KEY not in text and KEY2 not in text, text
    assert '/walled/x?apikey=*** 403' in text and '/open/x?a=1&apikey=*** 200' in text


@pytest.mark.parametrize('where', ['name', 'group', 'id', 'realm'])
def test_config_strings_that_go_into_headers_refuse_control_characters(tmp_path, where):
    base = 'listeners: [{ name: m, address: "127.0.0.1:1" }]\n'
    name, group, cid, realm = 'ok', 'g', 'i', 'r'
    evil = '"bad\\r\\nSet-Cookie: x=1"'
    if where == 'name':
        name = evil
    elif where == 'group':
        group = evil
    elif where == 'id':
        cid = evil
    else:
        realm = evil
    f = tmp_path / 'p.yaml'
    f.write_text(base + f'consumers:\n  - {{ name: {name}, groups: [{group}], credentials: [{{ type: key-auth, '
                        f'key: k0123456789, id: {cid} }}] }}\nroutes:\n  - {{ name: r, respond: {{}}, filters: '
                        f'{{ basic-auth: {{ realm: {realm} }}, key-auth: {{}} }} }}\n')
    r = run_portico('-t', '-c', str(f))
    assert r.returncode == 1 and 'control character' in r.stderr, r.stderr


def test_careless_configurations_are_told(tmp_path):
    h = subprocess.run(['htpasswd', '-nbB', '-C', '13', 'u', 'p'], capture_output=True, text=True).stdout.strip()
    f = tmp_path / 'p.yaml'
    f.write_text(f'''listeners: [{{ name: m, address: "127.0.0.1:1" }}]
consumers:
  - name: c
    groups: [partners]
    credentials: [{{ type: basic-auth, username: u, password: '{h.split(":", 1)[1]}' }}]
    filters: {{ ip-restriction: {{ deny: [10.0.0.0/8] }} }}
routes:
  - {{ name: a, match: {{ paths: [/a] }}, respond: {{}}, filters: {{ acl: {{ allow: [partners] }} }} }}
  - {{ name: b, match: {{ paths: [/b] }}, respond: {{}}, filters: {{ basic-auth: {{}}, acl: {{ allow: [partner] }} }} }}
  - {{ name: c, match: {{ paths: [/c] }}, respond: {{}}, filters: {{ key-auth: {{}}, hmac-auth: {{}} }} }}
''')
    r = run_portico('-t', '-c', str(f))
    assert r.returncode == 0, r.stderr
    for want in ('a costly hash (bcrypt cost 13)', 'ip-restriction for a consumer has no effect',
                 'route "a" has acl but no auth filter', 'acl: no consumer is in group "partner"',
                 'key-auth: no consumer has a key-auth credential', 'hmac-auth: no consumer has a hmac-auth credential'):
        assert want in r.stderr, (want, r.stderr)
    f.write_text('listeners: [{ name: m, address: "127.0.0.1:1" }]\nroutes:\n  - { name: r, respond: {}, '
                 'filters: { jwt-auth: { issuer: "", jwks: "https://idp.example/keys.json" } } }\n')
    r = run_portico('-t', '-c', str(f))
    assert r.returncode == 1 and 'an empty issuer matches no token' in r.stderr, r.stderr
    assert 'no upstream for' not in r.stderr  # jwks as a URL alone is uri's shorthand


def test_jwt_claims_at_the_ends_of_the_numbers(gateway, backends):
    import hashlib
    import hmac as hm
    b = backends()
    port = free_port()
    secret = 'a-secret-of-at-least-32-bytes-for-hs256!!'
    g = gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
consumers: [{{ name: c, credentials: [{{ type: jwt-auth, key: iss-1, algorithm: HS256, secret: "{secret}" }}] }}]
routes:
  - {{ name: api, match: {{ paths: ["/*"] }}, upstream: up,
      filters: {{ jwt-auth: {{ claims_to_verify: [exp, nbf], leeway: 30s }} }} }}
''', workers=1)
    pid = g.worker_pids()

    def token(claims):
        b64 = lambda x: base64.urlsafe_b64encode(x).rstrip(b'=').decode()  # noqa: E731
        si = b64(json.dumps({'alg': 'HS256'}).encode()) + '.' + b64(json.dumps(claims).encode())
        return si + '.' + b64(hm.new(secret.encode(), si.encode(), hashlib.sha256).digest())
    for claims, want in (({'iss': 'iss-1', 'nbf': -9223372036854775808, 'exp': 1e300}, 200),
                         ({'iss': 'iss-1', 'nbf': 1e300, 'exp': 1e300}, 401),
                         ({'iss': 'iss-1', 'nbf': 0, 'exp': -1e300}, 401)):
        for _ in range(2):  # the second from the cache
            assert http_get(port, '/x', headers={'Authorization': 'Bearer ' + token(claims)})[0] == want, claims
    assert g.worker_pids() == pid  # no worker died
