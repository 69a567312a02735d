"""Hostile tests: HTTP/2 connections whose streams wait on the client.

Once a stream's upstream exchange is over, what is left of its answer
waits on the client's flow-control window.  Before issue 17's review such a
connection had no timer at all, and a reset that came on the same edge as
the client's last frame was never seen: the connection, its fd and its
buffers stayed for the life of the worker.  Now the session gets
timeouts.send between two sends (nginx's send_timeout), and the socket is
asked after a short read when every stream waits on the client."""
import json
import socket
import struct
import time
import urllib.request

from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame, WindowUpdateFrame

from backend import PATTERN
from conftest import free_port, wait_for
from hostile_h2 import H2

BIG = 150000  # past the initial window (65,535), and within what a stream buffers (256 KiB): the upstream
# exchange ends, the rest waits on the client


def config(ports, backend_port, send):
    return f'''listeners:
  - {{ name: main, address: "127.0.0.1:{ports['main']}", http2: true, timeouts: {{ idle: 60s, send: {send} }} }}
admin: {{ address: "127.0.0.1:{ports['admin']}" }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{backend_port}"] }}]
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''


def start(gateway, backends, send):
    b = backends()
    ports = {'main': free_port(), 'admin': free_port()}
    g = gateway(config(ports, b.port, send), workers=1)
    return g, ports


def status(ports):
    with urllib.request.urlopen(f'http://127.0.0.1:{ports["admin"]}/status', timeout=10) as r:
        st = json.load(r)
    return st['connections']['active'], st['workers'][0]['buffers']


def stall(port, sid=1):
    """A connection with one GET /big whose answer is past the window and
    is never read nor acknowledged: the upstream exchange ends, the rest
    waits on the client."""
    c = H2(port)
    c.request(sid, f'/big?size={BIG}')
    c.flush()
    got = c.frames(lambda f: isinstance(f, DataFrame), timeout=5)
    assert any(isinstance(f, HeadersFrame) and f.headers.get(':status') == '200' for f in got), got
    return c


def test_a_reset_behind_the_last_frame_ends_the_connection(gateway, backends):
    """The review's reproducer: a POST with an unfinished body, a GET whose
    answer the client never reads, then RST_STREAM for the POST and a reset
    of the socket (SO_LINGER 0) right behind it.  The worker read the 13
    bytes with a short read, took the socket for drained, and never saw the
    reset: each play kept a connection for the life of the worker.  With a
    send timeout of 60 s, every connection must be gone within seconds."""
    g, ports = start(gateway, backends, send='60s')
    base_active, _ = status(ports)
    for _ in range(20):
        c = H2(ports['main'])
        c.request(1, '/echo', method='POST', extra=[('content-length', '100000')], end_stream=False)
        d = DataFrame(1)
        d.data = b'z' * 16384
        c.send(d)
        c.request(3, f'/big?size={BIG}')
        c.flush()
        c.frames(lambda f: isinstance(f, DataFrame) and f.stream_id == 3, timeout=5)
        time.sleep(0.2)  # the GET's upstream exchange is over; its answer waits on the window
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        r = RstStreamFrame(1)
        r.error_code = 8  # CANCEL
        c.s.sendall(r.serialize())
        c.s.close()

    def at_rest():
        active, buffers = status(ports)
        return active <= base_active and buffers['small'] <= 1 and buffers['large'] == 0
    wait_for(at_rest, 10, what=f'the 20 reset connections closed (active, buffers: {status(ports)})')
    assert 'ERROR' not in g.log() and 'AddressSanitizer' not in g.log()


def ping_until_ended(conns, sid, secs):
    """Pings each connection every half second (a client that looks alive)
    and never opens a window; returns, per connection, how it ended: 'closed'
    (the socket, or GOAWAY), 'reset' (RST_STREAM on sid), or None."""
    ended = [None] * len(conns)
    t0 = time.time()
    while time.time() - t0 < secs and None in ended:
        for i, c in enumerate(conns):
            if ended[i]:
                continue
            p = PingFrame(0)
            p.opaque_data = b'12345678'
            try:
                c.s.sendall(p.serialize())
            except OSError:
                ended[i] = 'closed'
                continue
            got = c.frames(lambda f: f is None or isinstance(f, GoAwayFrame)
                           or (isinstance(f, RstStreamFrame) and f.stream_id == sid), timeout=0.1)
            if got and (got[-1] is None or isinstance(got[-1], GoAwayFrame)):
                ended[i] = 'closed'
            elif got and isinstance(got[-1], RstStreamFrame):
                ended[i] = 'reset'
        time.sleep(0.4)
    return ended


def test_a_client_that_never_opens_its_window_is_timed_out(gateway, backends):
    """A client that never sends WINDOW_UPDATE, and pings every half second
    to look alive.  Its stream's upstream exchange is over, and what is
    left waits on the window: the connection had no timer at all.
    timeouts.send (2 s here) must close it; its PINGs must not move the
    deadline."""
    g, ports = start(gateway, backends, send='2s')
    conns = [stall(ports['main']) for _ in range(5)]
    t0 = time.time()
    ended = ping_until_ended(conns, 1, 12)
    assert ended == ['closed'] * 5, f'after {time.time() - t0:.1f} s: {ended}'
    wait_for(lambda: status(ports)[0] <= 1 and status(ports)[1]['small'] <= 1, 5, what='connections and buffers at rest')
    for c in conns:
        c.s.close()


def test_an_answer_still_coming_from_upstream_is_reset_on_the_send_timeout(gateway, backends):
    """The same client, with a 3 MB answer: the upstream exchange is still
    under way when the stream's buffer fills, and the stream's own send
    timeout resets it (RST_STREAM), as an HTTP/1.1 connection is closed.
    The session is then idle and still serves a request."""
    g, ports = start(gateway, backends, send='2s')
    c = H2(ports['main'])
    c.request(1, '/big?size=3000000')
    c.flush()
    assert ping_until_ended([c], 1, 12) == ['reset']
    wait_for(lambda: status(ports)[1]['large'] == 0, 5, what="the stream's buffers given back")
    w = WindowUpdateFrame(0)
    w.window_increment = 1 << 24  # what the reset stream took of the connection window
    c.send(w)
    c.request(3, '/healthz')
    got = c.frames(lambda f: f is None or (isinstance(f, DataFrame) and f.stream_id == 3 and 'END_STREAM' in f.flags))
    assert any(isinstance(f, HeadersFrame) and f.stream_id == 3 and f.headers.get(':status') == '200' for f in got), got
    c.s.close()


def test_a_slow_reader_that_keeps_reading_is_not_cut(gateway, backends):
    """The deadline is between two sends, not for the whole answer: a client
    that opens its window 12,000 bytes at a time every 0.3 s reads a 150,000-byte
    answer in about 2 s, past a 1 s send timeout, and gets all of it."""
    g, ports = start(gateway, backends, send='1s')
    c = H2(ports['main'])
    c.request(1, f'/big?size={BIG}')
    c.flush()
    body = bytearray()
    done = False
    t0 = time.time()
    while not done and time.time() - t0 < 20:
        got = c.frames(lambda f: f is None or isinstance(f, GoAwayFrame)
                       or (isinstance(f, DataFrame) and 'END_STREAM' in f.flags), timeout=0.3)
        for f in got:
            assert f is not None and not isinstance(f, (GoAwayFrame, RstStreamFrame)), \
                f'cut after {len(body)} bytes, {time.time() - t0:.1f} s: {f}'
            if isinstance(f, DataFrame) and f.stream_id == 1:
                body += f.data
                done = done or 'END_STREAM' in f.flags
        if not done:
            for sid in (0, 1):
                w = WindowUpdateFrame(sid)
                w.window_increment = 12000
                c.send(w)
            c.flush()
    took = time.time() - t0
    want = (PATTERN * (BIG // len(PATTERN) + 1))[:BIG]
    assert done and bytes(body) == want, (len(body), took)
    assert took > 1.5, f'the answer took {took:.1f} s: the test did not wait on the window'
    c.s.close()


def test_a_slow_reader_of_an_answer_still_coming_from_upstream_is_not_reset(gateway, backends):
    """The review of the fix: a 3 MB answer (its upstream exchange under way:
    the stream connection sleeps on a full buffer) read 16 KiB every 0.3 s.
    Each WINDOW_UPDATE brings a DATA frame, yet the stream was reset
    timeouts.send after it first filled: the stream connection's timer only
    moved when its proxy ran.  Sends must restart it."""
    g, ports = start(gateway, backends, send='1s')
    c = H2(ports['main'])
    c.request(1, '/big?size=3000000')
    c.flush()
    got_bytes, t0 = 0, time.time()
    while time.time() - t0 < 4:
        got = c.frames(lambda f: f is None or isinstance(f, (GoAwayFrame, RstStreamFrame)), timeout=0.3)
        for f in got:
            assert f is not None and not isinstance(f, (GoAwayFrame, RstStreamFrame)), \
                f'cut after {got_bytes} bytes, {time.time() - t0:.1f} s: {f}'
            if isinstance(f, DataFrame):
                got_bytes += len(f.data)
        for sid in (0, 1):
            w = WindowUpdateFrame(sid)
            w.window_increment = 16384
            c.send(w)
        c.flush()
    assert 65535 + 8 * 16384 <= got_bytes < 3000000, got_bytes  # it went on, and was still going
    c.s.close()


def test_a_reset_behind_the_last_frame_of_an_idle_session_ends_it(gateway, backends):
    """No stream open (the last one finished), the client sends a frame
    that needs no answer (a WINDOW_UPDATE, an RST_STREAM for the closed
    stream) and resets the socket right behind it: the session stayed
    until timeouts.idle (60 s)."""
    g, ports = start(gateway, backends, send='60s')
    base_active, _ = status(ports)
    for i in range(20):
        c = H2(ports['main'])
        c.request(1, '/healthz')
        c.frames(lambda f: isinstance(f, DataFrame) and 'END_STREAM' in f.flags, timeout=5)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        if i % 2:
            f = WindowUpdateFrame(0)
            f.window_increment = 1000
        else:
            f = RstStreamFrame(1)
            f.error_code = 8
        c.s.sendall(f.serialize())
        c.s.close()
    wait_for(lambda: status(ports)[0] <= base_active, 10, what=f'the 20 reset sessions closed: {status(ports)}')
