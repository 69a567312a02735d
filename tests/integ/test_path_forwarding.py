"""Regression tests: routing and forwarding agree on the path.  Routing
used the normal form of the path but the raw one went upstream, so
strip_prefix missed /%61pi/x, and /api/..%2fsecret was routed under /api/
to reach an upstream that decodes it as /secret.  The path sent upstream
is now the normal form that was routed on; escaped_slashes (a listener
key) refuses %2F and %5C by default."""
import os
import textwrap

from conftest import free_port, raw, request, run_portico


def config(port, bport, slashes=None):
    extra = f', escaped_slashes: {slashes}' if slashes else ''
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}{extra} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"] }}]
routes:
  - {{ name: api, match: {{ paths: ["/api/*"] }}, upstream: up, strip_prefix: /api }}
  - {{ name: files, match: {{ paths: ["/files/*"] }}, upstream: up }}
  - {{ name: old, match: {{ paths: ["/old/*"] }}, upstream: up,
      filters: {{ path-rewrite: {{ regex: "^/old/(.*)$", replacement: "/new/$1" }} }} }}
  - {{ name: tpl, match: {{ paths: ["/tpl/*"] }}, upstream: up,
      filters: {{ path-rewrite: {{ template: "/v2${{path}}" }},
                 request-headers: {{ set: {{ x-path: "${{path}}" }} }} }} }}
  - {{ name: secret, match: {{ paths: ["/secret"] }}, respond: {{ body: "the secret route" }} }}
'''


def send(port, target):
    """The raw target on the wire (http.client would not send every byte as is): status, body."""
    out = raw(port, f'GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'.encode())
    head, _, body = out.partition(b'\r\n\r\n')
    return int(head.split()[1]), body


def test_strip_prefix_applies_to_the_path_routed_on(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port), workers=1)
    assert send(port, '/%61pi/x') == (200, b'ok /x')
    assert b.requests[-1].target == '/x'
    assert send(port, '/%61%70%69/a%7Eb?q=%61') == (200, b'ok /a~b')
    assert b.requests[-1].target == '/a~b?q=%61'  # the query goes as sent
    assert send(port, '/api/./v1/../x/.?q=/../y&z=%2e%2e') == (200, b'ok /x/')
    assert b.requests[-1].target == '/x/?q=/../y&z=%2e%2e'
    assert send(port, '/files/a/%2e/b') == (200, b'ok /files/a/b')
    assert b.requests[-1].target == '/files/a/b'


def test_dot_dot_escapes_the_route_when_routed_not_when_forwarded(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port), workers=1)
    # /api/%2e%2e/secret is /secret: routed there, as before, never sent upstream under /api
    assert send(port, '/api/%2e%2e/secret') == (200, b'the secret route')
    assert send(port, '/api/x/%2E%2E/y') == (200, b'ok /y')
    assert b.requests[-1].target == '/y'
    assert send(port, '/api/../../etc/passwd')[0] == 400  # above the root


def test_escaped_slashes_reject_is_the_default(gateway, backends):
    b = backends()
    port = free_port()
    g = gateway(config(port, b.port), workers=1)
    for target in ('/api/..%2fsecret', '/api/..%2Fsecret', '/api/..%5csecret', '/files/a%2Fb', '/api/x%5C..%5C..%5Csecret'):
        assert send(port, target)[0] == 400, target
    assert b.requests == []
    g.stop()
    port2 = free_port()
    gateway(config(port2, b.port, 'reject'), workers=1)
    assert send(port2, '/api/..%2fsecret')[0] == 400 and b.requests == []


def test_escaped_slashes_decode(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, 'decode'), workers=1)
    # decoded before normalising: /api/..%2fsecret is /secret, and routed there
    assert send(port, '/api/..%2fsecret') == (200, b'the secret route')
    assert send(port, '/api/x/..%5C..%2Fsecret') == (200, b'the secret route')
    assert b.requests == []
    assert send(port, '/api/a%2Fb%5Cc?x=%2F') == (200, b'ok /a/b/c')
    assert b.requests[-1].target == '/a/b/c?x=%2F'
    assert send(port, '/files/x%2F..%2Fy') == (200, b'ok /files/y')
    assert b.requests[-1].target == '/files/y'
    assert send(port, '/files/..%2F..%2Fsecret')[0] == 400  # above the root


def test_escaped_slashes_keep_forwards_them_encoded(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, 'keep'), workers=1)
    assert send(port, '/files/..%2fsecret')[0] == 200
    assert b.requests[-1].target == '/files/..%2Fsecret'  # as sent (escapes in upper case, their normal form)
    assert send(port, '/files/a%2Fb%5cc?q=%2f')[0] == 200
    assert b.requests[-1].target == '/files/a%2Fb%5Cc?q=%2f'
    assert send(port, '/api/..%2fsecret')[0] == 200
    assert b.requests[-1].target == '/..%2Fsecret'


def test_plain_paths_are_forwarded_byte_for_byte(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port), workers=1)
    for target, want in (('/files/a//b;c=d,e?x=1&y=/../%2F', '/files/a//b;c=d,e?x=1&y=/../%2F'),
                         ('/api/v1/Items?', '/v1/Items?'), ('/api', '/'), ('/api/', '/'),
                         ('/files/a.b/c..d/.e', '/files/a.b/c..d/.e')):
        assert send(port, target)[0] == 200, target
        assert b.requests[-1].target == want, target
    # an absolute-form target forwards its path the same way
    out = raw(port, b'GET http://x/%61pi/y?z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 200 ') and b.requests[-1].target == '/y?z'


def test_path_rewrite_and_path_variable_see_the_routed_path(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port), workers=1)
    assert send(port, '/old/%61/./b?q=%61')[0] == 200
    assert b.requests[-1].target == '/new/a/b?q=%61'
    assert send(port, '/tpl/x/%2e%2e/y%20z?q')[0] == 200
    assert b.requests[-1].target == '/v2/tpl/y%20z?q'
    assert b.requests[-1].header('x-path') == '/tpl/y%20z'


def test_escaped_slashes_config(tmp_path):
    p = tmp_path / 'p.yaml'
    p.write_text(textwrap.dedent('''\
        listeners: [{ name: main, address: 127.0.0.1:1, escaped_slashes: unescape }]
        routes: [{ name: r, match: { paths: ["/*"] }, respond: { body: "x" } }]
        '''))
    out = run_portico('-t', '-c', str(p))
    assert out.returncode == 1 and 'escaped_slashes' in out.stderr and 'reject' in out.stderr, out.stderr


def test_a_route_on_an_escaped_slash_is_reached_only_where_a_listener_keeps_it(gateway, backends, tmpdir_path):
    """Routes are matched against the normal form: a route path written in
    another form, or with %2F where every listener refuses or decodes it,
    could never be chosen, and -t says so with the form to write."""
    b = backends()
    port = free_port()
    route = '  - { name: enc, match: { paths: ["/a%2Fb/*"] }, respond: { body: "encoded" } }\n'
    g = gateway(config(port, b.port, 'keep') + route, workers=1)
    assert send(port, '/a%2fb/x') == (200, b'encoded')
    assert send(port, '/a/b/x')[0] == 404
    for slashes, text in ((None, route), ('decode', route),
                          ('keep', route.replace('/a%2Fb/*', '/a%2fb/*')),
                          ('keep', route.replace('/a%2Fb/*', '/%61pi/*'))):
        path = os.path.join(tmpdir_path, 'bad.yaml')
        with open(path, 'w') as f:
            f.write(config(port, b.port, slashes) + text)
        out = run_portico('-t', '-c', path)
        assert out.returncode == 1, (slashes, text, out.stderr)
        assert 'never matches' in out.stderr, out.stderr
        if slashes == 'keep':
            assert 'so write "/a%2Fb/*"' in out.stderr or 'so write "/api/*"' in out.stderr, out.stderr
        else:
            assert 'every listener refuses or decodes an escaped slash' in out.stderr, out.stderr
    # and the running gateway still has its file
    assert send(port, '/a%2Fb/x') == (200, b'encoded')
    assert g.proc.poll() is None
