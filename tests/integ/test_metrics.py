"""Prometheus metrics on the admin API (issue 16): GET /metrics, series at
a fixed cost in shared memory, kept across reloads, summed over workers."""
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, request, run_portico, wait_for

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(admin):
    s, h, b = request(admin, 'GET', '/metrics')
    assert s == 200, b
    assert h['content-type'].startswith('text/plain; version=0.0.4'), h
    return b.decode()


def parse(text):
    """{(name, frozenset(labels)): value} and {name: type}."""
    out, types = {}, {}
    for line in text.splitlines():
        if line.startswith('# TYPE '):
            _, _, name, typ = line.split(' ', 3)
            types[name] = typ
            continue
        if not line or line.startswith('#'):
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = frozenset((k, v.replace('\\"', '"').replace('\\n', '\n').replace('\\\\', '\\'))
                           for k, v in LABEL.findall(m.group(3) or ''))
        key = (m.group(1), labels)
        assert key not in out, f'duplicate series {line}'
        out[key] = float(m.group(4))
    return out, types


def value(series, name, **labels):
    return series.get((name, frozenset(labels.items())))


def promtool(text):
    r = subprocess.run(['promtool', 'check', 'metrics'], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def config(port, admin, backend_ports, routes_extra='', extra='', route_opts=''):
    targets = ', '.join(f'"127.0.0.1:{p}"' for p in backend_ports)
    return f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
    http2: true
admin: {{ address: "127.0.0.1:{admin}" }}
upstreams:
  - name: be
    targets: [{targets}]
consumers:
  - name: alice
    credentials: [{{ type: key-auth, key: "key-of-alice-0123" }}]
{extra}
routes:
  - name: main
    match: {{ paths: ["/*"] }}
    upstream: be
{route_opts}
  - name: keyed
    match: {{ paths: ["/keyed/*"] }}
    upstream: be
    filters:
      key-auth: {{}}
      limit-count: {{ count: 2, window: 60s }}
{routes_extra}
'''


def counted(admin):
    """Requests counted so far, over every route."""
    s, _ = parse(scrape(admin))
    return sum(v for (name, _), v in s.items() if name == 'portico_request_duration_seconds_count')


def many(port, n, path='/x', threads=4, method='GET', headers=None, admin=None):
    """n requests over several keep-alive connections (so both workers take some).
    With admin, returns once the n are counted: a worker counts a request as
    it ends, which may be a moment after the client read the answer."""
    start = counted(admin) if admin else 0
    statuses = []
    lock = threading.Lock()

    def run(k):
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        for i in range(k):
            if i % 5 == 4:  # a new connection now and then: the kernel spreads them over the workers
                conn.close()
                conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
            conn.request(method, path, headers=headers or {})
            r = conn.getresponse()
            r.read()
            with lock:
                statuses.append(r.status)
        conn.close()
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    ts = [threading.Thread(target=run, args=(k,)) for k in per]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if admin:
        wait_for(lambda: counted(admin) >= start + n)
    return statuses


@pytest.fixture
def mx(gateway, backends):
    def make(**kw):
        b = backends()
        port, admin = free_port(), free_port()
        g = gateway(config(port, admin, [b.port], **kw), workers=2)
        return g, port, admin, b
    return make


def test_counts_are_exact_over_two_workers_and_a_reload(mx):
    g, port, admin, b = mx()
    assert many(port, 60, admin=admin) == [200] * 60
    text = scrape(admin)
    promtool(text)
    s, types = parse(text)
    assert value(s, 'portico_requests_total', route='main', method='GET', code='200') == 60
    assert types['portico_requests_total'] == 'counter'
    assert types['portico_request_duration_seconds'] == 'histogram'
    g.reload()
    assert many(port, 40, admin=admin) == [200] * 40
    # the old generation's workers have exited or are draining: their counts stay
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='main', method='GET', code='200') == 100
    assert value(s, 'portico_reloads_total') == 1
    assert value(s, 'portico_config_generation') == 2
    wait_for(lambda: value(parse(scrape(admin))[0], 'portico_workers', state='draining') == 0)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='main', method='GET', code='200') == 100
    assert value(s, 'portico_request_duration_seconds_count', route='main') == 100
    assert value(s, 'portico_upstream_duration_seconds_count', upstream='be') == 100
    assert value(s, 'portico_upstream_attempts_total', upstream='be', target=f'127.0.0.1:{b.port}') == 100
    assert len(b.requests) == 100


def test_histograms_are_consistent(mx):
    g, port, admin, b = mx()
    many(port, 30, admin=admin)
    many(port, 7, method='POST', admin=admin)
    many(port, 5, path='/keyed/a', admin=admin)  # 401: no key
    s, _ = parse(scrape(admin))
    for route in ('main', 'keyed'):
        total = sum(v for (n, l), v in s.items() if n == 'portico_requests_total' and ('route', route) in l)
        count = value(s, 'portico_request_duration_seconds_count', route=route)
        assert count == total and total > 0, route
        buckets = sorted(((float(dict(l)['le']), v) for (n, l), v in s.items()
                          if n == 'portico_request_duration_seconds_bucket' and ('route', route) in l),
                         key=lambda x: x[0])
        assert buckets[-1][0] == float('inf') and buckets[-1][1] == count
        assert all(a[1] <= b_[1] for a, b_ in zip(buckets, buckets[1:])), buckets  # cumulative
        assert value(s, 'portico_request_duration_seconds_sum', route=route) >= 0
    assert value(s, 'portico_requests_total', route='main', method='POST', code='200') == 7
    assert value(s, 'portico_requests_total', route='keyed', method='GET', code='401') == 5
    assert value(s, 'portico_auth_failures_total', route='keyed', filter='key-auth', reason='missing') == 5
    assert value(s, 'portico_request_bytes_total', route='main') > 0
    assert value(s, 'portico_response_bytes_total', route='main') > 0


def test_filters_targets_and_connections_are_counted(mx, backends):
    dead = free_port()  # nothing listens there
    g, port, admin, b = mx()
    key = {'apikey': 'key-of-alice-0123'}
    st = many(port, 5, path='/keyed/x', threads=1, headers=key, admin=admin)
    assert st == [200, 200, 429, 429, 429]
    many(port, 2, path='/keyed/x', threads=1, headers={'apikey': 'wrong-key-000000'}, admin=admin)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_ratelimit_rejections_total', route='keyed', filter='limit-count') == 3
    assert value(s, 'portico_auth_failures_total', route='keyed', filter='key-auth', reason='invalid') == 2
    assert value(s, 'portico_requests_total', route='keyed', method='GET', code='429') == 3
    def conns():
        s = parse(scrape(admin))[0]
        return (value(s, 'portico_connections_accepted_total', listener='main'),
                value(s, 'portico_connections_closed_total', listener='main', protocol='http/1.1'),
                value(s, 'portico_connections_active', listener='main', protocol='http/1.1'))
    # every client connection was closed (the worker sees each close a moment after the client made it)
    wait_for(lambda: conns()[0] >= 3 and conns()[1] == conns()[0])
    assert conns()[2] == 0
    # a target that refuses connections: attempts, connect failures, retries
    b2 = backends()
    g.write(config(port, admin, [b2.port, dead]))
    g.reload()
    many(port, 10, threads=1, admin=admin)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_upstream_connect_failures_total', upstream='be', target=f'127.0.0.1:{dead}') >= 1
    fails = value(s, 'portico_upstream_connect_failures_total', upstream='be', target=f'127.0.0.1:{dead}')
    assert value(s, 'portico_upstream_attempts_total', upstream='be', target=f'127.0.0.1:{dead}') == fails
    assert value(s, 'portico_upstream_retries_total', upstream='be', target=f'127.0.0.1:{b2.port}') == fails
    assert value(s, 'portico_upstream_target_up', upstream='be', target=f'127.0.0.1:{dead}') == 1


def test_h2_connections_are_counted_apart(mx):
    g, port, admin, b = mx()
    r = subprocess.run(['nghttp', '-n', '-s', f'http://127.0.0.1:{port}/a', f'http://127.0.0.1:{port}/b'],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.count(' 200 ') + r.stdout.count('200') >= 2, r.stdout + r.stderr
    def closed():
        s, _ = parse(scrape(admin))
        return value(s, 'portico_connections_closed_total', listener='main', protocol='h2')
    wait_for(lambda: closed() == 1)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='main', method='GET', code='200') == 2
    assert value(s, 'portico_connections_active', listener='main', protocol='h2') == 0
    # an HTTP/2 connection held open (its preface and an empty SETTINGS frame)
    c = socket.create_connection(('127.0.0.1', port))
    c.sendall(b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + b'\x00\x00\x00\x04\x00\x00\x00\x00\x00')
    c.recv(100)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_connections_active', listener='main', protocol='h2') == 1
    assert value(s, 'portico_connections_active', listener='main', protocol='http/1.1') == 0
    c.close()
    wait_for(lambda: closed() == 2)


def test_a_killed_worker_keeps_its_counts(mx):
    g, port, admin, b = mx()
    many(port, 50, admin=admin)
    before = value(parse(scrape(admin))[0], 'portico_requests_total', route='main', method='GET', code='200')
    assert before == 50
    os.kill(g.worker_pids()[0], signal.SIGKILL)
    g.wait_log(r'respawning')
    wait_for(lambda: value(parse(scrape(admin))[0], 'portico_workers', state='running') == 2)
    many(port, 10, admin=admin)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='main', method='GET', code='200') == 60


def test_route_metrics_off_and_custom_buckets(mx):
    g, port, admin, b = mx(route_opts='    metrics: false',
                           extra='metrics: { latency_buckets: [0.001, 50ms, 0.5, 2] }')
    many(port, 5)
    many(port, 3, path='/keyed/x')
    text = scrape(admin)
    promtool(text)
    s, _ = parse(text)
    assert not any(('route', 'main') in l for (n, l) in s), 'a route with metrics: false has no series'
    assert value(s, 'portico_upstream_duration_seconds_count', upstream='be') == 5  # upstream series stay
    les = sorted(dict(l)['le'] for (n, l) in s if n == 'portico_request_duration_seconds_bucket'
                 and ('route', 'keyed') in l)
    assert les == sorted(['0.001', '0.05', '0.5', '2', '+Inf'])


@pytest.mark.parametrize('buckets,msg', [
    ('[0.5, 0.1]', 'must ascend'),
    ('[-1]', 'more than 0'),
    ('[]', '1 to 32'),
    ('[' + ', '.join(str(i) for i in range(1, 34)) + ']', '1 to 32'),
    ('[fast]', 'number of seconds'),
    ('0.5', '1 to 32'),
])
def test_bad_buckets_are_refused_with_their_place(tmp_path, buckets, msg):
    f = tmp_path / 'p.yaml'
    f.write_text(f'listeners: [{{ address: "127.0.0.1:{free_port()}" }}]\n'
                 f'metrics:\n  latency_buckets: {buckets}\n'
                 'routes: [{ match: { paths: ["/*"] }, respond: { status: 200 } }]\n')
    r = run_portico('-t', '-c', str(f))
    assert r.returncode != 0
    assert re.search(rf'p\.yaml:3:\d+: .*{re.escape(msg)}', r.stderr), r.stderr


def test_removed_routes_leave_and_kept_ones_keep_their_values(mx):
    g, port, admin, b = mx(routes_extra='''  - name: gone
    match: { paths: ["/gone/*"] }
    upstream: be
''')
    many(port, 4, path='/gone/x', admin=admin)
    many(port, 6, admin=admin)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='gone', method='GET', code='200') == 4
    g.write(config(port, admin, [b.port], routes_extra='''  - name: "new\\"one\\\\x"
    match: { paths: ["/new/*"] }
    upstream: be
'''))
    g.reload()
    wait_for(lambda: value(parse(scrape(admin))[0], 'portico_workers', state='draining') == 0)
    many(port, 3, path='/new/x', admin=admin)
    text = scrape(admin)
    promtool(text)
    s, _ = parse(text)
    assert not any(('route', 'gone') in l for (n, l) in s)
    assert value(s, 'portico_requests_total', route='main', method='GET', code='200') == 6
    assert value(s, 'portico_requests_total', route='new"one\\x', method='GET', code='200') == 3


def test_unrouted_requests_and_the_admin_api(gateway):
    port, admin = free_port(), free_port()
    g = gateway(f'''listeners: [{{ name: main, address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
routes: [{{ name: only, match: {{ paths: ["/only"] }}, respond: {{ status: 204 }} }}]
''')
    for _ in range(3):
        assert request(port, 'GET', '/nothing')[0] == 404
    assert request(port, 'DELETE', '/only')[0] == 204
    scrape(admin)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='', method='GET', code='404') == 3
    assert value(s, 'portico_requests_total', route='only', method='DELETE', code='204') == 1
    # the admin API's own requests are not traffic
    assert not any(n == 'portico_requests_total' and v and ('route', '') in l and ('code', '200') in l
                   for (n, l), v in s.items())
    assert request(admin, 'POST', '/metrics', body=b'x')[0] == 405
    s, h, body = request(admin, 'HEAD', '/metrics')
    assert s == 200 and body == b''


def test_a_scrape_of_ten_thousand_routes_is_whole(gateway, tmp_path):
    port, admin = free_port(), free_port()
    routes = '\n'.join(f'  - {{ name: r{i}, match: {{ paths: ["/r{i}"] }}, respond: {{ status: 200 }} }}'
                       for i in range(10000))
    g = gateway(f'''listeners: [{{ name: main, address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
routes:
{routes}
''', workers=2)
    for i in range(0, 10000, 997):
        assert request(port, 'GET', f'/r{i}')[0] == 200
    st, h, body = request(admin, 'GET', '/metrics')
    m = re.fullmatch(r'(\d+), longest (\d+) us', h['x-scrape-slices'])
    assert st == 200 and m and int(m.group(1)) > 1, h  # made in slices, not in one go
    text = body.decode()
    s, _ = parse(text)
    counts = [n for (n, l) in s if n == 'portico_request_duration_seconds_count']
    assert len(counts) == 10001  # every route, and the unrouted
    for i in range(0, 10000, 997):
        assert value(s, 'portico_requests_total', route=f'r{i}', method='GET', code='200') == 1
    # a client that leaves in the middle of a scrape does not hurt the worker
    for _ in range(5):
        c = socket.create_connection(('127.0.0.1', admin))
        c.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
        c.close()
    assert request(port, 'GET', '/r1')[0] == 200
    wait_for(lambda: parse(scrape(admin))[0].get(('portico_requests_total', frozenset(
        {'route': 'r1', 'method': 'GET', 'code': '200'}.items()))) == 1)
    promtool(text)


def test_status_sums_every_worker(mx):
    import json
    g, port, admin, b = mx()
    many(port, 40, admin=admin)
    many(port, 3, path='/keyed/x', admin=admin)
    st = json.loads(request(admin, 'GET', '/status')[2])
    assert st['requests'] == 43
    assert st['connections']['accepted'] >= 8 and st['connections']['active'] == 0
    up = st['upstreams'][0]
    t = up['targets'][0]
    assert t['attempts'] == 40 and t['connect_failures'] == 0 and t['timeouts'] == 0
    assert t['connects'] + t['reuses'] == 40 and t['connects'] >= 2  # both workers connected
    assert t['worker_connects'] <= t['connects']
    assert up['retries'] == 0 and up['retries_refused'] == 0
    g.reload()
    many(port, 7, admin=admin)
    st = json.loads(request(admin, 'GET', '/status')[2])
    assert st['requests'] == 50 and st['upstreams'][0]['targets'][0]['attempts'] == 47


def test_a_reload_that_outgrows_the_zone_keeps_every_count(mx):
    """300 more routes: a bigger zone replaces the
    first one; the scrape adds the old one in while its workers drain, and
    the master folds it in once they exited."""
    g, port, admin, b = mx()
    many(port, 30, admin=admin)
    # a request that is still under way on an old worker when the reload happens
    slow = []
    t = threading.Thread(target=lambda: slow.append(request(port, 'GET', '/x?delay', timeout=30)[0]))
    b.delay = 1.5
    t.start()
    time.sleep(0.3)
    extra = ''.join(f'''  - name: more{i}
    match: {{ paths: ["/more/{i}"] }}
    upstream: be
''' for i in range(300))
    g.write(config(port, admin, [b.port], routes_extra=extra))
    g.reload()
    b.delay = 0
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='main', method='GET', code='200') == 30
    assert value(s, 'portico_metrics_series_rows', state='capacity') > 256
    t.join()
    assert slow == [200]
    many(port, 5, path='/more/299', admin=admin)
    wait_for(lambda: value(parse(scrape(admin))[0], 'portico_workers', state='draining') == 0)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='main', method='GET', code='200') == 31  # the slow one too
    assert value(s, 'portico_requests_total', route='more299', method='GET', code='200') == 5
