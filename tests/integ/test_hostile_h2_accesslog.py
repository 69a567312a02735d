"""Hostile tests: the access log has one line per HTTP/2 stream, also for
the streams that end badly."""
import time

from hyperframe.frame import RstStreamFrame

from conftest import free_port, wait_for
from hostile_h2 import H2
from test_h2 import ended, response


def start_gateway(gateway, backends, tmp_path):
    b = backends()
    port = free_port()
    log = tmp_path / 'access.log'
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true, max_header_size: 8k }}]
access_log: {{ path: {log}, format: "$protocol $method $target $status", buffer: 0 }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
''', workers=1)
    return b, port, log


def lines(log):
    return log.read_text().splitlines() if log.exists() else []


def test_a_431_stream_is_logged(gateway, backends, tmp_path):
    """An HTTP/2 request whose header list is past max_header_size gets 431
    (h2.c answers it itself, respond_now) and leaves no access log line;
    the same request over HTTP/1.1 is logged ("- - - 431").  Expected: one
    line with status 431 for the stream, as for every other stream."""
    b, port, log = start_gateway(gateway, backends, tmp_path)
    c = H2(port)
    c.request(1, '/toobig', extra=[('x-big', 'a' * 12000)])
    c.request(3, '/ok')
    got = c.frames(ended(3))
    assert response(got, 1)[0][':status'] == '431' and response(got, 3)[0][':status'] == '200'
    wait_for(lambda: any('/ok 200' in ln for ln in lines(log)), what='the /ok line')
    time.sleep(0.3)
    assert len(lines(log)) == 2 and any(ln.endswith(' 431') for ln in lines(log)), lines(log)


def test_a_stream_the_client_resets_mid_response_is_logged(gateway, backends, tmp_path):
    """A proxied stream the client cancels (RST_STREAM CANCEL) while its
    5 MB response is under way: the upstream got the request, but no access
    log line is ever written for it (nginx logs such a request, 499 when
    the client left before the answer, else the status with the bytes
    sent).  Expected: one line for /big."""
    b, port, log = start_gateway(gateway, backends, tmp_path)
    c = H2(port)
    c.request(1, '/big?size=5000000')
    c.frames(lambda f: f is not None and f.stream_id == 1, timeout=3)  # its HEADERS (or first frame)
    c.send(RstStreamFrame(1, error_code=8))
    c.request(3, '/ok')
    c.frames(ended(3))
    wait_for(lambda: any('/ok 200' in ln for ln in lines(log)), what='the /ok line')
    assert [r.target for r in b.requests][:1] == ['/big?size=5000000']
    time.sleep(1)
    assert any('/big?size=5000000' in ln for ln in lines(log)), lines(log)


def test_a_path_the_parser_refuses_is_logged_as_http2(gateway, backends, tmp_path):
    """A :path with a byte past 0x7e passes nghttp2 and is refused (400) by
    the head parser, on the head made from the stream's fields: the log
    line said HTTP/1.1, that head's protocol, not the client's."""
    b, port, log = start_gateway(gateway, backends, tmp_path)
    c = H2(port)
    c.request(1, '/café')
    c.request(3, '/ok')
    got = c.frames(ended(3))
    assert response(got, 1)[0][':status'] == '400' and response(got, 3)[0][':status'] == '200'
    wait_for(lambda: len(lines(log)) == 2, what='two lines')
    bad = next(ln for ln in lines(log) if ln.endswith(' 400'))
    assert bad.startswith('HTTP/2.0 GET /caf'), lines(log)
    assert [r.target for r in b.requests] == ['/ok']
