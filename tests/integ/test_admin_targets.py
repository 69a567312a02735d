"""Run-time target changes through the admin API (issue 16): PATCH, POST
and DELETE on /upstreams/NAME/targets, seen by every worker through shared
memory, under a real load of several client threads against recording
backends; authorisation, bad inputs, reloads both ways, a respawned worker."""
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import free_port, raw, request, wait_for

TOKEN = 'targets-token-0123456789abcdef'
BALANCERS = ['round-robin', 'least-connections', 'consistent-hashing', 'latency', 'random-two']


def config(port, admin, targets, balancer='round-robin', admin_extra='', upstream_extra=''):
    """targets: (backend, weight) pairs of upstream `up`."""
    tl = ', '.join(f'{{ address: "127.0.0.1:{b.port}", weight: {w} }}' for b, w in targets)
    hash_on = ', hash: { on: uri }' if balancer == 'consistent-hashing' else ''
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
admin: {{ address: "127.0.0.1:{admin}"{admin_extra} }}
upstreams:
  - {{ name: up, balancer: {balancer}{hash_on}, targets: [{tl}]{upstream_extra} }}
  - {{ name: other, targets: ["127.0.0.1:1"] }}
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''


def admin_call(admin, method, path, body=None, token=None, headers=None):
    h = dict(headers or {})
    if token:
        h['Authorization'] = f'Bearer {token}'
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    s, hd, b = request(admin, method, path, body=body, headers=h)
    return s, hd, (json.loads(b) if b else None)


def target_path(b):
    return f'/upstreams/up/targets/127.0.0.1:{b.port}'


def load(port, n, threads=4, prefix='/r', statuses=None):
    """n requests over `threads` keep-alive client connections at once:
    every status they got (a dropped connection counts as 0)."""
    got = statuses if statuses is not None else []
    lock = threading.Lock()

    def run(t):
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=20)
        for i in range(t, n, threads):
            try:
                c.request('GET', f'{prefix}/{t}/{i}')
                r = c.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException):
                st = 0
                c.close()
                c = http.client.HTTPConnection('127.0.0.1', port, timeout=20)
            with lock:
                got.append(st)
        c.close()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    return got


def counts(bs, prefix):
    return [sum(1 for r in b.requests if r.target.startswith(prefix + '/')) for b in bs]


def near(got, want):
    """Round robin in each of two workers: one request apart in each."""
    assert all(abs(g - w) <= 2 and (w > 0 or g == 0) for g, w in zip(got, want)), (got, want)
    return True


def statuses_of(admin, tries=12, serving=None):
    """/status from several connections: {worker pid: {address: target}};
    `serving` (a set) gets the pids of the serving generation's workers."""
    seen = {}
    for _ in range(tries):
        s, _, st = admin_call(admin, 'GET', '/status')
        assert s == 200
        up = next(u for u in st['upstreams'] if u['name'] == 'up')
        seen[st['served_by']] = {t['address']: t for t in up['targets']}
        if serving is not None:
            serving |= {w['pid'] for w in st['workers'] if w['generation'] == st['generation']}
    return seen


def every_worker(g, admin, pred):
    """Every worker of the serving generation (old ones may still drain
    after a reload) answers a /status that satisfies pred."""
    views, serving = {}, set()

    def check():
        serving.clear()
        views.update(statuses_of(admin, 4, serving))
        return serving <= set(views) and all(pred(views[p]) for p in serving)
    wait_for(check, 10, what='every worker\'s view')
    return {p: views[p] for p in serving}


@pytest.fixture
def setup(gateway, backends):
    def make(n=2, weights=None, balancer='round-robin', workers=2, admin_extra='', **bk):
        bs = [backends(**bk) for _ in range(n + 1)]  # the last one is not in the file
        port, admin = free_port(), free_port()
        ws = weights or [100] * n
        g = gateway(config(port, admin, list(zip(bs[:n], ws)), balancer, admin_extra), workers=workers)
        return g, port, admin, bs
    return make


# ---- drain ----

def test_drain_loses_no_request_and_lets_a_slow_one_finish(setup):
    g, port, admin, (a, b, _) = setup()
    slow = []

    def slow_call():
        slow.append(request(port, 'GET', '/slow?ms=2500', timeout=20)[0])
    # each worker's first pick is the first target: four connections over two workers reach a
    ts = [threading.Thread(target=slow_call) for _ in range(4)]
    for t in ts:
        t.start()
    wait_for(lambda: any(r.target.startswith('/slow') for r in a.requests), 10, what='a slow request on a')
    s, _, v = admin_call(admin, 'PATCH', target_path(a), {'state': 'drain'})
    assert s == 200 and v == {'upstream': 'up', 'address': f'127.0.0.1:{a.port}', 'weight': 100, 'state': 'drain',
                              'added': False}
    views = every_worker(g, admin, lambda v: v[f'127.0.0.1:{a.port}']['state'] == 'drain')
    assert any(v[f'127.0.0.1:{a.port}']['inflight'] > 0 for v in views.values())  # the slow one is still on a
    st = load(port, 400, threads=6, prefix='/drained')
    assert st.count(200) == 400, sorted(set(st))  # no 5xx, nothing lost
    assert counts([a, b], '/drained') == [0, 400]
    for t in ts:
        t.join()
    assert slow == [200] * 4  # the in-flight ones finished, a's included
    # up again: a is back in the rotation
    assert admin_call(admin, 'PATCH', target_path(a), {'state': 'up'})[0] == 200
    load(port, 200, prefix='/back')
    ca, cb = counts([a, b], '/back')
    assert ca > 60 and cb > 60, (ca, cb)
    assert g.count(rf'\[notice\] worker \d+\[\d+\]: admin: 127\.0\.0\.1:\d+ \(loopback, no admin token set\) changed '
                   rf'target 127\.0\.0\.1:{a.port} of upstream "up": weight 100 -> 100, state up -> drain') == 1


@pytest.mark.parametrize('balancer', BALANCERS)
def test_down_takes_no_request_and_all_down_is_503(setup, balancer):
    g, port, admin, (a, b, _) = setup(balancer=balancer)
    assert admin_call(admin, 'PATCH', target_path(a), {'state': 'down'})[0] == 200
    st = load(port, 200, prefix='/down')
    assert st.count(200) == 200 and counts([a, b], '/down') == [0, 200]
    assert admin_call(admin, 'PATCH', target_path(b), {'state': 'drain'})[0] == 200
    st = load(port, 20, prefix='/none')
    assert st == [503] * 20 and counts([a, b], '/none') == [0, 0]
    assert g.count('no healthy target while connecting to upstream') >= 20


# ---- added, removed, weights: every balancer ----

@pytest.mark.parametrize('balancer', BALANCERS)
def test_added_removed_and_weights_with_every_balancer(setup, balancer):
    g, port, admin, (a, b, c) = setup(balancer=balancer)
    s, _, v = admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{c.port}', 'weight': 100})
    assert s == 201 and v['added'] is True and v['state'] == 'up' and v['weight'] == 100
    every_worker(g, admin, lambda v: f'127.0.0.1:{c.port}' in v)
    st = load(port, 600, prefix='/added')
    assert st.count(200) == 600
    n = counts([a, b, c], '/added')
    # the new one gets its share; latency: a target whose answers were once
    # slow (peak-EWMA, 10 s to forget) loses every draw against the others,
    # so only the new one is sure to get some
    assert n[2] > 0 and sum(n) == 600, n
    if balancer != 'latency':
        assert min(n) > 600 * 0.15, n
    # removed: gets none
    s, _, v = admin_call(admin, 'DELETE', target_path(b))
    assert s == 200 and v['state'] == 'removed'
    every_worker(g, admin, lambda v: f'127.0.0.1:{b.port}' not in v)
    st = load(port, 400, prefix='/removed')
    assert st.count(200) == 400
    n = counts([a, b, c], '/removed')
    assert n[1] == 0 and n[0] + n[2] == 400, n
    if balancer != 'latency':
        assert min(n[0], n[2]) > 400 * 0.2, n
    # a weight shifts the share (latency: the response times decide); one
    # client, so that least-connections and random-two see idle targets
    assert admin_call(admin, 'PATCH', target_path(a), {'weight': 400})[2]['weight'] == 400
    load(port, 1000, threads=1, prefix='/weighted')
    na, nb, nc = counts([a, b, c], '/weighted')
    assert nb == 0 and na + nc == 1000
    if balancer != 'latency':
        assert 0.68 < na / 1000 < 0.92, (na, nc)  # 80%
    # the added one removed, a file one back
    assert admin_call(admin, 'DELETE', f'/upstreams/up/targets/127.0.0.1:{c.port}')[0] == 200
    assert admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{b.port}'})[0] == 201
    load(port, 300, prefix='/last')
    na, nb, nc = counts([a, b, c], '/last')
    assert nc == 0 and nb > 0 and na + nb == 300, (na, nb, nc)


def test_status_shows_the_runtime_state_in_every_worker(setup):
    g, port, admin, (a, b, c) = setup(weights=[100, 40])
    admin_call(admin, 'PATCH', target_path(a), {'weight': 250, 'state': 'drain'})
    admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{c.port}', 'weight': 7})
    views = every_worker(g, admin, lambda v: f'127.0.0.1:{c.port}' in v)
    for v in views.values():
        ta, tb, tc = v[f'127.0.0.1:{a.port}'], v[f'127.0.0.1:{b.port}'], v[f'127.0.0.1:{c.port}']
        assert (ta['state'], ta['full_weight'], ta['added']) == ('drain', 250, False)
        assert (tb['state'], tb['full_weight'], tb['added']) == ('up', 40, False)
        assert (tc['state'], tc['full_weight'], tc['added']) == ('up', 7, True)
    # several requests on one admin connection: each change answered in turn
    conn = http.client.HTTPConnection('127.0.0.1', admin, timeout=5)
    for w in (1, 10000, 3):
        conn.request('PATCH', target_path(b), body=json.dumps({'weight': w}))
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())['weight'] == w
    conn.close()
    every_worker(g, admin, lambda v: v[f'127.0.0.1:{b.port}']['full_weight'] == 3)
    zones = {z['name']: z for z in admin_call(admin, 'GET', '/status')[2]['zones']}
    assert zones['upstream-runtime'] == {'name': 'upstream-runtime', 'slots': 4096, 'used': 3}  # a, b, c
    # a file target deleted and put back without a weight has the file's again
    assert admin_call(admin, 'DELETE', target_path(b))[0] == 200
    s, _, v = admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{b.port}'})
    assert s == 201 and (v['weight'], v['added'], v['state']) == (40, False, 'up')
    s, _, v = admin_call(admin, 'POST', '/upstreams/up/targets', {'address': '127.0.0.1:9'})
    assert s == 201 and (v['weight'], v['added']) == (100, True)


def test_an_ipv6_address_and_an_encoded_path(setup):
    g, port, admin, (a, b, c) = setup()
    s, _, v = admin_call(admin, 'POST', '/upstreams/up/targets', {'address': '[::1]:1', 'weight': 5})
    assert s == 201 and v['address'] == '[::1]:1'
    s, _, v = admin_call(admin, 'PATCH', '/upstreams/up/targets/%5B::1%5D:1', {'state': 'down'})
    assert s == 200 and v['state'] == 'down'
    # another spelling of the same address; an encoded upstream name
    s, _, v = admin_call(admin, 'PATCH', '/upstreams/%75p/targets/%5B0:0:0:0:0:0:0:1%5D:1', {'weight': 9})
    assert s == 200 and v['address'] == '[::1]:1' and v['weight'] == 9
    # what is not an IP address is a file target's name as written: none here
    assert admin_call(admin, 'PATCH', f'/upstreams/up/targets/127.000.0.1:{a.port}', {'weight': 2})[0] == 404
    assert admin_call(admin, 'DELETE', '/upstreams/up/targets/%5B::1%5D:1')[0] == 200
    assert admin_call(admin, 'DELETE', '/upstreams/up/targets/%5B::1%5D:1')[0] == 404


# ---- authorisation ----

def test_changes_need_the_token(setup):
    g, port, admin, (a, b, c) = setup(admin_extra=f', token: "{TOKEN}"')
    for method, path, body in (('PATCH', target_path(a), {'state': 'down'}),
                               ('POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{c.port}'}),
                               ('DELETE', target_path(b), None)):
        for tok in (None, 'wrong-token-0123456789', TOKEN + 'x'):
            s, h, v = admin_call(admin, method, path, body, token=tok)
            assert s == 401 and 'www-authenticate' in h, (method, tok, s)
    st = load(port, 100, prefix='/still')
    assert near(counts([a, b, c], '/still'), [50, 50, 0])  # nothing changed
    s, _, v = admin_call(admin, 'PATCH', target_path(a), {'state': 'down'}, token=TOKEN)
    assert s == 200 and v['state'] == 'down'
    assert g.count(r'admin: 127\.0\.0\.1:\d+ \(with the admin token\) changed target') == 1
    assert TOKEN not in g.log()
    s, _, st = admin_call(admin, 'GET', '/status')  # reading needs none
    assert s == 200


def test_changes_refused_on_a_remote_address_without_a_token(gateway, backends):
    a = backends()
    port, admin = free_port(), free_port()
    gateway(config(port, admin, [(a, 100)]).replace(f'"127.0.0.1:{admin}"', f'"0.0.0.0:{admin}", allow_remote: true'))
    s, _, v = admin_call(admin, 'PATCH', target_path(a), {'state': 'down'})
    assert s == 403 and 'admin.token' in v['error']


# ---- bad inputs ----

def test_bad_inputs_get_clear_errors(setup):
    g, port, admin, (a, b, c) = setup()
    ta = target_path(a)
    cases = [
        ('PATCH', '/upstreams/nope/targets/127.0.0.1:1', {'weight': 5}, 404, 'no such upstream'),
        ('PATCH', '/upstreams/up/targets/127.0.0.1:1', {'weight': 5}, 404, 'no such target'),
        ('DELETE', f'/upstreams/up/targets/127.0.0.1:{c.port}', None, 404, 'no such target'),
        ('PATCH', '/upstreams/up/nothing', {'weight': 5}, 404, 'not found'),
        ('PATCH', ta, '{"weight": ', 400, 'not a JSON object'),
        ('PATCH', ta, '[1]', 400, 'not a JSON object'),
        ('PATCH', ta, '', 400, 'not a JSON object'),
        ('PATCH', ta, '{"weight": 5, "weight": 6}', 400, 'not a JSON object'),
        ('PATCH', ta, {'weight': 0}, 400, '1 to 10000'),
        ('PATCH', ta, {'weight': 10001}, 400, '1 to 10000'),
        ('PATCH', ta, {'weight': -3}, 400, '1 to 10000'),
        ('PATCH', ta, {'weight': 1.5}, 400, '1 to 10000'),
        ('PATCH', ta, {'weight': '5'}, 400, '1 to 10000'),
        ('PATCH', ta, {'weight': 1e300}, 400, '1 to 10000'),
        ('PATCH', ta, {'state': 'sleeping'}, 400, 'state is'),
        ('PATCH', ta, {'state': 1}, 400, 'state is'),
        ('PATCH', ta, {'state': 'up\u0000'}, 400, 'state is'),
        ('PATCH', ta, {'wieght': 5}, 400, 'keys weight and state'),
        ('PATCH', ta, {}, 400, 'give a weight or a state'),
        ('POST', '/upstreams/up/targets', {'address': 'backend.example:80'}, 400, 'host names'),
        ('POST', '/upstreams/up/targets', {'address': '127.0.0.1'}, 400, 'numeric IP'),
        ('POST', '/upstreams/up/targets', {'address': '127.0.0.1:0'}, 400, 'numeric IP'),
        ('POST', '/upstreams/up/targets', {'address': '127.0.0.1:65536'}, 400, 'numeric IP'),
        ('POST', '/upstreams/up/targets', {'address': '*:80'}, 400, 'numeric IP'),
        ('POST', '/upstreams/up/targets', {'address': '127.0.0.1:80\r\nX: y'}, 400, 'numeric IP'),
        ('POST', '/upstreams/up/targets', {'address': '127.0.0.1:8\u00010'}, 400, 'numeric IP'),
        ('POST', '/upstreams/up/targets', {'address': '1' * 3000 + ':80'}, 400, 'numeric IP'),
        ('POST', '/upstreams/up/targets', {'address': 'x' * 5000}, 413, 'larger than 4096'),
        ('POST', '/upstreams/up/targets', {'address': 5}, 400, 'numeric IP'),
        ('POST', '/upstreams/up/targets', {'weight': 5}, 400, 'numeric IP'),
        ('POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{c.port}', 'state': 'up'}, 400, 'address and weight'),
        ('POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{a.port}'}, 409, 'has this target already'),
        ('PATCH', '/upstreams/up/targets/127.0.0.1:%01', {'weight': 5}, 400, 'bad target address'),
        ('PATCH', '/upstreams/up/targets/127.0.0.1:%zz', {'weight': 5}, 400, 'bad target address'),
        ('PATCH', '/upstreams/up/targets/' + 'x' * 200, {'weight': 5}, 400, 'bad target address'),
        ('PATCH', '/upstreams/up%00/targets/127.0.0.1:1', {'weight': 5}, 404, 'no such upstream'),
    ]
    for method, path, body, want, phrase in cases:
        s, h, v = admin_call(admin, method, path, body)
        assert s == want and phrase in v['error'], (method, path, body, s, v)
        assert h['content-type'] == 'application/json'
    for method, path, allow in (('GET', ta, 'PATCH, DELETE'), ('PUT', ta, 'PATCH, DELETE'),
                                ('POST', ta, 'PATCH, DELETE'), ('GET', '/upstreams/up/targets', 'POST'),
                                ('PATCH', '/upstreams/up/targets', 'POST'), ('DELETE', '/upstreams/up/targets', 'POST')):
        s, h, v = admin_call(admin, method, path, {'weight': 5})
        assert s == 405 and h['allow'] == allow, (method, path, s)
    # adding twice: 409 the second time
    add = {'address': f'127.0.0.1:{c.port}', 'weight': 5}
    assert admin_call(admin, 'POST', '/upstreams/up/targets', add)[0] == 201
    assert admin_call(admin, 'POST', '/upstreams/up/targets', add)[0] == 409
    # a huge body: 413 without reading it; a chunked one: 411
    out = raw(admin, f'PATCH {ta} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{{"weight":'.encode())
    assert out.startswith(b'HTTP/1.1 413 '), out
    out = raw(admin, f'PATCH {ta} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
                    '5\r\n{"a":\r\n0\r\n\r\n'.encode())
    assert out.startswith(b'HTTP/1.1 411 '), out
    # a body that comes late is waited for; one that never comes ends with the header timeout
    s = socket.create_connection(('127.0.0.1', admin), timeout=5)
    body = b'{"weight": 42}'
    s.sendall(f'PATCH {ta} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n'.encode() + body[:5])
    time.sleep(0.3)
    s.sendall(body[5:])
    out = s.recv(65536)
    s.close()
    assert out.startswith(b'HTTP/1.1 200 ') and b'"weight":42' in out, out
    # clients that vanish with half a body
    for _ in range(5):
        s = socket.create_connection(('127.0.0.1', admin), timeout=5)
        s.sendall(f'PATCH {ta} HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{{"we'.encode())
        s.close()
    # nothing of the refused ones applied; the gateway serves on
    every_worker(g, admin, lambda v: v[f'127.0.0.1:{a.port}']['full_weight'] == 42 and
                 v[f'127.0.0.1:{a.port}']['state'] == 'up')
    st = load(port, 100, prefix='/after')
    assert st.count(200) == 100


def test_at_most_32_targets_added_per_upstream(setup):
    g, port, admin, (a, b, c) = setup()
    for i in range(32):
        s, _, v = admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.1.{i}:9', 'weight': 1})
        assert s == 201, (i, v)
    s, _, v = admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{c.port}'})
    assert s == 409 and 'at most 32' in v['error']
    # another upstream has its own 32
    assert admin_call(admin, 'POST', '/upstreams/other/targets', {'address': '127.0.0.1:9'})[0] == 201
    # removing and adding again, many times: the slots of the removed ones are taken again
    for i in range(100):
        assert admin_call(admin, 'DELETE', f'/upstreams/up/targets/127.0.1.{i % 32}:9')[0] == 200
        assert admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.1.{i % 32}:9'})[0] == 201
        if i % 20 == 0:
            load(port, 8, threads=2, prefix=f'/churn{i}')
    for i in range(32):
        assert admin_call(admin, 'DELETE', f'/upstreams/up/targets/127.0.1.{i}:9')[0] == 200
    st = load(port, 100, prefix='/clean')
    assert st.count(200) == 100 and near(counts([a, b], '/clean'), [50, 50])


# ---- reloads ----

def test_reload_reverts_the_changes_by_default_and_says_so(setup):
    g, port, admin, (a, b, c) = setup()
    admin_call(admin, 'PATCH', target_path(a), {'state': 'drain'})
    admin_call(admin, 'PATCH', target_path(b), {'weight': 300})
    admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{c.port}', 'weight': 100})
    load(port, 100, prefix='/before')
    assert counts([a, b, c], '/before')[0] == 0
    g.reload()
    line = [ln for ln in g.log().splitlines() if 'reload ok' in ln][-1]
    assert '3 runtime changes reverted' in line, line
    assert f'up 127.0.0.1:{a.port} drain' in line and f'up 127.0.0.1:{b.port} weight 300' in line
    assert f'up 127.0.0.1:{c.port} added' in line
    every_worker(g, admin, lambda v: set(v) == {f'127.0.0.1:{a.port}', f'127.0.0.1:{b.port}'} and
                 all(t['state'] == 'up' and t['full_weight'] == 100 for t in v.values()))
    load(port, 200, prefix='/after')
    assert near(counts([a, b, c], '/after'), [100, 100, 0])
    # a reload with nothing to revert says nothing of it
    g.reload()
    assert 'runtime change' not in [ln for ln in g.log().splitlines() if 'reload ok' in ln][-1]


def test_reload_keeps_what_still_applies_with_keep(gateway, backends):
    a, b, c, d = backends(), backends(), backends(), backends()
    port, admin = free_port(), free_port()
    keep = ', runtime_changes: keep'
    g = gateway(config(port, admin, [(a, 100), (b, 100)], admin_extra=keep))
    admin_call(admin, 'PATCH', target_path(a), {'state': 'drain'})
    admin_call(admin, 'PATCH', target_path(b), {'weight': 300})
    admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{c.port}', 'weight': 100})
    # the new file drops b and adds d
    g.write(config(port, admin, [(a, 100), (d, 100)], admin_extra=keep))
    g.reload()
    line = [ln for ln in g.log().splitlines() if 'reload ok' in ln][-1]
    assert '1 runtime change dropped (no longer in the file)' in line and f'127.0.0.1:{b.port} weight 300' in line
    views = every_worker(g, admin, lambda v: f'127.0.0.1:{c.port}' in v and f'127.0.0.1:{d.port}' in v)
    for v in views.values():
        assert v[f'127.0.0.1:{a.port}']['state'] == 'drain' and v[f'127.0.0.1:{c.port}']['added']
    st = load(port, 200, prefix='/kept')
    assert st.count(200) == 200
    na, nb, nc, nd = counts([a, b, c, d], '/kept')
    assert near([na, nb, nc, nd], [0, 0, 100, 100])
    # the file lists the added one now: it becomes the file's, its change kept
    g.write(config(port, admin, [(a, 100), (c, 100), (d, 100)], admin_extra=keep))
    g.reload()
    views = every_worker(g, admin, lambda v: not v[f'127.0.0.1:{c.port}']['added'])
    assert all(v[f'127.0.0.1:{a.port}']['state'] == 'drain' for v in views.values())
    # without keep, the next reload reverts the rest
    g.write(config(port, admin, [(a, 100), (c, 100), (d, 100)]))
    g.reload()
    assert f'up 127.0.0.1:{a.port} drain' in [ln for ln in g.log().splitlines() if 'reload ok' in ln][-1]
    every_worker(g, admin, lambda v: v[f'127.0.0.1:{a.port}']['state'] == 'up')


def test_runtime_changes_key_is_checked(gateway, tmpdir_path):
    from conftest import run_portico
    path = os.path.join(tmpdir_path, 'bad.yaml')
    with open(path, 'w') as f:
        f.write('listeners: [{ name: main, address: 127.0.0.1:1 }]\nadmin: { address: "127.0.0.1:2", '
                'runtime_changes: forever }\n')
    r = run_portico('-t', '-c', path)
    assert r.returncode == 1 and 'bad.yaml:2:' in r.stderr and 'runtime_changes' in r.stderr, r.stderr


# ---- a worker started later ----

def test_a_respawned_worker_sees_the_changes(setup):
    g, port, admin, (a, b, c) = setup(workers=2)
    admin_call(admin, 'PATCH', target_path(a), {'state': 'down'})
    admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{c.port}', 'weight': 100})
    every_worker(g, admin, lambda v: f'127.0.0.1:{c.port}' in v)
    old = g.worker_pids()
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(set(g.worker_pids()) - set(old)) == 2, 15, what='two new workers')
    g.wait_log(r'respawning', 2)
    views = every_worker(g, admin, lambda v: f'127.0.0.1:{c.port}' in v)
    assert set(views) & set(old) == set()
    for v in views.values():
        assert v[f'127.0.0.1:{a.port}']['state'] == 'down' and v[f'127.0.0.1:{c.port}']['added']
    st = load(port, 200, prefix='/respawned')
    assert st.count(200) == 200 and near(counts([a, b, c], '/respawned'), [0, 100, 100])


# ---- HTTP/2 clients, and a file target given by host name ----

def test_http2_clients_follow_the_changes(gateway, backends):
    import subprocess
    a, b, c = backends(), backends(), backends()
    port, admin = free_port(), free_port()
    cfg = config(port, admin, [(a, 100), (b, 100)]).replace(f'address: 127.0.0.1:{port} }}',
                                                            f'address: 127.0.0.1:{port}, http2: true }}')
    g = gateway(cfg)

    def h2(path, n):  # n streams at once on one HTTP/2 connection
        out = subprocess.run(['nghttp', '-n', '-s', '-m', str(n), f'http://127.0.0.1:{port}{path}'],
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
    admin_call(admin, 'PATCH', target_path(a), {'state': 'drain'})
    admin_call(admin, 'POST', '/upstreams/up/targets', {'address': f'127.0.0.1:{c.port}', 'weight': 100})
    every_worker(g, admin, lambda v: f'127.0.0.1:{c.port}' in v)
    for _ in range(4):
        h2('/h2', 50)
    na, nb, nc = (sum(1 for r in x.requests if r.target == '/h2') for x in (a, b, c))
    assert na == 0 and nb + nc == 200 and nb > 40 and nc > 40, (na, nb, nc)


def test_a_file_target_given_by_host_name_is_changed_by_its_name(gateway, backends):
    a, b = backends(), backends()
    port, admin = free_port(), free_port()
    cfg = config(port, admin, [(a, 100)]).replace(f'"127.0.0.1:{a.port}"', f'"localhost:{a.port}"')
    cfg = cfg.replace('targets: [{ address', f'targets: [{{ address: "127.0.0.1:{b.port}" }}, {{ address', 1)
    g = gateway(cfg)
    s, _, v = admin_call(admin, 'PATCH', f'/upstreams/up/targets/localhost:{a.port}', {'state': 'down'})
    assert s == 200 and v['address'] == f'localhost:{a.port}' and v['state'] == 'down'
    # /status names it by the address it resolved to
    every_worker(g, admin, lambda v: v[f'127.0.0.1:{a.port}']['state'] == 'down' and
                 v[f'127.0.0.1:{b.port}']['state'] == 'up')
    st = load(port, 100, prefix='/named')
    assert st.count(200) == 100 and counts([a, b], '/named') == [0, 100]


def test_a_long_upstream_name_is_refused_clearly(gateway, backends):
    a = backends()
    port, admin = free_port(), free_port()
    long_name = 'n' * 130
    gateway(config(port, admin, [(a, 100)]).replace('name: other', f'name: {long_name}'))
    s, _, v = admin_call(admin, 'PATCH', f'/upstreams/{long_name}/targets/127.0.0.1:1', {'weight': 5})
    assert s == 400 and '128 bytes' in v['error']
    s, _, v = admin_call(admin, 'PATCH', f'/upstreams/{"n" * 2000}/targets/127.0.0.1:1', {'weight': 5})
    assert s == 404 and 'no such upstream' in v['error']


def test_targets_out_of_service_are_not_tried_even_when_all_down_says_try(gateway, backends):
    a, b = backends(), backends()
    port, admin = free_port(), free_port()
    extra = ', when_all_down: try, healthchecks: { passive: { unhealthy: { http_failures: 1 } } }'
    g = gateway(config(port, admin, [(a, 100), (b, 100)], upstream_extra=extra))
    admin_call(admin, 'PATCH', target_path(a), {'state': 'down'})
    admin_call(admin, 'PATCH', target_path(b), {'state': 'drain'})
    assert load(port, 20, prefix='/try') == [503] * 20 and counts([a, b], '/try') == [0, 0]
    admin_call(admin, 'PATCH', target_path(b), {'state': 'up'})
    assert load(port, 20, prefix='/one') == [200] * 20 and counts([a, b], '/one') == [0, 20]


def test_an_addition_waits_for_a_slot_while_deleted_ones_finish(gateway, backends):
    """A worker keeps a deleted target's slot while attempts on it are under
    way: with every spare slot held so, an addition waits, then lands."""
    slow = backends(delay_ms=1500, host='0.0.0.0')  # 127.0.x.y all reach it
    a, b = backends(), backends()
    port, admin = free_port(), free_port()
    g = gateway(config(port, admin, [(a, 100), (b, 100)]), workers=1)
    first = [f'127.0.2.{i}:{slow.port}' for i in range(32)]
    second = [f'127.0.3.{i}:{slow.port}' for i in range(32)]
    for addr in first:
        assert admin_call(admin, 'POST', '/upstreams/up/targets', {'address': addr})[0] == 201
    statuses = []
    t = threading.Thread(target=load, args=(port, 68), kwargs={'threads': 68, 'prefix': '/held', 'statuses': statuses})
    t.start()
    wait_for(lambda: len(slow.requests) >= 60, 10, what='the slow requests under way')
    for addr in first:
        assert admin_call(admin, 'DELETE', f'/upstreams/up/targets/{addr}')[0] == 200
    for addr in second:
        assert admin_call(admin, 'POST', '/upstreams/up/targets', {'address': addr})[0] == 201
    views = statuses_of(admin, 1)
    (v,) = views.values()
    placed = [x for x in second if x in v]
    assert 0 < len(placed) < 32, len(placed)  # the spare slots only, for now
    t.join()
    assert statuses == [200] * 68  # the deleted targets' attempts finished
    load(port, 4, prefix='/next')  # a pick takes the slots freed meanwhile
    (v,) = statuses_of(admin, 1).values()
    assert all(x in v and v[x]['state'] == 'up' for x in second) and not any(x in v for x in first)
