"""Issue 11: faults of upstreams and clients, through the real binary.

A scripted upstream misbehaves on purpose (bytes past its Content-Length,
resets, truncated bodies, silence); the tests check what each client got
byte for byte, what the access log says, and that pooled connections never
carry one exchange's bytes into another's."""
import json
import os
import socket
import struct
import threading
import time

import h2.config
import h2.connection
import h2.events
import pytest

from conftest import free_port, proxy_config, read_all, wait_for


class RawUpstream:
    """A listening socket whose connections run `script(conn, head, n)` for
    each request head they read (n: the request's number on the
    connection).  Records every request head."""

    def __init__(self, script):
        self.script = script
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.heads, self.conns, self.closed = [], [], False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf, n = b'', 0
        try:
            while True:
                while b'\r\n\r\n' not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b'\r\n\r\n')
                self.heads.append(head)
                if self.script(c, head, n) is False:
                    return
                n += 1
        except OSError:
            pass

    def close(self):
        self.closed = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def upstream():
    made = []

    def make(script):
        u = RawUpstream(script)
        made.append(u)
        return u
    yield make
    for u in made:
        u.close()


def reset(c):
    """Closes with a TCP reset instead of a FIN."""
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    c.close()


def path_of(head):
    return head.split(b' ')[1].decode()


def log_lines(log, n):
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= n, what=f'{n} log lines')
    time.sleep(0.3)  # and no more than n
    return [json.loads(x) for x in open(log).read().splitlines()]


def faults_config(port, uport, log, upstream_extra='', extra=''):
    return proxy_config(port, [uport], upstream=f'''
        keepalive: {{ size: 8 }}
        timeouts: {{ read: 2s }}
        {upstream_extra}
        ''', extra=f'access_log: {{ path: {log}, format: json, flush: 50ms }}\n' + extra)


# ---- 1: bytes past a response never reach the next client ----

FILL = 60000


def overrunning(c, head, n):
    """/fill?N answers N bytes; /big?N answers N bytes, then 300 ms later a
    whole extra response nobody asked for; anything else answers its own
    path."""
    path = path_of(head)
    size = int(path.partition('?')[2] or 0)
    if path.startswith('/fill'):
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % size + b'h' * size)
    elif path.startswith('/big'):
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % size + b'a' * size)
        time.sleep(0.3)
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!')
    else:
        body = ('next:' + path).encode()
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(body) + body)


def get_close(port, path):
    """GET path on a new connection with Connection: close: all it got."""
    c = socket.create_connection(('127.0.0.1', port), timeout=10)
    c.sendall(f'GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'.encode())
    out = read_all(c)
    c.close()
    return out


def read_response(f):
    """One Content-Length response from a buffered reader: (head, body)."""
    head = b''
    while not head.endswith(b'\r\n\r\n'):
        line = f.readline()
        assert line, f'closed after {head!r}'
        head += line
    n = int(head.lower().partition(b'content-length: ')[2].partition(b'\r\n')[0])
    return head, f.read(n)


@pytest.mark.parametrize('size', [0, 1000, 30000, 45000, 60000, 65000, 200000, 1000000])
def test_bytes_past_content_length_never_answer_another_client(gateway, upstream, tmpdir_path, size):
    u = upstream(overrunning)
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gw = gateway(faults_config(port, u.port, log), workers=1)
    # A client that does not read yet, and pipelines: the first answer
    # fills the socket buffers on the way (small ones: a small window and
    # segment size keep the kernel's send buffer near 85 KB), so the
    # gateway still holds the second one's body, in the upstream
    # connection's buffer, when the extra bytes arrive, and cannot read
    # that upstream then.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    slow.connect(('127.0.0.1', port))
    slow.settimeout(20)
    slow.sendall(f'GET /fill?{FILL} HTTP/1.1\r\nHost: t\r\n\r\nGET /big?{size} HTTP/1.1\r\nHost: t\r\n\r\n'.encode())
    time.sleep(0.8)
    f = slow.makefile('rb')
    head, body = read_response(f)
    assert head.startswith(b'HTTP/1.1 200 OK\r\n') and body == b'h' * FILL
    head, body = read_response(f)
    assert head.startswith(b'HTTP/1.1 200 OK\r\n') and body == b'a' * size
    # the next clients, each on a new connection, get their own answers
    for i in range(3):
        out = get_close(port, f'/next{i}')
        assert out.endswith(f'\r\n\r\nnext:/next{i}'.encode()), out[-200:]
        assert b'EVIL' not in out
    # and the slow client's connection goes on just as well
    slow.sendall(b'GET /next-slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
    head, body = read_response(f)
    slow.close()
    assert body == b'next:/next-slow', (head, body)
    entries = log_lines(log, 6)
    assert [e['status'] for e in entries] == [200] * 6
    assert all(e['completion'] == 'ok' for e in entries)
    # the connection was released with the bytes waiting (or they came
    # while it was idle): said, and it was not reused
    assert gw.count(r'sent (more than its response|bytes on an idle connection)') >= 1, gw.log()[-2000:]


def test_an_idle_pooled_connection_that_speaks_out_of_turn_is_not_reused(gateway, upstream, tmpdir_path):
    """Bytes arriving while the connection sits in the pool."""
    def script(c, head, n):
        body = path_of(head).encode()
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(body) + body)
        if n == 0:
            time.sleep(0.2)
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!')
    u = upstream(script)
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gw = gateway(faults_config(port, u.port, log), workers=1)
    for i in range(4):
        out = get_close(port, f'/r{i}')
        assert out.endswith(f'\r\n\r\n/r{i}'.encode()), out[-200:]
        time.sleep(0.5)
    assert gw.count('sent bytes on an idle connection') >= 1


# ---- 2 and 4: resets and truncations fail the response, and are logged ----

def cutting(framing, end):
    """/cut answers 200 in `framing`, sends part of its body, then ends the
    connection with a FIN or a reset; /ok answers whole."""
    def script(c, head, n):
        if not path_of(head).startswith('/cut'):
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
            return True
        part = b'p' * 3000
        if framing == 'length':
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n' + part)
        elif framing == 'chunked':
            c.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n' % len(part) + part + b'\r\n')
        else:  # close-delimited
            c.sendall(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n' + part)
        time.sleep(0.4)  # the gateway has read and passed it on
        if end == 'reset':
            reset(c)
        else:
            c.shutdown(socket.SHUT_WR)
            c.close()
        return False
    return script


def dechunk(body):
    """(data, complete): a strict reading of a chunked body."""
    out, rest = b'', body
    while rest:
        line, sep, rest = rest.partition(b'\r\n')
        if not sep:
            return out, False
        n = int(line, 16)
        if n == 0:
            return out, rest == b'\r\n'
        if len(rest) < n + 2:
            return out + rest[:n], False
        assert rest[n:n + 2] == b'\r\n'
        out, rest = out + rest[:n], rest[n + 2:]
    return out, False


CUTS = [('length', 'fin'), ('length', 'reset'), ('chunked', 'fin'), ('chunked', 'reset'), ('close', 'reset')]


@pytest.mark.parametrize('framing,end', CUTS)
def test_a_cut_response_is_cut_for_the_client_and_logged(gateway, upstream, tmpdir_path, framing, end):
    u = upstream(cutting(framing, end))
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gw = gateway(faults_config(port, u.port, log), workers=1)
    c = socket.create_connection(('127.0.0.1', port), timeout=10)
    c.sendall(b'GET /cut HTTP/1.1\r\nHost: t\r\n\r\n')
    got = read_all(c)  # the gateway closes the connection: the only way to say "cut"
    c.close()
    head, _, body = got.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200 OK'), got[:200]
    if b'transfer-encoding: chunked' in head.lower():
        data, complete = dechunk(body)
        assert not complete, 'a cut body ended with the last chunk'
    else:
        data = body
        assert b'content-length: 10000' in head.lower()
    assert data == b'p' * 3000
    (e,) = log_lines(log, 1)
    assert e['status'] == 200 and e['completion'] == 'upstream_cut', e
    assert e['bytes_out'] == len(got), (e['bytes_out'], len(got))
    assert gw.count(r'upstream (closed the connection|sent an invalid response) while reading the response body') == 1
    # nothing is left over: the gateway serves on
    assert get_close(port, '/ok').endswith(b'\r\n\r\nok')


def test_a_close_delimited_response_ended_by_a_fin_is_complete(gateway, upstream, tmpdir_path):
    u = upstream(cutting('close', 'fin'))
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(faults_config(port, u.port, log), workers=1)
    c = socket.create_connection(('127.0.0.1', port), timeout=10)
    c.sendall(b'GET /cut HTTP/1.1\r\nHost: t\r\n\r\n')
    got = b''
    while not got.endswith(b'0\r\n\r\n'):
        d = c.recv(65536)
        assert d, 'closed: the complete response should keep the connection'
        got += d
    data, complete = dechunk(got.partition(b'\r\n\r\n')[2])
    assert complete and data == b'p' * 3000
    c.sendall(b'GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
    assert read_all(c).endswith(b'\r\n\r\nok')  # the same connection goes on
    c.close()
    e1, e2 = log_lines(log, 2)
    assert e1['completion'] == 'ok' and e1['status'] == 200 and e2['completion'] == 'ok'


@pytest.mark.parametrize('framing,end', [('length', 'reset'), ('close', 'reset'), ('chunked', 'fin')])
def test_a_cut_response_resets_the_http2_stream(gateway, upstream, tmpdir_path, framing, end):
    u = upstream(cutting(framing, end))
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(faults_config(port, u.port, log).replace(f'address: 127.0.0.1:{port}',
                                                     f'address: 127.0.0.1:{port}\n    http2: true'), workers=1)
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding='utf-8'))
    conn.initiate_connection()
    hdrs = [(':method', 'GET'), (':scheme', 'http'), (':authority', 't')]
    conn.send_headers(1, hdrs + [(':path', '/cut')], end_stream=True)
    s.sendall(conn.data_to_send())
    data, status, how = b'', None, None
    while how is None:
        d = s.recv(65536)
        assert d, 'the gateway closed the HTTP/2 connection'
        for ev in conn.receive_data(d):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[':status']
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                how = 'ended'
            elif isinstance(ev, h2.events.StreamReset):
                how = 'reset'
        s.sendall(conn.data_to_send())
    assert status == '200' and data == b'p' * 3000 and how == 'reset'
    # the connection itself goes on
    conn.send_headers(3, hdrs + [(':path', '/ok')], end_stream=True)
    s.sendall(conn.data_to_send())
    body, ended = b'', False
    while not ended:
        d = s.recv(65536)
        assert d
        for ev in conn.receive_data(d):
            if isinstance(ev, h2.events.DataReceived):
                body += ev.data
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
        s.sendall(conn.data_to_send())
    assert body == b'ok'
    s.close()
    e1, e2 = log_lines(log, 2)
    assert e1['status'] == 200 and e1['completion'] == 'upstream_cut', e1
    assert e2['completion'] == 'ok'


STREAMED = 20_000_000


def streaming(c, head, n):
    """A 20 MB answer, for as long as the gateway takes it."""
    c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % STREAMED)
    try:
        for _ in range(STREAMED // 100000):
            c.sendall(b'z' * 100000)
    except OSError:
        pass
    return False


def slow_client(port):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    c.connect(('127.0.0.1', port))
    c.settimeout(10)
    c.sendall(b'GET /huge HTTP/1.1\r\nHost: t\r\n\r\n')
    return c


def test_a_client_that_leaves_mid_body_is_logged_with_what_it_got(gateway, upstream, tmpdir_path):
    size = STREAMED
    u = upstream(streaming)
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gw = gateway(faults_config(port, u.port, log), workers=1)
    c = slow_client(port)
    got = 0
    while got < 300000:
        d = c.recv(65536)
        assert d
        got += len(d)
    reset(c)  # gone, and with a reset: the gateway's next write fails
    (e,) = log_lines(log, 1)
    assert e['status'] == 200 and e['completion'] == 'client_gone', e
    # what it was handed to the socket: at least what the client read, far
    # less than the body (the socket buffers are small next to 20 MB)
    assert got <= e['bytes_out'] < size // 2, (got, e['bytes_out'])
    assert gw.count('worker .* (exited|killed)') == 0


def test_a_client_that_stops_reading_is_logged_as_timed_out(gateway, upstream, tmpdir_path):
    size = STREAMED
    u = upstream(streaming)
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(proxy_config(port, [u.port], upstream='timeouts: { read: 30s }', extra=f'''
        access_log: {{ path: {log}, format: json, flush: 50ms }}
        ''').replace('address: 127.0.0.1:%d' % port, 'address: 127.0.0.1:%d\n    timeouts: { send: 1s }' % port),
        workers=1)
    c = slow_client(port)
    (e,) = log_lines(log, 1)  # no reads at all: cut at timeouts.send
    c.close()
    assert e['status'] == 200 and e['completion'] == 'timeout', e
    assert 0 < e['bytes_out'] < size // 2


# ---- 7: a timeout is not retried on the target that timed out ----

@pytest.mark.parametrize('same', [False, True])
def test_a_timeout_on_the_only_target_is_not_retried(gateway, upstream, tmpdir_path, same):
    u = upstream(lambda c, head, n: time.sleep(30))  # never answers
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(faults_config(port, u.port, log, upstream_extra='retries: 2' + (
        '\n        retry_same_target: true' if same else '')).replace('read: 2s', 'read: 500ms'), workers=1)
    assert get_close(port, '/slow').startswith(b'HTTP/1.1 504 ')
    (e,) = log_lines(log, 1)
    assert e['status'] == 504 and e['completion'] == 'ok'
    assert len(u.heads) == (3 if same else 1), u.heads  # with retry_same_target: the first attempt and 2 retries


def test_a_timeout_is_still_retried_on_another_target(gateway, upstream, tmpdir_path):
    silent = upstream(lambda c, head, n: time.sleep(30))
    good = upstream(lambda c, head, n: c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'))
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(proxy_config(port, [silent.port, good.port], upstream='''
        balancer: round-robin
        timeouts: { read: 500ms }
        ''', extra=f'access_log: {{ path: {log}, format: json, flush: 50ms }}'), workers=1)
    for i in range(4):
        assert get_close(port, '/x').endswith(b'\r\n\r\nok')
    assert len(silent.heads) >= 1  # it was tried, timed out, and the retry went to the other


# ---- found by the hostile review ----

def h2_listener(text, port, extra=''):
    return text.replace(f'address: 127.0.0.1:{port}', f'address: 127.0.0.1:{port}\n    http2: true' + extra)


@pytest.mark.parametrize('nstreams', [1, 2])
def test_http2_bytes_out_leaves_out_what_a_shut_window_kept(gateway, upstream, tmpdir_path, nstreams):
    """A client that never opens its windows gets ~64 KiB; the streams' log
    lines may not count the bytes they still held for it."""
    u = upstream(streaming)
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(h2_listener(faults_config(port, u.port, log), port, '\n    timeouts: { send: 1s }'), workers=1)
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for _ in range(nstreams):
        conn.send_headers(conn.get_next_available_stream_id(), [(':method', 'GET'), (':scheme', 'http'),
                                                                (':authority', 't'), (':path', '/big')],
                          end_stream=True)
    s.sendall(conn.data_to_send())
    received, s_end = 0, time.time() + 4
    s.settimeout(0.2)
    while time.time() < s_end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            break
        received += len(d)
        conn.receive_data(d)  # never acknowledged: the windows stay shut
        s.sendall(conn.data_to_send())
    s.close()
    entries = log_lines(log, nstreams)
    assert all(e['status'] == 200 and e['completion'] == 'timeout' for e in entries), entries
    # (bytes_out counts a head as HTTP/1.1 text, the client got it as
    # HPACK: a little slack for that; the bytes held were 250 KB a stream)
    assert sum(e['bytes_out'] for e in entries) <= received + 256 * nstreams, (entries, received)


def test_grpc_calls_are_logged_with_the_status_the_client_got(gateway, tmpdir_path):
    import grpc
    from grpc_server import GrpcServer
    up = GrpcServer()
    try:
        port = free_port()
        log = os.path.join(tmpdir_path, 'access.log')
        gateway(h2_listener(f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
upstreams:
  - name: g
    scheme: grpc
    targets: ["127.0.0.1:{up.port}"]
routes:
  - name: main
    match: {{ paths: ["/*"] }}
    upstream: g
access_log: {{ path: {log}, format: json, flush: 50ms }}
''', port), workers=1)
        ch = grpc.insecure_channel(f'127.0.0.1:{port}')
        assert ch.unary_unary('/test.Echo/Unary')(b'hi', timeout=5).startswith(b'echo:hi')
        with pytest.raises(grpc.RpcError) as err:
            ch.unary_unary('/test.Echo/Fail')(b'hi', timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        ch.close()
        e1, e2 = log_lines(log, 2)
        assert (e1['status'], e1['completion'], e2['status'], e2['completion']) == (200, 'ok', 200, 'ok'), (e1, e2)
    finally:
        up.stop()


def test_a_client_that_resets_before_the_head_is_logged_499(gateway, upstream, tmpdir_path):
    def late(c, head, n):
        time.sleep(1)
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    u = upstream(late)
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(faults_config(port, u.port, log), workers=1)
    c = socket.create_connection(('127.0.0.1', port), timeout=10)
    c.sendall(b'GET /late HTTP/1.1\r\nHost: t\r\n\r\n')
    time.sleep(0.2)
    reset(c)
    (e,) = log_lines(log, 1)
    assert (e['status'], e['completion'], e['bytes_out']) == (499, 'client_gone', 0), e
