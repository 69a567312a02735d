"""Balancers through the real binary, with several real backends."""
import collections

import pytest

from conftest import free_port, http_get


def config(port, backends, upstream):
    targets = ', '.join(f'"127.0.0.1:{b.port}"' for b in backends)
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams:
  - {{ name: up, targets: [{targets}], {upstream} }}
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''


def who(backends):
    return {r.target: i for i, b in enumerate(backends) for r in b.requests}


def test_consistent_hashing_keeps_users_on_their_target(gateway, backends):
    bs = [backends() for _ in range(4)]
    port = free_port()
    g = gateway(config(port, bs, 'balancer: consistent-hashing, hash: { on: header, name: x-user-id, fallback: ip }'),
                workers=2)
    for rnd in range(3):
        for u in range(200):
            assert http_get(port, f'/u{u}/r{rnd}', headers={'X-User-Id': f'user-{u}'})[0] == 200
    seen = who(bs)
    for u in range(200):
        targets = {seen[f'/u{u}/r{rnd}'] for rnd in range(3)}
        assert len(targets) == 1, (u, targets)  # the same user, the same backend, in either worker
    spread = collections.Counter(seen[f'/u{u}/r0'] for u in range(200))
    assert len(spread) == 4 and min(spread.values()) > 20, spread
    before = {u: seen[f'/u{u}/r0'] for u in range(200)}
    # one target leaves: only its users move
    g.write(config(port, bs[:3], 'balancer: consistent-hashing, hash: { on: header, name: x-user-id }'))
    g.reload()
    for b in bs:
        b.requests.clear()
    for u in range(200):
        http_get(port, f'/u{u}/after', headers={'X-User-Id': f'user-{u}'})
    after = who(bs)
    moved = [u for u in range(200) if after[f'/u{u}/after'] != before[u]]
    assert all(before[u] == 3 for u in moved) and len(moved) == spread[3], (len(moved), spread)


def test_latency_balancer_moves_traffic_from_a_slow_backend(gateway, backends):
    slow, fast1, fast2 = backends(delay_ms=150), backends(), backends()
    port = free_port()
    gateway(config(port, [slow, fast1, fast2], 'balancer: latency'), workers=1)
    for i in range(120):
        assert http_get(port, f'/r{i}')[0] == 200
    assert len(slow.requests) < 20, (len(slow.requests), len(fast1.requests), len(fast2.requests))
    assert len(fast1.requests) > 30 and len(fast2.requests) > 30


@pytest.mark.parametrize('balancer', ['round-robin', 'least-connections', 'random-two', 'consistent-hashing'])
def test_weights_over_10000_requests(gateway, backends, balancer):
    import http.client
    a, b = backends(), backends()
    port = free_port()
    hash_on = ', hash: { on: uri }' if balancer == 'consistent-hashing' else ''
    cfg = f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams:
  - {{ name: up, balancer: {balancer}{hash_on}, targets: [{{ address: "127.0.0.1:{a.port}", weight: 300 }},
                                            {{ address: "127.0.0.1:{b.port}", weight: 100 }}] }}
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''
    gateway(cfg, workers=1)
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    for i in range(10000):
        c.request('GET', f'/w/{i}')  # a key of its own for consistent-hashing
        c.getresponse().read()
    c.close()
    share = len(a.requests) / 10000
    assert 0.7125 < share < 0.7875, share  # 75% within 5%


def test_least_connections_counts_across_workers_and_survives_reload(gateway, backends):
    import json
    import os
    import signal
    import threading
    import time
    from conftest import wait_for
    a, b = backends(delay_ms=2500), backends(delay_ms=2500)
    port, admin = free_port(), free_port()
    cfg = config(port, [a, b], 'balancer: least-connections') + f'admin: {{ address: 127.0.0.1:{admin} }}\n'
    g = gateway(cfg, workers=2)

    def inflight():
        st = json.loads(http_get(admin, '/status')[2])
        return [t['inflight'] for t in st['upstreams'][0]['targets']]

    results = []
    threads = []
    for i in range(8):
        t = threading.Thread(target=lambda i=i: results.append(http_get(port, f'/slow/{i}', timeout=20)[0]))
        t.start()
        threads.append(t)
        time.sleep(0.06)  # each pick sees the ones before it, whichever worker made them
    wait_for(lambda: sum(inflight()) == 8, timeout=5, what='8 requests under way')
    assert inflight() == [4, 4]  # counted across both workers: an even split
    # a reload keeps the zone and its counts; the old workers finish their requests
    g.reload()
    assert sum(inflight()) == 8
    for t in threads:
        t.join(20)
    assert results == [200] * 8
    wait_for(lambda: sum(inflight()) == 0, timeout=5, what='counts back to 0')
    # a worker killed with requests under way: the master takes its share back
    def doomed(i):
        try:
            http_get(port, f'/k/{i}', timeout=20)
        except OSError:
            pass  # the ones the killed worker served lose their connection

    for i in range(6):
        threading.Thread(target=doomed, args=(i,)).start()
        time.sleep(0.06)
    wait_for(lambda: sum(inflight()) == 6, timeout=5, what='6 requests under way')
    victim = g.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    g.wait_log(rf'\(pid {victim}\) killed by signal 9')
    wait_for(lambda: sum(inflight()) < 6, timeout=5, what="the dead worker's share taken back")
    time.sleep(3)
    wait_for(lambda: sum(inflight()) == 0, timeout=5, what='counts back to 0')


def test_passive_health_marks_a_dead_target_down(gateway, backends):
    import time
    from backend import dead_port
    live = backends()
    dead = dead_port()
    port = free_port()
    g = gateway(config(port, [type('T', (), {'port': dead})(), live],
                       'retries: 0, healthchecks: { passive: { unhealthy: { tcp_failures: 2 }, cooldown: 1s } }'),
                workers=1)
    statuses = [http_get(port, f'/p{i}')[0] for i in range(12)]
    # round robin sends every other request to the dead one until it has failed twice
    assert statuses.count(502) == 2 and statuses[-6:] == [200] * 6, statuses
    g.wait_log(rf'target 127\.0\.0\.1:{dead} marked down after 2 failed connections in a row')
    assert g.count('marked down') == 1
    time.sleep(1.2)  # the cool-down passes: it is tried again, fails, and is down again
    statuses = [http_get(port, f'/q{i}')[0] for i in range(6)]
    assert statuses.count(502) >= 1 and statuses.count(200) >= 4, statuses
    g.wait_log('cool-down over, trying it again')


def test_every_target_down_answers_503_at_once(gateway):
    import time
    from backend import dead_port
    port, d1, d2 = free_port(), dead_port(), dead_port()
    fake = [type('T', (), {'port': d})() for d in (d1, d2)]
    g = gateway(config(port, fake, 'retries: 1, healthchecks: { passive: { unhealthy: { tcp_failures: 1 }, '
                                   'cooldown: 30s } }'), workers=1)
    first = http_get(port, '/a')[0]
    assert first == 502  # both tried once: both marked down
    t0 = time.time()
    status, _, body = http_get(port, '/b')
    assert status == 503 and body == b'503 Service Unavailable\n' and time.time() - t0 < 2
    g.wait_log('no healthy target while connecting to upstream')


def test_slow_start_ramps_a_returning_target_up(gateway, backends):
    import time
    from backend import Backend
    a, b = backends(), backends()
    port = free_port()
    g = gateway(config(port, [a, b], 'retries: 1, healthchecks: { passive: { unhealthy: { tcp_failures: 1 }, '
                                     'cooldown: 300ms, slow_start: 3s } }'), workers=1)
    port_a = a.port
    a.stop()
    while not g.count('marked down'):
        assert http_get(port, '/before')[0] == 200  # retried on b
    revived = Backend(port=port_a)
    try:
        time.sleep(0.4)  # the cool-down passes
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.2:
            assert http_get(port, '/ramp')[0] == 200
        g.wait_log('cool-down over, trying it again')
        start = min(r.t for r in revived.requests)

        def share(lo, hi):
            na = sum(1 for r in revived.requests if lo <= r.t - start < hi)
            nb = sum(1 for r in b.requests if r.target == '/ramp' and lo <= r.t - start < hi)
            return na / max(na + nb, 1)
        early, late = share(0, 0.8), share(2.2, 3.0)
        # weights 10% -> 100% of 100 over 3 s, against b's 100: ~15% early, ~45% late; 50% without slow start
        assert early < 0.3 and late > 0.38 and late > early + 0.15, (early, late)
    finally:
        revived.stop()
