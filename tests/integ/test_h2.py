"""HTTP/2 towards clients through the real binary: prior knowledge and ALPN,
the same routes, filters and upstreams as HTTP/1.1, bodies both ways under
flow control, and the defences (each refused or closed while the process
keeps serving others)."""
import hashlib
import os
import socket
import ssl
import subprocess
import threading
import time

import hpack
import pytest
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, PriorityFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

import pki
from conftest import free_port, http_get, wait_for

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'


class RawH2:
    """A client that writes frames as told (no client-side rules), to test
    what the server does with whatever arrives."""

    def __init__(self, port, sock=None):
        self.s = sock or socket.create_connection(('127.0.0.1', port), timeout=5)
        self.enc, self.dec = hpack.Encoder(), hpack.Decoder()
        self.buf = b''
        self.send(SettingsFrame(0))
        self.s.sendall(PREFACE + self.pending)
        self.pending = b''

    pending = b''
    answer_pings = True

    def send(self, *frames, flush=False):
        self.pending += b''.join(f.serialize() for f in frames)
        if flush or len(self.pending) > 65536:
            self.s.sendall(self.pending)
            self.pending = b''

    def flush(self):
        if self.pending:
            self.s.sendall(self.pending)
            self.pending = b''

    def request(self, sid, path, method='GET', extra=(), end_stream=True, authority='h2.test'):
        f = HeadersFrame(sid)
        f.data = self.enc.encode([(':method', method), (':scheme', 'http'), (':authority', authority),
                                  (':path', path), *extra])
        f.flags.add('END_HEADERS')
        if end_stream:
            f.flags.add('END_STREAM')
        self.send(f)

    def frames(self, until, timeout=5):
        """Reads frames (answering SETTINGS) until until(frame) is true or the
        connection closes; returns them all.  Headers are decoded in .headers."""
        self.flush()
        got, deadline = [], time.time() + timeout
        while time.time() < deadline:
            while len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) < 9 + length:
                    break
                f.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                if isinstance(f, HeadersFrame):
                    f.headers = dict(self.dec.decode(f.data))
                if isinstance(f, SettingsFrame) and 'ACK' not in f.flags:
                    ack = SettingsFrame(0)
                    ack.flags.add('ACK')
                    self.s.sendall(ack.serialize())
                if isinstance(f, PingFrame) and 'ACK' not in f.flags and self.answer_pings:
                    ack = PingFrame(0)
                    ack.flags.add('ACK')
                    ack.opaque_data = f.opaque_data
                    self.s.sendall(ack.serialize())
                got.append(f)
                if until(f):
                    return got
            try:
                self.s.settimeout(max(0.01, deadline - time.time()))
                data = self.s.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                data = b''
            if not data:
                got.append(None)  # closed
                return got
            self.buf += data
        return got


def ended(sid):
    return lambda f: f is not None and f.stream_id == sid and ('END_STREAM' in f.flags or isinstance(f, RstStreamFrame))


def response(frames, sid):
    heads = [f.headers for f in frames if isinstance(f, HeadersFrame) and f.stream_id == sid]
    body = b''.join(f.data for f in frames if isinstance(f, DataFrame) and f.stream_id == sid)
    rst = [f.error_code for f in frames if isinstance(f, RstStreamFrame) and f.stream_id == sid]
    return (heads[0] if heads else None), body, (rst[0] if rst else None)


def config(port, b, extra='', listener=''):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true {listener} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - {{ name: hello, match: {{ paths: [/hello] }}, respond: {{ body: "hello h2" }} }}
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
{extra}'''


def curl(*args):
    return subprocess.run(['curl', '-s', *args], capture_output=True, timeout=30)


def test_prior_knowledge_requests_reach_the_same_routes_and_upstreams(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b), workers=1)
    r = curl('--http2-prior-knowledge', '-w', ' %{http_version}', f'http://127.0.0.1:{port}/hello')
    assert r.stdout == b'hello h2 2'
    c = RawH2(port)
    c.request(1, '/api/x?q=1', extra=[('cookie', 'a=1'), ('cookie', 'b=2'), ('x-thing', 'yes')])
    head, body, rst = response(c.frames(ended(1)), 1)
    assert head[':status'] == '200' and body == b'ok /api/x' and rst is None
    req = b.requests[-1]
    assert req.method == 'GET' and req.target == '/api/x?q=1' and req.version == 'HTTP/1.1'
    assert req.header('host') == 'h2.test' and req.header('cookie') == 'a=1; b=2' and req.header('x-thing') == 'yes'
    # HTTP/1.1 still works on the same listener
    assert http_get(port, '/hello')[2] == b'hello h2'


def test_alpn_h2_over_tls(gateway, backends, tmp_path):
    certs = pki.make(str(tmp_path))
    b = backends()
    port = free_port()
    gateway(config(port, b, listener=f', tls: {{ certificates: [{{ cert: {certs["a-rsa.crt"]}, '
                                     f'key: {certs["a-rsa.key"]} }}] }}'), workers=1)
    r = curl('--http2', '--cacert', certs['ca.crt'], '--resolve', f'a.test:{port}:127.0.0.1', '-w',
             ' %{http_version}', f'https://a.test:{port}/via-tls')
    assert r.stdout == b'ok /via-tls 2', r
    assert b.requests[-1].header('x-forwarded-proto') == 'https'
    out = subprocess.run(['openssl', 's_client', '-connect', f'127.0.0.1:{port}', '-servername', 'a.test',
                          '-alpn', 'h2,http/1.1'], input='', capture_output=True, text=True, timeout=10).stdout
    assert 'ALPN protocol: h2' in out
    ctx = ssl.create_default_context(cafile=certs['ca.crt'])
    ctx.set_alpn_protocols(['http/1.1'])
    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port)), server_hostname='a.test')
    assert s.selected_alpn_protocol() == 'http/1.1'  # and HTTP/1.1 when asked for
    s.close()


def test_many_concurrent_streams_and_large_bodies_both_ways(gateway, backends, tmp_path):
    b = backends(keep_body=8 << 20)
    port = free_port()
    gateway(config(port, b), workers=1)
    out = subprocess.run(['h2load', '-n', '2000', '-c', '4', '-m', '100', f'http://127.0.0.1:{port}/many'],
                         capture_output=True, text=True, timeout=60).stdout
    assert '2000 succeeded, 0 failed' in out and 'status codes: 2000 2xx' in out, out
    assert len([r for r in b.requests if r.target == '/many']) == 2000
    up = tmp_path / 'up.bin'
    data = os.urandom(5 << 20)
    up.write_bytes(data)
    r = curl('--http2-prior-knowledge', '--data-binary', f'@{up}', f'http://127.0.0.1:{port}/sink')
    assert r.stdout == f'{len(data)} {hashlib.md5(data).hexdigest()}'.encode()
    # without content-length the body goes upstream chunked, DATA frame by DATA frame
    c = RawH2(port)
    inc = WindowUpdateFrame(0)
    inc.window_increment = 1 << 20
    c.send(inc)
    c.request(1, '/sink', method='POST', end_stream=False)
    sent = 0
    for i in range(0, 60000, 15000):  # within the stream's 64 KiB window
        d = DataFrame(1)
        d.data = data[i:i + 15000]
        sent += len(d.data)
        if sent >= 60000:
            d.flags.add('END_STREAM')
        c.send(d)
    head, body, _ = response(c.frames(ended(1)), 1)
    assert body == f'60000 {hashlib.md5(data[:60000]).hexdigest()}'.encode()
    assert b.requests[-1].chunked and b.requests[-1].header('content-length') is None
    r = curl('--http2-prior-knowledge', '-H', f'content-length: {len(data)}', '--data-binary', f'@{up}',
             f'http://127.0.0.1:{port}/echo')
    assert hashlib.md5(r.stdout).hexdigest() == hashlib.md5(data).hexdigest()
    r = curl('--http2-prior-knowledge', f'http://127.0.0.1:{port}/big?size=7000000&chunked=1')
    assert len(r.stdout) == 7000000
    out = subprocess.run(['nghttp', '-n', '-s', '-m', '50', f'http://127.0.0.1:{port}/hello'], capture_output=True,
                         text=True, timeout=30).stdout
    assert out.count(' 200 ') == 50, out


def test_flow_control_holds_a_slow_reader(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b), workers=1)
    c = RawH2(port)
    c.request(1, '/big?size=3000000')  # the client never opens its window beyond 64 KiB
    got = c.frames(lambda f: False, timeout=1.5)
    data = sum(len(f.data) for f in got if isinstance(f, DataFrame))
    assert data <= 65535 and data > 0  # exactly what the window allows
    inc = WindowUpdateFrame(0)
    inc.window_increment = 8 << 20
    inc1 = WindowUpdateFrame(1)
    inc1.window_increment = 8 << 20
    c.send(inc, inc1)
    got = c.frames(ended(1), timeout=10)
    data += sum(len(f.data) for f in got if isinstance(f, DataFrame))
    assert data == 3000000


def test_too_many_streams_are_refused(gateway, backends):
    b = backends(delay_ms=300)
    port = free_port()
    g = gateway(config(port, b, listener=', http2_settings: { max_concurrent_streams: 4 }'), workers=1)
    c = RawH2(port)
    for i in range(8):
        c.request(1 + 2 * i, f'/slow/{i}')
    got = c.frames(lambda f: False, timeout=2)
    refused = [f.stream_id for f in got if isinstance(f, RstStreamFrame) and f.error_code == 7]
    answered = [f.stream_id for f in got if isinstance(f, HeadersFrame)]
    assert len(refused) == 4 and len(answered) == 4, (refused, answered)
    assert http_get(port, '/hello')[0] == 200 and g.proc.poll() is None


def test_oversized_header_lists_get_431(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b, listener=', max_header_size: 8k'), workers=1)
    c = RawH2(port)
    c.request(1, '/big-head', extra=[('x-big', 'a' * 12000)])
    head, body, _ = response(c.frames(ended(1)), 1)
    assert head[':status'] == '431' and b.requests == []
    c.request(3, '/after')  # the connection goes on
    head, body, _ = response(c.frames(ended(3)), 3)
    assert head[':status'] == '200'


def test_an_hpack_bomb_gets_431(gateway, backends):
    b = backends()
    port = free_port()
    g = gateway(config(port, b), workers=1)
    c = RawH2(port)
    # one 4 KiB header into the dynamic table, then referenced by index
    # 2,000 times: a few KiB on the wire, 8 MiB once decoded
    f = HeadersFrame(1)
    f.data = c.enc.encode([(':method', 'GET'), (':scheme', 'http'), (':authority', 'x'), (':path', '/bomb')] +
                          [('x-bomb', 'b' * 4000)] * 2000)
    assert len(f.data) < 16384
    f.flags.add('END_HEADERS')
    f.flags.add('END_STREAM')
    c.send(f)
    head, _, _ = response(c.frames(ended(1)), 1)
    assert head[':status'] == '431' and b.requests == []
    assert http_get(port, '/hello')[0] == 200 and g.proc.poll() is None


def test_connection_specific_headers_are_refused(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b), workers=1)
    c = RawH2(port)
    c.request(1, '/conn', extra=[('connection', 'keep-alive')])  # RFC 9113, 8.2.2
    c.request(3, '/te', extra=[('transfer-encoding', 'chunked')])
    got = c.frames(lambda f: False, timeout=1)
    assert response(got, 1)[2] == 1 and response(got, 3)[2] == 1  # RST_STREAM PROTOCOL_ERROR
    assert b.requests == []


def goaway_code(frames):
    codes = [f.error_code for f in frames if isinstance(f, GoAwayFrame)]
    return codes[0] if codes else None


def test_rapid_reset_is_stopped(gateway, backends):
    b = backends(delay_ms=200)
    port = free_port()
    g = gateway(config(port, b, listener=', http2_settings: { reset_burst: 50, reset_rate: 10 }'), workers=1)
    c = RawH2(port)
    for i in range(500):
        sid = 1 + 2 * i
        c.request(sid, f'/rr/{i}')
        c.send(RstStreamFrame(sid, error_code=8))  # CANCEL
    got = c.frames(lambda f: isinstance(f, GoAwayFrame), timeout=5)
    assert goaway_code(got) == 11  # ENHANCE_YOUR_CALM
    assert len(b.requests) < 200
    assert http_get(port, '/hello')[0] == 200 and g.proc.poll() is None


def test_continuation_flood_is_stopped(gateway, backends):
    port = free_port()
    g = gateway(config(port, backends()), workers=1)
    c = RawH2(port)
    h = HeadersFrame(1)
    h.data = c.enc.encode([(':method', 'GET'), (':scheme', 'http'), (':path', '/'), (':authority', 'x')])
    c.send(h)
    for _ in range(100):
        cf = ContinuationFrame(1)
        cf.data = c.enc.encode([('x-a', 'b')])
        c.send(cf)
    got = c.frames(lambda f: isinstance(f, GoAwayFrame) or f is None, timeout=5)
    assert got and (goaway_code(got) is not None or got[-1] is None)
    assert http_get(port, '/hello')[0] == 200 and g.proc.poll() is None


@pytest.mark.parametrize('kind', ['settings', 'ping'])
def test_settings_and_ping_floods_are_stopped(gateway, backends, kind):
    port = free_port()
    g = gateway(config(port, backends()), workers=1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read: the answers pile up
    s.settimeout(5)
    s.connect(('127.0.0.1', port))
    frame = SettingsFrame(0) if kind == 'settings' else PingFrame(0)
    if kind == 'ping':
        frame.opaque_data = b'12345678'
    one = frame.serialize() * 1000
    sent = 0
    try:
        s.sendall(PREFACE + SettingsFrame(0).serialize())
        while sent < 16 << 20:
            s.sendall(one)
            sent += len(one)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    g.wait_log(r'HTTP/2 client 127\.0\.0\.1:\d+ sends frames that need answers \(SETTINGS, PING\) and does not '
               r'read them: GOAWAY ENHANCE_YOUR_CALM, closing')
    t0 = time.time()
    try:  # what was answered before, then the end (after a short linger)
        while s.recv(65536):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert time.time() - t0 < 4.5
    assert http_get(port, '/hello')[0] == 200 and g.proc.poll() is None


def test_reload_sends_goaway_and_open_streams_finish(gateway, backends):
    b = backends(delay_ms=800)
    port = free_port()
    g = gateway(config(port, b), workers=1)
    c = RawH2(port)
    c.request(1, '/slow-through-reload')
    wait_for(lambda: len(b.requests) == 1 or True, timeout=0.3)
    time.sleep(0.2)
    threading.Thread(target=g.reload, daemon=True).start()
    got = c.frames(ended(1), timeout=10)
    head, body, rst = response(got, 1)
    assert head[':status'] == '200' and body == b'ok /slow-through-reload' and rst is None
    assert goaway_code(got) == 0  # NO_ERROR: a graceful goodbye
    g.wait_log('reload ok')


@pytest.mark.parametrize('pings', [True, False])
def test_graceful_stop_sends_goaway_and_open_streams_finish(gateway, backends, pings):
    """SIGQUIT: a stream the client sent before it read the GOAWAY is
    served, however late the worker reads it (the request below goes out
    only after the signal, as a loaded machine may order it).  The first
    GOAWAY is a notice (last stream 2^31-1), the final one names stream 1:
    after the client answers the PING, or, when it does not, once its
    streams are done."""
    import signal
    b = backends(delay_ms=600)
    port = free_port()
    g = gateway(config(port, b), workers=1)
    c = RawH2(port)
    c.answer_pings = pings
    c.frames(lambda f: isinstance(f, SettingsFrame), timeout=2)
    c.request(1, '/slow-through-stop')
    g.proc.send_signal(signal.SIGQUIT)
    time.sleep(0.2)
    got = c.frames(lambda f: f is None, timeout=10)
    head, body, rst = response(got, 1)
    assert head[':status'] == '200' and body == b'ok /slow-through-stop' and rst is None
    goaways = [(f.last_stream_id, f.error_code) for f in got if isinstance(f, GoAwayFrame)]
    assert goaways == [(2 ** 31 - 1, 0), (1, 0)]
    assert g.proc.wait(10) == 0


def test_idle_connections_are_closed(gateway, backends):
    port = free_port()
    gateway(config(port, backends(), listener=', timeouts: { idle: 300ms }'), workers=1)
    c = RawH2(port)
    t0 = time.time()
    got = c.frames(lambda f: f is None, timeout=5)
    assert got[-1] is None and time.time() - t0 < 2
    assert goaway_code(got) == 0  # a GOAWAY (NO_ERROR) first


def test_headers_on_a_lower_stream_id_end_the_connection(gateway, backends):
    """RFC 9113, 5.1.1 (h2spec http2/5.1.1/2): a stream id lower than one the
    client already opened is a connection error PROTOCOL_ERROR; libnghttp2
    only ignores it.  Trailers on a lower stream still open are fine."""
    b = backends()
    port = free_port()
    g = gateway(config(port, b), workers=1)
    c = RawH2(port)
    c.request(1, '/upload', method='POST', end_stream=False)
    c.request(5, '/five')
    got = c.frames(ended(5))
    assert response(got, 5)[0][':status'] == '200'
    trailers = HeadersFrame(1)  # stream 1 is open: its trailers end it
    trailers.data = c.enc.encode([('x-trailer', 'yes')])
    trailers.flags.add('END_HEADERS')
    trailers.flags.add('END_STREAM')
    c.send(trailers)
    got = c.frames(ended(1))
    assert response(got, 1)[0][':status'] == '200' and goaway_code(got) is None
    c.request(3, '/three')  # 3 < 5, never opened
    got = c.frames(lambda f: isinstance(f, GoAwayFrame) or f is None)
    assert goaway_code(got) == 1 and not [f for f in got if f and f.stream_id == 3]
    assert [r.target for r in b.requests] == ['/five', '/upload']
    assert http_get(port, '/hello')[0] == 200 and g.proc.poll() is None


@pytest.mark.parametrize('n', [500, 999])  # 999 and content-length: the limit
def test_responses_with_many_header_fields_reach_the_client_whole(gateway, backends, n):
    """As many response header fields as the listener allows (max_headers,
    up to 1,000) reach an HTTP/2 client, not the first 128."""
    b = backends()
    port = free_port()
    gateway(config(port, b, listener=', max_headers: 1000'), workers=1)
    c = RawH2(port)
    c.request(1, f'/many-headers?n={n}')
    head, body, rst = response(c.frames(ended(1)), 1)
    assert rst is None and head[':status'] == '200' and body == b'many'
    assert [head.get(f'x-h-{i}') for i in range(n)] == [f'v-{i}' for i in range(n)]


def test_rfc7540_priorities_are_ignored_but_checked_for_size(gateway, backends):
    """SETTINGS_NO_RFC7540_PRIORITIES (RFC 9218): the server keeps no
    priority tree, so PRIORITY frames for idle streams (Firefox's anchors, or
    a hundred from a hostile client) cost no stream each, and every request
    is still answered; a PRIORITY frame of the wrong size still ends the
    connection (FRAME_SIZE_ERROR)."""
    b = backends()
    port = free_port()
    gateway(config(port, b), workers=1)
    c = RawH2(port)
    got = c.frames(lambda f: isinstance(f, SettingsFrame) and 'ACK' not in f.flags)
    assert got[-1].settings.get(0x9) == 1, got[-1].settings  # SETTINGS_NO_RFC7540_PRIORITIES
    frames = []
    for k in range(100):
        p = PriorityFrame(101 + 2 * k)
        p.depends_on, p.stream_weight = 0, k
        frames.append(p)
    p = PriorityFrame(1)
    p.depends_on = 1  # on itself: an RFC 7540 error, of a signal now ignored
    c.send(*frames, p)
    c.request(1, '/after-priorities')
    head, body, rst = response(c.frames(ended(1)), 1)
    assert head[':status'] == '200' and body == b'ok /after-priorities' and rst is None
    raw = PriorityFrame(3, depends_on=1).serialize()
    c.s.sendall(b'\x00\x00\x04' + raw[3:13])  # a length of 4
    got = c.frames(lambda f: f is None or isinstance(f, GoAwayFrame))
    assert isinstance(got[-1], GoAwayFrame) and got[-1].error_code == 6, got[-3:]
    # on stream 0: a connection error (RFC 9113, 6.3), though skipped unread
    c = RawH2(port)
    c.s.sendall(b'\x00\x00\x05\x02\x00\x00\x00\x00\x00' + b'\x00\x00\x00\x01\x10')
    got = c.frames(lambda f: f is None or isinstance(f, GoAwayFrame))
    assert isinstance(got[-1], GoAwayFrame) and got[-1].error_code == 1, got[-3:]
