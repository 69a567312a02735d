"""The reverse proxy: what reaches the backend, bodies in every framing,
keep-alive reuse, timeouts, retries, pipelining and limits."""
import hashlib
import http.client
import json
import os
import re
import socket
import time

import pytest

from backend import black_hole, dead_port, pattern_md5
from conftest import free_port, http_get, proxy_config, raw, request, wait_for


def bodies_of(stream):
    """The bodies of a stream of Content-Length responses, in order."""
    out, pos = [], 0
    while pos < len(stream):
        end = stream.index(b'\r\n\r\n', pos)
        n = int(re.search(rb'(?im)^content-length: *(\d+)', stream[pos:end]).group(1))
        out.append(stream[end + 4:end + 4 + n])
        pos = end + 4 + n
    return out


def test_request_headers_as_the_backend_sees_them(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]))
    status, _, body = request(port, 'GET', '/a/b?x=1', headers={
        'Host': 'api.example.com', 'Connection': 'keep-alive, X-Hop', 'X-Hop': 'secret', 'Keep-Alive': 'timeout=5',
        'TE': 'trailers', 'Trailer': 'x', 'Proxy-Connection': 'keep-alive', 'Upgrade': 'h2c',
        'X-Forwarded-For': '6.6.6.6', 'X-Real-IP': '6.6.6.6', 'X-Forwarded-Proto': 'https',
        'X-Custom': 'kept'})
    assert status == 200 and body == b'ok /a/b'
    r = b.requests[-1]
    assert r.method == 'GET' and r.target == '/a/b?x=1' and r.version == 'HTTP/1.1'
    names = {k.lower() for k, _ in r.headers}
    for gone in ('connection', 'x-hop', 'keep-alive', 'te', 'trailer', 'proxy-connection', 'upgrade'):
        assert gone not in names, gone
    assert r.header('host') == 'api.example.com'
    assert r.header('x-custom') == 'kept'
    # the client is not trusted: its forwarding headers are replaced
    assert r.header_all('x-forwarded-for') == ['127.0.0.1']
    assert r.header('x-real-ip') == '127.0.0.1'
    assert r.header('x-forwarded-proto') == 'http'
    assert r.header('x-forwarded-host') == 'api.example.com'
    assert re.fullmatch(r'[0-9a-f]{32}', r.header('x-request-id'))


def test_trusted_proxies_extend_forwarding_headers(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port], extra='trusted_proxies: [127.0.0.0/8]'))
    request(port, 'GET', '/', headers={'X-Forwarded-For': '203.0.113.9', 'X-Forwarded-Proto': 'https',
                                       'X-Real-IP': '203.0.113.9', 'X-Request-Id': 'abc-123'})
    r = b.requests[-1]
    assert r.header('x-forwarded-for') == '203.0.113.9, 127.0.0.1'
    assert r.header('x-forwarded-proto') == 'https'
    assert r.header('x-real-ip') == '203.0.113.9'
    assert r.header('x-request-id') == 'abc-123'  # an incoming id is kept


def test_strip_prefix_upstream_host_and_request_id_in_the_log(gateway, backends, tmpdir_path):
    b = backends()
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(proxy_config(port, [b.port], route='strip_prefix: /api\nupstream_host: internal.svc',
                         extra=f'access_log: {{ path: {log}, format: json, flush: 100ms }}'), workers=1)
    status, _, body = request(port, 'GET', '/api/users/7?q=1', headers={'Host': 'public.example'})
    assert status == 200 and body == b'ok /users/7'
    r = b.requests[-1]
    assert r.target == '/users/7?q=1' and r.header('host') == 'internal.svc'
    assert r.header('x-forwarded-host') == 'public.example'
    request(port, 'GET', '/api')
    assert b.requests[-1].target == '/'
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= 2, what='access log')
    e = json.loads(open(log).read().splitlines()[0])
    assert e['request_id'] == r.header('x-request-id')
    assert e['upstream_addr'] == f'127.0.0.1:{b.port}' and e['upstream_status'] == 200
    assert e['upstream_time'] is not None and e['route'] == 'main' and e['status'] == 200


@pytest.mark.parametrize('req_framing', ['none', 'length', 'chunked'])
@pytest.mark.parametrize('resp_path', ['/echo', '/chunked?parts=5', '/close-delimited', '/big?size=3000000',
                                       '/big?size=3000000&chunked=1'])
def test_bodies_in_every_framing(gateway, backends, req_framing, resp_path):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    payload = os.urandom(700000)
    s = socket.create_connection(('127.0.0.1', port), timeout=20)
    head = f'POST {resp_path} HTTP/1.1\r\nHost: t\r\n'.encode()
    if req_framing == 'length':
        s.sendall(head + b'Content-Length: %d\r\n\r\n' % len(payload) + payload)
    elif req_framing == 'chunked':
        s.sendall(head + b'Transfer-Encoding: chunked\r\n\r\n')
        for i in range(0, len(payload), 100000):
            part = payload[i:i + 100000]
            s.sendall(b'%x;ext=1\r\n' % len(part) + part + b'\r\n')
        s.sendall(b'0\r\nX-Trailer: t\r\n\r\n')
    else:
        payload = b''
        s.sendall(head + b'\r\n')
    f = s.makefile('rb')
    resp = http.client.HTTPResponse(s)
    resp.begin()
    body = resp.read()
    s.close()
    assert resp.status == 200
    r = b.requests[-1]
    assert r.body_len == len(payload) and r.body_md5 == hashlib.md5(payload).hexdigest()
    assert r.chunked == (req_framing == 'chunked')  # framing is kept, re-encoded
    if resp_path == '/echo':
        assert body == payload
    elif resp_path.startswith('/chunked'):
        assert body == b'part0;part1;part2;part3;part4;'
    elif resp_path == '/close-delimited':
        assert body == b'until the end'
        assert resp.getheader('Transfer-Encoding') == 'chunked'  # the client keeps its connection
    else:
        assert len(body) == 3000000 and hashlib.md5(body).hexdigest() == pattern_md5(3000000)
    f.close()


def test_upstream_keep_alive_reuses_connections(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=2)
    for i in range(10):
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        for k in range(100):
            c.request('GET', f'/n{i}-{k}')
            r = c.getresponse()
            assert r.status == 200 and r.read() == f'ok /n{i}-{k}'.encode()
        c.close()
    assert len(b.requests) == 1000
    assert b.connections <= 4, b.connections  # one per worker, or close to it


def test_keepalive_requests_limit_rotates_connections(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port], upstream='keepalive: { size: 4, requests: 10 }'), workers=1)
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    for k in range(50):
        c.request('GET', '/x')
        assert c.getresponse().read() == b'ok /x'
    assert b.connections == 5


def test_dead_target_gives_502_with_a_log_line(gateway):
    port, dead = free_port(), dead_port()
    g = gateway(proxy_config(port, [dead], upstream='retries: 0'))
    t0 = time.time()
    status, _, body = request(port, 'GET', '/x')
    assert status == 502 and body == b'502 Bad Gateway\n'
    assert time.time() - t0 < 2
    g.wait_log(rf'connect\(\) failed: Connection refused while connecting to upstream, client=127\.0\.0\.1:\d+ '
               rf'route=main upstream=up target=127\.0\.0\.1:{dead}')


def test_connect_timeout_gives_504(gateway):
    port = free_port()
    hole, hport, fillers = black_hole()
    try:
        g = gateway(proxy_config(port, [hport], upstream='retries: 0\ntimeouts: { connect: 300ms }'))
        t0 = time.time()
        status, _, _ = request(port, 'GET', '/x')
        took = time.time() - t0
        assert status == 504 and 0.25 < took < 3, took
        g.wait_log(rf'upstream timed out connecting while connecting to upstream.*target=127\.0\.0\.1:{hport}')
    finally:
        hole.close()
        for f in fillers:
            f.close()


def test_read_timeout_gives_504_within_the_configured_time(gateway, backends):
    b = backends()
    port = free_port()
    g = gateway(proxy_config(port, [b.port], upstream='retries: 0\ntimeouts: { read: 500ms }'))
    t0 = time.time()
    status, _, _ = request(port, 'GET', '/hang')
    took = time.time() - t0
    assert status == 504 and 0.45 < took < 3, took
    g.wait_log(r'upstream timed out while proxying the request.*route=main upstream=up')


def test_retries_go_to_another_target(gateway, backends):
    b = backends()
    port, dead = free_port(), dead_port()
    gateway(proxy_config(port, [dead, b.port], upstream='retries: 1'), workers=1)
    for i in range(20):
        status, _, body = request(port, 'POST', f'/r{i}', body=b'payload')
        assert status == 200, (i, status)  # connect failures are retried for any method
    assert len(b.requests) == 20


def test_timeouts_are_retried_only_for_idempotent_requests(gateway, backends):
    slow, fast = backends(delay_ms=1000), backends()
    port = free_port()
    gateway(proxy_config(port, [slow.port, fast.port], upstream='retries: 1\ntimeouts: { read: 300ms }'),
            workers=1)
    # Round robin alternates: each method meets the slow target once.  A GET
    # that times out there moves on to the fast one; a POST does not.
    gets = [request(port, 'GET', f'/g{i}')[0] for i in range(4)]
    posts = [request(port, 'POST', f'/p{i}', body=b'x')[0] for i in range(4)]
    assert gets == [200] * 4
    assert sorted(posts) == [200, 200, 504, 504]
    assert not [r for r in fast.requests if r.method == 'POST' and r.target in
                {s.target for s in slow.requests if s.method == 'POST'}]  # never sent twice


def test_without_retries_a_dead_target_fails(gateway, backends):
    b = backends()
    port, dead = free_port(), dead_port()
    gateway(proxy_config(port, [dead, b.port], upstream='retries: 0'), workers=1)
    statuses = [request(port, 'GET', '/x')[0] for _ in range(10)]
    assert statuses.count(502) == 5 and statuses.count(200) == 5


def test_a_pooled_connection_closed_by_the_upstream_is_retried(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port], upstream='retries: 0'), workers=1)
    for i in range(20):
        status, _, body = request(port, 'POST', '/stale', body=b'data')
        assert (status, body) == (200, b'stale-ok'), i
        time.sleep(0.1)  # the backend closes its side after 50 ms
    assert b.connections == 20


class OneShotUpstream:
    """Answers one request per connection with keep-alive, then resets the
    connection when the next request comes (as an upstream that closed it
    an instant before the gateway wrote): every pooled connection is stale."""

    def __init__(self):
        import threading
        self.ls = socket.socket()
        self.ls.bind(('127.0.0.1', 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.connections = self.answered = 0
        self.stop = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import threading
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        import struct
        f = c.makefile('rb')
        for n in range(2):
            line = f.readline()
            length = 0
            while line not in (b'\r\n', b''):
                line = f.readline()
                if line.lower().startswith(b'content-length:'):
                    length = int(line.split(b':')[1])
            body = f.read(length) if length else b''
            if n == 1 or not line:
                break
            time.sleep(0.2)  # the other requests come meanwhile: one connection each
            self.answered += 1  # before the client can have it
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nok %s' % (3 + len(body), body))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()

    def close(self):
        self.stop = True
        self.ls.close()


@pytest.mark.parametrize('method', ['GET', 'POST'])
def test_when_every_pooled_connection_is_stale_the_retry_takes_a_new_one(gateway, method):
    """An upstream that closed all its keep-alive connections with us at
    once (a restart, an idle sweep).  The stale-connection retry took the
    next pooled connection, stale as well, and the request got 502 with
    no log line at all (about 1 in 3,000 under the review's load; every
    time here).  It must be retried on a new connection and answered."""
    up = OneShotUpstream()
    port = free_port()
    g = gateway(proxy_config(port, [up.port], upstream='retries: 0\nkeepalive: { size: 16 }'), workers=1)
    try:
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(4) as ex:  # four pooled connections
            assert list(ex.map(lambda i: request(port, 'GET', f'/warm{i}')[0], range(4))) == [200] * 4
        assert up.connections == 4
        for i in range(3):
            status, _, body = request(port, method, f'/after{i}', body=b'data' if method == 'POST' else None)
            want = b'ok data' if method == 'POST' else b'ok '
            assert (status, body) == (200, want), (i, status, body, g.log()[-600:])
        assert up.connections >= 4 + 3 and up.answered == 4 + 3
        assert '[error]' not in g.log()
    finally:
        up.close()


def test_pipelined_requests_through_the_proxy_stay_in_order(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    paths = [f'/slow?ms={ms}' for ms in (120, 10, 60, 0, 30)] + ['/a', '/b', '/c']
    data = b''.join(f'GET {p} HTTP/1.1\r\nHost: x\r\n\r\n'.encode() for p in paths)
    data += b'GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    out = raw(port, data, timeout=10)
    bodies = bodies_of(out)
    assert bodies == [b'slow 120', b'slow 10', b'slow 60', b'slow 0', b'slow 30', b'ok /a', b'ok /b', b'ok /c',
                      b'ok /last']


def test_head_204_304_have_no_body(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    c.request('HEAD', '/big?size=5000')
    r = c.getresponse()
    assert r.status == 200 and r.getheader('Content-Length') == '5000' and r.read() == b''
    for st in (204, 304):
        c.request('GET', f'/status/{st}')
        r = c.getresponse()
        assert r.status == st and r.read() == b''
    c.request('GET', '/after')  # the connection is still in step
    assert c.getresponse().read() == b'ok /after'
    c.close()


def test_expect_100_continue(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    s.sendall(b'PUT /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n')
    assert s.recv(100) == b'HTTP/1.1 100 Continue\r\n\r\n'
    s.sendall(b'hello')
    out = s.recv(65536)
    assert out.startswith(b'HTTP/1.1 200 ') and out.endswith(b'hello')
    assert b'Connection: close' not in out  # the body was read: the connection goes on
    assert b.requests[-1].header('expect') is None
    s.sendall(b'GET /after HTTP/1.1\r\nHost: x\r\n\r\n')
    assert s.recv(65536).startswith(b'HTTP/1.1 200 ')
    s.close()


def test_absolute_form_target(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    out = raw(port, b'GET http://svc.example:8080/p?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 200 ')
    r = b.requests[-1]
    assert r.target == '/p?q=1' and r.header('host') == 'svc.example:8080'


def test_max_body_size_gives_413_and_nothing_reaches_the_backend(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port], route='max_body_size: 1k'), workers=1)
    out = raw(port, b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n' + b'x' * 5000)
    assert out.startswith(b'HTTP/1.1 413 ') and b'Connection: close' in out
    chunked = b''.join(b'100\r\n' + b'y' * 256 + b'\r\n' for _ in range(8)) + b'0\r\n\r\n'
    out = raw(port, b'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked)
    assert out.startswith(b'HTTP/1.1 413 ')
    assert all(r.body_len <= 1024 for r in b.requests)  # no complete oversized body got through
    status, _, _ = request(port, 'POST', '/echo', body=b'z' * 1000)
    assert status == 200


def test_slow_body_gets_408_but_a_normal_upload_passes(gateway, backends):
    b = backends()
    port = free_port()
    cfg = proxy_config(port, [b.port]).replace(
        f'    address: 127.0.0.1:{port}\n',
        f'    address: 127.0.0.1:{port}\n    timeouts: {{ body: 1s }}\n    min_body_rate: 1k\n')
    gateway(cfg, workers=1)
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
    t0 = time.time()
    out = b''
    for _ in range(30):  # a byte every 200 ms: every gap is short, the rate is not
        try:
            s.sendall(b'x')
        except OSError:
            break
        time.sleep(0.2)
        s.setblocking(False)
        try:
            out = s.recv(65536)
            break
        except BlockingIOError:
            pass
        finally:
            s.setblocking(True)
    took = time.time() - t0
    assert out.startswith(b'HTTP/1.1 408 '), out
    assert 0.9 < took < 3, took  # 1 s, plus 1 ms for each byte at 1k/s
    s.close()
    status, _, body = request(port, 'POST', '/sink', body=b'u' * 5000000)
    assert status == 200 and body.startswith(b'5000000 ')


MALFORMED = [
    (b'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc', 400),
    (b'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 400),
    (b'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3a\r\n\r\nabc', 400),
    (b'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 400),
    (b'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost : a\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n', 400),
    (b'GET / HTTP/1.2\r\nHost: a\r\n\r\n', 505),
    (b'GET / HTTP/1.1\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400),
    (b'GET /' + b'a' * 9000 + b' HTTP/1.1\r\nHost: a\r\n\r\n', 414),
    (b'GET / HTTP/1.1\r\nHost: a\r\n' + b'X-A: b\r\n' * 101 + b'\r\n', 431),
    (b'GET / HTTP/1.1\r\nHost: a\r\nX: ' + b'b' * 33000 + b'\r\n\r\n', 431),
    (b'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc\r\n0\r\n\r\n', 400),
]


def test_malformed_requests_never_reach_the_backend(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    for req, want in MALFORMED:
        out = raw(port, req + b'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n')
        assert out.startswith(b'HTTP/1.1 %d ' % want), (req[:70], out[:60])
        assert b'Connection: close' in out, req[:70]
        assert not any(r.target == '/smuggled' for r in b.requests), req[:70]
    # a bad chunked body is caught while streaming: its head may have gone
    # upstream, but never a complete request
    assert not [r for r in b.requests if r.method == 'POST']
