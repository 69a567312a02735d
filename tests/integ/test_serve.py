"""Serving respond routes over HTTP/1.1: keep-alive, pipelining, HEAD,
404/405, errors, the admin status page and the access log."""
import hashlib
import http.client
import json
import os
import re
import socket
import time

from conftest import basic_config, free_port, http_get, raw, read_all, wait_for

ROUTES = '''
- name: hello
  match: { paths: [/hello], methods: [GET] }
  respond: { status: 200, body: "hello\\n", headers: { x-route: hello } }
- name: items
  match: { paths: ["/items/:id"] }
  respond: { status: 201, body: "item\\n" }
- name: only-host
  match: { hosts: [api.example.com], paths: ["/h"] }
  respond: { status: 200, body: "api host\\n" }
- name: teapot
  match: { paths: [/tea] }
  respond: { status: 418, headers: { content-type: application/json }, body: '{"short":"stout"}' }
'''


def statuses_of(stream):
    """Status codes of a stream of responses, each parsed by its framing."""
    out, pos = [], 0
    while pos < len(stream):
        head_end = stream.index(b'\r\n\r\n', pos)
        head = stream[pos:head_end].decode()
        out.append(int(head.split()[1]))
        length = int(re.search(r'(?im)^content-length: *(\d+)', head).group(1))
        pos = head_end + 4 + length
    return out


def test_respond_route_and_headers(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    status, headers, body = http_get(port, '/hello')
    assert (status, body) == (200, b'hello\n')
    assert headers['x-route'] == 'hello'
    assert headers['Content-Length'] == '6'
    assert headers['Content-Type'] == 'text/plain'
    assert headers['Server'] == 'portico'
    assert 'GMT' in headers['Date']
    status, headers, body = http_get(port, '/tea')
    assert status == 418 and headers['content-type'] == 'application/json' and json.loads(body) == {'short': 'stout'}
    assert http_get(port, '/items/42')[0] == 201
    assert http_get(port, '/h', host='API.example.com:8080')[2] == b'api host\n'
    assert http_get(port, '/h', host='other.example.com')[0] == 404


def test_404_405_and_head(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    status, headers, body = http_get(port, '/nothing')
    assert status == 404 and body == b'404 Not Found\n'
    status, headers, body = http_get(port, '/hello', method='DELETE')
    assert status == 405 and headers['Allow'] == 'GET, HEAD'
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    c.request('HEAD', '/hello')
    r = c.getresponse()
    assert r.status == 200 and r.getheader('Content-Length') == '6' and r.read() == b''
    c.request('GET', '/hello')  # same connection: HEAD sent no body to confuse it
    assert c.getresponse().read() == b'hello\n'
    c.close()


def test_keep_alive_reuses_one_connection(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    c.connect()
    local = c.sock.getsockname()
    for _ in range(50):
        c.request('GET', '/hello')
        r = c.getresponse()
        assert r.status == 200 and r.read() == b'hello\n'
        assert c.sock is not None and c.sock.getsockname() == local
    c.close()


def test_http10_closes_unless_keep_alive(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    out = raw(port, b'GET /hello HTTP/1.0\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 200 OK\r\n') and b'Connection: close\r\n' in out and out.endswith(b'hello\n')
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    s.sendall(b'GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    time.sleep(0.2)
    first = s.recv(65536)
    assert b'Connection: keep-alive\r\n' in first
    s.sendall(b'GET /hello HTTP/1.0\r\n\r\n')
    assert s.recv(65536).endswith(b'hello\n')
    s.close()


def test_pipelined_requests_are_answered_in_order(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    reqs = b''.join(f'GET {p} HTTP/1.1\r\nHost: x\r\n\r\n'.encode() for p in
                    ['/hello', '/items/1', '/nothing', '/tea'] * 25)
    reqs += b'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    out = raw(port, reqs, timeout=10)
    assert statuses_of(out) == [200, 201, 404, 418] * 25 + [200]


def test_body_of_a_request_is_consumed_before_the_next(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    body = b'x' * 100000
    chunked = b'5\r\nhello\r\n0\r\n\r\n'
    reqs = (b'POST /items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n' % len(body) + body +
            b'POST /items/2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked +
            b'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    out = raw(port, reqs, timeout=10)
    assert statuses_of(out) == [201, 201, 200]


def test_bad_requests_get_4xx_and_close(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    cases = [
        (b'GET /hello HTTP/1.1\r\n\r\n', 400),  # no Host
        (b'GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 400),
        (b'GET /hello HTTP/2.0\r\nHost: a\r\n\r\n', 505),
        (b'GET /' + b'a' * 9000 + b' HTTP/1.1\r\nHost: a\r\n\r\n', 414),
        (b'GET /hello HTTP/1.1\r\nHost: a\r\n' + b'X-A: b\r\n' * 101 + b'\r\n', 431),
        (b'GET /hello HTTP/1.1\r\nHost: a\r\nX: ' + b'b' * 33000 + b'\r\n\r\n', 431),
    ]
    for req, want in cases:
        out = raw(port, req + b'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n')
        assert out.startswith(b'HTTP/1.1 %d ' % want), (req[:60], out[:80])
        assert b'Connection: close\r\n' in out
        assert out.count(b'HTTP/1.1 ') == 1  # the request after it was not answered: closed


def test_bad_request_line_is_answered_before_the_head_ends(gateway):
    """A request line that cannot be good (no version, HTTP/0.9 style, an
    unsupported version, a double space) gets its answer as soon as its CRLF
    arrives, with the socket left open by the client: it must not wait for
    an empty line an HTTP/0.9 client never sends, nor for the header timeout
    (an hour here, far past the socket's 10 s)."""
    port = free_port()
    gateway(basic_config(port, routes=ROUTES).replace('    address: 127.0.0.1:%d\n' % port,
                                                      '    address: 127.0.0.1:%d\n    timeouts: { header: 1h }\n'
                                                      % port))
    cases = [
        (b'GET /x\r\n', 400),
        (b'GET /hello\r\n', 400),  # HTTP/0.9 style
        (b'GET /x HTTP/2.0\r\n', 505),
        (b'GET  /x HTTP/1.1\r\n', 400),
    ]
    for req, want in cases:
        s = socket.create_connection(('127.0.0.1', port), timeout=10)
        try:
            s.sendall(req)
            out = b''
            while b'\r\n\r\n' not in out:
                b = s.recv(65536)  # socket.timeout here: the gateway waited
                assert b, (req, out)
                out += b
            assert out.startswith(b'HTTP/1.1 %d ' % want), (req, out[:80])
            assert b'Connection: close\r\n' in out
        finally:
            s.close()


def test_good_request_line_waits_for_the_rest_of_the_head(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    try:
        s.sendall(b'GET /hello HTTP/1.1\r\n')  # one CRLF: the head is not over
        s.setblocking(False)
        try:
            early = s.recv(100)
        except BlockingIOError:
            early = None
        s.setblocking(True)
        s.settimeout(10)
        assert early is None, early
        s.sendall(b'Host: a\r\nConnection: close\r\n\r\n')
        out = read_all(s)
        assert out.startswith(b'HTTP/1.1 200 ') and out.endswith(b'hello\n'), out[:80]
    finally:
        s.close()


def test_header_timeout_gives_408(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES).replace('    address: 127.0.0.1:%d\n' % port,
                                                      '    address: 127.0.0.1:%d\n    timeouts: { header: 500ms }\n'
                                                      % port))
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    t0 = time.time()
    s.sendall(b'GET /hello HTTP/1.1\r\nHost: a\r\n')  # never finished
    out = s.recv(65536)
    assert out.startswith(b'HTTP/1.1 408 '), out
    assert 0.3 < time.time() - t0 < 3
    assert s.recv(100) == b''
    s.close()


def test_idle_keep_alive_connection_is_closed(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES).replace('    address: 127.0.0.1:%d\n' % port,
                                                      '    address: 127.0.0.1:%d\n    timeouts: { idle: 300ms }\n'
                                                      % port))
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    s.sendall(b'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n')
    assert s.recv(65536).endswith(b'hello\n')
    t0 = time.time()
    assert s.recv(100) == b''  # closed, with no 408
    assert time.time() - t0 < 3
    s.close()


def test_admin_status(gateway):
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin_port=admin, routes=ROUTES), workers=2)
    status, headers, body = http_get(admin, '/status')
    assert status == 200 and headers['Content-Type'] == 'application/json'
    st = json.loads(body)
    assert st['master_pid'] == g.proc.pid
    assert st['generation'] == 1
    assert st['version'].startswith('0.')
    assert st['config']['file'] == g.conf
    assert st['config']['sha256'] == hashlib.sha256(open(g.conf, 'rb').read()).hexdigest()
    assert st['config']['loaded'].endswith('Z')
    pids = sorted(w['pid'] for w in st['workers'])
    assert pids == g.worker_pids() and len(pids) == 2
    assert all(w['state'] == 'running' and w['generation'] == 1 for w in st['workers'])
    assert st['served_by'] in pids
    assert http_get(admin, '/nope')[0] == 404
    assert http_get(admin, '/status', method='POST')[0] == 405
    # the admin listener does not serve routes, and routes do not serve /status
    assert http_get(port, '/status')[0] == 404


def test_access_log_json(gateway, tmpdir_path):
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(basic_config(port, extra=f'access_log: {{ path: {log}, format: json, flush: 200ms }}', routes=ROUTES))
    http_get(port, '/hello', headers={'User-Agent': 'pytest "quoted"'})
    http_get(port, '/nothing')
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= 2, what='two access log lines')
    # two workers flush on their own: find the lines by target
    lines = sorted((json.loads(l) for l in open(log).read().splitlines()), key=lambda e: e['target'])
    first = lines[0]
    assert first['method'] == 'GET' and first['target'] == '/hello' and first['status'] == 200
    assert first['remote_addr'] == '127.0.0.1' and first['route'] == 'hello'
    assert first['user_agent'] == 'pytest "quoted"'
    assert first['bytes_out'] > 6 and first['bytes_in'] > 20
    assert len(first['request_id']) == 32
    assert lines[1]['status'] == 404
    assert lines[0]['request_id'] != lines[1]['request_id']


def test_access_log_custom_format(gateway, tmpdir_path):
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(basic_config(port, extra=f'access_log: {{ path: {log}, format: "$method $target $status $route '
                                     f'id=$param_id" }}', routes=ROUTES))
    http_get(port, '/items/7', method='PUT')
    wait_for(lambda: os.path.exists(log) and open(log).read(), timeout=5, what='access log line')
    assert open(log).read() == 'PUT /items/7 201 items id=7\n'
