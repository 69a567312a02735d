"""Issue 10: regressions of the proxy core found by an outside review, each
through the real binary.  Every test here failed at 9659fed."""
import json
import os
import socket
import time

import pytest

from conftest import free_port, proxy_config, raw, read_all, request, wait_for
from test_filters import config as filters_config


def split_head(data):
    head, sep, body = data.partition(b'\r\n\r\n')
    assert sep, data[:300]
    lines = head.split(b'\r\n')
    fields = []
    for ln in lines[1:]:
        name, colon, value = ln.partition(b':')
        assert colon, f'a broken header line: {ln[:100]!r}'
        fields.append((name.decode('latin-1').lower(), value.strip()))
    return lines[0], fields, body


# ---- r10-2: request smuggling through Upgrade ----

@pytest.mark.parametrize('framing', ['length', 'chunked'])
def test_r10_2_an_upgrade_request_with_a_body_is_refused(gateway, backends, framing):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    smuggled = b'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'
    head = b'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n'
    if framing == 'length':
        req = head + b'Content-Length: %d\r\n\r\n' % len(smuggled) + smuggled
    else:
        req = head + b'Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n' % (len(smuggled), smuggled)
    out = raw(port, req)
    assert out.startswith(b'HTTP/1.1 400 '), out[:200]
    assert out.count(b'HTTP/1.1') == 1  # one answer, then the connection closes
    time.sleep(0.2)
    assert [r.target for r in b.requests] == []  # neither the upgrade nor what it carried went upstream


def test_r10_2_an_upgrade_without_a_body_still_reaches_the_upstream(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    out = raw(port, b'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n'
              b'Content-Length: 0\r\n\r\n', until_close=False)
    assert out.startswith(b'HTTP/1.1 200')  # the backend does not switch: an ordinary answer
    r = b.requests[-1]
    assert r.target == '/ws' and r.header('upgrade') == 'websocket'


# ---- r10-3: stack bytes in Portico's own answers ----

@pytest.mark.parametrize('size', [400, 600, 4000, 20000])
def test_r10_3_a_long_cors_preflight_is_answered_exactly(gateway, backends, size):
    b = backends()
    port = free_port()
    gateway(filters_config(port, b.port, '''
    - { name: api, match: { paths: ["/api/*"] }, upstream: up,
        filters: { cors: { origins: ["https://app.example"], methods: [GET, POST], credentials: true } } }
    '''), workers=1)
    names = ','.join(f'x-h{i:05d}' for i in range(size // 9))[:size]
    req = (f'OPTIONS /api/x HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n'
           f'Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: {names}\r\n'
           f'Connection: close\r\n\r\n').encode()
    status, fields, body = split_head(raw(port, req))
    assert status == b'HTTP/1.1 204 No Content'
    d = dict(fields)
    assert d['access-control-allow-headers'] == names.encode()
    assert d['access-control-allow-origin'] == b'https://app.example'
    assert d['vary'] == b'Origin' and d['connection'] == b'close'
    assert body == b''  # nothing after the head: no stray bytes
    for name, value in fields:
        assert all(32 <= c < 127 for c in value), (name, value[:80])


@pytest.mark.parametrize('size', [500, 3000, 7000])
def test_r10_3_a_long_https_redirect_is_answered_exactly(gateway, backends, size):
    b = backends()
    port = free_port()
    gateway(filters_config(port, b.port, '''
    - { name: secure, match: { paths: ["/login/*"] }, upstream: up, filters: { redirect: { https: true } } }
    '''), workers=1)
    target = '/login/' + 'a' * size + '?q=' + 'b' * 50
    status, fields, body = split_head(raw(port, f'GET {target} HTTP/1.1\r\nHost: h.example\r\n'
                                              f'Connection: close\r\n\r\n'.encode()))
    assert status == b'HTTP/1.1 302 Found'
    assert dict(fields)['location'] == f'https://h.example{target}'.encode()
    assert body == b''


# ---- r10-4: nothing points into the input buffer once a body streams ----

def test_r10_4_route_params_origin_and_request_id_survive_a_streamed_body(gateway, backends, tmpdir_path):
    b = backends(keep_body=0)
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(filters_config(port, b.port, '''
    - { name: items, match: { paths: ["/items/:id/:part"] }, upstream: up,
        filters: { response-headers: { set: { x-item: "${param.id}/${param.part}", x-rid: "${request_id}" } },
                   cors: { origins: ["https://app.example"] } } }
    ''', extra=f'access_log: {{ path: {log}, format: "$param_id $request_id $target", flush: 50ms }}'),
        workers=1)
    # several requests on one connection, each with a body big enough for the
    # input buffer to move and grow while it streams
    s = socket.create_connection(('127.0.0.1', port), timeout=20)
    f = s.makefile('rb')
    for i in range(4):
        body = bytes([65 + i]) * (300000 + i * 70000)
        rid = f'client-id-{i}'
        s.sendall(f'POST /items/item{i}abc/p{i} HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n'
                  f'X-Request-Id: {rid}\r\nContent-Length: {len(body)}\r\n\r\n'.encode())
        for k in range(0, len(body), 32768):
            s.sendall(body[k:k + 32768])
        line = f.readline()
        assert line.startswith(b'HTTP/1.1 200'), line
        hdrs = {}
        while True:
            ln = f.readline()
            if ln == b'\r\n':
                break
            k, _, v = ln.decode('latin-1').partition(':')
            hdrs[k.lower()] = v.strip()
        f.read(int(hdrs['content-length']))
        assert hdrs['x-item'] == f'item{i}abc/p{i}'
        assert hdrs['access-control-allow-origin'] == 'https://app.example'
        assert hdrs['x-rid'] == rid
        assert b.requests[-1].header('x-request-id') == rid and b.requests[-1].body_len == len(body)
    s.close()
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= 4, what='log lines')
    lines = open(log).read().splitlines()
    assert lines == [f'item{i}abc client-id-{i} /items/item{i}abc/p{i}' for i in range(4)]


# ---- r10-5: the rewritten response head is bounded ----

@pytest.mark.parametrize('nfields', [99, 100, 500])
def test_r10_5_many_empty_response_fields(gateway, nfields):
    """An upstream head of many empty fields ("a:"), each of which grows when
    rewritten, close-delimited (Transfer-Encoding is added) to a client that
    closes (Connection: close is added): the old head buffer (the upstream's
    head + 160 bytes) overflowed, as the sanitizer build shows."""
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(8)
    bport = srv.getsockname()[1]
    port = free_port()
    gateway(proxy_config(port, [bport]), workers=1)
    import threading

    def serve():
        c, _ = srv.accept()
        c.recv(65536)
        c.sendall(b'HTTP/1.1 200 OK\r\n' + b''.join(b'field-with-a-rather-long-name-that-goes-on-%03d:\r\n' % i
                                                    for i in range(nfields)) + b'\r\nuntil the end')
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        out = raw(port, b'GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
    finally:
        t.join(5)
        srv.close()
    if nfields > 100:  # over the listener's max_headers (100): a bad response
        assert out.startswith(b'HTTP/1.1 502'), out[:100]
        return
    status, fields, body = split_head(out)
    assert status == b'HTTP/1.1 200 OK'
    assert body == b'd\r\nuntil the end\r\n0\r\n\r\n'
    assert [n for n, v in fields if n.startswith('field')] == [f'field-with-a-rather-long-name-that-goes-on-{i:03d}'
                                                              for i in range(nfields)]
    assert all(v == b'' for n, v in fields if n.startswith('field'))
    assert dict(fields)['transfer-encoding'] == b'chunked' and dict(fields)['connection'] == b'close'


# ---- r10-11: a short client request id is logged as it is ----

def test_r10_11_client_request_ids_are_logged_exactly(gateway, backends, tmpdir_path):
    b = backends()
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(proxy_config(port, [b.port], extra=f'access_log: {{ path: {log}, format: json, flush: 50ms }}'),
            workers=1)
    ids = ['a', 'short-id', 'x' * 40, 'y' * 128, 'z' * 129, 'bad id']
    for rid in ids:
        assert request(port, 'GET', '/x', headers={'X-Request-Id': rid})[0] == 200
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= len(ids), what='log lines')
    entries = [json.loads(x) for x in open(log).read().splitlines()]
    upstream_ids = [r.header('x-request-id') for r in b.requests]
    for rid, e, up in zip(ids, entries, upstream_ids):
        if len(rid) <= 128 and ' ' not in rid:
            assert e['request_id'] == rid and up == rid
        else:  # not taken: a generated one, logged and sent alike
            assert len(e['request_id']) == 32 and e['request_id'] == up


# ---- r10-11: a body that stops coming after the answer gets no second answer ----

def test_r10_11_a_respond_route_body_timeout_appends_nothing(gateway, tmpdir_path):
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
    timeouts: {{ body: 1s }}
access_log: {{ path: {log}, format: "$status $method $target", flush: 50ms }}
routes:
  - {{ name: hello, match: {{ paths: [/hello] }}, respond: {{ status: 200, body: "hello\\n" }} }}
''', workers=1)
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    s.sendall(b'POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789')
    t0 = time.monotonic()
    out = read_all(s)  # the gateway closes once the body stops coming
    s.close()
    assert time.monotonic() - t0 < 4
    assert out.startswith(b'HTTP/1.1 200 OK') and out.endswith(b'\r\n\r\nhello\n'), out
    assert out.count(b'HTTP/1.1') == 1  # no 408 after the 200
    wait_for(lambda: os.path.exists(log) and open(log).read(), what='log line')
    time.sleep(0.2)
    assert open(log).read().splitlines() == ['200 POST /hello']


def test_r10_11_a_closing_request_with_a_body_is_logged(gateway, tmpdir_path):
    """Connection: close with a body on a respond route: the answer, then
    the connection ends, and the request has its log line."""
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(f'''listeners: [{{ name: main, address: "127.0.0.1:{port}" }}]
access_log: {{ path: {log}, format: "$status $method $target", flush: 50ms }}
routes:
  - {{ name: hello, match: {{ paths: [/hello] }}, respond: {{ status: 200, body: "hello\\n" }} }}
''', workers=1)
    out = raw(port, b'POST /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5\r\n\r\nabcde')
    assert out.startswith(b'HTTP/1.1 200 OK') and out.count(b'HTTP/1.1') == 1
    wait_for(lambda: os.path.exists(log) and open(log).read(), what='log line')
    assert open(log).read().splitlines() == ['200 POST /hello']


# ---- suspended requests: a deadline, a client that leaves, a deferred resume ----

def suspend_config(port, bport, log, filters_timeout='30s'):
    return f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
    timeouts: {{ filters: {filters_timeout} }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"] }}]
access_log: {{ path: {log}, format: "$status $target", flush: 50ms }}
routes:
  - {{ name: slow, match: {{ paths: ["/slow/*"] }}, upstream: up,
      filters: {{ fault-injection: {{ delay: {{ duration: 5s }} }} }} }}
  - {{ name: brief, match: {{ paths: ["/brief/*"] }}, upstream: up,
      filters: {{ fault-injection: {{ delay: {{ duration: 100ms }} }} }} }}
  - {{ name: other, match: {{ paths: ["/*"] }}, upstream: up }}
'''


def test_a_suspended_request_has_a_deadline(gateway, backends, tmpdir_path):
    b = backends()
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    g = gateway(suspend_config(port, b.port, log, filters_timeout='500ms'), workers=1)
    t0 = time.monotonic()
    out = raw(port, b'GET /slow/x HTTP/1.1\r\nHost: t\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 504 ') and b'Connection: close' in out
    assert time.monotonic() - t0 < 4  # well before the 5 s delay
    assert b.requests == []
    # a wait shorter than the deadline goes on as before
    assert request(port, 'GET', '/brief/y')[0] == 200
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= 2, what='log lines')
    assert open(log).read().splitlines() == ['504 /slow/x', '200 /brief/y']
    assert g.count(r'waited on its filters longer than timeouts.filters.*route=slow') == 1


def test_a_client_that_leaves_while_its_request_waits_is_noticed(gateway, backends, tmpdir_path):
    b = backends()
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    g = gateway(suspend_config(port, b.port, log), workers=1)
    for i in range(5):
        s = socket.create_connection(('127.0.0.1', port))
        s.sendall(f'GET /slow/gone{i} HTTP/1.1\r\nHost: t\r\n\r\n'.encode())
        time.sleep(0.05)
        s.close()
    # noticed at once, not after the 5 s delay: logged as 499, never sent upstream
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= 5, timeout=3,
             what='five 499 lines')
    assert sorted(open(log).read().splitlines()) == [f'499 /slow/gone{i}' for i in range(5)]
    time.sleep(5.5)  # past the delay: the dropped timers never fire into freed requests
    assert b.requests == []
    assert request(port, 'GET', '/other')[0] == 200
    assert g.proc.poll() is None


# ---- one response path: Portico's own answers get the filters' edits too ----

def test_portico_own_answers_carry_the_filters_edits(gateway):
    from backend import dead_port
    port = free_port()
    gateway(filters_config(port, dead_port(), '''
    - { name: api, match: { paths: ["/api/*"] }, upstream: up,
        filters: { cors: { origins: ["https://app.example"] },
                   response-headers: { set: { x-route: "${route}" } } } }
    - { name: fixed, match: { paths: ["/fixed"] },
        respond: { status: 201, body: "made\\n", headers: { x-fixed: "1" } },
        filters: { response-headers: { set: { x-route: "${route}" }, remove: [server] } } }
    '''), workers=1)
    status, hdrs, body = request(port, 'GET', '/api/x', headers={'Origin': 'https://app.example'})
    assert status == 502  # the upstream is down: Portico answers
    assert hdrs['access-control-allow-origin'] == 'https://app.example'  # a browser can read the error
    assert hdrs['x-route'] == 'api'
    status, hdrs, body = request(port, 'GET', '/fixed')
    assert (status, body) == (201, b'made\n')
    assert hdrs['x-fixed'] == '1' and hdrs['x-route'] == 'fixed' and 'server' not in hdrs
    assert hdrs['content-type'] == 'text/plain' and hdrs['content-length'] == '5'


# ---- found by the proxy fuzz targets ----

def test_an_http10_request_without_host_gets_the_upstream_name(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    out = raw(port, b'GET /x HTTP/1.0\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 200 ')
    r = b.requests[-1]
    assert r.header('host') == 'up'  # the upstream's name, as nginx's $proxy_host
    assert r.header('x-forwarded-host') is None  # nothing to forward


def test_connect_is_refused_whatever_the_routes(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]), workers=1)
    for target in (b'example.com:443', b''):
        out = raw(port, b'CONNECT ' + target + b' HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
        assert out.startswith(b'HTTP/1.1 501 ') or out.startswith(b'HTTP/1.1 400 '), out[:80]
    assert b.requests == []


@pytest.mark.parametrize('value', ['""', '"good\\r\\nX-Injected: 1"', '"a b"', '"backend&internal:8080"'])
def test_upstream_host_is_checked_at_load(tmpdir_path, value):
    from conftest import run_portico
    conf = os.path.join(tmpdir_path, 'p.yaml')
    with open(conf, 'w') as f:
        f.write(proxy_config(free_port(), [free_port()], route=f'upstream_host: {value}'))
    r = run_portico('-t', '-c', conf)
    assert r.returncode == 1
    assert f'{conf}:' in r.stderr and 'upstream_host' in r.stderr, r.stderr


def test_a_request_at_max_headers_is_forwarded(gateway, backends):
    """999 empty fields and Host (max_headers: 1000): each grows by a byte
    upstream ("a:" to "a: "), which the head's capacity must count."""
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]).replace(f'address: 127.0.0.1:{port}\n',
                                                  f'address: 127.0.0.1:{port}\n    max_headers: 1000\n'
                                                  f'    max_header_size: 64k\n', 1), workers=1)
    head = b'GET /x HTTP/1.1\r\nHost: t\r\n' + b''.join(b'f%d:\r\n' % i for i in range(999)) + \
        b'Connection: close\r\n\r\n'
    head = head.replace(b'f998:\r\n', b'')  # 999 fields with Host and Connection
    out = raw(port, head)
    assert out.startswith(b'HTTP/1.1 200 '), out[:100]
    assert len(b.requests[-1].headers) >= 997


@pytest.mark.parametrize('total', [70000, 1000000, 1048576 + 100])
def test_a_head_up_to_max_header_size_1m_is_forwarded(gateway, backends, total):
    """max_header_size: 1m (its largest).  Heads past about 64 KiB got 500
    (the request's working memory had a fixed 64 KiB bound, and the head
    forwarded upstream did not fit); they must reach the upstream whole,
    over HTTP/1.1 and HTTP/2, and a head past the limit gets 431."""
    from hyperframe.frame import ContinuationFrame, HeadersFrame
    from test_h2 import RawH2, ended, response
    b = backends()
    port = free_port()
    gateway(proxy_config(port, [b.port]).replace(f'address: 127.0.0.1:{port}\n',
                                                  f'address: 127.0.0.1:{port}\n    http2: true\n'
                                                  f'    max_header_size: 1m\n', 1), workers=1)
    # fields of 60,000 bytes: the test backend reads lines of at most 64 KiB
    n, last = divmod(total - 200, 60000)
    fields = [(f'x-f{i}', chr(ord('a') + i % 26) * 60000) for i in range(n)] + [('x-last', 'z' * last)]
    fits = total <= 1 << 20
    head = b'GET /big-head HTTP/1.1\r\nHost: t\r\n' + \
        b''.join(f'{k}: {v}\r\n'.encode() for k, v in fields) + b'Connection: close\r\n\r\n'
    out = raw(port, head, timeout=15)
    assert out.startswith(b'HTTP/1.1 200 ' if fits else b'HTTP/1.1 431 '), out[:100]
    if fits:
        got = dict((k.lower(), v) for k, v in b.requests[-1].headers)
        assert all(got.get(k) == v for k, v in fields), 'a field did not reach the upstream whole'
    seen = len(b.requests)
    c = RawH2(port)
    block = c.enc.encode([(':method', 'GET'), (':scheme', 'http'), (':authority', 't'), (':path', '/big-head-h2'),
                          *fields], huffman=False)  # the pure-Python Huffman coder takes seconds over 1 MB
    parts = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    frames = [HeadersFrame(1)] + [ContinuationFrame(1) for _ in parts[1:]]
    for f, p in zip(frames, parts):
        f.data = p
    frames[0].flags.add('END_STREAM')
    frames[-1].flags.add('END_HEADERS')
    c.send(*frames)
    got = c.frames(ended(1), timeout=15)
    h, _, _ = response(got, 1)
    assert h is not None and h[':status'] == ('200' if fits else '431'), (h, got[-3:])
    if fits:
        assert len(b.requests) == seen + 1
        got = dict((k.lower(), v) for k, v in b.requests[-1].headers)
        assert all(got.get(k) == v for k, v in fields), 'a field did not reach the upstream whole over HTTP/2'
    else:
        assert len(b.requests) == seen


def test_a_head_that_filters_grow_past_the_working_memory_is_logged(gateway, backends):
    """A path of 1,000,000 bytes (within max_request_line and
    max_header_size: 1m) that request-headers copies into two fields: the
    head for the upstream (about 3 MB) passes the request's working memory
    (twice max_header_size).  It got 500 with nothing in the error log; the
    500 stays (the configuration grew the head, not the client), logged."""
    b = backends()
    port = free_port()
    g = gateway(proxy_config(port, [b.port], route='filters: { request-headers: { set: { x-a: "${path}", '
                                                     'x-b: "${path}" } } }').replace(
        f'address: 127.0.0.1:{port}\n', f'address: 127.0.0.1:{port}\n    max_header_size: 1m\n'
        f'    max_request_line: 1m\n', 1), workers=1)
    path = b'/p' + b'a' * 1000000
    out = raw(port, b'GET ' + path + b' HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n', timeout=15)
    assert out.startswith(b'HTTP/1.1 500 '), out[:80]
    assert b.requests == []
    wait_for(lambda: "did not fit in the request's working memory" in g.log(), 5, what='the error line')
    out = raw(port, b'GET /p' + b'a' * 30000 + b' HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n', timeout=15)
    assert out.startswith(b'HTTP/1.1 200 '), out[:80]  # a shorter one goes through (the backend reads 64 KiB lines)
