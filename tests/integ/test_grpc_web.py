"""gRPC-Web (issue 18) through the real binary to a Python gRPC server:
binary and text calls over HTTP/1.1 and HTTP/2, trailers as the body's
last message, errors, server streaming, a browser's CORS preflight, and
grpc-timeout as the call's deadline."""
import base64
import http.client
import socket
import struct
import time

import pytest

pytest.importorskip('grpc')

from conftest import free_port, raw, wait_for  # noqa: E402
from grpc_server import GrpcServer  # noqa: E402
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, SettingsFrame, WindowUpdateFrame  # noqa: E402
from test_h2 import RawH2, ended  # noqa: E402


@pytest.fixture
def server():
    s = GrpcServer()
    yield s
    s.stop()


def config(port, target, extra_filters='', read='5s', alog='/dev/null', scheme='grpc'):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
access_log: {{ path: {alog}, format: json, buffer: 0 }}
upstreams: [{{ name: g, scheme: {scheme}, targets: ["127.0.0.1:{target}"], timeouts: {{ read: {read} }} }}]
routes:
  - name: web
    match: {{ paths: ["/test.Echo/*"] }}
    upstream: g
    filters:
      grpc-web: {{}}
{extra_filters}
'''


def frame(msg, flag=0):
    return struct.pack('>BI', flag, len(msg)) + msg


def messages(body):
    """The length-prefixed messages of a gRPC-Web body: [(flag, bytes)]."""
    out, i = [], 0
    while i < len(body):
        assert len(body) - i >= 5, ('a cut message', body[i:])
        flag, n = struct.unpack('>BI', body[i:i + 5])
        out.append((flag, body[i + 5:i + 5 + n]))
        assert len(out[-1][1]) == n, ('a cut message', body[i:])
        i += 5 + n
    return out


def trailers_of(msgs):
    assert msgs and msgs[-1][0] == 0x80, ('no trailers message last', msgs)
    assert all(f == 0 for f, _ in msgs[:-1]), msgs
    lines = msgs[-1][1].decode().split('\r\n')
    assert lines[-1] == '', lines
    return dict(line.split(':', 1) for line in lines[:-1])


def h1_call(port, method, body, ctype='application/grpc-web+proto', headers=(), chunks=None):
    """A call over HTTP/1.1 (http.client): status, headers, body."""
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    hdrs = {'content-type': ctype, 'x-grpc-web': '1', **dict(headers)}
    if chunks is None:
        c.request('POST', f'/test.Echo/{method}', body=body, headers=hdrs)
    else:
        c.request('POST', f'/test.Echo/{method}', body=iter(chunks), headers=hdrs, encode_chunked=True)
    r = c.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    c.close()
    return out


def h2_call(port, method, body, ctype='application/grpc-web+proto', sid=1, c=None):
    if c is None:  # windows of 16 MiB: the client reads everything
        c = RawH2(port)
        s = SettingsFrame(0)
        s.settings = {SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 24}
        w = WindowUpdateFrame(0)
        w.window_increment = 1 << 24
        c.send(s, w)
    c.request(sid, f'/test.Echo/{method}', method='POST', extra=[('content-type', ctype), ('x-grpc-web', '1')],
              end_stream=False)
    d = DataFrame(sid)
    d.data = body
    d.flags.add('END_STREAM')
    c.send(d)
    got = c.frames(ended(sid), timeout=10)
    heads = [f.headers for f in got if isinstance(f, HeadersFrame) and f.stream_id == sid]
    data = b''.join(f.data for f in got if isinstance(f, DataFrame) and f.stream_id == sid)
    return heads, data


@pytest.mark.parametrize('proto', ['h1', 'h2'])
@pytest.mark.parametrize('text', [False, True])
def test_unary_calls_binary_and_text(gateway, server, proto, text, tmp_path):
    port = free_port()
    alog = tmp_path / 'access.log'
    gateway(config(port, server.port, alog=alog), workers=1)
    ctype = 'application/grpc-web-text' if text else 'application/grpc-web+proto'
    body = frame(b'hi')
    wire = base64.b64encode(body) if text else body
    if proto == 'h1':
        status, hdrs, out = h1_call(port, 'Unary', wire, ctype, headers={'x-who': 'web'})
        assert status == 200, (status, out)
    else:
        heads, out = h2_call(port, 'Unary', wire, ctype)
        hdrs = heads[0]
        assert hdrs[':status'] == '200' and len(heads) == 1, heads  # no HTTP/2 trailers: they are in the body
    assert hdrs['content-type'] == ('application/grpc-web-text+proto' if text else 'application/grpc-web+proto')
    if text:
        # each piece padded on its own: decode group by group
        decoded, rest = b'', out
        while rest:
            end = rest.index(b'=') + 1 if b'=' in rest[:((len(rest) + 3) // 4) * 4] else len(rest)
            while end < len(rest) and rest[end:end + 1] == b'=':
                end += 1
            decoded += base64.b64decode(rest[:end])
            rest = rest[end:]
        out = decoded
    msgs = messages(out)
    who = b'web' if proto == 'h1' else b'-'
    assert msgs[0] == (0, b'echo:hi from ' + who), msgs
    t = trailers_of(msgs)
    assert t['grpc-status'] == '0' and t['x-trailer'] == 'yes', t
    assert server.metadata[-1].get('content-type', 'application/grpc').startswith('application/grpc')
    assert 'grpc-web' not in server.metadata[-1].get('content-type', '')
    wait_for(lambda: alog.exists() and '"status":200' in alog.read_text().replace(' ', ''), 5,
             what='the call in the access log')
    assert '/test.Echo/Unary' in alog.read_text()


def test_text_bodies_in_pieces_that_split_quanta(gateway, server):
    """Two messages, each base64'd on its own (padded), sent in HTTP/1.1
    chunks of 1, 2, 5 and 7 bytes: the decoder keeps the quanta across
    chunks and starts afresh after each padded group.  The upstream gets
    the binary frames (Chat is bidirectional: both come back)."""
    port = free_port()
    gateway(config(port, server.port), workers=1)
    text = base64.b64encode(frame(b'ab')) + base64.b64encode(frame(b'cdefg'))
    assert b'=' in text[:-4]  # a padded group in the middle
    for step in (1, 2, 5, 7):
        chunks = [text[i:i + step] for i in range(0, len(text), step)]
        status, hdrs, out = h1_call(port, 'Chat', None, 'application/grpc-web-text', chunks=chunks)
        assert status == 200, (status, out)
        decoded = b''
        for part in out.replace(b'=', b'=\n').split(b'\n'):
            if part:
                decoded += base64.b64decode(part + b'=' * (-len(part) % 4))
        msgs = messages(decoded)
        assert [m for f, m in msgs if f == 0] == [b'AB', b'CDEFG'], msgs
        assert trailers_of(msgs)['grpc-status'] == '0'


def test_bad_text_bodies_never_reach_the_upstream(gateway, server):
    port = free_port()
    gateway(config(port, server.port), workers=1)
    for bad in (b'AAAA*AAA', base64.b64encode(frame(b'hi'))[:-1]):  # a foreign byte; a body cut inside a quantum
        status, hdrs, out = h1_call(port, 'Unary', bad, 'application/grpc-web-text')
        assert status == 200 and hdrs['grpc-status'] == '13' and 'base64' in hdrs['grpc-message'], (hdrs, out)
        assert hdrs['content-type'] == 'application/grpc-web-text+proto'
    assert server.calls == 0


@pytest.mark.parametrize('proto', ['h1', 'h2'])
def test_errors_and_server_streams(gateway, server, proto):
    port = free_port()
    gateway(config(port, server.port), workers=1)
    call = (lambda m, b: h1_call(port, m, b)[2]) if proto == 'h1' else (lambda m, b: h2_call(port, m, b)[1])
    # an error after the head: Fail aborts (grpcio sends it trailers-only, in the head)
    if proto == 'h1':
        status, hdrs, out = h1_call(port, 'Fail', frame(b'x'))
        assert hdrs.get('grpc-status') == '5' or trailers_of(messages(out))['grpc-status'] == '5', (hdrs, out)
    else:
        heads, out = h2_call(port, 'Fail', frame(b'x'))
        assert heads[0].get('grpc-status') == '5' or trailers_of(messages(out))['grpc-status'] == '5', (heads, out)
    msgs = messages(call('Count', frame(b'300')))
    assert [m for f, m in msgs if f == 0] == [str(i).encode() for i in range(300)]
    assert trailers_of(msgs)['grpc-status'] == '0'
    big = messages(call('Big', frame(b'')))
    assert big[0] == (0, bytes(range(256)) * (3 * 4096)) and trailers_of(big)['grpc-status'] == '0'


def test_a_browser_preflight_then_the_call(gateway, server):
    port = free_port()
    gateway(config(port, server.port, extra_filters='''      cors: { origins: ["https://app.example"], expose_headers: [grpc-status, grpc-message] }'''),
            workers=1)
    out = raw(port, b'OPTIONS /test.Echo/Unary HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n'
                    b'Access-Control-Request-Method: POST\r\n'
                    b'Access-Control-Request-Headers: content-type,x-grpc-web,x-user-agent,grpc-timeout\r\n'
                    b'Connection: close\r\n\r\n')
    head = out.split(b'\r\n\r\n')[0].decode().lower()
    assert head.startswith('http/1.1 204') and 'access-control-allow-origin: https://app.example' in head, head
    assert 'access-control-allow-headers: content-type,x-grpc-web,x-user-agent,grpc-timeout' in head, head
    assert server.calls == 0
    status, hdrs, body = h1_call(port, 'Unary', frame(b'cors'), headers={'origin': 'https://app.example',
                                                                          'x-user-agent': 'grpc-web-javascript/0.1'})
    assert status == 200 and hdrs['access-control-allow-origin'] == 'https://app.example'
    assert hdrs['access-control-expose-headers'] == 'grpc-status, grpc-message'
    assert trailers_of(messages(body))['grpc-status'] == '0'


def test_grpc_timeout_is_the_calls_deadline(gateway):
    """An upstream that accepts the call and never answers (it ignores the
    grpc-timeout it is passed): the call ends at its deadline with
    DEADLINE_EXCEEDED, long before the upstream read timeout (30 s)."""
    hole = socket.socket()
    hole.bind(('127.0.0.1', 0))
    hole.listen(8)
    port = free_port()
    try:
        gateway(config(port, hole.getsockname()[1], read='30s'), workers=1)
        t0 = time.time()
        status, hdrs, out = h1_call(port, 'Slow', frame(b''), headers={'grpc-timeout': '300m'})
        took = time.time() - t0
        assert status == 200 and hdrs.get('grpc-status') == '4' and 'grpc-timeout' in hdrs.get('grpc-message', ''), \
            (hdrs, out)
        assert took < 10, took
    finally:
        hole.close()


def test_plain_grpc_from_http1_is_still_refused(gateway, server):
    """Without a gRPC-Web Content-Type an HTTP/1.1 request on the route is
    not converted: gRPC itself needs HTTP/2 (505)."""
    port = free_port()
    gateway(config(port, server.port), workers=1)
    out = raw(port, b'POST /test.Echo/Unary HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\n'
                    b'Content-Length: 7\r\nConnection: close\r\n\r\n' + frame(b'hi'))
    assert out.startswith(b'HTTP/1.1 505 '), out[:80]
    assert server.calls == 0


def test_several_calls_on_one_http1_connection(gateway, server):
    port = free_port()
    gateway(config(port, server.port), workers=1)
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    for i in range(5):
        c.request('POST', '/test.Echo/Unary', body=frame(b'n%d' % i),
                  headers={'content-type': 'application/grpc-web', 'x-who': f'w{i}'})
        r = c.getresponse()
        msgs = messages(r.read())
        assert msgs[0] == (0, b'echo:n%d from w%d' % (i, i)) and trailers_of(msgs)['grpc-status'] == '0'
    c.close()
    assert server.calls == 5


def test_grpc_web_needs_a_grpc_upstream(tmpdir_path):
    import os
    from conftest import run_portico
    conf = os.path.join(tmpdir_path, 'p.yaml')
    with open(conf, 'w') as f:
        f.write(config(free_port(), free_port(), scheme='http'))
    r = run_portico('-t', '-c', conf)
    assert r.returncode == 1 and f'{conf}:' in r.stderr and 'grpc-web needs' in r.stderr, r.stderr


def test_goaway_free(gateway, server):
    """An HTTP/2 connection carries gRPC-Web calls one after another."""
    port = free_port()
    gateway(config(port, server.port), workers=1)
    c = RawH2(port)
    for sid in (1, 3, 5):
        heads, out = h2_call(port, 'Unary', frame(b's%d' % sid), sid=sid, c=c)
        assert messages(out)[0] == (0, b'echo:s%d from -' % sid)
    got = c.frames(lambda f: isinstance(f, GoAwayFrame), timeout=0.3)
    assert not any(isinstance(f, GoAwayFrame) for f in got)


def test_an_empty_body_is_answered_at_once(gateway, server):
    """Content-Length 0 (HTTP/1.1, binary and text) and a HEADERS frame
    that ends the stream (HTTP/2): the call goes out with no message, and
    the upstream's own status comes back (UNIMPLEMENTED, 12: a unary
    method needs one message), with no wait."""
    port = free_port()
    gateway(config(port, server.port), workers=1)
    t0 = time.time()
    for ctype in ('application/grpc-web', 'application/grpc-web-text'):
        status, hdrs, out = h1_call(port, 'Unary', b'', ctype)
        assert status == 200 and hdrs['grpc-status'] == '12' and out == b'', (hdrs, out)
    c = RawH2(port)
    c.request(1, '/test.Echo/Unary', method='POST', extra=[('content-type', 'application/grpc-web')])
    got = c.frames(ended(1), timeout=5)
    heads = [f.headers for f in got if isinstance(f, HeadersFrame) and f.stream_id == 1]
    assert heads and heads[0]['grpc-status'] == '12', got[-3:]
    assert time.time() - t0 < 5
