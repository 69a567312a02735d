"""scheme: https upstreams through the real binary: verification, SNI,
client certificates, pooling and session resumption."""
import ssl

import pytest

import pki
from conftest import free_port, http_get, run_portico


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    return pki.make(str(tmp_path_factory.mktemp('pki')))


def server_ctx(certs, name='a-rsa', client_ca=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs[name + '.crt'], certs[name + '.key'])
    if client_ca:
        ctx.load_verify_locations(certs['ca.crt'])
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.sni_callback = lambda sock, sni, _ctx: setattr(sock, 'sni', sni)
    return ctx


def config(port, targets, tls, upstream=''):
    tl = ', '.join(f'"{t}"' for t in targets)
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams:
  - {{ name: up, scheme: https, targets: [{tl}], tls: {{ {tls} }}{', ' + upstream if upstream else ''} }}
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''


def test_https_upstream_with_sni_verification_and_pooling(gateway, backends, certs):
    b = backends(tls=server_ctx(certs))
    port = free_port()
    gateway(config(port, [f'127.0.0.1:{b.port}'], f'ca: {certs["ca.crt"]}, sni: a.test'), workers=1)
    for i in range(20):
        st, _, body = http_get(port, f'/r{i}')
        assert st == 200 and body == f'ok /r{i}'.encode()
    assert len(b.requests) == 20 and b.requests[0].tls_sni == 'a.test'
    assert b.connections <= 2  # kept alive and reused
    assert b.requests[0].header('x-forwarded-proto') == 'http'  # the client spoke plain HTTP to Portico


def test_a_host_name_target_is_the_sni_and_verified_name(gateway, backends, certs):
    b = backends(tls=server_ctx(certs, 'b-wild'))
    port = free_port()
    # api.b.test is not resolvable: /etc/hosts is not ours to edit, so the
    # name comes from a DNS server the test runs
    from dns_server import DnsServer
    dns = DnsServer()
    try:
        dns.records['api.b.test'] = ('127.0.0.1', 60)
        cfg = config(port, [f'api.b.test:{b.port}'], f'ca: {certs["ca.crt"]}')
        cfg += f'resolver: {{ nameservers: ["127.0.0.1:{dns.port}"] }}\n'
        g = gateway(cfg, workers=1)
        g.wait_log('resolves to 127.0.0.1')
        assert http_get(port, '/named')[0] == 200
        assert b.requests[0].tls_sni == 'api.b.test'
    finally:
        dns.stop()


def test_verification_failures_are_502_with_the_reason(gateway, backends, certs):
    b = backends(tls=server_ctx(certs))
    port = free_port()
    g = gateway(config(port, [f'127.0.0.1:{b.port}'], f'ca: {certs["ca.crt"]}, sni: wrong.test', 'retries: 0'),
                workers=1)
    assert http_get(port, '/bad-name')[0] == 502
    g.wait_log(r'TLS handshake with the upstream failed: certificate verify failed while connecting to upstream')
    assert b.requests == []
    # the system CAs do not know the test CA
    port2 = free_port()
    g2 = gateway(config(port2, [f'127.0.0.1:{b.port}'], 'sni: a.test', 'retries: 0'), workers=1)
    assert http_get(port2, '/unknown-ca')[0] == 502
    g2.wait_log('certificate verify failed')
    # verify: false takes any certificate
    port3 = free_port()
    gateway(config(port3, [f'127.0.0.1:{b.port}'], 'verify: false'), workers=1)
    assert http_get(port3, '/unverified')[0] == 200
    # an IP target without sni: the certificate must name the address (it does not)
    port4 = free_port()
    g4 = gateway(config(port4, [f'127.0.0.1:{b.port}'], f'ca: {certs["ca.crt"]}', 'retries: 0'), workers=1)
    assert http_get(port4, '/by-ip')[0] == 502
    g4.wait_log('certificate verify failed')
    # plain HTTP spoken by the target: a clean 502 as well
    import socket
    import threading
    plain = socket.socket()
    plain.bind(('127.0.0.1', 0))
    plain.listen(8)

    def speak_plain():
        try:
            c, _ = plain.accept()
            c.sendall(b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')
            c.close()
        except OSError:
            pass
    threading.Thread(target=speak_plain, daemon=True).start()
    try:
        port5 = free_port()
        g5 = gateway(config(port5, [f'127.0.0.1:{plain.getsockname()[1]}'], 'verify: false', 'retries: 0'),
                     workers=1)
        assert http_get(port5, '/plain')[0] == 502
        g5.wait_log('TLS handshake with the upstream failed: (wrong version number|packet length too long)')
    finally:
        plain.close()


def test_client_certificate_to_the_upstream(gateway, backends, certs):
    b = backends(tls=server_ctx(certs, client_ca=True))
    port, port2 = free_port(), free_port()
    tls = f'ca: {certs["ca.crt"]}, sni: a.test'
    gateway(config(port, [f'127.0.0.1:{b.port}'], f'{tls}, cert: {certs["client.crt"]}, key: {certs["client.key"]}'),
            workers=1)
    assert http_get(port, '/with-cert')[0] == 200
    assert b.requests[-1].peer_cn == 'client-1'
    g = gateway(config(port2, [f'127.0.0.1:{b.port}'], tls, 'retries: 0'), workers=1)
    assert http_get(port2, '/without')[0] == 502
    assert [r.target for r in b.requests] == ['/with-cert']


def test_sessions_are_resumed_on_new_connections(gateway, backends, certs):
    b = backends(tls=server_ctx(certs))
    port = free_port()
    gateway(config(port, [f'127.0.0.1:{b.port}'], f'ca: {certs["ca.crt"]}, sni: a.test',
                   'keepalive: { requests: 1 }'), workers=1)
    for i in range(6):
        assert http_get(port, f'/s{i}')[0] == 200
    assert b.connections == 6  # one connection per request ...
    assert [r.tls_reused for r in b.requests] == [False] + [True] * 5  # ... each after the first resumed


def test_upstream_tls_config_errors(tmp_path):
    for tls, msg in (('ca: /nonexistent.pem', 'cannot load the CA file /nonexistent.pem: No such file or directory'),
                     ('cert: /nonexistent.crt', 'a client certificate needs both cert and key')):
        f = tmp_path / 'p.yaml'
        f.write_text(config(1, ['127.0.0.1:2'], tls))
        r = run_portico('-t', '-c', str(f))
        assert r.returncode != 0 and f'{f}:3:' in r.stderr and msg in r.stderr, r.stderr


def test_active_probes_speak_tls_to_https_targets(gateway, backends, certs):
    b = backends(tls=server_ctx(certs))
    port = free_port()
    g = gateway(config(port, [f'127.0.0.1:{b.port}'], f'ca: {certs["ca.crt"]}, sni: a.test',
                       'healthchecks: { active: { http_path: /healthz, healthy: { interval: 100ms }, '
                       'unhealthy: { interval: 100ms, http_failures: 2 } } }'), workers=1)
    from conftest import wait_for
    wait_for(lambda: any(r.target == '/healthz' for r in b.requests), what='a probe over TLS')
    assert b.requests[0].tls_sni == 'a.test'
    b.health = 503
    g.wait_log(rf'target 127\.0\.0\.1:{b.port} marked down by active checks after 2 probes answered with an '
               r'unhealthy status')
    assert http_get(port, '/while-down')[0] == 503
