"""Issue 13: forward-auth against a real auth service the test runs (an
HTTP server on loopback): allow with headers copied upstream, deny with
the service's body and headers, a service that times out or is down (503,
logged, never passed through), a client that leaves while the service
thinks, an upstream named by the URL's host, and HTTP/2 clients."""
import json
import os
import re
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port, http_get, read_all, wait_for


class AuthService:
    """Answers by the request's X-Forwarded-Uri: /api/ok* allows, /api/login*
    redirects, /api/slow* sleeps 3 s, anything else is 401.  Records what
    it got."""

    def __init__(self):
        self.seen = []
        svc = self

        class H(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def do_GET(self):
                svc.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                uri = self.headers.get('X-Forwarded-Uri', '')
                if uri.startswith('/api/slow'):
                    time.sleep(3)
                if uri.startswith('/api/ok'):
                    self._send(200, b'', [('X-User-Id', 'u-42'), ('X-Other', 'no')])
                elif uri.startswith('/api/login'):
                    self._send(302, b'', [('Location', 'https://login.example/?next=x')])
                else:
                    self._send(401, b'{"error":"who are you"}', [('WWW-Authenticate', 'Bearer realm="svc"'),
                                                                  ('Content-Type', 'application/json'),
                                                                  ('X-Secret-Internal', 'no')])

            def _send(self, status, body, headers):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def auth():
    s = AuthService()
    yield s
    s.stop()


def cfg(port, bport, uri, extra_filters='', listener_extra='', upstreams_extra=''):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}{listener_extra} }}]
upstreams:
  - {{ name: up, targets: ["127.0.0.1:{bport}"] }}
{upstreams_extra}
routes:
  - name: api
    match: {{ paths: ["/api/*"] }}
    upstream: up
    filters:
      forward-auth: {{ uri: "{uri}", request_headers: [authorization, cookie], upstream_headers: [x-user-id],
                      client_headers: [www-authenticate, location], timeout: 1s }}
{extra_filters}
'''


def test_allow_copies_the_chosen_headers_and_tells_the_service_about_the_request(gateway, backends, auth):
    b = backends()
    port = free_port()
    gateway(cfg(port, b.port, f'http://127.0.0.1:{auth.port}/check?v=1'), workers=1)
    st, _, _ = http_get(port, '/api/ok?q=1', host='shop.example',
                        headers={'Authorization': 'Bearer t', 'Cookie': 's=1', 'X-Private': 'p',
                                 'X-User-Id': 'spoofed'})
    assert st == 200
    path, h = auth.seen[-1]
    assert path == '/check?v=1'
    assert h['authorization'] == 'Bearer t' and h['cookie'] == 's=1' and 'x-private' not in h
    assert (h['x-forwarded-method'], h['x-forwarded-uri'], h['x-forwarded-host']) == ('GET', '/api/ok?q=1',
                                                                                       'shop.example')
    assert h['x-forwarded-proto'] == 'http' and h['x-forwarded-for'] == '127.0.0.1'
    assert h['host'] == f'127.0.0.1:{auth.port}'
    r = b.requests[-1]
    assert r.header_all('x-user-id') == ['u-42'] and r.header('x-other') is None
    assert r.header('authorization') == 'Bearer t'
    # several requests on one keep-alive connection each ask
    n = len(auth.seen)
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'GET /api/ok1 HTTP/1.1\r\nHost: a\r\n\r\nGET /api/no HTTP/1.1\r\nHost: a\r\n\r\n'
              b'GET /api/ok2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    data = read_all(s)
    s.close()
    assert re.findall(rb'HTTP/1\.1 (\d{3}) ', data) == [b'200', b'401', b'200']
    assert len(auth.seen) == n + 3


def test_deny_passes_the_service_answer_on(gateway, backends, auth):
    b = backends()
    port = free_port()
    gateway(cfg(port, b.port, f'http://127.0.0.1:{auth.port}/check'), workers=1)
    n = len(b.requests)
    st, h, body = http_get(port, '/api/nope')
    assert st == 401 and json.loads(body) == {'error': 'who are you'}
    assert h['WWW-Authenticate'] == 'Bearer realm="svc"' and h['Content-Type'] == 'application/json'
    assert 'X-Secret-Internal' not in h
    st, h, body = http_get(port, '/api/login')
    assert st == 302 and h['Location'] == 'https://login.example/?next=x'
    st, h, body = http_get(port, '/api/nope', method='HEAD')
    assert st == 401 and body == b''
    assert len(b.requests) == n


def test_a_slow_or_dead_service_is_503_and_logged(gateway, backends, auth):
    b = backends()
    port = free_port()
    g = gateway(cfg(port, b.port, f'http://127.0.0.1:{auth.port}/check'), workers=1)
    t0 = time.monotonic()
    st, _, body = http_get(port, '/api/slow')
    assert st == 503 and json.loads(body) == {'message': 'The auth service is unavailable'}
    assert time.monotonic() - t0 < 2.5
    g.wait_log(r'forward-auth http://127\.0\.0\.1:\d+/check: timed out')
    dead = free_port()
    port2 = free_port()
    g2 = gateway(cfg(port2, b.port, f'http://127.0.0.1:{dead}/check'), workers=1)
    assert http_get(port2, '/api/ok')[0] == 503
    g2.wait_log(r'forward-auth http://127\.0\.0\.1:\d+/check: failed')
    assert all(r.target != '/api/slow' and r.target != '/api/ok' for r in b.requests)


def test_a_client_that_leaves_while_the_service_thinks(gateway, backends, auth):
    b = backends()
    port = free_port()
    g = gateway(cfg(port, b.port, f'http://127.0.0.1:{auth.port}/check'), workers=1)
    for _ in range(5):
        s = socket.create_connection(('127.0.0.1', port))
        s.sendall(b'GET /api/slow HTTP/1.1\r\nHost: a\r\n\r\n')
        time.sleep(0.05)
        s.close()
    time.sleep(1.5)
    assert http_get(port, '/api/ok')[0] == 200  # the worker is fine
    assert g.proc.poll() is None and 'AddressSanitizer' not in g.log()


def test_an_upstream_named_by_the_host_with_its_own_settings(gateway, backends, auth):
    b = backends()
    port = free_port()
    gateway(cfg(port, b.port, 'http://authsvc/check',
                upstreams_extra=f'  - {{ name: authsvc, targets: ["127.0.0.1:{free_port()}", '
                                f'"127.0.0.1:{auth.port}"], retries: 1 }}'), workers=1)
    for _ in range(4):
        assert http_get(port, '/api/ok')[0] in (200, 503)
    assert any(http_get(port, '/api/ok')[0] == 200 for _ in range(6))
    assert auth.seen[-1][1]['host'] == 'authsvc'


def test_forward_auth_over_http2_and_after_key_auth(gateway, backends, auth):
    b = backends()
    port = free_port()
    gateway(cfg(port, b.port, f'http://127.0.0.1:{auth.port}/check', listener_extra=', http2: true',
                extra_filters='      key-auth: {}\nconsumers:\n  - { name: k, credentials: [{ type: key-auth, '
                              'key: "forward-key-0123456789" }] }'), workers=1)

    def curl(path, *args):
        out = subprocess.run(['curl', '-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}',
                              *args, f'http://127.0.0.1:{port}{path}'], capture_output=True, text=True, timeout=10)
        return int(out.stdout)
    n = len(auth.seen)
    assert curl('/api/ok') == 200 and b.requests[-1].header('x-user-id') == 'u-42'
    assert curl('/api/no') == 401
    assert len(auth.seen) == n + 2
    # a key decides first: the service is not asked
    assert curl('/api/no', '-H', 'apikey: forward-key-0123456789') == 200
    assert len(auth.seen) == n + 2 and b.requests[-1].header('x-consumer-username') == 'k'
    assert curl('/api/no', '-H', 'apikey: wrong') == 401 and len(auth.seen) == n + 2


def test_uri_errors_are_located(tmp_path):
    from conftest import run_portico
    for uri, want in (('ftp://x/check', 'a URL starting with http:// or https://'),
                      ('http://[::1/x', 'an IPv6 address in brackets'),
                      ('http://h:99999/x', 'a port from 1 to 65535'),
                      ('http://user@h/x', 'a host without user information')):
        f = tmp_path / 'p.yaml'
        f.write_text(f'listeners: [{{ name: m, address: "127.0.0.1:1" }}]\nroutes:\n  - name: r\n    respond: {{}}\n'
                     f'    filters: {{ forward-auth: {{ uri: "{uri}" }} }}\n')
        r = run_portico('-t', '-c', str(f))
        assert r.returncode == 1 and 'p.yaml:5:' in r.stderr and want in r.stderr, (uri, r.stderr)


def test_a_request_body_waits_for_the_answer_and_goes_on_whole(gateway, backends, auth):
    from conftest import request
    b = backends()
    port = free_port()
    gateway(cfg(port, b.port, f'http://127.0.0.1:{auth.port}/check'), workers=1)
    body = os.urandom(300000)
    st, _, _ = request(port, 'POST', '/api/ok-upload', body=body, headers={'Content-Type': 'application/octet-stream'})
    assert st == 200
    import hashlib
    r = b.requests[-1]
    assert r.body_len == len(body) and r.body_md5 == hashlib.md5(body).hexdigest()
    # refused with a body: the body never reaches the upstream, and the next request on the connection is clean
    n = len(b.requests)
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    s.sendall(b'POST /api/no HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /api/ok HTTP/1.1\r\nHost: a\r\n'
              b'Connection: close\r\n\r\n')
    data = read_all(s)
    s.close()
    assert re.findall(rb'HTTP/1\.1 (\d{3}) ', data) in ([b'401', b'200'], [b'401'])
    assert [r.target for r in b.requests[n:]] in (['/api/ok'], [])
    assert all(r.method != 'POST' or r.target != '/api/no' for r in b.requests)
