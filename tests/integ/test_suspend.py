"""Filters that wait on a request's body and on its response (issue 10):
the proxy holds the end of the body, or the upstream's response head, until
the filter resumes; the wait counts against timeouts.filters; a client that
leaves meanwhile is noticed.  fault-injection's delay.on drives them."""
import json
import os
import socket
import time

import pytest

from conftest import free_port, http_get, raw, request, wait_for


def config(port, bport, log, admin, on, duration='1s', filters_timeout='30s'):
    return f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
    timeouts: {{ filters: {filters_timeout} }}
admin: {{ address: 127.0.0.1:{admin} }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"], keepalive: {{ size: 4 }} }}]
access_log: {{ path: {log}, format: "$status $method $target", flush: 50ms }}
routes:
  - {{ name: held, match: {{ paths: ["/held/*"] }}, upstream: up,
      filters: {{ fault-injection: {{ delay: {{ duration: {duration}, on: {on} }} }},
                 response-headers: {{ set: {{ x-after: "yes" }} }} }} }}
  - {{ name: fixed, match: {{ paths: ["/fixed"] }}, respond: {{ body: "fixed\\n" }},
      filters: {{ fault-injection: {{ delay: {{ duration: {duration}, on: {on} }} }} }} }}
  - {{ name: other, match: {{ paths: ["/*"] }}, upstream: up }}
'''


def read_head(f):
    """The status line and the fields (names in lower case) of a response."""
    status = f.readline()
    hdrs = {}
    while True:
        ln = f.readline()
        if ln == b'\r\n':
            return status, hdrs
        k, _, v = ln.decode().partition(':')
        hdrs[k.lower()] = v.strip()


def log_lines(log, n):
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= n, what=f'{n} log lines')
    return open(log).read().splitlines()


def inflight(admin):
    st = json.loads(http_get(admin, '/status')[2])
    return sum(t['inflight'] for u in st['upstreams'] for t in u['targets'])


def test_a_response_held_by_a_filter(gateway, backends, tmpdir_path):
    b = backends()
    port, admin = free_port(), free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(config(port, b.port, log, admin, 'response'), workers=1)
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    f = s.makefile('rb')
    for i, path in enumerate(['/held/a', '/held/b']):  # two on one connection
        t0 = time.monotonic()
        s.sendall(f'GET {path} HTTP/1.1\r\nHost: t\r\n\r\n'.encode())
        wait_for(lambda: len(b.requests) == i + 1, what='the upstream got it')
        asked = time.monotonic()
        assert asked - t0 < 0.8  # the request went upstream at once: the response is what waits
        status, hdrs = read_head(f)
        answered = time.monotonic()
        body = f.read(int(hdrs['content-length']))
        assert status.startswith(b'HTTP/1.1 200') and body == f'ok {path}'.encode()
        assert hdrs['x-after'] == 'yes'  # the hooks before it in the reverse order ran after the wait
        assert answered - asked > 0.9, answered - asked
    s.close()
    # Portico's own answers are never held (nothing to hold them for)
    t0 = time.monotonic()
    assert request(port, 'GET', '/fixed')[2] == b'fixed\n' and time.monotonic() - t0 < 0.8
    assert log_lines(log, 3) == ['200 GET /held/a', '200 GET /held/b', '200 GET /fixed']
    assert b.connections == 1  # the upstream connection was reused after each held response
    wait_for(lambda: inflight(admin) == 0, what='in-flight back to 0')


def test_a_held_response_past_the_deadline_is_504(gateway, backends, tmpdir_path):
    b = backends()
    port, admin = free_port(), free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    g = gateway(config(port, b.port, log, admin, 'response', duration='5s', filters_timeout='300ms'), workers=1)
    t0 = time.monotonic()
    out = raw(port, b'GET /held/x HTTP/1.1\r\nHost: t\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 504 ') and time.monotonic() - t0 < 3
    assert log_lines(log, 1) == ['504 GET /held/x']
    assert g.count(r'waited on its filters longer than timeouts.filters') == 1
    # the upstream connection whose response was never read is not reused
    assert request(port, 'GET', '/other')[0] == 200
    assert b.connections == 2
    wait_for(lambda: inflight(admin) == 0, what='in-flight back to 0')


@pytest.mark.parametrize('on', ['response', 'body'])
def test_a_client_that_leaves_while_a_filter_holds_its_exchange(gateway, backends, tmpdir_path, on):
    b = backends()
    port, admin = free_port(), free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    g = gateway(config(port, b.port, log, admin, on, duration='3s'), workers=1)
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'POST /held/gone HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello')
    time.sleep(0.3)
    s.close()
    # noticed at once (not after the 3 s delay), logged, nothing waits any more
    assert log_lines(log, 1) == ['499 POST /held/gone']  # nothing was answered
    wait_for(lambda: inflight(admin) == 0, timeout=2, what='in-flight back to 0')
    time.sleep(3)  # past the delay: its timer was dropped, it does not fire into a freed request
    assert request(port, 'GET', '/other')[0] == 200
    assert g.proc.poll() is None


@pytest.mark.parametrize('framing', ['length', 'chunked'])
def test_the_end_of_a_body_held_by_a_filter(gateway, backends, tmpdir_path, framing):
    b = backends()
    port, admin = free_port(), free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(config(port, b.port, log, admin, 'body'), workers=1)
    body = os.urandom(200000)
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    f = s.makefile('rb')
    head = b'POST /held/echo HTTP/1.1\r\nHost: t\r\n'
    t0 = time.monotonic()
    if framing == 'length':
        s.sendall(head + b'Content-Length: %d\r\n\r\n' % len(body) + body)
    else:
        s.sendall(head + b'Transfer-Encoding: chunked\r\n\r\n' +
                  b''.join(b'%x\r\n%s\r\n' % (len(body[i:i + 50000]), body[i:i + 50000])
                           for i in range(0, len(body), 50000)) + b'0\r\n\r\n')
    status, hdrs = read_head(f)
    if 'content-length' in hdrs:
        got = f.read(int(hdrs['content-length']))
    else:
        got = b''
        while True:
            n = int(f.readline(), 16)
            if not n:
                f.readline()
                break
            got += f.read(n)
            f.readline()
    assert status.startswith(b'HTTP/1.1 200') and got == b'ok /held/echo'
    r = b.requests[-1]
    assert r.t - t0 > 0.9  # the upstream had the whole body only after the delay
    assert r.body == body and r.chunked == (framing == 'chunked')
    # a request without a body is not held
    t0 = time.monotonic()
    s.sendall(b'GET /held/nobody HTTP/1.1\r\nHost: t\r\n\r\n')
    assert f.readline().startswith(b'HTTP/1.1 200') and time.monotonic() - t0 < 0.8
    s.close()
    assert log_lines(log, 2) == ['200 POST /held/echo', '200 GET /held/nobody']


@pytest.mark.parametrize('size', [1, 5000, 300000])
def test_a_body_that_arrives_while_the_head_waits_on_a_filter(gateway, backends, tmpdir_path, size):
    """The head waits on a filter (delay on: request) and the body comes
    after it, in its own packets, before the wait is over: those bytes'
    edge has passed when the request goes on, and it must still read them
    (a look at the socket for a client that left forgot them, and the
    request hung until the client gave up)."""
    import hashlib
    b = backends(keep_body=1 << 20)
    port, admin = free_port(), free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(config(port, b.port, log, admin, 'request'), workers=1)
    body = os.urandom(size)
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(b'POST /held/up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n' % size)
    time.sleep(0.1)
    s.sendall(body)
    f = s.makefile('rb')
    status, hdrs = read_head(f)
    assert status.startswith(b'HTTP/1.1 200 ')
    f.read(int(hdrs['content-length']))
    r = b.requests[-1]
    assert (r.target, r.body_len, r.body_md5) == ('/held/up', size, hashlib.md5(body).hexdigest())
    # and the connection goes on
    s.sendall(b'GET /other HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
    assert read_head(f)[0].startswith(b'HTTP/1.1 200 ')
    s.close()
