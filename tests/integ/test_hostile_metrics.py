"""Hostile review of the Prometheus metrics, /status and the admin API
(issue 16): each test reproduces one problem found, and fails on the code
it was written against."""
import json
import re
import os
import signal
import socket
import threading
import time

import pytest

from conftest import run_portico, free_port, request, wait_for
from test_metrics import counted, many, parse, promtool, scrape, value


def simple(port, admin, routes, extra='', listener='main'):
    return f'''listeners: [{{ name: "{listener}", address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
{extra}
routes:
{routes}
'''


def proxied(port, admin, backend_port):
    """Route p proxied to one backend, and the admin listener."""
    return f'''listeners: [{{ name: main, address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{backend_port}"] }}]
routes: [{{ name: p, match: {{ paths: ["/*"] }}, upstream: up }}]
'''


def route_lines(text, route):
    return [l for l in text.splitlines() if not l.startswith('#') and f'route="{route}"' in l]


def test_a_bucket_change_of_the_same_length_keeps_and_counts(gateway):
    """latency_buckets [0.1, 1] -> [0.2, 2]: the new zone has the size of
    the old one, so pt_zone_get hands back the zone in use and grow()
    writes a fresh header over it.  Every count of the route is lost
    (requests_total disappears, bytes go to 0) and nothing is counted any
    more: three requests later the route still shows 0."""
    port, admin = free_port(), free_port()
    routes = '  - { name: r, match: { paths: ["/r"] }, respond: { status: 200 } }'
    g = gateway(simple(port, admin, routes, 'metrics: { latency_buckets: [0.1, 1] }'))
    for _ in range(10):
        assert request(port, 'GET', '/r')[0] == 200
    wait_for(lambda: counted(admin) >= 10)  # a request is counted as it ends, a moment after its answer
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='r', method='GET', code='200') == 10
    bytes_before = value(s, 'portico_request_bytes_total', route='r')
    g.write(simple(port, admin, routes, 'metrics: { latency_buckets: [0.2, 2] }'))
    g.reload()
    wait_for(lambda: value(parse(scrape(admin))[0], 'portico_workers', state='draining') == 0)
    for _ in range(3):
        assert request(port, 'GET', '/r')[0] == 200
    wait_for(lambda: counted(admin) >= 13)
    text = scrape(admin)
    s, _ = parse(text)
    assert value(s, 'portico_requests_total', route='r', method='GET', code='200') == 13, route_lines(text, 'r')
    assert value(s, 'portico_request_bytes_total', route='r') > bytes_before
    # the histogram may start again with the new buckets, but it counts
    assert value(s, 'portico_request_duration_seconds_count', route='r') >= 3
    assert value(s, 'portico_request_duration_seconds_bucket', route='r', le='+Inf') >= 3


def test_a_target_given_by_a_secret_is_masked_in_every_family(gateway, backends):
    """A target written as ${TSEC}: /config, the log and
    portico_upstream_target_up show ${TSEC}, but the per-target counters
    (attempts, connects...) show its value: row_of() masks the first
    label only.  The secret leaks, and the two families no longer join on
    their labels."""
    b = backends()
    port, admin = free_port(), free_port()
    secret = f'127.0.0.1:{b.port}'
    g = gateway(f'''listeners: [{{ name: main, address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
upstreams: [{{ name: up, targets: ["${{TSEC}}"] }}]
routes: [{{ name: p, match: {{ paths: ["/*"] }}, upstream: up }}]
''', env={'TSEC': secret})
    assert request(port, 'GET', '/a')[0] == 200
    wait_for(lambda: counted(admin) >= 1)
    text = scrape(admin)
    assert secret not in json.loads(request(admin, 'GET', '/config')[2]).__repr__()
    leaked = [l for l in text.splitlines() if secret in l]
    assert not leaked, leaked
    s, _ = parse(text)
    assert value(s, 'portico_upstream_attempts_total', upstream='up', target='${TSEC}') == 1
    assert value(s, 'portico_upstream_target_up', upstream='up', target='${TSEC}') == 1


def test_a_long_unicode_route_name_gives_valid_utf8_labels(gateway):
    """A route name of 199 ASCII bytes and an é: the row keeps 200 bytes,
    which cuts the é in half.  Prometheus refuses a label value that is not
    UTF-8 (labels.IsValid), and with it the whole scrape."""
    port, admin = free_port(), free_port()
    name = 'a' * 199 + 'é'
    g = gateway(simple(port, admin, f'  - {{ name: "{name}", match: {{ paths: ["/u"] }}, respond: {{ status: 200 }} }}'))
    assert request(port, 'GET', '/u')[0] == 200
    s, h, body = request(admin, 'GET', '/metrics')
    bad = [l for l in body.split(b'\n') if l.startswith(b'portico_requests_total')]
    for line in bad:
        line.decode('utf-8')  # raises on a cut character
    text = body.decode()
    promtool(text)


def test_names_with_control_bytes_do_not_make_duplicate_series(gateway):
    """Routes "r\\x01" and "r\\x02" are two routes, with two rows, but the
    scrape writes both as route="r?": two samples of one series, which
    Prometheus drops as duplicates (only one is kept).  Control bytes are
    valid in a label value (only \\\\, \\" and \\n need escaping), or the
    configuration could refuse them in names."""
    port, admin = free_port(), free_port()
    g = gateway(simple(port, admin, '''  - { name: "r\\x01", match: { paths: ["/c1"] }, respond: { status: 200 } }
  - { name: "r\\x02", match: { paths: ["/c2"] }, respond: { status: 200 } }'''))
    assert request(port, 'GET', '/c1')[0] == 200
    assert request(port, 'GET', '/c2')[0] == 200
    text = scrape(admin)
    parse(text)  # asserts that no series appears twice


def test_routes_whose_names_differ_after_byte_200_are_apart(gateway):
    """Two routes, names of 210 bytes that differ in the last byte: each
    label is cut, with a hash of the whole name, so they stay two series
    (decision 109)."""
    port, admin = free_port(), free_port()
    a, b = 'x' * 209 + 'a', 'x' * 209 + 'b'
    g = gateway(simple(port, admin, f'''  - {{ name: "{a}", match: {{ paths: ["/a"] }}, respond: {{ status: 200 }} }}
  - {{ name: "{b}", match: {{ paths: ["/b"] }}, respond: {{ status: 200 }} }}'''))
    assert request(port, 'GET', '/a')[0] == 200
    assert request(port, 'GET', '/b')[0] == 200
    assert request(port, 'GET', '/b')[0] == 200
    wait_for(lambda: counted(admin) >= 3)
    s, _ = parse(scrape(admin))
    routes = {dict(l)['route']: v for (n, l), v in s.items() if n == 'portico_requests_total'}
    long_ones = sorted(v for k, v in routes.items() if k.startswith('x' * 100))
    assert long_ones == [1, 2], routes
    assert all(re.search(r'~[0-9a-f]{8}$', k) for k in routes if k.startswith('x'))


def test_a_route_named_empty_is_refused(tmp_path):
    """name: "" would count into route="", the series of requests no route
    took: it is refused at its place."""
    f = tmp_path / 'p.yaml'
    f.write_text(f'listeners: [{{ address: "127.0.0.1:{free_port()}" }}]\n'
                 'routes:\n  - { name: "", match: { paths: ["/e"] }, respond: { status: 200 } }\n')
    r = run_portico('-t', '-c', str(f))
    assert r.returncode != 0 and re.search(r'p\.yaml:3:\d+: .*route name may not be empty', r.stderr), r.stderr


def test_a_listener_named_admin_is_refused(tmp_path):
    """A traffic listener named "admin" would share the admin listener's
    series: it is refused at its place."""
    f = tmp_path / 'p.yaml'
    f.write_text(f'listeners: [{{ name: admin, address: "127.0.0.1:{free_port()}" }}]\n'
                 'routes: [{ match: { paths: ["/e"] }, respond: { status: 200 } }]\n')
    r = run_portico('-t', '-c', str(f))
    assert r.returncode != 0 and re.search(r'p\.yaml:1:\d+: .*"admin" is the admin listener', r.stderr), r.stderr


def test_deleted_targets_leave_the_target_families(gateway, backends):
    """Two targets added at run time, then deleted: the worker's freed
    slots are still rendered by target_families(), each as
    target="" (weight 1, up 1): two samples of one series.  The deleted
    file target is still reported up, with its weight, though /status
    lists no target and requests get 503."""
    b1, b2, b3 = backends(), backends(), backends()
    port, admin = free_port(), free_port()
    g = gateway(f'''listeners: [{{ name: main, address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{b1.port}"] }}]
routes: [{{ name: p, match: {{ paths: ["/*"] }}, upstream: up }}]
''', workers=1)
    for b in (b2, b3):
        st, _, body = request(admin, 'POST', '/upstreams/up/targets',
                              body=json.dumps({'address': f'127.0.0.1:{b.port}', 'weight': 100}))
        assert st == 201, body
    for _ in range(6):
        assert request(port, 'GET', '/x')[0] == 200
    for b in (b2, b3, b1):
        assert request(admin, 'DELETE', f'/upstreams/up/targets/127.0.0.1:{b.port}')[0] == 200
    assert request(port, 'GET', '/x')[0] == 503  # a pick: the worker applies the changes
    text = scrape(admin)
    s, _ = parse(text)  # no series twice
    ups = {dict(l)['target']: v for (n, l), v in s.items() if n == 'portico_upstream_target_up'}
    assert '' not in ups, ups
    assert ups.get(f'127.0.0.1:{b1.port}') in (None, 0), ups
    promtool(text)


def _named_pairs(admin, route):
    """The (method, code) series of a route in a scrape, without parsing
    (a duplicate must not stop the loop that looks for it)."""
    body = request(admin, 'GET', '/metrics')[2].decode()
    return [l for l in body.splitlines() if l.startswith(f'portico_requests_total{{route="{route}"')]


def test_more_than_64_status_pairs_make_one_other_series(gateway, backends):
    """Both workers' blocks full (23 named pairs and "other" each), one
    worker killed (its block folded into the retired one, "other"
    included), and its successor fills a block with new pairs: the scrape
    merges 69 named pairs and several "other" ones.  add_codes() keeps the
    retired block's "other" as an ordinary key at an early index, then,
    past 64 keys, writes a second UINT32_MAX key at the last index: two
    method="other",code="other" samples, and Prometheus keeps only one."""
    b = backends()
    port, admin = free_port(), free_port()
    g = gateway(proxied(port, admin, b.port), workers=2)
    codes = iter(c for c in range(200, 600) if c not in (204, 304))
    sent = [0]

    def send(n):
        for _ in range(n):
            assert request(port, 'GET', f'/status/{next(codes)}')[0] > 0
            sent[0] += 1

    for _ in range(10):  # until both workers have a full block
        send(20)
        if sum('code="other"' not in l for l in _named_pairs(admin, 'p')) >= 46:
            break
    assert sum('code="other"' not in l for l in _named_pairs(admin, 'p')) >= 46
    os.kill(g.worker_pids()[0], signal.SIGKILL)
    g.wait_log(r'respawning')
    wait_for(lambda: value(parse(scrape(admin))[0], 'portico_workers', state='running') == 2)
    for _ in range(8):  # until the new worker's block is full too
        send(20)
        if sum('code="other"' in l for l in _named_pairs(admin, 'p')) > 1:
            break
    wait_for(lambda: counted(admin) >= sent[0])
    text = request(admin, 'GET', '/metrics')[2].decode()
    others = [l for l in text.splitlines() if l.startswith('portico_requests_total{route="p",method="other"')]
    assert len(others) == 1, others
    s, _ = parse(text)
    total = sum(v for (n, l), v in s.items() if n == 'portico_requests_total' and ('route', 'p') in l)
    assert total == value(s, 'portico_request_duration_seconds_count', route='p')


def test_a_change_of_the_bucket_count_keeps_count_equal_to_the_counter(gateway):
    """[0.1, 1] to [0.05, 0.5, 5]: the buckets start again, but _count and
    _sum carry over, so _count still equals the request counter and +Inf
    is the count (cumulative buckets below it)."""
    port, admin = free_port(), free_port()
    routes = '  - { name: r, match: { paths: ["/r"] }, respond: { status: 200 } }'
    g = gateway(simple(port, admin, routes, extra='metrics: { latency_buckets: [0.1, 1] }'))
    for _ in range(6):
        assert request(port, 'GET', '/r')[0] == 200
    g.write(simple(port, admin, routes, extra='metrics: { latency_buckets: [0.05, 0.5, 5] }'))
    g.reload()
    for _ in range(4):
        assert request(port, 'GET', '/r')[0] == 200
    wait_for(lambda: counted(admin) >= 10)
    for attempt in range(2):  # while the old workers drain, and after
        text = scrape(admin)
        promtool(text)
        s, _ = parse(text)
        assert value(s, 'portico_requests_total', route='r', method='GET', code='200') == 10
        assert value(s, 'portico_request_duration_seconds_count', route='r') == 10
        b = {dict(l)['le']: v for (n, l), v in s.items() if n == 'portico_request_duration_seconds_bucket'
             and ('route', 'r') in l}
        assert set(b) == {'0.05', '0.5', '5', '+Inf'} and b['+Inf'] == 10
        assert b['0.05'] <= b['0.5'] <= b['5'] <= b['+Inf']
        wait_for(lambda: value(parse(scrape(admin))[0], 'portico_workers', state='draining') == 0)


def _labels_of(s, family, key):
    return sorted(dict(l)[key] for (n, l), v in s.items() if n == family)


def test_a_long_upstream_name_is_cut_alike_in_every_family(gateway, backends):
    """An upstream named with 760 bytes: the per-target families (up,
    weight, probes, marked down) wrote it whole into a label buffer that
    cut the target label and the closing quote off: promtool refused
    the scrape, and the families named the same upstream three ways."""
    b = backends()
    port, admin = free_port(), free_port()
    name = 'U' * 760
    g = gateway(f'''listeners: [{{ name: main, address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
upstreams: [{{ name: {name}, targets: ["127.0.0.1:{b.port}"] }}]
routes: [{{ name: p, match: {{ paths: ["/*"] }}, upstream: {name} }}]
''')
    assert request(port, 'GET', '/a')[0] == 200
    wait_for(lambda: counted(admin) >= 1)
    text = scrape(admin)
    promtool(text)
    s, _ = parse(text)
    ups = {f: _labels_of(s, f, 'upstream') for f in ('portico_upstream_target_up', 'portico_upstream_target_weight',
                                                      'portico_upstream_attempts_total')}
    assert len({tuple(v) for v in ups.values()}) == 1, ups
    (label,) = ups['portico_upstream_attempts_total']
    assert len(label.encode()) <= 200 and re.search(r'~[0-9a-f]{8}$', label), label
    assert _labels_of(s, 'portico_upstream_target_up', 'target') == [f'127.0.0.1:{b.port}']


def test_circuit_breaker_states_of_long_routes_are_apart_and_utf8(gateway):
    """The circuit-breaker family wrote route names whole: two routes that
    differ after byte 780 made one series twice, and a name of é cut in
    the middle of a character made the scrape invalid."""
    port, admin = free_port(), free_port()
    names = ['R' * 780 + '1', 'R' * 780 + '2', 'yx' + 'é' * 400]
    routes = '\n'.join(f'  - {{ name: "{n}", match: {{ paths: ["/{i}"] }}, respond: {{ status: 200 }},'
                       f' filters: {{ circuit-breaker: {{}} }} }}' for i, n in enumerate(names))
    g = gateway(simple(port, admin, routes))
    for i in range(3):
        assert request(port, 'GET', f'/{i}')[0] == 200
    wait_for(lambda: counted(admin) >= 3)
    text = scrape(admin)
    promtool(text)
    s, _ = parse(text)  # no series twice
    cb = _labels_of(s, 'portico_circuit_breaker_state', 'route')
    assert len(cb) == 3 and cb == _labels_of(s, 'portico_requests_total', 'route'), cb


def test_long_route_names_stay_apart_when_the_file_has_a_secret(gateway):
    """With any ${NAME} in the file, names were masked into 1,023 bytes
    before the hash was taken: two routes that differ after that were
    one series."""
    port, admin = free_port(), free_port()
    a, b = 'R' * 1100 + '1', 'R' * 1100 + '2'
    g = gateway(f'''listeners: [{{ name: main, address: "127.0.0.1:{port}" }}]
admin: {{ address: "127.0.0.1:{admin}", token: "${{PT_TOKEN}}" }}
routes:
  - {{ name: "{a}", match: {{ paths: ["/1"] }}, respond: {{ status: 200 }} }}
  - {{ name: "{b}", match: {{ paths: ["/2"] }}, respond: {{ status: 200 }} }}
''', env={'PT_TOKEN': '0123456789abcdef0123'})
    for p in ('/1', '/1', '/2'):
        assert request(port, 'GET', p)[0] == 200
    wait_for(lambda: counted(admin) >= 3)
    s, _ = parse(scrape(admin))
    got = sorted(v for (n, l), v in s.items() if n == 'portico_requests_total' and dict(l)['route'].startswith('RRR'))
    assert got == [1, 2], got


def _kill_the_worker(g, admin):
    (pid,) = g.worker_pids()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: g.worker_pids() and pid not in g.worker_pids(), what='a new worker')
    wait_for(lambda: value(parse(scrape(admin))[0], 'portico_workers', state='running') == 1)


def test_a_named_pair_in_the_retired_block_keeps_its_name(gateway, backends):
    """What exited workers counted keeps 23 named (method, status) pairs
    and "other".  The 24th pair could take the last slot by its name;
    the next fold with a new pair made that slot "other", and a series
    that had been shown by name vanished into it."""
    b = backends()
    port, admin = free_port(), free_port()
    g = gateway(proxied(port, admin, b.port), workers=1)
    sent = [0]

    def send(method, code, n=1):
        for _ in range(n):
            assert request(port, method, f'/status/{code}')[0] == code
            sent[0] += 1

    def pairs():
        s, _ = parse(scrape(admin))
        return {(dict(l)['method'], dict(l)['code']): v for (n, l), v in s.items()
                if n == 'portico_requests_total' and ('route', 'p') in l}

    for code in range(201, 211):  # 10 pairs
        send('GET', code)
    wait_for(lambda: counted(admin) >= sent[0])
    _kill_the_worker(g, admin)
    for code in range(211, 225):  # 14 more: one past the named slots
        send('GET', code)
    wait_for(lambda: counted(admin) >= sent[0])
    _kill_the_worker(g, admin)
    named = {k: v for k, v in pairs().items() if k != ('other', 'other')}
    assert len(named) == 23
    send('GET', 230)  # a new pair, folded next
    send('GET', 201, 5)
    wait_for(lambda: counted(admin) >= sent[0])
    _kill_the_worker(g, admin)
    after = pairs()
    for k, v in named.items():  # every series shown by name is still there
        assert after.get(k, 0) >= v, (k, v, after.get(k))
    assert after[('GET', '201')] == 6
    assert sum(after.values()) == sent[0]


def test_connections_of_a_killed_worker_are_not_active_for_ever(gateway):
    """A worker killed with keep-alive connections open: they were counted
    active for ever, in /metrics and in /status."""
    import json
    port, admin = free_port(), free_port()
    g = gateway(simple(port, admin, '  - { name: r, match: { paths: ["/r"] }, respond: { status: 200 } }'),
                workers=1)
    socks = []
    for _ in range(5):
        s = socket.create_connection(('127.0.0.1', port))
        s.sendall(b'GET /r HTTP/1.1\r\nHost: x\r\n\r\n')
        assert s.recv(4096).startswith(b'HTTP/1.1 200')
        socks.append(s)
    active = lambda: value(parse(scrape(admin))[0], 'portico_connections_active', listener='main', protocol='http/1.1')
    wait_for(lambda: active() == 5)
    _kill_the_worker(g, admin)
    for s in socks:
        s.close()
    assert active() == 0
    assert json.loads(request(admin, 'GET', '/status')[2])['connections']['active'] == 0
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_connections_closed_total', listener='main', protocol='http/1.1') == 5


def test_an_http2_request_answered_431_is_counted(gateway):
    """HTTP/2 requests whose head is too big are answered before they have
    a stream connection: they were logged but not counted."""
    from test_h2 import RawH2, ended, response
    port, admin = free_port(), free_port()
    g = gateway(f'''listeners: [{{ name: main, address: "127.0.0.1:{port}", http2: true, max_header_size: 8k }}]
admin: {{ address: "127.0.0.1:{admin}" }}
routes: [{{ name: r, match: {{ paths: ["/*"] }}, respond: {{ status: 200 }} }}]
''', workers=1)
    c = RawH2(port)
    c.request(1, '/big-head', extra=[('x-big', 'a' * 12000)])
    head, _, _ = response(c.frames(ended(1)), 1)
    assert head[':status'] == '431'
    c.request(3, '/after')
    head, _, _ = response(c.frames(ended(3)), 3)
    assert head[':status'] == '200'
    wait_for(lambda: counted(admin) >= 2)
    s, _ = parse(scrape(admin))
    assert value(s, 'portico_requests_total', route='', method='GET', code='431') == 1
    assert value(s, 'portico_requests_total', route='r', method='GET', code='200') == 1
    assert value(s, 'portico_response_bytes_total', route='') == len('431 Request Header Fields Too Large\n')


def test_a_fifth_zone_change_while_old_workers_drain_says_why_it_failed(gateway, backends):
    """Each reload that changes the metrics zone (other latency_buckets)
    keeps the zone it replaced while old workers count into it; four are
    kept.  The fifth failed with "cannot map shared memory: Device or
    resource busy", which told the operator nothing."""
    b = backends(delay_ms=20000)
    port, admin = free_port(), free_port()

    def conf(i):
        return f'''shutdown_timeout: 60s
listeners: [{{ name: main, address: "127.0.0.1:{port}", timeouts: {{ header: 60s }} }}]
admin: {{ address: "127.0.0.1:{admin}" }}
metrics: {{ latency_buckets: [{0.1 * (i + 1):.1f}, 5] }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes: [{{ name: slow, match: {{ paths: ["/*"] }}, upstream: up }}]
'''
    g = gateway(conf(0), workers=1)
    held = []
    try:
        for i in range(1, 5):  # each generation keeps a request in flight, so its worker drains
            s = socket.create_connection(('127.0.0.1', port))
            s.sendall(b'GET /held HTTP/1.1\r\nHost: x\r\n\r\n')
            held.append(s)
            wait_for(lambda: len(b.requests) == i, what='the request upstream')
            g.write(conf(i))
            g.reload()
        s = socket.create_connection(('127.0.0.1', port))
        s.sendall(b'GET /held HTTP/1.1\r\nHost: x\r\n\r\n')
        held.append(s)
        wait_for(lambda: len(b.requests) == 5, what='the request upstream')
        g.write(conf(5))
        g.reload(ok=False)
        assert re.search(r'reload failed: the metrics of four earlier reloads .* still counted into by old workers',
                         g.log()), g.log()[-2000:]
        assert 'Device or resource busy' not in g.log()
        s, _ = parse(scrape(admin))
        assert value(s, 'portico_config_generation') == 5
    finally:
        for s in held:
            s.close()
