"""Retries through the real binary: on statuses, bounded in count, time and
by the retry budget, never the same target twice in a row, and a backend
killed under load."""
import json
import threading
import time

from conftest import free_port, http_get, request, wait_for


def config(port, backends, upstream, admin=None):
    targets = ', '.join(f'"127.0.0.1:{b.port}"' for b in backends)
    text = f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams:
  - {{ name: up, targets: [{targets}], {upstream} }}
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''
    return text + (f'admin: {{ address: 127.0.0.1:{admin} }}\n' if admin else '')


def attempts(backends, target):
    """(backend index, time) of every request for target, in order."""
    seen = [(r.t, i) for i, b in enumerate(backends) for r in list(b.requests) if r.target == target]
    return [i for _, i in sorted(seen)]


def test_retry_statuses_for_idempotent_requests_only(gateway, backends):
    a, b = backends(), backends()
    a.fail_status = 503
    port = free_port()
    gateway(config(port, [a, b], 'retries: 1, retry_statuses: [503]'), workers=1)
    for i in range(20):
        assert http_get(port, f'/g{i}')[0] == 200  # a's 503s are retried on b
    assert len([r for r in a.requests if r.method == 'GET']) >= 8
    posts = [request(port, 'POST', f'/p{i}', body=b'x' * 100)[0] for i in range(20)]
    assert posts.count(503) >= 8 and posts.count(200) >= 8, posts  # passed on, not retried
    for i in range(20):  # and never sent twice
        assert len(attempts([a, b], f'/p{i}')) == 1
    # without retry_statuses a status is an answer like any other: see test_budget below


def test_never_the_same_target_twice_in_a_row_and_the_last_answer_passed_on(gateway, backends):
    a, b = backends(), backends()
    a.fail_status, b.fail_status = 502, 503
    port = free_port()
    gateway(config(port, [a, b], 'retries: 3, retry_statuses: [502, 503]'), workers=1)
    status, _, body = http_get(port, '/x')
    seq = attempts([a, b], '/x')
    assert len(seq) == 4 and all(x != y for x, y in zip(seq, seq[1:])), seq
    assert status == (502 if seq[-1] == 0 else 503) and body.startswith(b'failing with'), (status, body)


def test_retry_timeout_bounds_retries_in_time(gateway, backends):
    bs = [backends(delay_ms=500) for _ in range(4)]
    port = free_port()
    g = gateway(config(port, bs, 'retries: 5, retry_timeout: 600ms, timeouts: { read: 250ms }'), workers=1)
    t0 = time.time()
    assert http_get(port, '/slow-everywhere')[0] == 504
    took = time.time() - t0
    # attempts at 0, 250 and 500 ms; at 750 ms the retry_timeout has passed
    # (the count is the bound: without retry_timeout there would be 6)
    assert len(attempts(bs, '/slow-everywhere')) == 3 and 0.7 < took < 3, took
    g.wait_log('retry_timeout of upstream "up" passed: no retry')


def test_budget_caps_retries_at_a_share_of_traffic(gateway, backends):
    a, b = backends(), backends()
    a.fail_status = b.fail_status = 503
    port, admin = free_port(), free_port()
    g = gateway(config(port, [a, b], 'retries: 1, retry_statuses: [503], '
                                     'retry_budget: { percent: 20, min_per_second: 0 }', admin), workers=1)
    for i in range(100):
        assert http_get(port, f'/b{i}')[0] == 503
    total = len(a.requests) + len(b.requests)
    assert 112 <= total <= 122, total  # 100 requests and ~20% retried; unbounded it would be 200
    g.wait_log(r'upstream "up": retry budget spent \(\d+ retries for \d+ requests in 10 s\)')
    up = json.loads(http_get(admin, '/status')[2])['upstreams'][0]
    assert up['worker_retries'] == total - 100 and up['worker_retries_refused'] == 200 - total


def test_backend_killed_under_load(gateway, backends):
    from backend import Backend
    bs = [backends(), backends(), backends()]
    port, admin = free_port(), free_port()
    g = gateway(config(port, bs, 'retries: 2, healthchecks: { passive: { unhealthy: { tcp_failures: 1 } }, '
                                 'active: { http_path: /healthz, healthy: { interval: 200ms, successes: 2 }, '
                                 'unhealthy: { interval: 200ms } } }', admin), workers=2)
    stop = threading.Event()
    results, errors = [], []

    def load(n):
        import http.client
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        i = 0
        while not stop.is_set():
            try:
                c.request('GET', f'/load/{n}/{i}')
                r = c.getresponse()
                r.read()
                results.append(r.status)
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))
                c.close()
                c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
            i += 1
        c.close()

    threads = [threading.Thread(target=load, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(results) > 300, what='load running')
        victim = bs[1].port
        bs[1].stop()  # its connections close under the requests on them
        g.wait_log(rf'target 127\.0\.0\.1:{victim} marked down')
        time.sleep(0.5)
        n_down = len(results)
        time.sleep(0.5)
        revived = Backend(port=victim)
        try:
            g.wait_log(rf'target 127\.0\.0\.1:{victim} is healthy again')
            wait_for(lambda: len([r for r in revived.requests if r.target != '/healthz']) > 20,
                     what='traffic back on the restarted backend')
        finally:
            stop.set()
            for t in threads:
                t.join(15)
            revived.stop()
    finally:
        stop.set()
    assert errors == [] and len(results) > n_down > 300
    assert set(results) == {200}, {s: results.count(s) for s in set(results)}
    t = {x['address']: x for x in json.loads(http_get(admin, '/status')[2])['upstreams'][0]['targets']}
    assert t[f'127.0.0.1:{victim}']['health'] == 'up' and t[f'127.0.0.1:{victim}']['marked_down'] >= 1


def test_a_retry_after_a_held_head_and_a_cut_body_passes_the_next_answer_on_whole(gateway, backends):
    """A filter holds the response head (a delay on the response), the body
    is cut: nothing has reached the client, so the request is retried.
    Nothing of the first answer may carry over: its framing state gave a
    false 502, and with the cache its half body was kept for the next
    answer's to be appended to."""
    b = backends()
    port = free_port()
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
caches: [{{ name: c, memory: 8MiB }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - name: held
    match: {{ paths: ["/cut-first"], query: {{ r: held }} }}
    upstream: up
    filters: {{ fault-injection: {{ delay: {{ duration: 300ms, on: response }} }} }}
  - name: cached
    match: {{ paths: ["/cut-first"] }}
    upstream: up
    filters: {{ cache: {{}}, fault-injection: {{ delay: {{ duration: 300ms, on: response }} }} }}
''', workers=1)
    for target in ('/cut-first?n=3001&r=held', '/cut-first?n=3001&r=cached'):
        status, _, body = request(port, 'GET', target)
        assert (status, body) == (200, b'B' * 3001), (status, body[:80])
        assert sum(r.target == target for r in b.requests) == 2
    # what the cache kept, if anything, is the whole second answer
    status, _, body = request(port, 'GET', '/cut-first?n=3001&r=cached')
    assert (status, body) == (200, b'B' * 3001), (status, body[:80])
