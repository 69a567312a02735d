"""Balancers through the real binary, with several real backends."""
import collections

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


def test_weights_over_10000_requests(gateway, backends):
    import http.client
    a, b = backends(), backends()
    port = free_port()
    cfg = f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams:
  - {{ name: up, targets: [{{ address: "127.0.0.1:{a.port}", weight: 300 }}, {{ address: "127.0.0.1:{b.port}", weight: 100 }}] }}
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''
    gateway(cfg, workers=1)
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    for i in range(10000):
        c.request('GET', '/w')
        c.getresponse().read()
    c.close()
    share = len(a.requests) / 10000
    assert 0.7125 < share < 0.7875, share  # 75% within 5%
