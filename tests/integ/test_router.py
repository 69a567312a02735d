"""Routing through the real binary: precedence, hosts, predicates, regex
routes, 404/405, and the path normalisation that protects the routes."""
from conftest import basic_config, free_port, http_get, raw

ROUTES = '''
- { name: any, match: { paths: ["/*"] }, priority: -1, respond: { body: "any" } }
- { name: admin, match: { paths: ["/admin/*"] }, respond: { status: 403, body: "no" } }
- { name: user, match: { paths: ["/users/:id"], methods: [GET] }, respond: { body: "user" } }
- { name: me, match: { paths: [/users/me] }, respond: { body: "me" } }
- { name: api-host, match: { hosts: [api.test], paths: ["/*"] }, respond: { body: "api host" } }
- { name: wild, match: { hosts: ["*.apps.test"], paths: ["/*"] }, respond: { body: "an app" } }
- { name: canary, match: { paths: [/feature], headers: { x-canary: "~^(1|true)$" } }, respond: { body: "canary" } }
- { name: feature, match: { paths: [/feature] }, respond: { body: "stable" } }
- { name: report, match: { paths: ["~^/reports/(?<year>[0-9]{4})$"] }, respond: { body: "report" } }
'''


def test_routing_through_the_binary(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    assert http_get(port, '/users/me')[2] == b'me'  # exact beats :param
    assert http_get(port, '/users/42')[2] == b'user'
    # another route that takes DELETE wins over 405: here the catch-all
    assert http_get(port, '/users/42', method='DELETE')[2] == b'any'
    assert http_get(port, '/x', host='api.test')[2] == b'api host'
    assert http_get(port, '/x', host='one.apps.test:8080')[2] == b'an app'
    assert http_get(port, '/x', host='apps.test')[2] == b'any'
    assert http_get(port, '/feature', headers={'X-Canary': 'true'})[2] == b'canary'
    assert http_get(port, '/feature', headers={'X-Canary': 'nope'})[2] == b'stable'
    assert http_get(port, '/reports/2026')[2] == b'report'
    assert http_get(port, '/reports/26')[2] == b'any'


def test_normalised_paths_cannot_dodge_a_route(gateway):
    port = free_port()
    gateway(basic_config(port, routes=ROUTES))
    for path in ('/admin/x', '/%61dmin/x', '/public/../admin/x', '/./admin/x', '/admin/%2e/x'):
        assert http_get(port, path)[0] == 403, path
    # an encoded slash is refused by default (escaped_slashes: keep would keep it inside its
    # segment, decode would make it a separator: test_path_forwarding.py)
    assert http_get(port, '/admin%2Fx')[0] == 400
    for path in (b'/..', b'/a/../../etc/passwd', b'/%2e%2e/x', b'/bad%zz', b'/nul%00'):
        out = raw(port, b'GET ' + path + b' HTTP/1.1\r\nHost: a\r\n\r\n')
        assert out.startswith(b'HTTP/1.1 400 '), (path, out[:40])


def test_405_lists_the_methods_that_would_match(gateway):
    port = free_port()
    gateway(basic_config(port, routes="""
    - { name: read, match: { paths: ["/items/:id"], methods: [GET] }, respond: {} }
    - { name: write, match: { paths: ["/items/:id"], methods: [PUT, PATCH] }, respond: {} }
    """))
    status, headers, _ = http_get(port, '/items/1', method='DELETE')
    assert status == 405 and headers['Allow'] == 'GET, HEAD, PUT, PATCH'
    assert http_get(port, '/other', method='DELETE')[0] == 404


def test_connect_and_asterisk_forms_route_safely(gateway):
    port = free_port()
    g = gateway(basic_config(port, routes='''
    - { name: hello, match: { paths: [/hello] }, respond: { body: "hi" } }
    '''))
    out = raw(port, b'CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 501 ') and b'Connection: close' in out  # no tunnels, whatever the routes
    out = raw(port, b'OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 404 ')
    assert http_get(port, '/hello')[2] == b'hi'
    assert g.proc.poll() is None
