"""The response cache (issue 15) through the real binary: an origin the
test scripts (cache_origin.py) behind a route with the cache filter."""
import concurrent.futures
import os
import signal
import subprocess
import time

import pytest

from cache_origin import Origin
from conftest import free_port, request, run_portico, wait_for


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.stop()


def config(port, origin, admin=None, filt='{}', memory='8MiB', max_object='1MiB', extra='', listener=''):
    adm = f'admin: {{ address: 127.0.0.1:{admin} }}\n' if admin else ''
    return f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
{listener}{adm}caches:
  - name: default
    memory: {memory}
    max_object_size: {max_object}
upstreams:
  - name: up
    targets: ["127.0.0.1:{origin.port}"]
routes:
  - name: main
    match: {{ paths: ["/*"] }}
    upstream: up
    filters:
      cache: {filt}
{extra}'''


@pytest.fixture
def cached(gateway, origin):
    """A gateway with a cache in front of the origin: returns (port, admin_port, gateway)."""
    def make(workers=2, **kw):
        port, admin = free_port(), free_port()
        g = gateway(config(port, origin, admin=admin, **kw), workers=workers)
        return port, admin, g
    return make


def get(port, path, headers=None, method='GET'):
    return request(port, method, path, headers={'Host': 'example.com', **(headers or {})})


def status_of(cs):
    return [p.strip() for p in cs.split(';')]


# ---- hit and miss ----

def test_a_fresh_response_is_served_from_the_cache_with_its_age(cached, origin):
    port, _, _ = cached()
    date = time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())
    origin.set('/a', 200, {'Cache-Control': 'max-age=60', 'X-Origin': 'yes', 'Date': date}, b'hello cache')
    s1, h1, b1 = get(port, '/a')
    assert (s1, b1) == (200, b'hello cache')
    assert status_of(h1['cache-status'])[:3] == ['portico', 'fwd=uri-miss', 'stored'], h1
    time.sleep(1.1)
    s2, h2, b2 = get(port, '/a')
    assert (s2, b2) == (200, b'hello cache')
    assert origin.count('/a') == 1
    assert status_of(h2['cache-status'])[:2] == ['portico', 'hit'], h2
    assert int(h2['age']) >= 1, h2
    assert h2['x-origin'] == 'yes' and h2['date'] == h1['date'] == date  # the Date is never rewritten (§4)
    assert h2['content-length'] == str(len(b'hello cache'))
    assert 'ttl=5' in h2['cache-status'] and 'key="http://example.com/a?"' in h2['cache-status'], h2


@pytest.mark.parametrize('size', [0, 1, 4095, 4096, 4097, 16384, 65536, 300000])
def test_bodies_of_every_size_come_back_byte_for_byte(cached, origin, size):
    port, _, _ = cached()
    body = (bytes(range(256)) * (size // 256 + 1))[:size]
    origin.set('/b', 200, {'Cache-Control': 'max-age=60'}, body)
    assert get(port, '/b')[2] == body
    s, h, b = get(port, '/b')
    assert (s, b) == (200, body) and h['content-length'] == str(len(body))
    assert origin.count('/b') == 1


def test_a_chunked_response_is_stored_and_served_with_its_length(cached, origin):
    port, _, _ = cached()
    body = b'0123456789' * 1000
    origin.set('/c', 200, {'Cache-Control': 'max-age=60', 'Transfer-Encoding': 'chunked'}, body)
    s, h, b = get(port, '/c')
    assert b == body and h.get('transfer-encoding') == 'chunked'
    s, h, b = get(port, '/c')
    assert b == body and h['content-length'] == str(len(body)) and 'transfer-encoding' not in h
    assert origin.count('/c') == 1


def test_head_is_answered_from_a_stored_get(cached, origin):
    port, _, _ = cached()
    origin.set('/h', 200, {'Cache-Control': 'max-age=60'}, b'12345')
    get(port, '/h')
    # stored once the worker that fetched it has committed it, which may
    # come a moment after the client has the whole answer (ASan, a loaded box)
    wait_for(lambda: 'hit' in status_of(get(port, '/h')[1].get('cache-status', '')), what='a hit')
    fetched = origin.count('/h')
    s, h, b = get(port, '/h', method='HEAD')
    assert (s, b, h['content-length']) == (200, b'', '5')
    assert origin.count('/h') == fetched == 1


def test_query_strings_are_separate_keys(cached, origin):
    port, _, _ = cached()
    origin.handler('/q', lambda r: (200, {'Cache-Control': 'max-age=60'}, r.target))
    assert get(port, '/q?a=1')[2] == b'/q?a=1'
    assert get(port, '/q?a=2')[2] == b'/q?a=2'
    assert get(port, '/q?a=1')[2] == b'/q?a=1'
    assert origin.count('/q') == 2


# ---- what is never stored ----

@pytest.mark.parametrize('cc,stored', [
    ('no-store', False), ('private', False), ('max-age=60, no-store', False), ('max-age=60, private="x"', False),
    ('max-age=0', False),       # no validator: nothing to gain
    ('s-maxage=60', True), ('public, max-age=60', True), ('max-age=60', True),
])
def test_response_directives_decide_storing(cached, origin, cc, stored):
    port, _, _ = cached()
    origin.set('/s', 200, {'Cache-Control': cc}, b'x')
    get(port, '/s')
    get(port, '/s')
    assert origin.count('/s') == (1 if stored else 2), cc


def test_set_cookie_is_not_stored_by_default(cached, origin):
    port, _, _ = cached()
    origin.set('/k', 200, {'Cache-Control': 'max-age=60', 'Set-Cookie': 'sid=secret'}, b'x')
    _, h, _ = get(port, '/k')
    assert 'detail=set-cookie' in h['cache-status'], h
    _, h2, _ = get(port, '/k')
    assert origin.count('/k') == 2 and h2['set-cookie'] == 'sid=secret'


def test_authorization_is_stored_only_as_3_5_allows(cached, origin):
    port, _, _ = cached()
    origin.set('/p', 200, {'Cache-Control': 'max-age=60'}, b'private stuff')
    origin.set('/pub', 200, {'Cache-Control': 'public, max-age=60'}, b'public stuff')
    auth = {'Authorization': 'Bearer t'}
    get(port, '/p', auth)
    get(port, '/p', auth)
    assert origin.count('/p') == 2
    get(port, '/pub', auth)
    assert get(port, '/pub')[2] == b'public stuff'
    assert origin.count('/pub') == 1


def test_request_no_store_is_not_stored(cached, origin):
    port, _, _ = cached()
    origin.set('/n', 200, {'Cache-Control': 'max-age=60'}, b'x')
    get(port, '/n', {'Cache-Control': 'no-store'})
    get(port, '/n')
    assert origin.count('/n') == 2


def test_too_large_is_passed_on_and_not_stored(cached, origin):
    port, _, _ = cached(max_object='64KiB')
    big = b'b' * 100000
    origin.set('/big', 200, {'Cache-Control': 'max-age=60'}, big)
    origin.set('/bigc', 200, {'Cache-Control': 'max-age=60', 'Transfer-Encoding': 'chunked'}, big)
    for path in ('/big', '/bigc'):
        assert get(port, path)[2] == big
        assert get(port, path)[2] == big
        assert origin.count(path) == 2, path


# ---- Vary ----

def test_vary_keeps_one_response_per_variant(cached, origin):
    port, _, _ = cached()
    origin.handler('/v', lambda r: (200, {'Cache-Control': 'max-age=60', 'Vary': 'Accept-Encoding'},
                                    'enc=' + r.headers.get('accept-encoding', '-')))
    assert get(port, '/v', {'Accept-Encoding': 'gzip'})[2] == b'enc=gzip'
    _, h, b = get(port, '/v', {'Accept-Encoding': 'br'})
    assert b == b'enc=br' and 'fwd=vary-miss' in h['cache-status'], h
    assert get(port, '/v', {'Accept-Encoding': 'GZIP'})[2] == b'enc=gzip'  # case folded (§4.1)
    assert get(port, '/v', {'Accept-Encoding': 'br'})[2] == b'enc=br'
    assert origin.count('/v') == 2


def test_an_absent_field_is_a_variant_of_its_own(cached, origin):
    port, _, _ = cached()
    origin.handler('/va', lambda r: (200, {'Cache-Control': 'max-age=60', 'Vary': 'X-Lang, x-lang'},
                                     'lang=' + r.headers.get('x-lang', '-')))
    assert get(port, '/va')[2] == b'lang=-'
    assert get(port, '/va', {'X-Lang': ''})[2] == b'lang='
    assert get(port, '/va', {'X-Lang': 'fr'})[2] == b'lang=fr'
    assert [get(port, '/va', h)[2] for h in ({}, {'X-Lang': ''}, {'X-Lang': 'fr'})] == [b'lang=-', b'lang=', b'lang=fr']
    assert origin.count('/va') == 3


@pytest.mark.parametrize('vary', ['*', 'accept, *', ' * '])
def test_vary_star_is_never_served_from_the_cache(cached, origin, vary):
    port, _, _ = cached()
    origin.set('/star', 200, {'Cache-Control': 'max-age=60', 'Vary': vary}, b'x')
    get(port, '/star')
    get(port, '/star')
    assert origin.count('/star') == 2


# ---- revalidation ----

def test_a_stale_response_is_revalidated_and_the_304_updates_it(cached, origin):
    port, _, _ = cached()
    version = {'n': 1}

    def fn(r):
        if r.headers.get('if-none-match') == '"v1"':
            return 304, {'Cache-Control': 'max-age=0', 'ETag': '"v1"', 'X-Checked': str(version['n'])}, b''
        return 200, {'Cache-Control': 'max-age=0', 'ETag': '"v1"', 'X-Checked': '0'}, b'the body'
    origin.handler('/r', fn)
    assert get(port, '/r')[2] == b'the body'
    version['n'] = 7
    s, h, b = get(port, '/r')
    assert (s, b) == (200, b'the body'), (s, h)
    assert h['x-checked'] == '7'  # the 304's fields replace the stored ones (§4.3.4)
    assert 'fwd=stale' in h['cache-status'] and 'fwd-status=304' in h['cache-status'], h
    assert origin.last('/r').headers.get('if-none-match') == '"v1"'
    assert origin.count('/r') == 2
    _, h3, b3 = get(port, '/r')
    assert b3 == b'the body' and h3['x-checked'] == '7'


def test_a_changed_response_replaces_the_stored_one(cached, origin):
    port, _, _ = cached()
    state = {'body': b'one'}
    origin.handler('/ch', lambda r: (200, {'Cache-Control': 'no-cache', 'ETag': '"%d"' % len(state['body'])},
                                     state['body']))
    assert get(port, '/ch')[2] == b'one'
    state['body'] = b'three'
    assert get(port, '/ch')[2] == b'three'
    state['body'] = b'three'
    assert get(port, '/ch')[2] == b'three'


def test_a_clients_conditional_gets_304_from_a_fresh_entry(cached, origin):
    port, _, _ = cached()
    origin.set('/e', 200, {'Cache-Control': 'max-age=60', 'ETag': '"abc"'}, b'etagged')
    get(port, '/e')
    s, h, b = get(port, '/e', {'If-None-Match': 'W/"abc"'})
    assert (s, b) == (304, b'') and h['etag'] == '"abc"'
    s, h, b = get(port, '/e', {'If-None-Match': '"other"'})
    assert (s, b) == (200, b'etagged')
    assert origin.count('/e') == 1


# ---- request directives ----

def test_request_no_cache_goes_to_the_origin(cached, origin):
    port, _, _ = cached()
    origin.set('/nc', 200, {'Cache-Control': 'max-age=60'}, b'x')
    get(port, '/nc')
    _, h, _ = get(port, '/nc', {'Cache-Control': 'no-cache'})
    assert 'fwd=request' in h['cache-status']
    get(port, '/nc', {'Pragma': 'no-cache'})
    assert origin.count('/nc') == 3
    get(port, '/nc', {'Pragma': 'no-cache', 'Cache-Control': 'max-stale'})  # Pragma only without Cache-Control
    assert origin.count('/nc') == 3


def test_only_if_cached_answers_504_when_not_stored(cached, origin):
    port, _, _ = cached()
    origin.set('/oic', 200, {'Cache-Control': 'max-age=60'}, b'x')
    s, _, _ = get(port, '/oic', {'Cache-Control': 'only-if-cached'})
    assert s == 504 and origin.count('/oic') == 0
    get(port, '/oic')
    s, _, b = get(port, '/oic', {'Cache-Control': 'only-if-cached'})
    assert (s, b) == (200, b'x') and origin.count('/oic') == 1


def test_request_max_age_zero_revalidates(cached, origin):
    port, _, _ = cached()
    origin.handler('/ma', lambda r: (304, {'ETag': '"1"'}, b'') if r.headers.get('if-none-match')
                   else (200, {'Cache-Control': 'max-age=60', 'ETag': '"1"'}, b'x'))
    get(port, '/ma')
    s, h, b = get(port, '/ma', {'Cache-Control': 'max-age=0'})
    assert (s, b) == (200, b'x') and origin.count('/ma') == 2


# ---- freshness from Expires ----

def test_expires_relative_to_date(cached, origin):
    port, _, _ = cached()
    now = time.time()
    fmt = lambda t: time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime(t))
    origin.handler('/x', lambda r: (200, {'Date': fmt(now), 'Expires': fmt(now + 60)}, b'x'))
    origin.handler('/bad', lambda r: (200, {'Date': fmt(now), 'Expires': 'soon', 'ETag': '"e"'}, b'x'))
    get(port, '/x')
    get(port, '/x')
    assert origin.count('/x') == 1
    get(port, '/bad')
    get(port, '/bad')
    assert origin.count('/bad') == 2  # an invalid Expires is already stale


# ---- invalidation ----

@pytest.mark.parametrize('method', ['POST', 'PUT', 'DELETE', 'PATCH', 'M-SEARCH'])
def test_an_unsafe_method_invalidates_its_target(cached, origin, method):
    port, _, _ = cached()
    origin.set('/i', 200, {'Cache-Control': 'max-age=60'}, b'x')
    get(port, '/i')
    get(port, '/i')
    assert origin.count('/i') == 1
    s, _, _ = request(port, method, '/i', body=b'data', headers={'Host': 'example.com'})
    assert s == 200
    assert origin.last('/i').body == b'data'  # the body went on untouched
    get(port, '/i')
    assert origin.count('/i', 'GET') == 2


def test_an_unsafe_method_that_fails_does_not_invalidate(cached, origin):
    port, _, _ = cached()
    origin.handler('/f', lambda r: (200, {'Cache-Control': 'max-age=60'}, b'x') if r.method == 'GET'
                   else (500, {}, b'no'))
    get(port, '/f')
    request(port, 'POST', '/f', body=b'd', headers={'Host': 'example.com'})
    get(port, '/f')
    assert origin.count('/f', 'GET') == 1


# ---- purge and status ----

def test_purge_by_key_and_by_prefix(cached, origin):
    port, admin, _ = cached()
    for p in ('/cat/1', '/cat/2', '/dog/1'):
        origin.set(p, 200, {'Cache-Control': 'max-age=60'}, p)
        get(port, p)
        # stored by the time the next request comes (the client may have the
        # answer an instant before the store is done, under load)
        wait_for(lambda: 'hit' in get(port, p)[1]['cache-status'], 5, what=f'{p} stored')
    s, _, b = request(admin, 'DELETE', '/cache/default?key=http%3A%2F%2Fexample.com%2Fdog%2F1%3F')
    assert s == 200 and b'"purged":1' in b, b
    s, _, b = request(admin, 'DELETE', '/cache/default?prefix=http://example.com/cat/')
    assert s == 200 and b'"purged":2' in b, b
    for p in ('/cat/1', '/cat/2', '/dog/1'):
        get(port, p)
        assert origin.count(p) == 2
    assert request(admin, 'DELETE', '/cache/nope?key=x')[0] == 404
    assert request(admin, 'GET', '/cache/default?key=x')[0] == 405
    assert request(admin, 'DELETE', '/cache/default')[0] == 400


def test_status_shows_the_cache(cached, origin):
    import json
    port, admin, _ = cached()
    origin.set('/st', 200, {'Cache-Control': 'max-age=60'}, b'x' * 100)
    get(port, '/st')
    get(port, '/st')
    c = json.loads(request(admin, 'GET', '/status')[2])['caches'][0]
    assert c['name'] == 'default' and c['objects'] == 1 and c['hits'] >= 1 and c['misses'] >= 1 and c['stored'] == 1
    assert 100 < c['bytes'] <= c['capacity']



def _pattern(seed, n):
    block = bytes((seed * 31 + i * 7 + (i >> 9)) & 0xff for i in range(65536))
    return (block * (n // len(block) + 1))[:n]


def test_issue15_a_slow_client_gets_the_old_bytes_of_a_purged_and_replaced_hit(cached, origin):
    """A large hit is sent from the cache's blocks, pinned: purged, replaced
    and its memory wanted by other objects while a slow client reads it,
    the client still gets the old bytes, byte for byte."""
    import json
    import socket
    size = 3 * 1024 * 1024
    old, new = _pattern(1, size), _pattern(2, size)
    port, admin, _ = cached(workers=1, memory='16MiB', max_object='4MiB')
    origin.set('/big', 200, {'Cache-Control': 'max-age=60'}, old)
    assert get(port, '/big')[2] == old
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(('127.0.0.1', port))
    s.sendall(b'GET /big HTTP/1.1\r\nHost: example.com\r\n\r\n')
    got = s.recv(1024)
    assert got.startswith(b'HTTP/1.1 200'), got
    st, _, b = request(admin, 'DELETE', '/cache/default?key=http%3A%2F%2Fexample.com%2Fbig%3F')
    assert st == 200 and b'"purged":1' in b, b
    c = json.loads(request(admin, 'GET', '/status')[2])['caches'][0]
    assert c['objects'] == 0 and c['bytes'] >= size, c  # purged, its blocks held while they are sent
    origin.set('/big', 200, {'Cache-Control': 'max-age=60'}, new)
    assert get(port, '/big')[2] == new  # stored again: the replacement
    st, h, b = get(port, '/big')
    assert b == new and 'portico; hit' in h['cache-status'], h
    for i in range(4):  # other objects take every block that is free
        origin.set(f'/fill{i}', 200, {'Cache-Control': 'max-age=60'}, _pattern(3 + i, size))
        get(port, f'/fill{i}')
    s.settimeout(10)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
        head, sep, body = got.partition(b'\r\n\r\n')
        if sep and len(body) >= size:
            break
    s.close()
    head, _, body = got.partition(b'\r\n\r\n')
    assert b'content-length: %d' % size in head.lower(), head
    assert len(body) == size and body == old  # the old bytes, intact
    c = json.loads(request(admin, 'GET', '/status')[2])['caches'][0]
    assert c['bytes'] <= 5 * size + 65536, c  # sent: the purged object's blocks were given back



def _read_responses(s, n):
    """n HTTP/1.1 responses with Content-Length from socket s: [(head, body)]."""
    buf, out = b'', []
    s.settimeout(10)
    while len(out) < n:
        head, sep, rest = buf.partition(b'\r\n\r\n')
        if sep:
            length = int([ln.split(b':')[1] for ln in head.split(b'\r\n') if ln.lower().startswith(b'content-length:')][0])
            if len(rest) >= length:
                out.append((head, rest[:length]))
                buf = rest[length:]
                continue
        chunk = s.recv(1 << 20)
        assert chunk, (len(out), buf[:200])
        buf += chunk
    return out


def test_issue15_pipelined_hits_of_an_object_in_scattered_blocks_come_back_in_order(cached, origin):
    """A large object whose blocks lie scattered is sent in slices; the
    pipelined requests behind it are answered after its last byte."""
    import socket
    port, admin, _ = cached(workers=1, memory='16MiB', max_object='4MiB')
    for i in range(80):  # then every other one purged: the next object takes scattered blocks
        origin.set(f'/s{i}', 200, {'Cache-Control': 'max-age=60'}, _pattern(i, 3000))
        get(port, f'/s{i}')
    for i in range(0, 80, 2):
        assert request(admin, 'DELETE', f'/cache/default?key=http%3A%2F%2Fexample.com%2Fs{i}%3F')[0] == 200
    big = _pattern(99, 1024 * 1024 + 5)
    origin.set('/frag', 200, {'Cache-Control': 'max-age=60'}, big)
    assert get(port, '/frag')[2] == big
    s = socket.create_connection(('127.0.0.1', port))
    reqs = [b'/frag', b'/s1', b'/frag', b'/s3']
    s.sendall(b''.join(b'GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n' % r for r in reqs))
    got = _read_responses(s, len(reqs))
    s.close()
    assert [b for _, b in got] == [big, _pattern(1, 3000), big, _pattern(3, 3000)]
    assert all(b'portico; hit' in h for h, _ in got), [h for h, _ in got]
    s, h, b = get(port, '/frag', headers={'Range': 'bytes=4000-700000'})
    assert s == 206 and b == big[4000:700001]
    assert origin.count('/frag') == 1


# ---- collapsed forwarding ----

def test_concurrent_misses_reach_the_origin_once(cached, origin):
    port, _, _ = cached()
    origin.handler('/slow', lambda r: (200, {'Cache-Control': 'max-age=60'}, b'slow body', 0.3))
    with concurrent.futures.ThreadPoolExecutor(100) as ex:
        results = list(ex.map(lambda i: get(port, '/slow'), range(100)))
    assert all(r[0] == 200 and r[2] == b'slow body' for r in results)
    assert origin.count('/slow') == 1
    assert sum('collapsed' in r[1]['cache-status'] for r in results) >= 50


def test_waiters_go_to_the_origin_when_the_response_is_not_storable(cached, origin):
    port, _, _ = cached()
    origin.handler('/ns', lambda r: (200, {'Cache-Control': 'no-store'}, b'fresh each time', 0.2))
    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        t0 = time.time()
        results = list(ex.map(lambda i: get(port, '/ns'), range(10)))
        took = time.time() - t0
    assert all(r[2] == b'fresh each time' for r in results)
    assert origin.count('/ns') == 10
    assert took < 2.5  # they did not wait for each other one by one (10 x 0.2 s)


# ---- reloads and crashes ----

def test_a_reload_keeps_the_cache(cached, origin):
    port, admin, g = cached()
    origin.set('/rl', 200, {'Cache-Control': 'max-age=60'}, b'kept')
    get(port, '/rl')
    g.reload()
    time.sleep(0.3)
    assert get(port, '/rl')[2] == b'kept'
    assert origin.count('/rl') == 1


def test_a_worker_killed_while_storing_leaves_no_half_object(cached, origin, gateway):
    port, admin, g = cached(workers=1)
    size = 600000

    def slow_big(r):
        return 200, {'Cache-Control': 'max-age=60', 'Transfer-Encoding': 'chunked'}, b'k' * size, 0
    origin.handler('/kill', slow_big)
    import socket
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'GET /kill HTTP/1.1\r\nHost: example.com\r\n\r\n')
    s.recv(1000)  # the head came: the object is being written, and we do not read the rest
    for pid in g.worker_pids():
        os.kill(pid, signal.SIGKILL)
    s.close()
    wait_for(lambda: len(g.worker_pids()) == 1 and get(port, '/kill')[0] == 200, what='a new worker')
    for _ in range(3):
        st, h, b = get(port, '/kill')
        assert st == 200 and len(b) == size and b == b'k' * size


# ---- configuration ----

def test_a_filter_naming_no_cache_is_located(tmpdir_path, origin):
    path = os.path.join(tmpdir_path, 'p.yaml')
    with open(path, 'w') as f:
        f.write(config(free_port(), origin, filt='{ cache: other }'))
    r = run_portico('-t', '-c', path)
    assert r.returncode != 0 and f'{path}:' in r.stderr and 'no cache named "other"' in r.stderr, r.stderr
    with open(path, 'w') as f:
        f.write(config(free_port(), origin, filt='{ methods: [GET, POST] }'))
    r = run_portico('-t', '-c', path)
    assert r.returncode != 0 and 'only GET and HEAD are cached' in r.stderr, r.stderr
    with open(path, 'w') as f:
        f.write(config(free_port(), origin, filt='{ key: "same-for-all" }'))
    r = run_portico('-t', '-c', path)
    assert r.returncode != 0 and 'a key without variables' in r.stderr and f'{path}:' in r.stderr, r.stderr


# ---- stale-if-error ----

def test_stale_if_error_serves_stale_on_a_5xx(cached, origin):
    port, _, _ = cached()
    state = {'fail': False}
    origin.handler('/sie', lambda r: (503, {}, b'down') if state['fail']
                   else (200, {'Cache-Control': 'max-age=1, stale-if-error=60'}, b'good'))
    assert get(port, '/sie')[2] == b'good'
    time.sleep(1.3)
    state['fail'] = True
    s, h, b = get(port, '/sie')
    assert (s, b) == (200, b'good'), (s, h, b)
    assert 'fwd=stale' in h['cache-status'] and 'fwd-status=503' in h['cache-status'], h
    assert int(h['age']) >= 1


def test_stale_if_error_serves_stale_when_the_origin_is_gone(gateway, origin):
    port = free_port()
    g = gateway(config(port, origin, filt='{ stale_if_error: 60s }'))
    origin.set('/gone', 200, {'Cache-Control': 'max-age=1'}, b'still here')
    assert get(port, '/gone')[2] == b'still here'
    time.sleep(1.3)
    origin.stop()
    s, h, b = get(port, '/gone')
    assert (s, b) == (200, b'still here'), (s, h, b)
    assert 'fwd-status=502' in h['cache-status'], h


@pytest.mark.parametrize('cc', ['max-age=1', 'max-age=1, must-revalidate, stale-if-error=60',
                                'max-age=1, no-cache, stale-if-error=60', 's-maxage=1, stale-if-error=60'])
def test_the_failure_is_passed_on_when_stale_if_error_does_not_allow_it(cached, origin, cc):
    port, _, _ = cached()
    state = {'fail': False}
    origin.handler('/nosie', lambda r: (503, {}, b'down') if state['fail']
                   else (200, {'Cache-Control': cc, 'ETag': '"n"'}, b'good'))
    get(port, '/nosie')
    time.sleep(1.3)
    state['fail'] = True
    assert get(port, '/nosie')[:3:2] == (503, b'down')


def test_location_and_content_location_on_the_same_host_are_invalidated(cached, origin):
    port, _, _ = cached()
    for p in ('/l1', '/l2', '/l3'):
        origin.set(p, 200, {'Cache-Control': 'max-age=60'}, p)
        get(port, p)
    origin.set('/post', 201, {'Location': '/l1', 'Content-Location': 'http://example.com/l2'}, b'made')
    assert request(port, 'POST', '/post', body=b'x', headers={'Host': 'example.com'})[0] == 201
    origin.set('/post2', 201, {'Location': 'http://other.example/l3'}, b'made')
    request(port, 'POST', '/post2', body=b'x', headers={'Host': 'example.com'})
    for p in ('/l1', '/l2', '/l3'):
        get(port, p)
    assert [origin.count(p) for p in ('/l1', '/l2', '/l3')] == [2, 2, 1]


# ---- ranges ----

@pytest.mark.parametrize('rng,status,part,crange', [
    ('bytes=0-9', 206, slice(0, 10), 'bytes 0-9/1000'),
    ('bytes=990-', 206, slice(990, 1000), 'bytes 990-999/1000'),
    ('bytes=-5', 206, slice(995, 1000), 'bytes 995-999/1000'),
    ('bytes=500-5000', 206, slice(500, 1000), 'bytes 500-999/1000'),
    ('bytes=1000-', 416, slice(0, 0), 'bytes */1000'),
    ('bytes=0-1,5-6', 200, slice(0, 1000), None),   # several ranges: the whole
    ('pages=1-2', 200, slice(0, 1000), None),
])
def test_a_range_is_answered_from_a_complete_stored_response(cached, origin, rng, status, part, crange):
    port, _, _ = cached()
    body = bytes(range(250)) * 4
    origin.set('/rg', 200, {'Cache-Control': 'max-age=60', 'ETag': '"r1"'}, body)
    get(port, '/rg')
    s, h, b = get(port, '/rg', {'Range': rng})
    assert (s, b) == (status, body[part]), (s, h)
    assert h.get('content-range') == crange
    assert origin.count('/rg') == 1


def test_if_range_that_does_not_match_gets_the_whole(cached, origin):
    port, _, _ = cached()
    body = b'0123456789'
    origin.set('/ir', 200, {'Cache-Control': 'max-age=60', 'ETag': '"t"'}, body)
    get(port, '/ir')
    assert get(port, '/ir', {'Range': 'bytes=0-1', 'If-Range': '"t"'})[:3:2] == (206, b'01')
    assert get(port, '/ir', {'Range': 'bytes=0-1', 'If-Range': '"old"'})[:3:2] == (200, body)
    assert get(port, '/ir', {'Range': 'bytes=0-1', 'If-Range': 'W/"t"'})[:3:2] == (200, body)


def test_a_range_miss_fetches_the_whole_and_stores_it(cached, origin):
    port, _, _ = cached()
    body = b'abcdefghij' * 10
    origin.set('/rm', 200, {'Cache-Control': 'max-age=60'}, body)
    s, h, b = get(port, '/rm', {'Range': 'bytes=0-3'})
    assert (s, b) == (200, body)
    assert 'range' not in origin.last('/rm').headers
    assert get(port, '/rm', {'Range': 'bytes=0-3'})[:3:2] == (206, b'abcd')
    assert origin.count('/rm') == 1


def test_stale_while_revalidate_answers_stale_and_refreshes_once(cached, origin):
    import threading
    port, _, _ = cached()
    gate = threading.Event()
    state = {'v': b'v1'}

    def fn(r):
        if r.headers.get('if-none-match'):  # the refresh: held until the test lets it go
            gate.wait(10)
            return 200, {'Cache-Control': 'max-age=60', 'ETag': '"s2"'}, b'v2'
        return 200, {'Cache-Control': 'max-age=1, stale-while-revalidate=60', 'ETag': '"s"'}, state['v']
    origin.handler('/swr', fn)
    assert get(port, '/swr')[2] == b'v1'
    time.sleep(1.3)
    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        results = list(ex.map(lambda i: get(port, '/swr'), range(10)))
    # every client got the stale response while the refresh was still held at the origin
    assert all(r[0] == 200 and r[2] == b'v1' for r in results), results
    assert all(r[1]['cache-status'].startswith('portico; hit; ttl=-') for r in results), results[0][1]
    assert origin.count('/swr') == 2  # one refresh for all of them
    assert origin.last('/swr').headers.get('if-none-match') == '"s"'
    gate.set()
    wait_for(lambda: get(port, '/swr')[2] == b'v2', what='the refreshed response')
    assert origin.count('/swr') == 2


def test_a_refresh_by_304_on_a_kept_alive_connection(cached, origin):
    import http.client
    port, _, _ = cached()
    origin.handler('/swr3', lambda r: (304, {'Cache-Control': 'max-age=60', 'ETag': '"k"', 'X-Gen': '2'}, b'')
                   if r.headers.get('if-none-match') == '"k"'
                   else (200, {'Cache-Control': 'max-age=1, stale-while-revalidate=60', 'ETag': '"k"', 'X-Gen': '1'},
                         b'body'))
    get(port, '/swr3')
    time.sleep(1.3)
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
    got = []
    for _ in range(3):
        c.request('GET', '/swr3', headers={'Host': 'example.com'})
        r = c.getresponse()
        got.append((r.status, r.getheader('x-gen'), r.read(), r.getheader('cache-status')))
    c.close()
    assert [g[:3] for g in got] == [(200, '1', b'body'), (200, '2', b'body'), (200, '2', b'body')], got
    assert 'ttl=-' in got[0][3] and 'ttl=5' in got[1][3], got
    assert origin.count('/swr3') == 2


def test_a_refresh_that_fails_leaves_the_stale_response(cached, origin):
    port, _, _ = cached()
    state = {'fail': False}
    origin.handler('/swr4', lambda r: (500, {}, b'broken') if state['fail']
                   else (200, {'Cache-Control': 'max-age=1, stale-while-revalidate=60', 'ETag': '"f"'}, b'old'))
    get(port, '/swr4')
    time.sleep(1.3)
    state['fail'] = True
    assert get(port, '/swr4')[:3:2] == (200, b'old')
    wait_for(lambda: origin.count('/swr4') == 2, what='the refresh')
    time.sleep(0.2)
    assert get(port, '/swr4')[:3:2] == (200, b'old')


def test_other_gateways_names_get_a_hint(tmpdir_path, origin):
    path = os.path.join(tmpdir_path, 'p.yaml')
    with open(path, 'w') as f:
        f.write(config(free_port(), origin, filt='{ cache_ttl: 60 }').replace('cache: { cache_ttl', 'cache: { cache_ttl'))
    r = run_portico('-t', '-c', path)
    assert r.returncode != 0 and 'Kong\'s name for what Portico calls "default_ttl"' in r.stderr, r.stderr
    with open(path, 'w') as f:
        f.write(config(free_port(), origin).replace('      cache: {}', '      proxy-cache: {}'))
    r = run_portico('-t', '-c', path)
    assert r.returncode != 0 and 'what Portico calls "cache"' in r.stderr, r.stderr


# ---- HTTP/2 clients, the access log, memory ----

def curl(*args):
    return subprocess.run(['curl', '-s', *args], capture_output=True, timeout=30)


def test_http2_clients_get_hits_and_misses_byte_for_byte(gateway, origin):
    port = free_port()
    gateway(config(port, origin, listener='    http2: true\n'))
    body = bytes(range(256)) * 100
    origin.set('/h2', 200, {'Cache-Control': 'max-age=60', 'ETag': '"h"'}, body)
    out = []
    for extra in ([], [], ['-H', 'If-None-Match: "h"'], ['-H', 'Range: bytes=10-19']):
        r = curl('--http2-prior-knowledge', '-D', '-', '-o', '/dev/stdout', *extra, f'http://127.0.0.1:{port}/h2')
        head, _, got = r.stdout.partition(b'\r\n\r\n')
        out.append((head.split(b'\r\n')[0].strip(), got, head.lower()))
    assert out[0][0] == b'HTTP/2 200' and out[0][1] == body and b'fwd=uri-miss' in out[0][2]
    assert out[1][0] == b'HTTP/2 200' and out[1][1] == body and b'portico; hit' in out[1][2] and b'age: ' in out[1][2]
    assert out[2][0] == b'HTTP/2 304' and out[2][1] == b''
    assert out[3][0] == b'HTTP/2 206' and out[3][1] == body[10:20]
    assert origin.count('/h2') == 1


def test_hits_are_access_logged_with_their_bytes(gateway, origin, tmpdir_path):
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    g = gateway(config(port, origin, extra=f'access_log: {{ path: {log}, buffer: 0 }}\n'))
    origin.set('/log', 200, {'Cache-Control': 'max-age=60'}, b'x' * 1000)
    get(port, '/log')
    get(port, '/log')
    get(port, '/log', method='HEAD')
    wait_for(lambda: len(open(log).read().splitlines()) >= 3, what='three log lines')
    lines = open(log).read().splitlines()
    assert all(' /log ' in l and ' 200 ' in l for l in lines), lines
    sizes = [int(l.split(' 200 ')[1].split()[0]) for l in lines]
    assert sizes[0] > 1000 and sizes[1] > 1000 and sizes[2] < 1000, lines


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f'/proc/{pid}/status') as f:
            total += int([l for l in f if l.startswith('VmRSS:')][0].split()[1])
    return total


def test_eviction_keeps_the_cache_within_its_memory(cached, origin):
    import json
    port, admin, g = cached(memory='4MiB', max_object='512KiB')
    body = b'e' * 50000
    origin.handler('/ev', lambda r: (200, {'Cache-Control': 'max-age=600'}, body))
    for i in range(40):
        get(port, f'/ev?i={i}')
    rss0 = rss_kib(g.worker_pids())
    for i in range(40, 400):
        assert get(port, f'/ev?i={i}')[2] == body
    rss1 = rss_kib(g.worker_pids())
    c = json.loads(request(admin, 'GET', '/status')[2])['caches'][0]
    assert c['evictions'] > 250 and c['bytes'] <= c['capacity'] <= 4 << 20, c
    assert c['objects'] * 50000 <= c['capacity'], c
    assert rss1 - rss0 < 8 * 1024, (rss0, rss1)  # the zone is mapped once; eviction reuses its blocks
    assert get(port, '/ev?i=399')[1]['cache-status'].startswith('portico; hit')  # the newest are kept
    get(port, '/ev?i=0')
    assert origin.count('/ev') == 401  # the oldest went


def test_http2_stale_while_revalidate_ends_the_stream_before_the_refresh(gateway, origin):
    import threading
    port = free_port()
    gateway(config(port, origin, listener='    http2: true\n'))
    gate = threading.Event()

    def fn(r):
        if r.headers.get('if-none-match'):
            gate.wait(10)
            return 304, {'Cache-Control': 'max-age=60', 'ETag': '"h"'}, b''
        return 200, {'Cache-Control': 'max-age=1, stale-while-revalidate=60', 'ETag': '"h"'}, b'h2 body'
    origin.handler('/h2swr', fn)
    assert curl('--http2-prior-knowledge', f'http://127.0.0.1:{port}/h2swr').stdout == b'h2 body'
    time.sleep(1.3)
    try:
        r = curl('--http2-prior-knowledge', '-m', '3', f'http://127.0.0.1:{port}/h2swr')
        assert r.returncode == 0 and r.stdout == b'h2 body', r  # the stream ended while the refresh was held
        assert origin.count('/h2swr') == 2
    finally:
        gate.set()


# ---- targeted fields, Age from the upstream, HEAD updates ----

@pytest.mark.parametrize('cc,cdn,stored', [('no-store', 'max-age=60', True), ('max-age=60', 'no-store', False),
                                           ('max-age=60', 'max-age=0', False)])
def test_cdn_cache_control_wins_and_is_not_forwarded(cached, origin, cc, cdn, stored):
    port, _, _ = cached()
    origin.set('/cdn', 200, {'Cache-Control': cc, 'CDN-Cache-Control': cdn}, b'cdn')
    _, h1, _ = get(port, '/cdn')
    _, h2, _ = get(port, '/cdn')
    assert origin.count('/cdn') == (1 if stored else 2)
    assert 'cdn-cache-control' not in h1 and 'cdn-cache-control' not in h2, (h1, h2)
    assert h2['cache-control'] == cc  # the client's own directives pass as they are


@pytest.mark.parametrize('age,first_age', [('30', 30), ('abc', 0), ('99999999999999999999', None)])
def test_the_upstreams_age_counts(cached, origin, age, first_age):
    port, _, _ = cached()
    origin.set('/age', 200, {'Cache-Control': 'max-age=60', 'Age': age, 'ETag': '"a"'}, b'aged')
    get(port, '/age')
    s, h, b = get(port, '/age')
    if first_age is None:  # saturated: stale at once, so it is revalidated
        assert origin.count('/age') == 2
        return
    assert origin.count('/age') == 1 and first_age <= int(h['age']) <= first_age + 2, h


def test_a_head_response_updates_or_drops_the_stored_get(cached, origin):
    port, _, _ = cached()
    state = {'etag': '"g1"', 'gen': '1'}
    origin.handler('/hu', lambda r: (200, {'Cache-Control': 'max-age=1', 'ETag': state['etag'], 'X-Gen': state['gen']},
                                     b'get body'))
    get(port, '/hu')
    time.sleep(1.3)
    state['gen'] = '2'
    s, h, b = get(port, '/hu', method='HEAD')  # stale: the HEAD goes upstream, its 200 selects the stored GET
    assert (s, h['x-gen']) == (200, '2')
    s, h, b = get(port, '/hu')
    assert (s, b, h['x-gen']) == (200, b'get body', '2') and 'portico; hit' in h['cache-status'], h
    assert origin.count('/hu', 'GET') == 1
    time.sleep(1.3)
    state['etag'] = '"g2"'
    get(port, '/hu', method='HEAD')  # another response now: the stored GET is dropped
    s, h, b = get(port, '/hu')
    assert 'fwd=uri-miss' in h['cache-status'] and origin.count('/hu', 'GET') == 2, h


def test_a_client_that_stops_reading_large_hits_does_not_starve_the_cache(gateway, origin):
    """Hits of large bodies are sent from pinned blocks; an HTTP/2 client at
    window 0 keeps them pinned, and dropped objects keep their blocks while
    pinned.  Pins hold a quarter of the cache at most: the rest of it keeps
    storing and serving (before, 4 stalled streams of 1.9 MB in an 8 MiB
    cache left 0 of 40 small objects cached after one large miss)."""
    import socket
    import h2.config
    import h2.connection
    import h2.settings
    port, admin = free_port(), free_port()
    gateway(config(port, origin, admin=admin, max_object='2MiB', listener='    http2: true\n'), workers=1)
    big = (bytes(range(256)) * 7500)[:1900000]
    for i in range(4):
        origin.set(f'/big{i}', 200, {'Cache-Control': 'max-age=600'}, big)
        assert get(port, f'/big{i}')[2] == big
    s = socket.create_connection(('127.0.0.1', port))
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    for i in range(4):
        c.send_headers(c.get_next_available_stream_id(), [(':method', 'GET'), (':path', f'/big{i}'),
                                                          (':scheme', 'http'), (':authority', 'example.com')],
                       end_stream=True)
    s.sendall(c.data_to_send())
    time.sleep(0.5)  # the hits are answered and wait on the window: pinned (or copied) and unread
    try:
        assert request(admin, 'DELETE', '/cache/default?prefix=/big')[0] == 200
        origin.handler('/small', lambda r: (200, {'Cache-Control': 'max-age=600'}, r.target.encode() * 100))
        for i in range(40):
            get(port, f'/small?{i}')
        origin.set('/big-new', 200, {'Cache-Control': 'max-age=600'}, big)
        assert get(port, '/big-new')[2] == big
        hits = sum(1 for i in range(40) if get(port, f'/small?{i}')[1]['cache-status'].startswith('portico; hit'))
        assert hits >= 35, hits
        assert get(port, '/big-new')[1]['cache-status'].startswith('portico; hit')
    finally:
        s.close()
