"""A hostile review of the response cache (issue 15): each test reproduces
one problem found by attacking the cache through the real binary, with
real clients and a scripted origin (cache_origin.py).  Each fails on the
code it was written against and passes once the problem is fixed."""
import concurrent.futures
import json
import time

import pytest

from cache_origin import Origin
from conftest import free_port, request, run_portico
from test_cache import config, get


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.stop()


@pytest.fixture
def cached(gateway, origin):
    """A gateway with a cache in front of the origin: returns (port, admin_port, gateway)."""
    def make(workers=1, **kw):
        port, admin = free_port(), free_port()
        g = gateway(config(port, origin, admin=admin, **kw), workers=workers)
        return port, admin, g
    return make


def http_date(t):
    return time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime(t))


# ---- revalidation ----

def test_a_second_concurrent_revalidation_never_answers_304_to_an_unconditional_get(cached, origin):
    """Two clients ask for a stale object at once: both revalidate.  The
    first 304 replaces the stored object; the second 304 then finds the
    object it was refreshing gone (answer() fails), falls through as "not
    storable" and the bare 304 reaches a client that sent no conditional."""
    port, _, _ = cached()
    n = [0]

    def handler(r):
        if not r.headers.get('if-none-match'):
            return 200, {'Cache-Control': 'max-age=1', 'ETag': '"1"'}, b'body'
        n[0] += 1
        return 304, {'Cache-Control': 'max-age=1', 'ETag': '"1"'}, b'', 0.2 if n[0] == 1 else 0.6
    origin.handler('/r', handler)
    get(port, '/r')
    time.sleep(1.1)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        f1 = ex.submit(get, port, '/r')
        time.sleep(0.05)
        f2 = ex.submit(get, port, '/r')
        results = [f1.result(), f2.result()]
    for s, h, b in results:
        assert (s, b) == (200, b'body'), (s, h, b)


def test_concurrent_requests_for_a_stale_object_revalidate_once(cached, origin):
    """Collapsed forwarding covers misses only: every request for a stale
    object (with a validator) sends its own conditional request, so a
    popular object that expires sends the whole burst to the origin."""
    port, _, _ = cached(workers=2)

    def handler(r):
        if r.headers.get('if-none-match'):
            return 304, {'Cache-Control': 'max-age=60', 'ETag': '"1"'}, b'', 0.5
        return 200, {'Cache-Control': 'max-age=1', 'ETag': '"1"'}, b'R' * 1000
    origin.handler('/herd', handler)
    get(port, '/herd')
    time.sleep(1.2)
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        list(ex.map(lambda i: get(port, '/herd'), range(20)))
    assert origin.count('/herd') <= 3, origin.count('/herd')


def test_a_304_that_says_private_stops_the_object_being_shared(cached, origin):
    """A 304 refreshes the stored head (§4.3.4) and the object is stored
    again without asking whether it may be: a 304 that says private (or
    no-store) leaves a private response served as a hit to everyone."""
    port, _, _ = cached()
    origin.set('/p', 200, {'Cache-Control': 'max-age=0', 'ETag': '"v1"'}, b'mine')
    get(port, '/p')
    origin.set('/p', 304, {'Cache-Control': 'private, max-age=60', 'ETag': '"v1"'}, b'')
    get(port, '/p', {'Cookie': 'sid=alice'})
    s, h, b = get(port, '/p', {'Cookie': 'sid=bob'})
    assert not h['cache-status'].startswith('portico; hit'), h
    assert origin.count('/p') == 3


def test_a_304_that_says_no_store_drops_the_object(cached, origin):
    port, _, _ = cached()
    origin.set('/ns', 200, {'Cache-Control': 'max-age=0', 'ETag': '"v1"'}, b'x')
    get(port, '/ns')
    origin.set('/ns', 304, {'Cache-Control': 'no-store, max-age=60', 'ETag': '"v1"'}, b'')
    get(port, '/ns')
    s, h, b = get(port, '/ns', {'Cache-Control': 'only-if-cached'})
    assert s == 504, (s, h, b)  # nothing may be kept of a response that says no-store


def test_a_304_with_another_etag_does_not_relabel_the_stored_body(cached, origin):
    """§4.3.4: a 304 updates only the stored response its validator
    selects.  pt_cache_304_selects is never called: a 304 carrying ETag
    "v2" relabels the stored "v1" body as "v2", and a client then caches
    version one's bytes under version two's tag."""
    port, _, _ = cached()
    origin.set('/e', 200, {'Cache-Control': 'max-age=0', 'ETag': '"v1"'}, b'version one')
    get(port, '/e')
    origin.set('/e', 304, {'Cache-Control': 'max-age=60', 'ETag': '"v2"'}, b'')
    s, h, b = get(port, '/e')
    assert not (b == b'version one' and h.get('etag') == '"v2"'), (s, h, b)
    s, h, b = get(port, '/e')
    assert not (b == b'version one' and h.get('etag') == '"v2"'), (s, h, b)


def test_a_304_without_date_refreshes_the_object(cached, origin):
    """A 304 without Date keeps the stored Date, so the refreshed object's
    apparent age is counted from the first response: once an object is
    older than its max-age it is stale again right after every 304, and
    every request goes to the origin.  RFC 9110 §6.6.1: a recipient adds
    the Date of receipt to a response that has none."""
    port, _, _ = cached()
    origin.set('/d', 200, {'Cache-Control': 'max-age=1', 'ETag': '"1"', 'Date': http_date(time.time())}, b'd')
    get(port, '/d')
    time.sleep(3.1)
    origin.set('/d', 304, {'Cache-Control': 'max-age=2', 'ETag': '"1"'}, b'')
    s, h, b = get(port, '/d')
    assert (s, b) == (200, b'd')
    s, h, b = get(port, '/d')
    assert h['cache-status'].startswith('portico; hit'), h
    assert origin.count('/d') == 2


def test_set_cookie_in_a_304_reaches_the_client_that_revalidated(cached, origin):
    """The client whose request revalidated is answered from the merged
    head, which leaves Set-Cookie out (rightly, for storing): the cookie
    the origin sent that client in its 304 (a renewed session) is lost."""
    port, _, _ = cached()
    origin.set('/k', 200, {'Cache-Control': 'max-age=0', 'ETag': '"1"'}, b'k')
    get(port, '/k')
    origin.set('/k', 304, {'Cache-Control': 'max-age=0', 'ETag': '"1"', 'Set-Cookie': 'sid=renewed'}, b'')
    s, h, b = get(port, '/k')
    assert (s, b) == (200, b'k') and h.get('set-cookie') == 'sid=renewed', h


# ---- collapsed forwarding ----

def test_one_request_with_authorization_does_not_turn_collapsing_off_for_everyone(cached, origin):
    """A miss with Authorization takes the key's fetch lock; its response
    (here a 401) is not storable, so the key gets a 10 s pass mark and
    every anonymous request meanwhile goes to the origin: any client can
    turn collapsed forwarding off for any key, again every 10 s."""
    port, _, _ = cached()
    origin.handler('/z', lambda r: (401, {}, b'no') if 'authorization' in r.headers
                   else (200, {'Cache-Control': 'max-age=60'}, b'ok', 0.3))
    get(port, '/z', {'Authorization': 'Bearer junk'})
    with concurrent.futures.ThreadPoolExecutor(10) as ex:
        list(ex.map(lambda i: get(port, '/z'), range(10)))
    assert origin.count('/z') <= 3, origin.count('/z')


# ---- ranges ----

def test_a_range_of_an_object_too_large_to_store_reaches_the_origin(cached, origin):
    """A Range miss is sent upstream without its Range, to store the whole;
    when the object is too large to store (and the key has its pass mark
    saying so) the Range is still removed: every 10-byte range of a large
    file (a video player seeking) makes the origin send, and the client
    receive, the whole file."""
    port, _, _ = cached(max_object='64KiB')
    origin.handler('/big', lambda r: (206, {'Content-Range': 'bytes 0-9/1000000'}, b'x' * 10) if 'range' in r.headers
                   else (200, {'Cache-Control': 'max-age=60'}, b'x' * 1000000))
    get(port, '/big', {'Range': 'bytes=0-9'})  # the first may fetch the whole: its size is not known yet
    s, h, b = get(port, '/big', {'Range': 'bytes=0-9'})
    assert (s, len(b)) == (206, 10), (s, len(b), h)
    assert origin.last('/big').headers.get('range') == 'bytes=0-9'


# ---- figures ----

def test_collapsed_waiters_are_not_counted_as_misses_at_every_poll(cached, origin):
    """A request waiting for another's fetch looks in the store every 5 ms,
    and every look counts a miss: 20 requests make hundreds of misses in
    /status (and each waiter counts as a hit as well)."""
    port, admin, _ = cached(workers=2)
    origin.handler('/c', lambda r: (200, {'Cache-Control': 'max-age=60'}, b'C' * 3000, 0.5))
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        list(ex.map(lambda i: get(port, '/c'), range(20)))
    c = json.loads(request(admin, 'GET', '/status')[2])['caches'][0]
    assert c['hits'] + c['misses'] <= 20, c


# ---- purge and invalidation ----

def test_purge_by_path_prefix_as_the_issue_documents(cached, origin):
    """The issue's interface is DELETE /cache/default?prefix=/catalog/; the
    prefix is compared with the whole key (http://host/...), so a path
    prefix purges nothing and says purged:0."""
    port, admin, _ = cached()
    for p in ('/catalog/1', '/catalog/2', '/other/1'):
        origin.set(p, 200, {'Cache-Control': 'max-age=60'}, p)
        get(port, p)
    s, _, b = request(admin, 'DELETE', '/cache/default?prefix=/catalog/')
    assert s == 200 and b'"purged":2' in b, b


def test_an_unsafe_method_with_the_host_in_other_case_invalidates(cached, origin):
    """Host names are case-insensitive (RFC 9110 §4.2.3), so POST /a with
    Host: EXAMPLE.com targets http://example.com/a; the key is made of
    the Host as sent, and the stored response stays."""
    port, _, _ = cached()
    origin.set('/a', 200, {'Cache-Control': 'max-age=60'}, b'old')
    get(port, '/a')
    request(port, 'POST', '/a', body=b'x', headers={'Host': 'EXAMPLE.com'})
    get(port, '/a')
    assert origin.count('/a', method='GET') == 2


# ---- configuration ----

def cache_file(tmpdir_path, caches):
    path = f'{tmpdir_path}/c.yaml'
    with open(path, 'w') as f:
        f.write(f'''listeners:
  - name: main
    address: 127.0.0.1:{free_port()}
caches:
{caches}
upstreams:
  - name: up
    targets: ["127.0.0.1:9"]
routes:
  - name: main
    match: {{ paths: ["/*"] }}
    upstream: up
    filters:
      cache: {{}}
''')
    return path


def test_an_empty_cache_name_is_refused_at_load(tmpdir_path):
    """portico -t says ok; the gateway then dies at start with "cannot map
    shared memory: Invalid argument"."""
    r = run_portico('-t', '-c', cache_file(tmpdir_path, "  - { name: '', memory: 4MiB, max_object_size: 256k }"))
    assert r.returncode != 0 and 'name' in r.stderr, r.stderr


def test_a_small_cache_with_the_default_max_object_size_loads(tmpdir_path):
    """memory: 16MiB alone is refused for a max_object_size the operator
    never wrote (the 8MiB default is more than a quarter of it)."""
    r = run_portico('-t', '-c', cache_file(tmpdir_path, '  - { name: default, memory: 16MiB }'))
    assert r.returncode == 0, r.stderr
