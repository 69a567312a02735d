"""Habits of users coming from Kong, APISIX and nginx (issue 12): their
key and plugin names are explained in the file:line:col errors, -t notes
exact paths where they expect a prefix, a strip_prefix that cannot apply
is an error, and with strip_prefix the upstream's Location and
Content-Location get the prefix back, as nginx's proxy_redirect default."""
import os
import subprocess
import urllib.parse

import pytest

from conftest import free_port, raw, run_portico

FILTERS = ('ip-restriction, circuit-breaker, fault-injection, request-size, cors, tls-auth, key-auth, '
           'basic-auth, jwt-auth, hmac-auth, forward-auth, acl, limit-conn, limit-count, limit-req, redirect, path-rewrite, '
           'request-headers, response-headers, grpc-transcode, grpc-web, cache')


def check(tmp, text):
    """portico -t on text: (exit status, stderr lines, the file's name)."""
    path = os.path.join(tmp, 'p.yaml')
    with open(path, 'w') as f:
        f.write(text)
    r = run_portico('-t', '-c', path)
    return r.returncode, r.stderr.splitlines(), path


# ---- names from Kong, APISIX and nginx ----

KONG_APISIX = '''listeners: [{ name: main, address: 127.0.0.1:1 }]
upstreams:
  - name: up
    targets: [127.0.0.1:2]
    type: chash
    nodes: { "10.0.0.1:8080": 1, "10.0.0.2:8080": 2 }
  - name: up2
    nodes: [{ host: 10.0.0.3, port: 80, weight: 5 }]
    algorithm: least-connections
    targets:
      - { target: "10.0.0.4:80" }
routes:
  - name: r
    uris: ["/api/*"]
    plugins: { cors: {} }
    strip_path: true
    upstream_id: up
    hosts: [api.example.com]
    match: { uri: /x }
    upstream: up
    filters:
      cors: { allow_origins: ["https://a.example"], origins: [] }
'''


def test_kong_and_apisix_keys_say_what_portico_calls_them(tmpdir_path):
    rc, lines, f = check(tmpdir_path, KONG_APISIX)
    assert rc == 1
    for want in (
        f'{f}:5:5: error: upstreams[0]: unknown key "type": APISIX\'s name for what Portico calls "balancer" '
        '(write balancer: consistent-hashing)',
        f'{f}:6:5: error: upstreams[0]: unknown key "nodes": APISIX\'s name for what Portico calls "targets" '
        '(write targets: [{ address: "10.0.0.1:8080", weight: 1 }, ...])',
        f'{f}:8:5: error: upstreams[1]: unknown key "nodes": APISIX\'s name for what Portico calls "targets" '
        '(write targets: [{ address: "10.0.0.3:80", weight: 5 }])',
        f'{f}:9:5: error: upstreams[1]: unknown key "algorithm": Kong\'s name for what Portico calls "balancer"',
        f'{f}:11:11: error: upstreams[1].targets[0]: unknown key "target": Kong\'s name for what Portico calls '
        '"address"',
        f'{f}:14:5: error: routes[0]: unknown key "uris": APISIX\'s name for what Portico calls "match.paths" '
        '(a list under match: match: { paths: [...] })',
        f'{f}:15:5: error: routes[0]: unknown key "plugins": Kong\'s and APISIX\'s name for what Portico calls '
        '"filters"',
        f'{f}:16:5: error: routes[0]: unknown key "strip_path": Kong\'s name for what Portico calls "strip_prefix" '
        '(it takes the prefix to remove, such as strip_prefix: /api, not true or false)',
        f'{f}:17:5: error: routes[0]: unknown key "upstream_id": APISIX\'s name for what Portico calls "upstream" '
        '(the name of an upstream)',
        f'{f}:18:5: error: routes[0]: unknown key "hosts": Kong\'s name for what Portico calls "match.hosts" '
        '(under match: match: { hosts: [...] })',
        f'{f}:19:14: error: routes[0].match: unknown key "uri": APISIX\'s name for what Portico calls "paths" '
        '(a list)',
        f'{f}:22:15: error: routes[0].filters.cors: unknown key "allow_origins": APISIX\'s name for what Portico '
        'calls "origins"',
    ):
        assert want in lines, '\n'.join(lines)


def test_nginx_names_and_habits_without_a_portico_name(tmpdir_path):
    rc, lines, f = check(tmpdir_path, '''worker_processes: 2
listeners:
  - { name: main, address: 127.0.0.1:1, keepalive_timeout: 5s }
routes:
  - { name: r, match: { paths: [/x] }, respond: {}, preserve_host: true, remote_addrs: [10.0.0.0/8] }
  - { name: s, match: { paths: [/y] }, respond: {}, retries: 3, read_timeout: 60000 }
''')
    assert rc == 1
    for want in (
        f'{f}:1:1: error: unknown key "worker_processes": nginx\'s name for what Portico calls "workers"',
        f'{f}:3:41: error: listeners[0]: unknown key "keepalive_timeout": nginx\'s name for what Portico calls '
        '"timeouts.idle"',
        f'{f}:5:53: error: routes[0]: unknown key "preserve_host" (Kong\'s): Portico passes the client\'s Host on, '
        'unless the route\'s upstream_host sets another',
        f'{f}:5:74: error: routes[0]: unknown key "remote_addrs" (APISIX\'s): Portico matches no client address '
        'in a route; the ip-restriction filter allows or denies by it',
        f'{f}:6:53: error: routes[1]: unknown key "retries" (Kong\'s service): retries are the upstream\'s: '
        'upstreams[].retries',
        f'{f}:6:65: error: routes[1]: unknown key "read_timeout" (Kong\'s service): the upstream\'s timeouts.read, '
        'with a unit, such as 2s: Kong\'s is in milliseconds',
    ):
        assert want in lines, '\n'.join(lines)


def test_more_names_from_nginx_traefik_and_old_kong(tmpdir_path):
    rc, lines, f = check(tmpdir_path, '''listeners: [{ name: main, address: 127.0.0.1:1 }]
server: { listen: 80 }
upstreams:
  - { name: u, targets: ["127.0.0.1:2"], servers: [{ url: "http://127.0.0.1:2" }], server: "127.0.0.1:2" }
routes:
  - { name: r, match: { paths: ["/x/*"] }, upstream: u, strip_uri: true }
''')
    assert rc == 1
    for want in (
        f'{f}:2:1: error: unknown key "server" (nginx\'s): a server block becomes listeners (its listen) and '
        'routes (its locations)',
        f'{f}:4:42: error: upstreams[0]: unknown key "servers": Traefik\'s name for what Portico calls "targets" '
        '(a list of { address, weight })',
        f'{f}:4:84: error: upstreams[0]: unknown key "server": nginx\'s name for what Portico calls "targets" '
        '(a list of { address, weight })',
        f'{f}:6:57: error: routes[0]: unknown key "strip_uri": Kong\'s (before 1.0) name for what Portico calls '
        '"strip_prefix" (it takes the prefix to remove, such as strip_prefix: /api, not true or false)',
    ):
        assert want in lines, '\n'.join(lines)


def test_an_unknown_filter_lists_the_filters(tmpdir_path):
    rc, lines, f = check(tmpdir_path, '''listeners: [{ name: main, address: 127.0.0.1:1 }]
routes:
  - name: r
    match: { paths: [/x] }
    respond: {}
    filters: { oauth2: {},   api-breaker: {}, corz: {} }
''')
    assert rc == 1
    assert f'{f}:6:16: error: routes[0].filters: unknown filter "oauth2" (the filters are: {FILTERS})' in lines, \
        '\n'.join(lines)
    assert (f'{f}:6:30: error: routes[0].filters: unknown filter "api-breaker": APISIX\'s name for what Portico '
            f'calls "circuit-breaker" (the filters are: {FILTERS})') in lines, '\n'.join(lines)
    assert (f'{f}:6:47: error: routes[0].filters: unknown filter "corz"; did you mean "cors"? '
            f'(the filters are: {FILTERS})') in lines, '\n'.join(lines)


# ---- exact paths: -t notes them ----

EXACT = '''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"] }}]
routes:
  - name: orders
    match: {{ paths: [/api/orders, "/api/users/*"] }}
    upstream: up
  - name: item
    match: {{ paths: ["/api/orders/:id"] }}
    upstream: up
  - name: hello
    match: {{ paths: [/hello] }}
    respond: {{ body: hi }}
  - match: {{ paths: [/docs] }}
    respond: {{ body: docs }}
  - name: docs-pages
    match: {{ paths: ["/docs/*"] }}
    respond: {{ body: page }}
  - name: root
    match: {{ paths: [/] }}
    upstream: up
'''


def test_t_notes_exact_paths_where_a_prefix_was_likely_meant(gateway, tmpdir_path):
    port = free_port()
    rc, lines, f = check(tmpdir_path, EXACT.format(port=port, bport=free_port()))
    assert rc == 0, '\n'.join(lines)
    notes = [x for x in lines if ': note: ' in x]
    assert notes == [
        f'{f}:5:22: note: routes[0] ("orders"): path "/api/orders" is exact: it matches /api/orders only, not what '
        'is under it as a Kong path or an nginx location would; route "item" has "/api/orders/:id" under it; '
        'write "/api/orders/*" to match /api/orders and every path under it',
        f'{f}:13:22: note: routes[3]: path "/docs" is exact: it matches /docs only, not what is under it as a Kong '
        'path or an nginx location would; route "docs-pages" has "/docs/*" under it; write "/docs/*" to match '
        '/docs and every path under it',
        f'{f}:19:22: note: routes[5] ("root"): path "/" is exact: it matches / only, not what is under it as a Kong '
        'path or an nginx location would; write "/*" to match every path',
    ], '\n'.join(lines)  # /hello answers by itself: exact is what it means
    assert lines[-1] == f'portico: configuration ok: {f}'
    # -T notes them too; starting does not
    r = run_portico('-T', '-c', f)
    assert r.returncode == 0 and r.stderr.count(': note: ') == 3, r.stderr
    g = gateway(EXACT.format(port=port, bport=free_port()), workers=1)
    assert 'is exact' not in g.log() and ': note: ' not in g.log(), g.log()


def test_t_notes_at_most_eight_exact_paths_then_counts_the_rest(tmpdir_path):
    routes = ''.join(f'  - {{ name: r{i}, match: {{ paths: [/p{i}] }}, upstream: up }}\n' for i in range(12))
    rc, lines, f = check(tmpdir_path, 'listeners: [{ name: main, address: 127.0.0.1:1 }]\n'
                                      'upstreams: [{ name: up, targets: ["127.0.0.1:2"] }]\n'
                                      'routes:\n' + routes)
    assert rc == 0, '\n'.join(lines)
    notes = [x for x in lines if ': note: ' in x]
    assert len(notes) == 9 and all('is exact' in x for x in notes[:8]), '\n'.join(lines)
    assert notes[8] == f'{f}:12:34: note: 4 more exact paths like these, from here on (a path ending in /* ' \
                       'matches a prefix)'


# ---- strip_prefix that cannot apply ----

def test_strip_prefix_no_path_begins_with_is_an_error(tmpdir_path):
    rc, lines, f = check(tmpdir_path, '''listeners: [{ name: main, address: 127.0.0.1:1 }]
upstreams: [{ name: up, targets: ["127.0.0.1:2"] }]
routes:
  - { name: a, match: { paths: ["/api/*", /v1/status] }, upstream: up, strip_prefix: /apis }
  - { name: b, match: { paths: [/api] }, upstream: up, strip_prefix: /api/ }
  - { name: ok, match: { paths: ["/:tenant/api/*"] }, upstream: up, strip_prefix: /acme }
''')
    assert rc == 1
    assert (f'{f}:4:86: error: routes[0].strip_prefix: "/apis" can never be stripped: no path of the route '
            '(/api/*, /v1/status) begins with it') in lines, '\n'.join(lines)
    assert (f'{f}:5:70: error: routes[1].strip_prefix: "/api/" can never be stripped: no path of the route '
            '(/api) begins with it') in lines, '\n'.join(lines)
    assert not any('routes[2]' in x for x in lines), '\n'.join(lines)


def test_strip_prefix_out_of_normal_form_is_an_error_and_slash_a_warning(tmpdir_path):
    """Request paths are compared in their normal form: a prefix with a dot
    segment, an empty one or an escaped slash is never found (hostile
    review); "/" strips nothing."""
    rc, lines, f = check(tmpdir_path, '''listeners: [{ name: main, address: 127.0.0.1:1 }]
upstreams: [{ name: up, targets: ["127.0.0.1:2"] }]
routes:
  - { name: a, match: { paths: ["/a/*"] }, upstream: up, strip_prefix: "/d/.." }
  - { name: b, match: { paths: ["/b/*"] }, upstream: up, strip_prefix: "//x" }
  - { name: c, match: { paths: ["/c/*"] }, upstream: up, strip_prefix: "/a%2Fb" }
  - { name: d, match: { paths: ["/d/*"] }, upstream: up, strip_prefix: "/" }
  - { name: e, match: { paths: ["/my%20api/*"] }, upstream: up, strip_prefix: "/my%20api" }
''')
    assert rc == 1
    for i, sp in enumerate(['/d/..', '//x', '/a%2Fb']):
        assert any(f'routes[{i}].strip_prefix: "{sp}" is not in normal form' in x for x in lines), '\n'.join(lines)
    assert any('routes[3]: strip_prefix "/" strips nothing' in x and 'warning' in x for x in lines), lines
    assert not any('routes[4]' in x for x in lines), '\n'.join(lines)


# ---- Location and Content-Location under strip_prefix ----

def proxy_conf(port, bport):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"] }}]
routes:
  - {{ name: api, match: {{ paths: ["/api/*", "/health"] }}, upstream: up, strip_prefix: /api }}
  - {{ name: raw, match: {{ paths: ["/raw/*"] }}, upstream: up, strip_prefix: /raw, rewrite_location: false }}
  - {{ name: v2, match: {{ paths: ["/v2/*"] }}, upstream: up, strip_prefix: /v2/,
      upstream_host: internal.svc:8080 }}
'''


def locations(port, path, loc, cloc=None, host=None, **more):
    """The Location and Content-Location the client gets when the upstream
    answers /location with loc (and cloc)."""
    q = {'loc': loc, **({'cloc': cloc} if cloc else {}), **more}
    target = f'{path}/location?{urllib.parse.urlencode(q)}'
    out = raw(port, f'GET {target} HTTP/1.1\r\nHost: {host or f"127.0.0.1:{port}"}\r\n'
                    'Connection: close\r\n\r\n'.encode())
    head = out.partition(b'\r\n\r\n')[0].decode()
    assert head.startswith('HTTP/1.1 302 '), head
    fields = [line.split(': ', 1) for line in head.split('\r\n')[1:]]
    return [v for k, v in fields if k.lower() == 'location'], [v for k, v in fields if k.lower() == 'content-location']


def test_location_under_a_stripped_prefix_gets_it_back(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_conf(port, b.port), workers=1)
    me = f'127.0.0.1:{b.port}'
    # an absolute path, and a URL to the upstream's own address, as nginx's proxy_redirect default
    assert locations(port, '/api', '/orders/7', '/orders/7') == (['/api/orders/7'], ['/api/orders/7'])
    assert b.requests[-1].target.startswith('/location?')
    assert locations(port, '/api', 'http://{self}/orders/7?x=1') == (['/api/orders/7?x=1'], [])
    assert locations(port, '/api', 'http://{self}') == (['/api/'], [])
    assert locations(port, '/api', '//{self}/a') == (['/api/a'], [])
    # the Host the request went upstream with is the upstream's own too
    assert locations(port, '/api', 'https://api.example/o', host='api.example') == (['/api/o'], [])
    # other hosts and relative references are left alone
    assert locations(port, '/api', 'http://other.example/o', 'orders/7') == (['http://other.example/o'], ['orders/7'])
    assert locations(port, '/api', f'http://{me}.evil/o') == ([f'http://{me}.evil/o'], [])
    # the upstream's own address never reaches the client: a query or a
    # fragment right after it, credentials before it (hostile review)
    assert locations(port, '/api', 'http://{self}?q=1') == (['/api?q=1'], [])
    assert locations(port, '/api', 'http://{self}#f') == (['/api#f'], [])
    assert locations(port, '/api', 'http://user:pw@{self}/x') == (['/api/x'], [])
    assert locations(port, '/api', 'http://evil.example@{self}/x') == (['/api/x'], [])
    assert locations(port, '/api', 'http://{self}@evil.example/x') == (['http://{self}@evil.example/x'.replace(
        '{self}', me)], [])


def test_location_rewriting_follows_what_was_stripped(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_conf(port, b.port), workers=1)
    assert locations(port, '/api', '/o') == (['/api/o'], [])
    # rewrite_location: false passes it as it is
    assert locations(port, '/raw', '/o', '/c') == (['/o'], ['/c'])
    # strip_prefix /v2/: the prefix less its slash; upstream_host is the upstream's own authority
    assert locations(port, '/v2', 'http://internal.svc:8080/o') == (['/v2/o'], [])
    assert b.requests[-1].header('host') == 'internal.svc:8080'


def test_location_is_left_alone_when_the_prefix_was_not_cut(gateway, backends):
    b = backends()
    port = free_port()
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - {{ name: api, match: {{ paths: ["/api/*", "/location"] }}, upstream: up, strip_prefix: /api }}
  - {{ name: moved, match: {{ paths: ["/moved/*"] }}, upstream: up, strip_prefix: /moved,
      filters: {{ path-rewrite: {{ template: "/location" }} }} }}
''', workers=1)
    assert locations(port, '/api', '/o') == (['/api/o'], [])
    # a path of the route that lies outside its prefix: sent as it is, answered as it is
    assert locations(port, '', '/o') == (['/o'], [])
    assert b.requests[-1].target == '/location?loc=%2Fo'
    # a path-rewrite filter chose the path: strip_prefix did not apply
    assert locations(port, '/moved/x', '/o') == (['/o'], [])
    assert b.requests[-1].target == '/location?loc=%2Fo'


def test_many_location_fields_under_a_long_prefix_fit_the_head(gateway, backends):
    """The head writer's bound counts the prefix once per rewritten field:
    90 Location fields each grow by a 1,000-byte prefix."""
    b = backends()
    port = free_port()
    prefix = '/' + 'p' * 999
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - {{ name: long, match: {{ paths: ["{prefix}/*"] }}, upstream: up, strip_prefix: "{prefix}" }}
''', workers=1)
    loc, _ = locations(port, prefix, '/x', n=90)
    assert loc == [prefix + '/x'] * 90


def test_http2_clients_get_the_location_rewritten_too(gateway, backends):
    b = backends()
    port = free_port()
    gateway(proxy_conf(port, b.port), workers=1)
    q = urllib.parse.urlencode({'loc': 'http://{self}/orders/7', 'cloc': '/c'})
    r = subprocess.run(['curl', '-s', '-D', '-', '-o', '/dev/null', '--http2-prior-knowledge',
                        f'http://127.0.0.1:{port}/api/location?{q}'], capture_output=True, text=True, timeout=30)
    if r.returncode == 2 or 'not support' in r.stderr:
        pytest.skip('curl without HTTP/2')
    head = r.stdout.lower()
    assert head.startswith('http/2 302'), r.stdout
    assert '\nlocation: /api/orders/7\n' in head and '\ncontent-location: /api/c\n' in head, r.stdout


def test_rewrite_location_without_strip_prefix_warns(tmpdir_path):
    rc, lines, f = check(tmpdir_path, '''listeners: [{ name: main, address: 127.0.0.1:1 }]
upstreams: [{ name: up, targets: ["127.0.0.1:2"] }]
routes:
  - { name: a, match: { paths: ["/a/*"] }, upstream: up, rewrite_location: false }
''')
    assert rc == 0
    assert f'{f}:4:76: warning: routes[0]: rewrite_location is used only with strip_prefix' in lines, \
        '\n'.join(lines)
