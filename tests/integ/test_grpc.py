"""gRPC through the real binary to a Python gRPC server (python3-grpcio):
unary and streaming calls, trailers, deadlines, multiplexing, and Portico's
own errors as gRPC statuses."""
import threading
import time
from concurrent import futures

import pytest

grpc = pytest.importorskip('grpc')

from backend import dead_port  # noqa: E402
from conftest import free_port, http_get  # noqa: E402
from grpc_server import GrpcServer, RawEarlyUpstream  # noqa: E402


@pytest.fixture
def server():
    s = GrpcServer()
    yield s
    s.stop()


def config(port, targets, scheme='grpc', extra=''):
    tl = ', '.join(f'"127.0.0.1:{t}"' for t in targets)
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
upstreams: [{{ name: g, scheme: {scheme}, targets: [{tl}], timeouts: {{ read: 5s }} {extra} }}]
routes:
  - {{ name: echo, match: {{ paths: ["/test.Echo/*"] }}, upstream: g }}
'''


def channel(port):
    return grpc.insecure_channel(f'127.0.0.1:{port}')


def test_unary_calls_with_trailers_and_metadata(gateway, server):
    port = free_port()
    gateway(config(port, [server.port]), workers=1)
    with channel(port) as ch:
        call = ch.unary_unary('/test.Echo/Unary')
        resp, info = call.with_call(b'hi', metadata=(('x-who', 'tester'),), timeout=5)
        assert resp == b'echo:hi from tester'
        assert info.code() == grpc.StatusCode.OK
        assert ('x-trailer', 'yes') in info.trailing_metadata()
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary('/test.Echo/Fail')(b'x', timeout=5)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and e.value.details() == 'no such thing'
        big = ch.unary_unary('/test.Echo/Big')(b'', timeout=10)
        assert big == bytes(range(256)) * (3 * 4096)
    assert server.calls == 3


def test_streaming_calls(gateway, server):
    port = free_port()
    gateway(config(port, [server.port]), workers=1)
    with channel(port) as ch:
        out = list(ch.stream_stream('/test.Echo/Chat')(iter([f'm{i}'.encode() for i in range(200)]), timeout=10))
        assert out == [f'M{i}'.encode() for i in range(200)]
        got = list(ch.unary_stream('/test.Echo/Count')(b'500', timeout=10))
        assert got == [str(i).encode() for i in range(500)]


def test_deadlines_pass_through(gateway, server):
    port = free_port()
    gateway(config(port, [server.port]), workers=1)
    with channel(port) as ch:
        t0 = time.time()
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary('/test.Echo/Slow')(b'', timeout=0.5)
        # the handler sleeps 2 s: the deadline ended the call well before
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.time() - t0 < 1.8
        # the connection and the gateway go on
        assert ch.unary_unary('/test.Echo/Unary')(b'again', timeout=5) == b'echo:again from -'


def test_calls_share_one_upstream_connection(gateway, server):
    port = free_port()
    gateway(config(port, [server.port]), workers=1)
    with channel(port) as ch, futures.ThreadPoolExecutor(16) as ex:
        call = ch.unary_unary('/test.Echo/Unary')
        results = list(ex.map(lambda i: call(str(i).encode(), timeout=10), range(100)))
    assert results == [f'echo:{i} from -'.encode() for i in range(100)]
    assert len(set(server.peers)) == 1, set(server.peers)  # multiplexed on one HTTP/2 connection


def test_portico_errors_are_grpc_statuses(gateway, server):
    port = free_port()
    dead = dead_port()
    g = gateway(config(port, [dead], extra=', retries: 0'), workers=1)
    with channel(port) as ch:
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary('/test.Echo/Unary')(b'x', timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary('/other.Service/Call')(b'x', timeout=5)  # no route
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and '404' in e.value.details()
    g.wait_log('gRPC call failed: connect')
    # HTTP/1.1 to a gRPC route: refused plainly
    assert http_get(port, '/test.Echo/Unary')[0] == 505


def test_grpcs_upstream(gateway, tmp_path):
    import pki
    certs = pki.make(str(tmp_path))
    s = GrpcServer(tls=(certs['a-rsa.crt'], certs['a-rsa.key']))
    try:
        port = free_port()
        gateway(config(port, [s.port], scheme='grpcs',
                       extra=f', tls: {{ ca: {certs["ca.crt"]}, sni: a.test }}'), workers=1)
        with channel(port) as ch:
            assert ch.unary_unary('/test.Echo/Unary')(b'tls', timeout=5) == b'echo:tls from -'
    finally:
        s.stop()


def test_reload_lets_a_streaming_call_finish(gateway, server):
    port = free_port()
    g = gateway(config(port, [server.port]), workers=1)
    done = []

    def slow_stream():
        def gen():
            for i in range(10):
                time.sleep(0.1)
                yield f's{i}'.encode()
        with channel(port) as ch:
            done.append(list(ch.stream_stream('/test.Echo/Chat')(gen(), timeout=10)))

    t = threading.Thread(target=slow_stream)
    t.start()
    time.sleep(0.3)
    g.reload()
    t.join(15)
    assert done == [[f'S{i}'.encode() for i in range(10)]]


def slow(n):
    """A client stream that goes on for a while."""
    for i in range(n):
        yield f'm{i}'.encode()
        time.sleep(0.05)


def chat_early(ch, n, reply):
    """A bidi call that the server ends after the first of n messages."""
    call = ch.stream_stream('/test.Echo/ChatEarly')(slow(n), timeout=10)
    assert list(call) == [reply]
    assert call.code() == grpc.StatusCode.OK and ('x-early', 'yes') in call.trailing_metadata()


def test_upstream_ending_before_the_client_half_closes(gateway, server):
    """The server ends the call (trailers) while the client still streams:
    the call is freed only once nghttp2 no longer refers to it (under ASan a
    use after free showed here, on the stream's close or at worker exit)."""
    port = free_port()
    g = gateway(config(port, [server.port]), workers=1)
    with channel(port) as ch:
        for _ in range(3):
            chat_early(ch, 20, b'M0')
            resp, info = ch.stream_unary('/test.Echo/SumEarly').with_call(slow(20), timeout=10)
            assert resp == b'got m0' and info.code() == grpc.StatusCode.OK
        # the upstream connection and the gateway go on
        assert ch.unary_unary('/test.Echo/Unary')(b'after', timeout=5) == b'echo:after from -'
    assert len(set(server.peers)) == 1
    assert g.stop() == 0  # the worker closes its upstream connections, with the calls they still list


@pytest.mark.parametrize('reset_after', [0.3, None])
def test_upstream_answering_while_the_request_stream_is_open(gateway, reset_after):
    """An upstream that ends its response (END_STREAM) and resets the
    request stream only later, or never: the call is long gone from the
    client side by then, and nghttp2 must not hand it back to us."""
    up = RawEarlyUpstream(reset_after)
    try:
        port = free_port()
        g = gateway(config(port, [up.port]), workers=1)
        with channel(port) as ch:
            for _ in range(3):
                chat_early(ch, 10, b'early')
            time.sleep(0.6)  # the late resets arrive
            chat_early(ch, 3, b'early')
        assert up.calls == 4 and len(up.conns) == 1
        assert g.stop() == 0
    finally:
        up.stop()


def test_routes_rewrite_forward_and_filter_grpc_calls(gateway):
    """What a route says applies to gRPC calls as to any request:
    strip_prefix, upstream_host (as :authority), path-rewrite,
    request-headers, X-Forwarded-*, and on the way back response-headers
    and CORS."""
    up = RawEarlyUpstream()
    try:
        port = free_port()
        gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
upstreams: [{{ name: g, scheme: grpc, targets: ["127.0.0.1:{up.port}"], timeouts: {{ read: 5s }} }}]
routes:
  - name: rw
    match: {{ paths: ["/api/*"] }}
    upstream: g
    strip_prefix: /api
    upstream_host: grpc.internal
    filters:
      request-headers: {{ set: {{ x-who: gateway }}, remove: [x-drop] }}
      response-headers: {{ set: {{ x-resp: "yes" }} }}
      cors: {{}}
  - name: alias
    match: {{ paths: ["/alias/*"] }}
    upstream: g
    filters: {{ path-rewrite: {{ template: "/test.Echo/Unary" }} }}
''', workers=1)
        with channel(port) as ch:
            resp, info = ch.unary_unary('/api/test.Echo/Unary').with_call(
                b'x', metadata=(('x-drop', '1'), ('x-keep', 'k'), ('origin', 'https://app.example')), timeout=5)
            assert resp == b'early' and info.code() == grpc.StatusCode.OK
            meta = dict(info.initial_metadata())
            assert meta.get('x-resp') == 'yes' and meta.get('access-control-allow-origin') == '*', meta
            assert ch.unary_unary('/alias/Anything')(b'y', timeout=5) == b'early'
        first, second = up.heads
        assert first[':path'] == '/test.Echo/Unary' and first[':authority'] == 'grpc.internal', first
        assert first['x-who'] == 'gateway' and 'x-drop' not in first and first['x-keep'] == 'k'
        assert first['x-forwarded-for'] == '127.0.0.1' and first['x-forwarded-proto'] == 'http'
        assert first['x-forwarded-host'] == f'127.0.0.1:{port}' and len(first['x-request-id']) == 32
        assert first['te'] == 'trailers' and first['content-type'] == 'application/grpc'
        assert second[':path'] == '/test.Echo/Unary' and second[':authority'] == f'127.0.0.1:{port}'
    finally:
        up.stop()


def test_passive_health_counts_grpc_response_statuses(gateway):
    up = RawEarlyUpstream(status='503')
    try:
        port = free_port()
        g = gateway(config(port, [up.port], extra=', retries: 0, healthchecks: { passive: { unhealthy: '
                                                  '{ http_statuses: [503], http_failures: 1 }, cooldown: 30s } }'),
                    workers=1)
        with channel(port) as ch:
            with pytest.raises(grpc.RpcError) as e:
                ch.unary_unary('/test.Echo/Unary')(b'x', timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # the upstream's 503
            g.wait_log(rf'target 127\.0\.0\.1:{up.port} marked down')
            with pytest.raises(grpc.RpcError) as e:
                ch.unary_unary('/test.Echo/Unary')(b'x', timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE and e.value.details() == 'no healthy upstream'
        assert up.calls == 1
    finally:
        up.stop()


def test_many_small_answers_on_one_upstream_connection(gateway, server):
    """The upstream connection's receive window is given back for every
    answer: with it kept, calls stalled after 64 KiB of answers in all
    (some 500 small ones) on an upstream connection, and then the client's
    head deadline freed a call still under way."""
    port = free_port()
    gateway(config(port, [server.port]), workers=1)
    with channel(port) as ch:
        call = ch.unary_unary('/test.Echo/Unary')
        for i in range(300):  # 300 answers of 256 bytes and more: past 64 KiB
            assert call(b'x' * 240 + str(i).encode(), timeout=5).startswith(b'echo:')
    assert len(set(server.peers)) == 1, set(server.peers)


def test_a_call_longer_than_the_head_timeout(gateway, server):
    """The client connection's head deadline (timeouts.header) stops at the
    call's start: a 2 s call with a 1 s header timeout is answered."""
    port = free_port()
    g = gateway(config(port, [server.port]).replace('http2: true', 'http2: true, timeouts: { header: 1s }'), workers=1)
    with channel(port) as ch:
        assert ch.unary_unary('/test.Echo/Slow')(b'', timeout=10) == b'late'
        got = list(ch.unary_stream('/test.Echo/Count')(b'3', timeout=10))
        assert got == [b'0', b'1', b'2']
    assert 'signal' not in g.log() and 'timed out' not in g.log(), g.log()


@pytest.mark.parametrize('interim', ['100', '103'])
def test_an_interim_response_before_the_head_is_passed_over(gateway, interim):
    """An upstream's 1xx (103 Early Hints, 100 Continue) comes in a HEADERS
    frame of its own before the response head: it is not the head (it was
    taken for one: RST_STREAM for gRPC, a malformed head for gRPC-Web)."""
    import http.client
    up = RawEarlyUpstream(interim=interim)
    try:
        port = free_port()
        gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
upstreams: [{{ name: g, scheme: grpc, targets: ["127.0.0.1:{up.port}"], timeouts: {{ read: 5s }} }}]
routes:
  - {{ name: native, match: {{ paths: ["/test.Echo/*"] }}, upstream: g }}
  - {{ name: web, match: {{ paths: ["/web/*"] }}, upstream: g, strip_prefix: /web, filters: {{ grpc-web: {{}} }} }}
''', workers=1)
        with channel(port) as ch:
            resp, info = ch.unary_unary('/test.Echo/Unary').with_call(b'x', timeout=5)
            assert resp == b'early' and info.code() == grpc.StatusCode.OK
            assert 'link' not in dict(info.initial_metadata())
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        c.request('POST', '/web/test.Echo/Unary', body=b'\0\0\0\0\x01x',
                  headers={'content-type': 'application/grpc-web+proto'})
        r = c.getresponse()
        body = r.read()
        assert r.status == 200 and r.getheader('content-type') == 'application/grpc-web+proto', r.getheaders()
        assert body.startswith(b'\0\0\0\0\x05early') and b'grpc-status:0' in body.replace(b' ', b''), body
        c.close()
        assert up.calls == 2
    finally:
        up.stop()
