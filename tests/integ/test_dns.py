"""Targets given by host name: resolved by each worker with evdns against a
DNS server the test runs, re-resolved when the TTL runs out, never blocking
a worker."""
import json
import time

import pytest

from conftest import free_port, http_get, run_portico
from dns_server import DnsServer


@pytest.fixture
def dns():
    d = DnsServer()
    yield d
    d.stop()


def twins(backends):
    """Two backends on one port number: 127.0.0.1 and 127.0.0.2."""
    for _ in range(20):
        a = backends()
        try:
            return a, backends(host='127.0.0.2', port=a.port)
        except OSError:
            a.stop()
    raise AssertionError('no port free on both 127.0.0.1 and 127.0.0.2')


def config(port, admin, dns_port, targets, resolver=''):
    tl = ', '.join(f'"{t}"' for t in targets)
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
admin: {{ address: 127.0.0.1:{admin} }}
resolver: {{ nameservers: ["127.0.0.1:{dns_port}"], timeout: 500ms {resolver} }}
upstreams:
  - {{ name: up, targets: [{tl}], retries: 0 }}
routes:
  - {{ name: hello, match: {{ paths: [/hello] }}, respond: {{ body: "hello" }} }}
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''


def test_a_name_follows_its_ttl_in_every_worker(gateway, backends, dns):
    a, b = twins(backends)
    dns.records['svc.test'] = ('127.0.0.1', 1)
    port, admin = free_port(), free_port()
    g = gateway(config(port, admin, dns.port, [f'svc.test:{a.port}']), workers=2)
    g.wait_log(rf'target svc\.test:{a.port} resolves to 127\.0\.0\.1:{a.port} \(ttl 1 s\)', count=2)
    for i in range(20):
        assert http_get(port, f'/one/{i}')[0] == 200
    assert len(a.requests) == 20 and b.requests == []
    asked = dns.count('svc.test')
    dns.records['svc.test'] = ('127.0.0.2', 1)
    g.wait_log(rf'target svc\.test:{a.port} resolves to 127\.0\.0\.2:{a.port}', count=2, timeout=5)
    assert dns.count('svc.test') > asked  # asked again when the TTL ran out
    for i in range(20):
        assert http_get(port, f'/two/{i}')[0] == 200
    assert len(a.requests) == 20 and len(b.requests) == 20
    st = json.loads(http_get(admin, '/status')[2])
    assert st['upstreams'][0]['targets'][0]['address'] == f'127.0.0.2:{a.port}'


def test_a_stalled_dns_server_blocks_no_request(gateway, backends, dns):
    a = backends()
    dns.records['svc.test'] = ('127.0.0.1', 1)
    port, admin = free_port(), free_port()
    g = gateway(config(port, admin, dns.port, [f'svc.test:{a.port}']), workers=1)
    g.wait_log(r'resolves to 127\.0\.0\.1')
    dns.stall = True
    n = dns.count('svc.test')
    deadline = time.time() + 4
    slowest = 0
    while time.time() < deadline:  # through the queries that go unanswered
        t0 = time.time()
        assert http_get(port, '/during')[0] == 200 and http_get(port, '/hello')[2] == b'hello'
        slowest = max(slowest, time.time() - t0)
    assert dns.count('svc.test') > n  # it did ask, and got nothing back
    assert slowest < 0.4, slowest  # the worker never waited on DNS (a query times out after 500 ms)
    g.wait_log(rf'target svc\.test:{a.port} does not resolve: request timed out; keeping its last address')
    dns.stall = False
    g.wait_log(rf'target svc\.test:{a.port} resolves again', timeout=10)


def test_a_name_unknown_at_start_is_left_out_until_it_resolves(gateway, backends, dns):
    a, b = backends(), backends()
    dns.records['one.test'] = ('127.0.0.1', 1)
    port, admin = free_port(), free_port()
    g = gateway(config(port, admin, dns.port, [f'one.test:{a.port}', f'later.test:{b.port}']), workers=1)
    g.wait_log(rf'target later\.test:{b.port} does not resolve: .*; left out until it does')
    for i in range(10):
        assert http_get(port, f'/x{i}')[0] == 200  # never a 502 from the unresolved one
    assert len(a.requests) == 10
    st = json.loads(http_get(admin, '/status')[2])['upstreams'][0]['targets']
    assert st[1]['address'] == f'later.test:{b.port}'
    dns.records['later.test'] = ('127.0.0.1', 1)
    g.wait_log(rf'target later\.test:{b.port} resolves to 127\.0\.0\.1:{b.port}', timeout=10)
    for i in range(10):
        assert http_get(port, f'/y{i}')[0] == 200
    assert len(b.requests) >= 4


def test_bad_name_servers_are_config_errors(tmp_path):
    f = tmp_path / 'p.yaml'
    f.write_text('listeners: [{ name: main, address: 127.0.0.1:1 }]\n'
                 'resolver: { nameservers: ["127.0.0.1:53", "dns.example"] }\n')
    r = run_portico('-t', '-c', str(f))
    assert r.returncode != 0
    assert (f'{f}:2:43: error: resolver: nameservers[1]: a name server is an IP address with an optional port, not "dns.example"'
            in r.stderr), r.stderr


def load(port, seconds):
    """Requests one after another for `seconds`: the statuses seen."""
    import threading
    seen = []

    def run():
        end = time.time() + seconds
        while time.time() < end:
            seen.append(http_get(port, '/load')[0])
    ts = [threading.Thread(target=run) for _ in range(4)]
    for t in ts:
        t.start()
    return ts, seen


@pytest.mark.parametrize('answer', ['slow', 'never'])
def test_a_reload_to_names_serves_only_once_they_resolve(gateway, backends, dns, answer):
    """A new generation whose targets are names it resolves itself does not
    take connections, nor let the old one drain, before they have
    addresses; a name that never resolves fails the reload at
    reload_timeout and the old generation serves on (hostile review: every
    request got 503 'no healthy target' after such a reload)."""
    a = backends()
    port, admin = free_port(), free_port()

    def conf(target):
        return config(port, admin, dns.port, [target]) + 'reload_timeout: 3s\n'
    g = gateway(conf(f'127.0.0.1:{a.port}'), workers=2)
    if answer == 'slow':
        def slow():
            time.sleep(0.3)
            return ('127.0.0.1', 30)
        dns.records['svc.test'] = slow
    else:
        dns.stall = True
    ts, seen = load(port, 5)
    time.sleep(0.5)
    g.write(conf(f'svc.test:{a.port}'))
    g.reload(ok=answer == 'slow')
    for t in ts:
        t.join()
    assert seen and set(seen) == {200}, {s: seen.count(s) for s in set(seen)}
    st = json.loads(http_get(admin, '/status')[2])
    assert st['reload_failures'] == (0 if answer == 'slow' else 1)
    assert http_get(port, '/after')[0] == 200
