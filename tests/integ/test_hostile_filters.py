"""Hostile tests: requests that wait on a filter (fault-injection delay)."""
import os
import socket
import struct
import time

import pytest

from conftest import free_port, raw, wait_for


def _config(port, bport, log, delay='200ms'):
    return f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
access_log: {{ path: {log}, buffer: 0, format: "$status $method $target $user_agent" }}
upstreams:
  - name: up
    targets: ["127.0.0.1:{bport}"]
routes:
  - name: short
    match: {{ paths: ["/short/*"] }}
    upstream: up
    filters: {{ fault-injection: {{ delay: {{ duration: {delay} }} }} }}
  - name: plain
    match: {{ paths: ["/plain/*"] }}
    upstream: up
'''


@pytest.mark.parametrize('req', [
    b'GET /short/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    b'GET /short/a HTTP/1.0\r\nHost: x\r\n\r\n',
    b'POST /short/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
], ids=['close', 'http10', 'post-close'])
def test_last_request_on_a_connection_survives_a_delay(gateway, backends, tmpdir_path, req):
    """A request that is the last on its connection (Connection: close, or
    HTTP/1.0 without keep-alive) and waits on a fault-injection delay got
    no answer at all: the connection was closed after the delay, nothing
    reached the upstream, nothing was logged.  The same request on
    /plain/ (no delay) is answered.  Expected: 200 from the upstream after
    the delay, then the close."""
    b = backends()
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(_config(port, b.port, log), workers=1)
    assert raw(port, req.replace(b'/short/', b'/plain/')).startswith(b'HTTP/1.1 200')
    out = raw(port, req)
    assert out.startswith(b'HTTP/1.1 200'), out
    assert [r.target for r in b.requests] == ['/plain/a', '/short/a']


def test_client_gone_mid_body_during_a_delay_logs_its_own_request(gateway, backends, tmpdir_path):
    """A POST whose body keeps arriving while the request waits on its delay
    grows the connection's input buffer (realloc in pt_conn_read); when the
    client then goes away, the 499 line is formatted from the request line
    and headers in the freed buffer: heap-use-after-free in put_esc
    (accesslog.c:48) under ASan, and without it the access log gets heap
    bytes (pointers) instead of the method and target, e.g.
    `499 \\xc0\\x1c\\xd1\\xb9 \\x7f\\x00\\x00... victim`.  Expected: one line
    `499 POST /short/p victim` and no sanitizer report."""
    b = backends()
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gw = gateway(_config(port, b.port, log, delay='500ms'), workers=1)
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'POST /short/p HTTP/1.1\r\nHost: x\r\nUser-Agent: victim\r\nContent-Length: 100000\r\n\r\n' + b'x' * 5000)
    time.sleep(0.05)
    s.sendall(b'y' * 20000)
    time.sleep(0.05)
    s.close()
    wait_for(lambda: os.path.exists(log) and open(log, 'rb').read().count(b'\n') >= 1 or 'exited with' in gw.log(),
             what='the log line')
    time.sleep(0.2)
    assert 'AddressSanitizer' not in gw.log() and 'exited with' not in gw.log(), gw.log()[-3000:]
    assert open(log, 'rb').read() == b'499 POST /short/p victim\n'


def test_client_reset_during_a_delay_is_logged(gateway, backends, tmpdir_path):
    """A client that resets its connection (RST) while its request waits on
    a delay leaves no access log line at all; one that closes politely
    gets its 499.  One line per request either way."""
    b = backends()
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(_config(port, b.port, log, delay='200ms'), workers=1)
    s = socket.create_connection(('127.0.0.1', port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.sendall(b'POST /short/r HTTP/1.1\r\nHost: x\r\nUser-Agent: rst\r\nContent-Length: 10\r\n\r\n12345')
    time.sleep(0.05)
    s.close()
    wait_for(lambda: os.path.exists(log) and b'/short/r' in open(log, 'rb').read(), timeout=3, what='a log line')
