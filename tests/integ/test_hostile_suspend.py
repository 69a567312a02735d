"""Hostile tests of filters that hold a request's body or an upstream's
response (fault-injection delay.on: body | response)."""
import os
import socket
import struct
import threading
import time

import pytest

from conftest import free_port, wait_for
from test_suspend import config, inflight, log_lines


class CutBackend:
    """Answers each request's head with a 200 that promises 100 bytes, sends
    3 of them, then ends the connection (FIN, or RST with `reset`)."""

    def __init__(self, reset):
        self.reset = reset
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            buf = b''
            while b'\r\n\r\n' not in buf:
                d = c.recv(65536)
                if not d:
                    break
                buf += d
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc')
            time.sleep(0.05)
            if self.reset:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            c.close()

    def stop(self):
        self.sock.close()


@pytest.mark.parametrize('cut', ['fin', 'reset'])
def test_an_upstream_that_ends_while_its_response_is_held(gateway, tmpdir_path, cut):
    """Without the hold the client gets the head and the 3 bytes, then a close
    (and the log says 80 bytes).  With the hold the client got nothing at all
    while the access log still said `200 ... 80`: the head counted as sent was
    dropped.  What the client receives must match what the log says, and it
    must be a response (the head and what came of the body, or a 502)."""
    b = CutBackend(cut == 'reset')
    try:
        port, admin = free_port(), free_port()
        log = os.path.join(tmpdir_path, 'access.log')
        cfg = config(port, b.port, log, admin, 'response', duration='300ms')
        cfg = cfg.replace('format: "$status $method $target"', 'format: "$status $method $target $bytes_out"')
        gateway(cfg, workers=1)
        s = socket.create_connection(('127.0.0.1', port), timeout=5)
        s.sendall(b'GET /held/cut HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')  # read to the end
        got = b''
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except ConnectionResetError:
            pass
        s.close()
        line = log_lines(log, 1)[0]
        assert got.startswith(b'HTTP/1.1 '), (got, line)
        status, _, _, sent = line.split(' ')
        assert got.startswith(b'HTTP/1.1 ' + status.encode()), (got, line)
        assert int(sent) == len(got), (got, line)
        wait_for(lambda: inflight(admin) == 0, what='in-flight back to 0')
    finally:
        b.stop()
