"""Hostile tests: HTTP/2 request bodies under flow control, against the
per-connection response budget (http2_settings.connection_buffer)."""
import hashlib
import time

from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame, WindowUpdateFrame

from conftest import free_port
from hostile_h2 import H2
from test_h2 import response

BODY = bytes(range(256)) * 400  # 100 KiB


def upload_all(c, sids, body, timeout=15):
    """Sends `body` on every stream in `sids`, round robin in 16 KiB DATA
    frames (the first stream four at a time), as a client obeying flow control does (connection window 65,535
    and the server's initial window per stream), and reads until every
    stream ended.  Returns the frames read."""
    conn_win = 65535
    stream_win = {s: 65535 for s in sids}
    sent = {s: 0 for s in sids}
    got, left = [], set(sids)
    deadline = time.time() + timeout
    while time.time() < deadline and left:
        moved = False
        for s in sids:
            for _ in range(4 if s == sids[0] else 1):  # the first stream sends ahead
                n = min(16384, len(body) - sent[s], conn_win, stream_win[s])
                if n <= 0:
                    break
                d = DataFrame(s)
                d.data = body[sent[s]:sent[s] + n]
                sent[s] += n
                conn_win -= n
                stream_win[s] -= n
                if sent[s] == len(body):
                    d.flags.add('END_STREAM')
                c.send(d)
                moved = True
        c.flush()

        def note(f):
            nonlocal conn_win
            if f is None or isinstance(f, GoAwayFrame):
                return True
            if isinstance(f, WindowUpdateFrame):
                if f.stream_id == 0:
                    conn_win += f.window_increment
                elif f.stream_id in stream_win:
                    stream_win[f.stream_id] += f.window_increment
            if f.stream_id in left and ('END_STREAM' in f.flags or isinstance(f, RstStreamFrame)):
                left.discard(f.stream_id)
            return False
        got += c.frames(note, timeout=0.05 if moved else 0.3)
        if got and (got[-1] is None or isinstance(got[-1], GoAwayFrame)):
            break
    return got, sent


def test_uploads_past_the_budget_do_not_deadlock_the_connection(gateway, backends):
    """Five concurrent 100 KiB uploads on one connection whose budget runs
    four streams at once.  The fifth waits unstarted (as documented), but
    the DATA it is sent while it waits is never acknowledged, and the
    connection's receive window is only 65,535 bytes (Portico never
    enlarges it and sends WINDOW_UPDATE on stream 0 only as bytes are
    consumed): the waiting stream holds the whole connection window, the
    four running streams cannot get the rest of their bodies, so they never
    end and the waiting one never starts.  Every stream hangs until the
    upstream read timeout (here 30 s by default; with h2load -m 33 on the
    default 2 MiB budget, 32 of 33 uploads failed after 30 s).  Expected:
    all five are answered, the fifth after one of the first four ends."""
    b = backends()
    port = free_port()
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true,
               http2_settings: {{ connection_buffer: 256k }} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
''', workers=1)
    c = H2(port)
    sids = [1, 3, 5, 7, 9]
    for s in sids:
        c.request(s, f'/sink?s={s}', method='POST', extra=[('content-length', str(len(BODY)))], end_stream=False)
    c.flush()
    time.sleep(0.3)  # the first four are under way, the fifth waits
    # the waiting stream's body goes first, as a client may send it: it is
    # flow-controlled like any other
    got, sent = upload_all(c, [9, 1, 3, 5, 7], BODY, timeout=10)
    want = f'{len(BODY)} {hashlib.md5(BODY).hexdigest()}'.encode()
    results = {s: response(got, s) for s in sids}
    assert all(sent[s] == len(BODY) for s in sids), ('bodies stuck on flow control', sent, got[-3:])
    for s in sids:
        head, body, rst = results[s]
        assert head is not None and head[':status'] == '200' and body == want and rst is None, (s, head, body, rst)
