"""Hostile tests: plain HTTP on a TLS port gets the 400 that says so,
whatever the method (test_tls covers GET only)."""
import socket
import time

import pytest

import pki
from conftest import free_port
from test_tls import ROUTES, tls_listener


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    return pki.make(str(tmp_path_factory.mktemp('pki')))


@pytest.mark.parametrize('data', [b'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n',
                                  b'DELETE /hello HTTP/1.1\r\nHost: a\r\n\r\n',
                                  b'OPTIONS /hello HTTP/1.1\r\nHost: a\r\n\r\n',
                                  b'PATCH /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n',
                                  b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
                         ids=['GET', 'DELETE', 'OPTIONS', 'PATCH', 'h2-prior-knowledge'])
def test_plain_http_with_any_method_on_a_tls_port_gets_400(gateway, certs, data):
    """Only requests OpenSSL itself recognises (GET, POST, HEAD, PUT: its
    SSL_R_HTTP_REQUEST) get "400 This port speaks HTTPS"; DELETE, OPTIONS,
    PATCH and the HTTP/2 preface of a prior-knowledge client (curl
    --http2-prior-knowledge against an https port) fail as a bad handshake
    and the connection is reset with no answer.  nginx answers 400 "The
    plain HTTP request was sent to HTTPS port" to any of them.  Expected:
    the same 400 for all."""
    port = free_port()
    gateway(tls_listener(port, certs) + ROUTES, workers=1)
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    try:
        s.sendall(data)
        time.sleep(0.2)
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            got = b'<reset>'
        assert got.startswith(b'HTTP/1.1 400 Bad Request') and b'speaks HTTPS' in got, got
    finally:
        s.close()
