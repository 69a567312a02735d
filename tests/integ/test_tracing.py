"""Issue 16, tracing: W3C Trace Context and B3 propagation, a server span per
request and a client span per upstream attempt, exported in batches as
OTLP/HTTP JSON or Zipkin v2 JSON to a collector the test runs; with the
collector down or hanging, requests go on and the lost spans are counted."""
import http.server
import json
import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time

import pytest

from backend import black_hole, dead_port
from conftest import free_port, request, run_portico, wait_for

TP_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
TP_SPAN = '00f067aa0ba902b7'
TRACEPARENT_RE = re.compile(r'^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$')


class Collector:
    """An OTLP/HTTP JSON and Zipkin v2 collector: records every POST.
    mode 'ok' answers 200, 'error' 500, 'hang' reads the request and never
    answers."""

    def __init__(self, mode='ok'):
        self.mode = mode
        self.posts = []  # (path, content-type, parsed body)
        self.headers = []  # of each POST, names in lower case
        self.lock = threading.Lock()
        self.release = threading.Event()
        me = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_POST(self):
                n = int(self.headers.get('content-length', 0))
                body = self.rfile.read(n)
                with me.lock:
                    me.posts.append((self.path, self.headers.get('content-type'), json.loads(body)))
                    me.headers.append({k.lower(): v for k, v in self.headers.items()})
                if me.mode == 'hang':
                    while not me.release.is_set():  # until the client gives up
                        r, _, _ = select.select([self.connection], [], [], 0.05)
                        if r and not self.connection.recv(1, socket.MSG_PEEK):
                            break
                    self.close_connection = True
                    return
                code = 500 if me.mode == 'error' else 200
                self.send_response(code)
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'{}')

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def spans(self):
        """Every span received, normalised: trace, id, parent, kind, name,
        attrs, error, service, start, end, format."""
        out = []
        with self.lock:
            posts = list(self.posts)
        for path, _, body in posts:
            if isinstance(body, list):  # Zipkin v2
                for s in body:
                    out.append({'trace': s['traceId'], 'id': s['id'], 'parent': s.get('parentId'), 'kind': s['kind'],
                                'name': s['name'], 'attrs': s.get('tags', {}), 'error': 'error' in s.get('tags', {}),
                                'service': s['localEndpoint']['serviceName'], 'start': s['timestamp'] * 1000,
                                'end': (s['timestamp'] + s['duration']) * 1000, 'format': 'zipkin', 'raw': s})
                continue
            for rs in body['resourceSpans']:
                service = {a['key']: a['value'] for a in rs['resource']['attributes']}['service.name']['stringValue']
                for ss in rs['scopeSpans']:
                    for s in ss['spans']:
                        attrs = {}
                        for a in s.get('attributes', []):
                            v = a['value']
                            attrs[a['key']] = v['stringValue'] if 'stringValue' in v else int(v['intValue'])
                        out.append({'trace': s['traceId'], 'id': s['spanId'], 'parent': s.get('parentSpanId'),
                                    'kind': {2: 'SERVER', 3: 'CLIENT'}[s['kind']], 'name': s['name'], 'attrs': attrs,
                                    'error': s.get('status', {}).get('code') == 2, 'service': service,
                                    'start': int(s['startTimeUnixNano']), 'end': int(s['endTimeUnixNano']),
                                    'format': 'otlp', 'raw': s})
        return out

    def wait_spans(self, pred, count=1, timeout=15, what='spans'):
        wait_for(lambda: len([s for s in self.spans() if pred(s)]) >= count, timeout, what=what)
        return [s for s in self.spans() if pred(s)]


@pytest.fixture
def collector():
    made = []

    def make(mode='ok'):
        c = Collector(mode)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def tracing_block(endpoint, extra=''):
    interval = '' if 'interval:' in extra else '  interval: 50ms\n'
    return f'''tracing:
  endpoint: {endpoint}
{interval}{extra}'''


def config(port, backend_port, endpoint, tracing_extra='', upstream_extra='', route_extra='', admin=None,
           more_routes='', top='', more_upstreams='', h2=False):
    adm = f'admin: {{ address: 127.0.0.1:{admin} }}\n' if admin else ''
    return f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
    http2: {"true" if h2 else "false"}
{adm}{top}upstreams:
  - name: up
    targets: ["127.0.0.1:{backend_port}"]
{upstream_extra}
{more_upstreams}
routes:
  - name: main
    match: {{ paths: ["/api/*"] }}
    upstream: up
    filters:
      response-headers: {{ set: {{ x-trace-id: "${{trace_id}}" }} }}
{route_extra}
{more_routes}
{tracing_block(endpoint, tracing_extra)}'''


def endpoint(c, path='/v1/traces'):
    return f'http://127.0.0.1:{c.port}{path}'


def upstream_traceparent(req):
    tp = req.header('traceparent')
    assert tp is not None, req.headers
    m = TRACEPARENT_RE.match(tp)
    assert m, tp
    return m.group(1), m.group(2), m.group(3)


def status_json(admin):
    st, _, body = request(admin, 'GET', '/status')
    assert st == 200
    return json.loads(body)


# ---- propagation and parent/child ids ----

def test_otlp_ids_chain_from_caller_to_upstream(gateway, backends, collector):
    """The server span's parent is the caller's span; the client span's
    parent is the server span; the upstream's traceparent names the client
    span; one trace id throughout.  Several requests on one connection."""
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c)), workers=1)
    import http.client
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    conn.request('GET', '/api/one?key=secret', headers={'traceparent': f'00-{TP_ID}-{TP_SPAN}-01',
                                                        'tracestate': 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'})
    r = conn.getresponse()
    r.read()
    assert r.status == 200 and r.getheader('x-trace-id') == TP_ID
    conn.request('GET', '/api/two')  # the same connection, no trace: a new one
    r2 = conn.getresponse()
    r2.read()
    conn.close()
    new_id = r2.getheader('x-trace-id')
    assert re.fullmatch(r'[0-9a-f]{32}', new_id) and new_id != TP_ID
    up1, up2 = b.requests
    tid, parent, flags = upstream_traceparent(up1)
    assert tid == TP_ID and flags == '01'
    assert up1.header('tracestate') == 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'
    spans = c.wait_spans(lambda s: s['trace'] == TP_ID, 2)
    server = [s for s in spans if s['kind'] == 'SERVER']
    client = [s for s in spans if s['kind'] == 'CLIENT']
    assert len(server) == 1 and len(client) == 1
    server, client = server[0], client[0]
    assert server['parent'] == TP_SPAN
    assert client['parent'] == server['id']
    assert parent == client['id'] != server['id']
    assert server['service'] == 'portico'
    a = server['attrs']
    assert a['http.request.method'] == 'GET' and a['url.path'] == '/api/one'  # no query: it may hold a key
    assert a['http.route'] == '/api/*' and a['http.response.status_code'] == 200
    assert a['server.address'] == '127.0.0.1' and a['server.port'] == port
    assert a['network.peer.address'] == '127.0.0.1' and a['network.protocol.version'] == '1.1'
    assert 'error.type' not in a and not server['error']
    assert 'secret' not in json.dumps(server['raw'])
    ca = client['attrs']
    assert ca['server.port'] == b.port and ca['http.response.status_code'] == 200
    assert ca['network.peer.address'] == '127.0.0.1'
    assert server['start'] <= client['start'] <= client['end'] <= server['end']
    assert server['start'] > 1_600_000_000 * 10**9  # unix nanoseconds
    # the second request: a root span of its own trace, propagated upstream too
    tid2, parent2, _ = upstream_traceparent(up2)
    assert tid2 == new_id
    spans2 = c.wait_spans(lambda s: s['trace'] == new_id, 2)
    root = [s for s in spans2 if s['kind'] == 'SERVER'][0]
    assert root['parent'] is None
    assert [s['id'] for s in spans2 if s['kind'] == 'CLIENT'] == [parent2]
    assert c.posts[0][0] == '/v1/traces' and c.posts[0][1] == 'application/json'


def test_retries_are_several_client_spans(gateway, backends, collector):
    """Each upstream attempt has its own client span and span id, and the
    upstream sees each as its parent in turn."""
    b, c = backends(), collector()
    b.fail_status = 503
    port = free_port()
    gateway(config(port, b.port, endpoint(c), upstream_extra='    retries: 2\n    retry_statuses: [503]'), workers=1)
    st, h, _ = request(port, 'GET', '/api/x', headers={'traceparent': f'00-{TP_ID}-{TP_SPAN}-01'})
    assert st == 503
    assert len(b.requests) == 3
    parents = [upstream_traceparent(r)[1] for r in b.requests]
    assert len(set(parents)) == 3
    spans = c.wait_spans(lambda s: s['trace'] == TP_ID, 4)
    server = [s for s in spans if s['kind'] == 'SERVER'][0]
    client = sorted([s for s in spans if s['kind'] == 'CLIENT'], key=lambda s: s['start'])
    assert [s['id'] for s in client] == parents
    assert all(s['parent'] == server['id'] for s in client)
    assert [s['attrs'].get('http.request.resend_count', 0) for s in client] == [0, 1, 2]
    assert all(s['attrs']['http.response.status_code'] == 503 and s['error'] for s in client)
    assert server['attrs']['http.response.status_code'] == 503 and server['error']
    assert server['attrs']['error.type'] == '503'


def test_client_vanishing_mid_request_still_ends_its_spans(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c), more_routes='  - { name: slow, match: { paths: [/slow] }, upstream: up }'),
            workers=1)
    sk = socket.create_connection(('127.0.0.1', port), timeout=10)
    sk.sendall(f'GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\ntraceparent: 00-{TP_ID}-{TP_SPAN}-01\r\n\r\n'.encode())
    wait_for(lambda: len(b.requests) == 1, what='the request upstream')
    sk.close()  # gone before the answer
    spans = c.wait_spans(lambda s: s['trace'] == TP_ID, 2)
    server = [s for s in spans if s['kind'] == 'SERVER'][0]
    client = [s for s in spans if s['kind'] == 'CLIENT'][0]
    assert client['parent'] == server['id']
    # the upstream's answer came (the client's close is seen when writing), or the attempt was cut short
    assert client['attrs'].get('http.response.status_code') == 200 or client['attrs']['error.type'] == 'aborted'
    assert request(port, 'GET', '/api/after')[0] == 200  # and the worker goes on


def test_failed_connect_client_span_has_error_type(gateway, backends, collector):
    b, c = backends(), collector()
    port, dead = free_port(), dead_port()
    gateway(config(port, dead, endpoint(c)), workers=1)
    st, h, _ = request(port, 'GET', '/api/x')
    assert st == 502
    tid = h['x-trace-id']
    spans = c.wait_spans(lambda s: s['trace'] == tid, 2)
    client = [s for s in spans if s['kind'] == 'CLIENT'][0]
    assert client['attrs']['error.type'] == 'connect_failed' and client['error']
    assert 'http.response.status_code' not in client['attrs']


# ---- sampling ----

def sampled_run(gateway, backends, collector, tracing_extra, headers):
    """Sends the request, then a marker request that is sampled (a caller's
    flag 01 with parent_based, else sample 1 applies): once the marker's
    spans arrived, the first request's would have too (one worker, in
    order).  Returns (upstream traceparent flags, spans of the request)."""
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c), tracing_extra=tracing_extra), workers=1)
    st, h, _ = request(port, 'GET', '/api/x', headers=headers)
    assert st == 200
    tid = h['x-trace-id']
    _, _, flags = upstream_traceparent(b.requests[0])
    marker = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
    st, _, _ = request(port, 'GET', '/api/marker', headers={'traceparent': f'00-{marker}-{TP_SPAN}-01'})
    return flags, tid, c, marker


@pytest.mark.parametrize('sample,parent_based,incoming,exported', [
    (0, True, None, False),            # a new trace, never sampled
    (1, True, None, True),             # a new trace, always sampled
    (0, True, '01', True),             # the caller sampled it
    (1, True, '00', False),            # the caller did not
    (1, False, '00', True),            # parent_based off: sample decides
])
def test_sampling(gateway, backends, collector, sample, parent_based, incoming, exported):
    headers = {'traceparent': f'00-{TP_ID}-{TP_SPAN}-{incoming}'} if incoming else {}
    extra = f'  sample: {sample}\n  parent_based: {"true" if parent_based else "false"}'
    flags, tid, c, marker = sampled_run(gateway, backends, collector, extra, headers)
    assert flags == ('01' if exported else '00')  # propagated either way
    if incoming:
        assert tid == TP_ID
    c.wait_spans(lambda s: s['trace'] == marker, 2)
    got = [s for s in c.spans() if s['trace'] == tid]
    assert (len(got) == 2) if exported else (got == [])


def test_sample_zero_parent_based_off_exports_nothing(gateway, backends, collector, tmpdir_path):
    b, c = backends(), collector()
    port, admin = free_port(), free_port()
    gateway(config(port, b.port, endpoint(c), tracing_extra='  sample: 0\n  parent_based: false', admin=admin),
            workers=1)
    for _ in range(5):
        st, _, _ = request(port, 'GET', '/api/x', headers={'traceparent': f'00-{TP_ID}-{TP_SPAN}-01'})
        assert st == 200
    assert all(upstream_traceparent(r)[2] == '00' for r in b.requests)
    assert all(upstream_traceparent(r)[0] == TP_ID for r in b.requests)
    time.sleep(0.5)  # several intervals: nothing is sent
    assert c.posts == []
    assert status_json(admin)['tracing'] == {'exported': 0, 'dropped': 0, 'failed_exports': 0}


# ---- hostile and invalid values ----

INVALID_TRACEPARENTS = [
    f'01-{TP_ID}-{TP_SPAN}-01',                 # another version
    f'ff-{TP_ID}-{TP_SPAN}-01',                 # the forbidden version
    f'00-{TP_ID.upper()}-{TP_SPAN}-01',         # uppercase
    f'00-{TP_ID}-{TP_SPAN.upper()}-01',
    f'00-{"0" * 32}-{TP_SPAN}-01',              # all-zero trace id
    f'00-{TP_ID}-{"0" * 16}-01',                # all-zero parent id
    f'00-{TP_ID}-{TP_SPAN}-01-extra',           # too long for version 00
    f'00-{TP_ID}-{TP_SPAN}-1',                  # too short
    f'00-{TP_ID[:-1]}-{TP_SPAN}-01',
    f'00_{TP_ID}_{TP_SPAN}_01',                 # wrong separators
    f'00-{TP_ID}-{TP_SPAN}-0g',                 # not hex
    f'00-{TP_ID}-{TP_SPAN}-01\x01',             # a control character
    f'00-{TP_ID[:10]}\x7f{TP_ID[11:]}-{TP_SPAN}-01',
    '',
    'x' * 8000,                                 # huge
]


def raw_get(port, path, fields):
    """A request with exactly these header lines (bytes allowed that
    http.client refuses to send).  Returns the response's status and head."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    try:
        head = f'GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n'.encode('latin-1')
        for name, value in fields:
            head += name.encode('latin-1') + b': ' + value.encode('latin-1') + b'\r\n'
        s.sendall(head + b'\r\n')
        data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    first = data.split(b'\r\n', 1)[0].decode()
    headers = {}
    for line in data.split(b'\r\n\r\n', 1)[0].split(b'\r\n')[1:]:
        k, _, v = line.decode('latin-1').partition(':')
        headers[k.strip().lower()] = v.strip()
    return int(first.split()[1]), headers


def test_invalid_traceparent_starts_a_new_trace(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c)), workers=1)
    sent = 0
    for value in INVALID_TRACEPARENTS:
        st, h = raw_get(port, '/api/x', [('traceparent', value), ('tracestate', 'k=v')])
        if st == 400:  # the parser refused the field itself (a control character): nothing to trace upstream
            assert '\x01' in value or '\x7f' in value, value
            continue
        assert st == 200, value
        sent += 1
        req = b.requests[-1]
        tid, parent, flags = upstream_traceparent(req)
        assert tid != TP_ID and tid == h['x-trace-id'], value
        assert req.header_all('traceparent') == [req.header('traceparent')]  # the client's is gone
        assert req.header('tracestate') is None, value  # only with a valid traceparent
        spans = c.wait_spans(lambda s: s['trace'] == tid and s['kind'] == 'SERVER', 1)
        assert spans[0]['parent'] is None, value
    assert sent >= len(INVALID_TRACEPARENTS) - 2


def test_two_traceparents_are_not_believed(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c)), workers=1)
    st, h = raw_get(port, '/api/x', [('traceparent', f'00-{TP_ID}-{TP_SPAN}-01'),
                                     ('traceparent', f'00-{"b" * 32}-{TP_SPAN}-01')])
    assert st == 200
    tid, _, _ = upstream_traceparent(b.requests[-1])
    assert tid not in (TP_ID, 'b' * 32)
    assert len(b.requests[-1].header_all('traceparent')) == 1


def test_tracestate_joined_and_bounded(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c)), workers=1)
    tp = ('traceparent', f'00-{TP_ID}-{TP_SPAN}-01')
    raw_get(port, '/api/x', [tp, ('tracestate', 'a=1'), ('tracestate', 'b=2')])
    assert b.requests[-1].header('tracestate') == 'a=1,b=2'
    big = 'k=' + 'v' * 510  # 512 bytes: the most passed on
    raw_get(port, '/api/x', [tp, ('tracestate', big)])
    assert b.requests[-1].header('tracestate') == big
    raw_get(port, '/api/x', [tp, ('tracestate', big + 'v')])
    assert b.requests[-1].header('tracestate') is None
    raw_get(port, '/api/x', [tp, ('tracestate', '')])
    assert b.requests[-1].header('tracestate') is None
    assert upstream_traceparent(b.requests[-1])[0] == TP_ID


# ---- B3 ----

def test_b3_single_header(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c)), workers=1)
    b3_trace, b3_span = '80f198ee56343ba864fe8b2a57d3eff7', 'e457b5a2e4d86bd1'
    st, h, _ = request(port, 'GET', '/api/x', headers={'b3': f'{b3_trace}-{b3_span}-1-05e3ac9a4f6e3b90'})
    assert st == 200 and h['x-trace-id'] == b3_trace
    req = b.requests[-1]
    tid, parent, flags = upstream_traceparent(req)
    assert tid == b3_trace and flags == '01'
    spans = c.wait_spans(lambda s: s['trace'] == b3_trace, 2)
    server = [s for s in spans if s['kind'] == 'SERVER'][0]
    client = [s for s in spans if s['kind'] == 'CLIENT'][0]
    assert server['parent'] == b3_span and client['parent'] == server['id'] and parent == client['id']
    # B3 goes on in the form it came, in the same trace, naming the client span
    assert req.header('b3') == f'{b3_trace}-{client["id"]}-1-{server["id"]}'
    # a 64-bit trace id is left-padded; a lone sampling state decides without ids
    st, h, _ = request(port, 'GET', '/api/x', headers={'b3': f'463ac35c9f6413ad-{b3_span}-0'})
    assert h['x-trace-id'] == '0000000000000000463ac35c9f6413ad'
    assert upstream_traceparent(b.requests[-1])[2] == '00'
    st, h, _ = request(port, 'GET', '/api/x', headers={'b3': '0'})
    tid, _, flags = upstream_traceparent(b.requests[-1])
    assert flags == '00' and tid == h['x-trace-id'] and b.requests[-1].header('b3') is None
    # a bad b3: a new trace
    for bad in (f'{b3_trace.upper()}-{b3_span}', f'{b3_trace}-{b3_span}-x', f'{b3_trace}', f'{"0" * 32}-{b3_span}'):
        st, h, _ = request(port, 'GET', '/api/x', headers={'b3': bad})
        assert st == 200 and h['x-trace-id'] != b3_trace and b.requests[-1].header('b3') is None, bad


def test_b3_multiple_headers(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c)), workers=1)
    b3_trace, b3_span = '463ac35c9f6413ad48485a3953bb6124', 'a2fb4a1d1a96d312'
    st, h, _ = request(port, 'GET', '/api/x', headers={'X-B3-TraceId': b3_trace, 'X-B3-SpanId': b3_span,
                                                       'X-B3-ParentSpanId': '0020000000000001', 'X-B3-Sampled': '1'})
    assert st == 200 and h['x-trace-id'] == b3_trace
    req = b.requests[-1]
    tid, parent, flags = upstream_traceparent(req)
    spans = c.wait_spans(lambda s: s['trace'] == b3_trace, 2)
    server = [s for s in spans if s['kind'] == 'SERVER'][0]
    client = [s for s in spans if s['kind'] == 'CLIENT'][0]
    assert server['parent'] == b3_span and parent == client['id'] and flags == '01'
    assert req.header_all('x-b3-traceid') == [b3_trace]
    assert req.header_all('x-b3-spanid') == [client['id']]
    assert req.header_all('x-b3-parentspanid') == [server['id']]
    assert req.header_all('x-b3-sampled') == ['1']
    # X-B3-Sampled: 0 with parent_based: not sampled, still propagated
    st, h, _ = request(port, 'GET', '/api/x', headers={'X-B3-TraceId': b3_trace, 'X-B3-SpanId': b3_span,
                                                       'X-B3-Sampled': '0'})
    assert upstream_traceparent(b.requests[-1])[2] == '00'
    assert b.requests[-1].header('x-b3-sampled') == '0'


def test_traceparent_wins_over_b3(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c)), workers=1)
    st, h, _ = request(port, 'GET', '/api/x', headers={'traceparent': f'00-{TP_ID}-{TP_SPAN}-01',
                                                       'b3': f'{"c" * 32}-{"d" * 16}-1', 'X-B3-TraceId': 'e' * 32})
    assert h['x-trace-id'] == TP_ID
    req = b.requests[-1]
    assert req.header('b3') is None and req.header('x-b3-traceid') is None  # replaced by the traceparent alone


# ---- export formats ----

def test_zipkin_export(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c, '/api/v2/spans'),
                   tracing_extra='  exporter: zipkin\n  service_name: "edge \\"gw\\""'), workers=1)
    st, h, _ = request(port, 'GET', '/api/z', headers={'traceparent': f'00-{TP_ID}-{TP_SPAN}-01'})
    assert st == 200
    spans = c.wait_spans(lambda s: s['trace'] == TP_ID, 2)
    assert c.posts[0][0] == '/api/v2/spans' and isinstance(c.posts[0][2], list)
    server = [s for s in spans if s['kind'] == 'SERVER'][0]
    client = [s for s in spans if s['kind'] == 'CLIENT'][0]
    assert server['format'] == 'zipkin' and server['service'] == 'edge "gw"'
    assert server['parent'] == TP_SPAN and client['parent'] == server['id']
    assert server['raw']['shared'] is False and client['raw']['shared'] is False
    assert server['attrs']['http.response.status_code'] == '200'  # Zipkin's tags are strings
    assert server['raw']['timestamp'] > 1_600_000_000 * 10**6 and server['raw']['duration'] >= 1
    assert client['raw']['remoteEndpoint'] == {'ipv4': '127.0.0.1', 'port': b.port}
    assert upstream_traceparent(b.requests[-1])[1] == client['id']


def test_batches_are_bounded(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c), tracing_extra='  batch_size: 3'), workers=1)
    for _ in range(6):
        assert request(port, 'GET', '/api/x')[0] == 200
    c.wait_spans(lambda s: True, 12)
    sizes = [sum(len(ss['spans']) for rs in body['resourceSpans'] for ss in rs['scopeSpans']) for _, _, body in c.posts]
    assert max(sizes) <= 3 and sum(sizes) == 12


# ---- Portico's own answers, HTTP/2, filters' decisions ----

OWN_ROUTES = '''  - name: keyed
    match: { paths: ["/keyed/*"] }
    upstream: up
    filters:
      key-auth: {}
  - name: limited
    match: { paths: ["/limited/*"] }
    upstream: up
    filters:
      limit-count: { count: 1, window: 60s, key: "${route}" }
  - name: cached
    match: { paths: ["/cached/*"] }
    upstream: origin
    filters:
      cache: {}
  - name: hello
    match: { paths: ["/hello"] }
    respond: { status: 200, body: "hi\\n" }
'''
OWN_TOP = '''caches:
  - name: default
    memory: 8MiB
consumers:
  - name: acme
    credentials:
      - { type: key-auth, key: "k-0123456789abcdef" }
'''


def server_span_of(c, tid):
    return c.wait_spans(lambda s: s['trace'] == tid and s['kind'] == 'SERVER', 1, what=f'server span of {tid}')[0]


def test_own_answers_have_server_spans(gateway, backends, collector):
    from cache_origin import Origin
    b, c, o = backends(), collector(), Origin()
    o.set('/cached/x', headers={'cache-control': 'max-age=60'})
    port = free_port()
    try:
        gateway(config(port, b.port, endpoint(c), more_routes=OWN_ROUTES, top=OWN_TOP,
                       more_upstreams=f'  - {{ name: origin, targets: ["127.0.0.1:{o.port}"] }}'), workers=1)
        own_answers(c, port)
    finally:
        o.stop()


def own_answers(c, port):

    def traced(path, headers=None):
        tid = f'{len(c.spans()) + 1:032x}'
        st, _, _ = request(port, 'GET', path, headers={'traceparent': f'00-{tid}-{TP_SPAN}-01', **(headers or {})})
        return st, server_span_of(c, tid)

    st, s = traced('/nowhere')
    assert st == 404 and s['attrs']['http.response.status_code'] == 404 and not s['error']
    assert 'http.route' not in s['attrs']
    st, s = traced('/hello')
    assert st == 200 and s['attrs']['http.route'] == '/hello'
    st, s = traced('/keyed/x')
    assert st == 401 and s['attrs']['http.response.status_code'] == 401 and 'portico.consumer' not in s['attrs']
    st, s = traced('/keyed/x', {'apikey': 'k-0123456789abcdef'})
    assert st == 200 and s['attrs']['portico.consumer'] == 'acme'
    st, s = traced('/limited/x')
    assert st == 200 and s['attrs']['portico.ratelimit'] == 'allowed'
    st, s = traced('/limited/x')
    assert st == 429 and s['attrs']['portico.ratelimit'] == 'rejected: limit-count'
    assert not [x for x in c.spans() if x['trace'] == s['trace'] and x['kind'] == 'CLIENT']
    st, s = traced('/cached/x')
    assert st == 200 and s['attrs']['portico.cache_status'] == 'miss'
    st, s = traced('/cached/x')
    assert st == 200 and s['attrs']['portico.cache_status'] == 'hit'
    assert not [x for x in c.spans() if x['trace'] == s['trace'] and x['kind'] == 'CLIENT']
    st, h = raw_get(port, f'http://example.com/hello?key=k', [('traceparent', f'00-{"f" * 32}-{TP_SPAN}-01')])
    assert st == 200 and server_span_of(c, 'f' * 32)['attrs']['url.path'] == '/hello'  # absolute form: the path
    # a head that cannot be parsed: answered 400, and still a (root) server span
    sk = socket.create_connection(('127.0.0.1', port), timeout=10)
    sk.sendall(b'GET /api/x HTTP/1.1\r\nHost: t\r\nbad header line\r\n\r\n')
    assert sk.recv(100).startswith(b'HTTP/1.1 400')
    sk.close()
    bad = c.wait_spans(lambda x: x['kind'] == 'SERVER' and x['attrs'].get('http.response.status_code') == 400, 1)
    assert bad[0]['parent'] is None and not bad[0]['error']


def test_http2_requests_have_spans(gateway, backends, collector):
    """Three streams on one HTTP/2 connection: a server span each."""
    if not shutil.which('nghttp'):
        pytest.skip('nghttp is missing')
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c), h2=True), workers=1)
    urls = [f'http://127.0.0.1:{port}/api/h2-{i}' for i in range(3)]
    out = subprocess.run(['nghttp', '-ns', '-H', f'traceparent: 00-{TP_ID}-{TP_SPAN}-01', *urls],
                         capture_output=True, text=True, timeout=30).stdout
    assert len(re.findall(r' 200 ', out)) == 3, out
    spans = c.wait_spans(lambda s: s['trace'] == TP_ID, 6)
    servers = [s for s in spans if s['kind'] == 'SERVER']
    assert len(servers) == 3 and all(s['attrs']['network.protocol.version'] == '2' for s in servers)
    assert sorted(s['attrs']['url.path'] for s in servers) == ['/api/h2-0', '/api/h2-1', '/api/h2-2']
    ids = {s['id'] for s in servers}
    assert all(s['parent'] in ids for s in spans if s['kind'] == 'CLIENT')
    assert {upstream_traceparent(r)[1] for r in b.requests} == {s['id'] for s in spans if s['kind'] == 'CLIENT'}


def test_grpc_calls_have_server_spans(gateway, collector):
    grpc = pytest.importorskip('grpc')
    from grpc_server import GrpcServer
    server, c = GrpcServer(), collector()
    port = free_port()
    try:
        gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
upstreams: [{{ name: g, scheme: grpc, targets: ["127.0.0.1:{server.port}"] }}]
routes:
  - {{ name: echo, match: {{ paths: ["/test.Echo/*"] }}, upstream: g }}
{tracing_block(endpoint(c))}''', workers=1)
        with grpc.insecure_channel(f'127.0.0.1:{port}') as ch:
            resp = ch.unary_unary('/test.Echo/Unary')(b'hi', metadata=(('traceparent', f'00-{TP_ID}-{TP_SPAN}-01'),),
                                                      timeout=5)
            assert resp.startswith(b'echo:hi')
            with pytest.raises(grpc.RpcError):  # Portico's own answer: no route
                ch.unary_unary('/other.Svc/X')(b'x', metadata=(('traceparent', f'00-{"e" * 32}-{TP_SPAN}-01'),),
                                               timeout=5)
        server_span = server_span_of(c, TP_ID)
        assert server_span['parent'] == TP_SPAN and server_span['attrs']['network.protocol.version'] == '2'
        m = TRACEPARENT_RE.match(server.metadata[0]['traceparent'])
        assert m and m.group(1) == TP_ID and m.group(2) == server_span['id']  # no client span: the server span
        assert server_span_of(c, 'e' * 32)['attrs']['url.path'] == '/other.Svc/X'
    finally:
        server.stop()


# ---- a slow or dead collector ----

def test_collector_down_requests_go_on_and_drops_are_counted(gateway, backends):
    b = backends()
    port, admin = free_port(), free_port()
    g = gateway(config(port, b.port, f'http://127.0.0.1:{dead_port()}/v1/traces?key=sekrit', admin=admin,
                       tracing_extra='  batch_size: 2\n  queue_size: 4'), workers=1)
    for i in range(30):
        st, h, _ = request(port, 'GET', f'/api/{i}')
        assert st == 200
    wait_for(lambda: status_json(admin)['tracing']['failed_exports'] > 0, what='a failed export')
    t = status_json(admin)['tracing']
    assert t['exported'] == 0 and t['dropped'] >= 2 * t['failed_exports'] and t['dropped'] > 0
    assert t['dropped'] <= 60
    assert g.count(r'tracing: export to http://127\.0\.0\.1:\d+/v1/traces failed') == 1  # once a minute at most
    assert 'sekrit' not in g.log()  # the endpoint's query may hold a key


def test_collector_hanging_requests_go_on(gateway, backends, collector):
    b, c = backends(), collector('hang')
    port, admin = free_port(), free_port()
    gateway(config(port, b.port, endpoint(c), admin=admin,
                   tracing_extra='  batch_size: 2\n  queue_size: 4\n  timeout: 1s'), workers=1)
    for i in range(40):
        assert request(port, 'GET', f'/api/{i}')[0] == 200
    wait_for(lambda: status_json(admin)['tracing']['dropped'] > 0, what='dropped spans')
    wait_for(lambda: status_json(admin)['tracing']['failed_exports'] >= 2, timeout=20, what='timed-out exports')
    posts = len(c.posts)
    t = status_json(admin)['tracing']
    assert t['exported'] == 0 and posts >= 2
    # one export in flight at a time: each POST but the last one ended (timed out) before the next
    assert posts <= t['failed_exports'] + 1


def test_collector_black_hole_and_error_answers(gateway, backends, collector):
    b, c = backends(), collector('error')
    port, admin = free_port(), free_port()
    gateway(config(port, b.port, endpoint(c), admin=admin), workers=1)
    assert request(port, 'GET', '/api/x')[0] == 200
    wait_for(lambda: status_json(admin)['tracing']['failed_exports'] >= 1, what='a refused export')
    assert status_json(admin)['tracing']['dropped'] >= 2
    s, hole, fillers = black_hole()
    try:
        port2, admin2 = free_port(), free_port()
        gateway(config(port2, b.port, f'http://127.0.0.1:{hole}/v1/traces', admin=admin2,
                       tracing_extra='  timeout: 500ms'), workers=1)
        for _ in range(5):
            assert request(port2, 'GET', '/api/x')[0] == 200
        wait_for(lambda: status_json(admin2)['tracing']['failed_exports'] >= 1, what='a connect that timed out')
    finally:
        s.close()
        for f in fillers:
            f.close()


# ---- reload ----

def test_reload_keeps_exporting_and_old_workers_flush(gateway, backends, collector):
    b, c = backends(), collector()
    port, admin = free_port(), free_port()
    # spans leave only when a batch is full or the worker exits
    g = gateway(config(port, b.port, endpoint(c), admin=admin, tracing_extra='  interval: 1h\n  batch_size: 100'),
                workers=1)
    st, h, _ = request(port, 'GET', '/api/before')
    before = h['x-trace-id']
    time.sleep(0.2)
    assert c.spans() == []
    g.write(config(port, b.port, endpoint(c), admin=admin,
                   tracing_extra='  interval: 50ms\n  service_name: after'))
    g.reload()
    spans = c.wait_spans(lambda s: s['trace'] == before, 2, what='the old worker\'s spans, flushed as it exits')
    assert all(s['service'] == 'portico' for s in spans)
    st, h, _ = request(port, 'GET', '/api/after')
    after = c.wait_spans(lambda s: s['trace'] == h['x-trace-id'], 2)
    assert all(s['service'] == 'after' for s in after)
    wait_for(lambda: status_json(admin)['tracing']['exported'] >= 4, what='exported counts kept across the reload')


# ---- off ----

def test_trace_id_in_the_access_log(gateway, backends, collector, tmpdir_path):
    b, c = backends(), collector()
    port = free_port()
    alog = os.path.join(tmpdir_path, 'access.log')
    gateway(config(port, b.port, endpoint(c), top=f'access_log: {{ path: {alog}, format: "$trace_id $status", flush: 10ms }}\n'),
            workers=1)
    request(port, 'GET', '/api/x', headers={'traceparent': f'00-{TP_ID}-{TP_SPAN}-00'})
    st, h, _ = request(port, 'GET', '/api/y')
    wait_for(lambda: os.path.exists(alog) and len(open(alog).read().splitlines()) == 2, what='two log lines')
    assert open(alog).read().splitlines() == [f'{TP_ID} 200', f'{h["x-trace-id"]} 200']


def test_no_tracing_block_passes_fields_untouched(gateway, backends):
    b = backends()
    port = free_port()
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - name: main
    match: {{ paths: ["/*"] }}
    upstream: up
    filters: {{ response-headers: {{ set: {{ x-trace-id: "${{trace_id}}" }} }} }}
''', workers=1)
    bad = f'00-{TP_ID.upper()}-{TP_SPAN}-01'
    st, h, _ = request(port, 'GET', '/x', headers={'traceparent': bad, 'b3': '1', 'tracestate': 'a=1'})
    assert st == 200 and h.get('x-trace-id', '') == ''
    r = b.requests[-1]
    assert r.header('traceparent') == bad and r.header('b3') == '1' and r.header('tracestate') == 'a=1'


def test_route_with_tracing_false(gateway, backends, collector):
    b, c = backends(), collector()
    port = free_port()
    gateway(config(port, b.port, endpoint(c),
                   more_routes='  - { name: quiet, match: { paths: ["/quiet/*"] }, upstream: up, tracing: false }'),
            workers=1)
    bad = f'00-{TP_ID.upper()}-{TP_SPAN}-01'
    st, _, _ = request(port, 'GET', '/quiet/x', headers={'traceparent': bad, 'tracestate': 'a=1', 'b3': '1'})
    assert st == 200
    r = b.requests[-1]
    assert r.header('traceparent') == bad and r.header('tracestate') == 'a=1' and r.header('b3') == '1'
    st, _, _ = request(port, 'GET', '/quiet/y', headers={'traceparent': f'00-{TP_ID}-{TP_SPAN}-01'})
    assert b.requests[-1].header('traceparent') == f'00-{TP_ID}-{TP_SPAN}-01'
    marker = 'a' * 32
    request(port, 'GET', '/api/x', headers={'traceparent': f'00-{marker}-{TP_SPAN}-01'})
    c.wait_spans(lambda s: s['trace'] == marker, 2)
    assert not [s for s in c.spans() if s['trace'] == TP_ID or s['attrs'].get('url.path', '').startswith('/quiet')]


def test_collector_headers_are_sent_and_kept_secret(gateway, backends, collector):
    b, c = backends(), collector()
    port, admin = free_port(), free_port()
    token = 'otlp-token-0123456789'
    g = gateway(config(port, b.port, endpoint(c, '/v1/traces?tenant=t1'), admin=admin,
                       tracing_extra='  headers: { Authorization: "Bearer ${OTLP_TOKEN}", x-scope: edge }'),
                workers=1, env={'OTLP_TOKEN': token})
    request(port, 'GET', '/api/x')
    c.wait_spans(lambda s: True, 2)
    assert c.headers[0]['authorization'] == f'Bearer {token}' and c.headers[0]['x-scope'] == 'edge'
    assert c.headers[0]['content-type'] == 'application/json' and c.posts[0][0] == '/v1/traces?tenant=t1'
    st, _, body = request(admin, 'GET', '/config')
    assert st == 200 and token not in body.decode()
    r = run_portico('-T', '-c', g.conf, env=dict(os.environ, OTLP_TOKEN=token))
    assert r.returncode == 0 and token not in r.stdout and 'tracing' in r.stdout, r.stdout + r.stderr


# ---- configuration ----

@pytest.mark.parametrize('extra,message', [
    ('  sample: 1.5', r'tracing\.sample: expected a ratio from 0 to 1'),
    ('  sample: lots', r'expected a ratio from 0 to 1'),
    ('  exporter: jaeger', r'exporter'),
    ('  batch_size: 100\n  queue_size: 10', r'queue_size \(10\) must be at least batch_size \(100\)'),
    ('  interval: 1ms', r'interval'),
    ('  headers: { "bad name": x }', r'headers: "bad name": not a field name'),
    ('  headers: { Host: x }', r'headers: "Host" is set by Portico'),
    ('  headers: { x-a: "a\\r\\nb" }', r'headers: "x-a"'),
    ('  queue_size: 100000', r'queue_size'),
])
def test_bad_tracing_values_are_errors_at_their_place(tmpdir_path, extra, message):
    path = os.path.join(tmpdir_path, 'p.yaml')
    with open(path, 'w') as f:
        f.write(config(free_port(), 1, 'http://127.0.0.1:4318/v1/traces', tracing_extra=extra))
    r = run_portico('-t', '-c', path)
    assert r.returncode == 1, r.stderr
    assert re.search(r'p\.yaml:\d+:\d+: error: .*' + message, r.stderr), r.stderr


def test_bad_endpoint_is_an_error(tmpdir_path):
    path = os.path.join(tmpdir_path, 'p.yaml')
    for ep, message in (('ftp://c:21/x', 'http:// or https://'), ('http://c:0/x', 'port')):
        with open(path, 'w') as f:
            f.write(config(free_port(), 1, ep))
        r = run_portico('-t', '-c', path)
        assert r.returncode == 1 and re.search(r'p\.yaml:\d+:\d+: error: .*endpoint.*' + message, r.stderr), r.stderr
    with open(path, 'w') as f:
        f.write(config(free_port(), 1, 'http://127.0.0.1:4318/v1/traces').replace('  endpoint: http://127.0.0.1:4318/v1/traces\n', ''))
    r = run_portico('-t', '-c', path)
    assert r.returncode == 1 and 'endpoint' in r.stderr, r.stderr
