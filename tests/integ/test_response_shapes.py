"""Issue 10: every response shape through the proxy.

status (200, 201, 204, 301, 304, 404, 500) x upstream framing (Content-Length
with a body and 0, chunked with a body and empty, close-delimited with and
without `Connection: close`) x method (GET, HEAD, POST) x client (HTTP/1.1
keep-alive, pipelined, HTTP/2).  For each: the exact head and body at the
client (strictly parsed: framing, chunk syntax, no stray bytes), one
access-log line per request with the status and the bytes sent, the
upstream connection reused when its framing allows it, and nothing in
flight afterwards.  The Content-Length: 0 case is regression r10-1: its
exchange never ended (the next request waited for the read timeout)."""
import json
import os
import re
import socket
import time

import h2.config
import h2.connection
import h2.events
import pytest

from backend import Backend
from conftest import free_port, http_get, proxy_config, wait_for

STATUSES = (200, 201, 204, 301, 304, 404, 500)
FRAMINGS = ('cl', 'cl0', 'chunked', 'chunked0', 'close', 'none')
METHODS = ('GET', 'HEAD', 'POST')
POST_BODY = b'x=1&y=2'


def bodiless(method, st):
    return method == 'HEAD' or st in (204, 304)


def upstream_closes(method, st, fr):
    """Does the backend close its connection after this response?"""
    return fr == 'close' or (fr == 'none' and not bodiless(method, st))


def expected(method, st, fr):
    """(header fields but Date, in order; body) an HTTP/1.1 client must get."""
    body = Backend.shape_body(st, fr)
    fields = [('x-shape', f'{st}-{fr}')]
    if bodiless(method, st):
        if fr in ('cl', 'cl0') and st != 204:  # RFC 9110 8.6: never on a 204
            fields.append(('Content-Length', str(len(body))))
        return fields, b''
    if fr in ('cl', 'cl0'):
        fields.append(('Content-Length', str(len(body))))
    else:
        fields.append(('Transfer-Encoding', 'chunked'))
    return fields, body


class StrictReader:
    """Reads HTTP/1.1 responses off a socket, strictly: a response that is
    malformed, framed wrongly or followed by stray bytes fails the test."""

    def __init__(self, sock):
        self.s, self.buf = sock, b''

    def _fill(self):
        d = self.s.recv(65536)
        assert d, 'connection closed by the gateway'
        self.buf += d

    def _line(self):
        while b'\r\n' not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b'\r\n')
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def response(self, method):
        """(status line, [(name, value)], raw body bytes, decoded body, size on the wire)"""
        consumed = 0
        status_line = self._line()
        consumed += len(status_line) + 2
        fields = []
        while True:
            ln = self._line()
            consumed += len(ln) + 2
            if not ln:
                break
            name, sep, value = ln.partition(b':')
            assert sep and value.startswith(b' ') and not name.endswith(b' '), ln
            fields.append((name.decode(), value[1:].decode()))
        st = int(status_line.split()[1])
        names = [n.lower() for n, _ in fields]
        assert not ('content-length' in names and 'transfer-encoding' in names), fields
        raw, body = b'', b''
        if method != 'HEAD' and st not in (204, 304) and not 100 <= st < 200:
            if 'content-length' in names:
                n = int(dict((k.lower(), v) for k, v in fields)['content-length'])
                raw = body = self._exact(n)
            else:
                assert 'transfer-encoding' in names, f'no framing on a keep-alive response: {fields}'
                while True:
                    size_line = self._line()
                    raw += size_line + b'\r\n'
                    assert re.fullmatch(rb'[0-9a-f]+', size_line), size_line
                    n = int(size_line, 16)
                    if n == 0:
                        assert self._exact(2) == b'\r\n'  # no trailers, the end
                        raw += b'\r\n'
                        break
                    data = self._exact(n)
                    assert self._exact(2) == b'\r\n'
                    raw += data + b'\r\n'
                    body += data
        return status_line.decode(), fields, raw, body, consumed + len(raw)


def request_bytes(method, st, fr):
    head = f'{method} /shape?st={st}&fr={fr} HTTP/1.1\r\nHost: shapes.test\r\n'
    if method == 'POST':
        return head.encode() + b'Content-Length: %d\r\n\r\n' % len(POST_BODY) + POST_BODY
    return head.encode() + b'\r\n'


def check_h1(method, st, fr, got):
    status_line, fields, raw, body, _ = got
    assert status_line == f'HTTP/1.1 {st} Shape', (method, st, fr, status_line)
    dates = [v for n, v in fields if n == 'Date']
    assert len(dates) == 1 and re.fullmatch(r'\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT', dates[0])
    want_fields, want_body = expected(method, st, fr)
    assert [f for f in fields if f[0] != 'Date'] == want_fields, (method, st, fr, fields)
    assert body == want_body, (method, st, fr, body)
    if ('Transfer-Encoding', 'chunked') in fields and not want_body:
        assert raw == b'0\r\n\r\n'  # an empty chunked body is the last chunk alone


def config(port, b, log, admin):
    return proxy_config(port, [b.port], upstream='keepalive: { size: 4 }', extra=f'''
        admin: {{ address: 127.0.0.1:{admin} }}
        access_log: {{ path: {log}, format: json, flush: 50ms }}
        ''')


def log_entries(log, n):
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= n, what=f'{n} log lines')
    time.sleep(0.2)  # and no more than n
    return [json.loads(x) for x in open(log).read().splitlines()]


def inflight(admin):
    st = json.loads(http_get(admin, '/status')[2])
    return sum(t['inflight'] for u in st['upstreams'] for t in u['targets'])


CASES = [(m, st, fr) for m in METHODS for st in STATUSES for fr in FRAMINGS]


@pytest.mark.parametrize('pipelined', [False, True], ids=['keepalive', 'pipelined'])
def test_every_shape_over_http1(gateway, backends, tmpdir_path, pipelined):
    b = backends()
    port, admin = free_port(), free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(config(port, b, log, admin), workers=1)
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    rd = StrictReader(s)
    sizes = []
    groups = [CASES[i:i + 6] for i in range(0, len(CASES), 6)]  # one status, every framing
    for group in groups:
        if pipelined:
            s.sendall(b''.join(request_bytes(*c) for c in group))
        for case in group:
            if not pipelined:
                s.sendall(request_bytes(*case))
            t0 = time.monotonic()
            got = rd.response(case[0])
            # r10-1: an empty body must not wait for the upstream's read timeout (30 s)
            assert time.monotonic() - t0 < 5, case
            check_h1(*case, got)
            sizes.append(got[4])
    # the connection is still good, and nothing is left over
    s.sendall(request_bytes('GET', 200, 'cl'))
    check_h1('GET', 200, 'cl', rd.response('GET'))
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        extra = s.recv(1)
        assert not extra, f'stray bytes after the last response: {extra!r}'
    s.close()

    # what reached the upstream: every request once, in order, with its body
    shaped = [r for r in b.requests if r.target.startswith('/shape')]
    assert [(r.method, r.target) for r in shaped[:-1]] == [(m, f'/shape?st={st}&fr={fr}') for m, st, fr in CASES]
    assert all(r.body == (POST_BODY if r.method == 'POST' else b'') for r in shaped)
    # upstream connections: a new one only after the backend closed the last
    closes = sum(upstream_closes(*c) for c in CASES)
    assert b.connections == 1 + closes
    # one log line per request, with its status and the bytes the client got
    entries = log_entries(log, len(CASES) + 1)
    assert len(entries) == len(CASES) + 1
    for (m, st, fr), e, size in zip(CASES, entries, sizes):
        assert (e['method'], e['status'], e['upstream_status']) == (m, st, st), e
        assert e['bytes_out'] == size, (m, st, fr, e, size)
    wait_for(lambda: inflight(admin) == 0, what='in-flight back to 0')


def h2_exchange(port, cases):
    """Sends every case as a stream of one HTTP/2 connection, all at once;
    returns {stream id: (case, headers, body, ended)}."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding='utf-8'))
    conn.initiate_connection()
    streams = {}
    for case in cases:
        m, st, fr = case
        sid = conn.get_next_available_stream_id()
        hdrs = [(':method', m), (':scheme', 'http'), (':authority', 'shapes.test'),
                (':path', f'/shape?st={st}&fr={fr}')]
        if m == 'POST':
            conn.send_headers(sid, hdrs + [('content-length', str(len(POST_BODY)))])
            conn.send_data(sid, POST_BODY, end_stream=True)
        else:
            conn.send_headers(sid, hdrs, end_stream=True)
        streams[sid] = [case, None, b'', False]
    s.sendall(conn.data_to_send())
    deadline = time.time() + 10
    while not all(v[3] for v in streams.values()):
        assert time.time() < deadline, 'streams did not all end: ' + repr([v[0] for v in streams.values() if not v[3]])
        data = s.recv(65536)
        assert data, 'the gateway closed the HTTP/2 connection'
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                streams[ev.stream_id][1] = ev.headers
            elif isinstance(ev, h2.events.DataReceived):
                streams[ev.stream_id][2] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                streams[ev.stream_id][3] = True
            elif isinstance(ev, h2.events.StreamReset):
                raise AssertionError(f'stream {ev.stream_id} reset: {ev.error_code}')
        s.sendall(conn.data_to_send())
    conn.close_connection()
    s.sendall(conn.data_to_send())
    s.close()
    return streams


def test_every_shape_over_http2(gateway, backends, tmpdir_path):
    b = backends()
    port, admin = free_port(), free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    text = config(port, b, log, admin).replace(f'address: 127.0.0.1:{port}\n',
                                              f'address: 127.0.0.1:{port}\n    http2: true\n', 1)
    gateway(text, workers=1)
    n = 0
    for st in STATUSES:  # one status at a time: several streams of each framing at once
        cases = [(m, st, fr) for m in METHODS for fr in FRAMINGS]
        for sid, (case, headers, body, _) in h2_exchange(port, cases).items():
            m, st_, fr = case
            h = dict(headers)
            assert h[':status'] == str(st), (case, headers)
            assert h['x-shape'] == f'{st}-{fr}'
            for hop in ('connection', 'transfer-encoding', 'keep-alive'):
                assert hop not in h, (case, headers)
            want_fields, want_body = expected(m, st, fr)
            want_cl = dict(want_fields).get('Content-Length')
            assert h.get('content-length') == want_cl, (case, headers)
            assert body == want_body, (case, body)
        n += len(cases)
    entries = log_entries(log, n)
    assert len(entries) == n
    assert all(e['protocol'] == 'HTTP/2.0' and e['status'] == e['upstream_status'] for e in entries)
    wait_for(lambda: inflight(admin) == 0, what='in-flight back to 0')
    # the pool holds what the upstream kept open: at most the pool's size idle
    assert b.connections >= 1
