"""The filter pipeline through the real binary: each filter, what the
upstream received, global filters and per-route overrides."""
import textwrap

from conftest import free_port, http_get, raw, read_all, request


def config(port, bport, routes, extra=''):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"] }}]
{textwrap.dedent(extra).strip()}
routes:
{textwrap.indent(textwrap.dedent(routes).strip(), '  ')}
'''


def test_ip_restriction(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - { name: open, match: { paths: ["/open/*"] }, upstream: up,
        filters: { ip-restriction: { allow: ["10.0.0.0/8", "::1"] } } }
    - { name: local, match: { paths: ["/local/*"] }, upstream: up,
        filters: { ip-restriction: { allow: [127.0.0.0/8], deny: [127.0.0.1] , status: 401, message: "go away" } } }
    - { name: mine, match: { paths: ["/mine/*"] }, upstream: up,
        filters: { ip-restriction: { allow: [127.0.0.1/32] } } }
    '''))
    assert request(port, 'GET', '/open/x')[0] == 403
    status, _, body = request(port, 'GET', '/local/x')
    assert (status, body) == (401, b'go away')
    assert request(port, 'GET', '/mine/x')[0] == 200
    assert [r.target for r in b.requests] == ['/mine/x']  # the refused ones never reached it


def test_request_and_response_headers_with_templates(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - name: users
      match: { paths: ["/users/:id"] }
      upstream: up
      filters:
        request-headers:
          set: { x-user: "${param.id}", x-route: "${route}", x-client: "${client_ip}" }
          add: { x-trace: "${request_id}" }
          remove: [x-secret, cookie]
        response-headers:
          set: { x-served-by: "portico/${route}", content-type: "text/x-test" }
          remove: [x-body-md5]
    '''))
    status, h, body = request(port, 'GET', '/users/42', headers={'X-Secret': 's', 'Cookie': 'a=b', 'X-User': 'forged'})
    assert status == 200
    r = b.requests[-1]
    assert r.header_all('x-user') == ['42']  # set replaces the client's
    assert r.header('x-route') == 'users' and r.header('x-client') == '127.0.0.1'
    assert r.header('x-trace') == r.header('x-request-id')
    assert r.header('x-secret') is None and r.header('cookie') is None
    assert h['x-served-by'] == 'portico/users' and h['content-type'] == 'text/x-test'


def test_response_headers_on_a_respond_route(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - name: hello
      match: { paths: [/hello] }
      respond: { body: "hi", headers: { x-old: "1", content-type: "text/html" } }
      filters:
        response-headers: { set: { x-new: "${route}" }, remove: [x-old], add: { x-more: "a" } }
    '''))
    status, h, body = request(port, 'GET', '/hello')
    assert status == 200 and body == b'hi' and h['content-length'] == '2'
    assert h['x-new'] == 'hello' and h['x-more'] == 'a' and 'x-old' not in h and h['content-type'] == 'text/html'


def test_redirects(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - { name: old, match: { paths: ["/old/:id"] }, upstream: up,
        filters: { redirect: { status: 301, location: "/new/${param.id}?from=old" } } }
    - { name: secure, match: { paths: ["/login"] }, upstream: up, filters: { redirect: { https: true } } }
    - { name: secure8443, match: { paths: ["/pay"] }, upstream: up,
        filters: { redirect: { https: true, https_port: 8443, status: 308 } } }
    '''))
    status, h, _ = request(port, 'GET', '/old/7')
    assert status == 301 and h['location'] == '/new/7?from=old'
    status, h, _ = request(port, 'GET', '/login?next=/a', headers={'Host': 'shop.example:8080'})
    assert status == 302 and h['location'] == 'https://shop.example/login?next=/a'
    status, h, _ = request(port, 'POST', '/pay', headers={'Host': 'shop.example'})
    assert status == 308 and h['location'] == 'https://shop.example:8443/pay'
    assert b.requests == []


def test_cors_preflight_and_actual_requests(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - name: api
      match: { paths: ["/api/*"] }
      upstream: up
      filters:
        cors: { origins: ["https://app.example"], methods: [GET, POST], credentials: true, max_age: 10m,
                expose_headers: [x-total] }
    - { name: open, match: { paths: ["/open/*"] }, upstream: up, filters: { cors: {} } }
    '''))
    status, h, body = request(port, 'OPTIONS', '/api/items', headers={
        'Origin': 'https://app.example', 'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type, x-token'})
    assert status == 204 and body == b''
    assert h['access-control-allow-origin'] == 'https://app.example'
    assert h['access-control-allow-methods'] == 'GET, POST'
    assert h['access-control-allow-headers'] == 'content-type, x-token'
    assert h['access-control-allow-credentials'] == 'true' and h['access-control-max-age'] == '600'
    assert b.requests == []  # the preflight was answered by Portico
    status, h, _ = request(port, 'GET', '/api/items', headers={'Origin': 'https://app.example'})
    assert status == 200 and h['access-control-allow-origin'] == 'https://app.example'
    assert h['access-control-expose-headers'] == 'x-total' and h['vary'] == 'Origin'
    status, h, _ = request(port, 'GET', '/api/items', headers={'Origin': 'https://evil.example'})
    assert status == 200 and 'access-control-allow-origin' not in h
    status, h, _ = request(port, 'GET', '/open/x', headers={'Origin': 'https://any.example'})
    assert h['access-control-allow-origin'] == '*'
    assert len(b.requests) == 3


def test_request_size(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - { name: small, match: { paths: ["/*"] }, upstream: up, filters: { request-size: { max: 1k } } }
    '''))
    out = raw(port, b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n' + b'x' * 2000)
    assert out.startswith(b'HTTP/1.1 413 ')
    chunked = b''.join(b'200\r\n' + b'y' * 512 + b'\r\n' for _ in range(4)) + b'0\r\n\r\n'
    out = raw(port, b'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked)
    assert out.startswith(b'HTTP/1.1 413 ')
    assert request(port, 'POST', '/echo', body=b'z' * 1000)[0] == 200
    assert [r.body_len for r in b.requests] == [1000]


def test_path_rewrite(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - { name: tpl, match: { paths: ["/v1/users/:id"] }, upstream: up,
        filters: { path-rewrite: { template: "/internal/user/${param.id}" } } }
    - { name: re, match: { paths: ["/old/*"] }, upstream: up,
        filters: { path-rewrite: { regex: "^/old/(.*)$", replacement: "/new/$1" } } }
    '''))
    request(port, 'GET', '/v1/users/9?x=1')
    assert b.requests[-1].target == '/internal/user/9?x=1'
    request(port, 'GET', '/old/a/b')
    assert b.requests[-1].target == '/new/a/b'


def test_global_filters_and_overrides(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - { name: default, match: { paths: ["/d/*"] }, upstream: up }
    - { name: custom, match: { paths: ["/c/*"] }, upstream: up,
        filters: { response-headers: { set: { x-who: custom } } } }
    - { name: off, match: { paths: ["/o/*"] }, upstream: up, filters: { response-headers: false } }
    ''', extra='''
    global_filters:
      response-headers: { set: { x-who: global } }
    '''))
    assert request(port, 'GET', '/d/1')[1]['x-who'] == 'global'
    assert request(port, 'GET', '/c/1')[1]['x-who'] == 'custom'
    assert 'x-who' not in request(port, 'GET', '/o/1')[1]


def test_fault_injection_delay_suspends_and_resumes(gateway, backends):
    import time
    b = backends()
    port = free_port()
    g = gateway(config(port, b.port, '''
    - { name: slow, match: { paths: ["/slow/*"] }, upstream: up,
        filters: { fault-injection: { delay: { duration: 400ms } }, request-headers: { set: { x-after: "yes" } } } }
    - { name: fail, match: { paths: ["/fail/*"] }, upstream: up,
        filters: { fault-injection: { abort: { status: 503, body: "injected" } } } }
    - { name: never, match: { paths: ["/never/*"] }, upstream: up,
        filters: { fault-injection: { abort: { status: 500, percentage: 0 } } } }
    - { name: both, match: { paths: ["/both/*"] }, upstream: up,
        filters: { fault-injection: { delay: { duration: 200ms }, abort: { status: 429 } } } }
    - { name: echo, match: { paths: ["/echo"] }, upstream: up,
        filters: { fault-injection: { delay: { duration: 200ms } } } }
    '''), workers=1)
    t0 = time.time()
    status, _, body = request(port, 'GET', '/slow/x')
    took = time.time() - t0
    assert status == 200 and 0.38 < took < 3, took
    assert b.requests[-1].header('x-after') == 'yes'  # the filters after it ran on resume
    status, _, body = request(port, 'GET', '/fail/x')
    assert (status, body) == (503, b'injected')
    assert request(port, 'GET', '/never/x')[0] == 200
    t0 = time.time()
    assert request(port, 'GET', '/both/x')[0] == 429 and time.time() - t0 > 0.18
    assert [r.target for r in b.requests] == ['/slow/x', '/never/x']
    # a delayed request with a body, and pipelined requests behind it, in order
    data = (b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello'
            b'GET /never/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    out = raw(port, data, timeout=5)
    assert out.count(b'HTTP/1.1 200 ') == 2 and out.index(b'hello') < out.index(b'ok /never/y')
    # a client that leaves during the delay: no harm done
    import socket
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'GET /slow/gone HTTP/1.1\r\nHost: x\r\n\r\n')
    s.close()
    time.sleep(0.6)
    assert request(port, 'GET', '/never/z')[0] == 200
    assert g.proc.poll() is None


def test_request_size_counts_a_chunked_body_through_its_body_hook(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - { name: small, match: { paths: ["/*"] }, upstream: up, filters: { request-size: { max: 1000 } } }
    '''))
    ok_body = b''.join(b'64\r\n' + b'a' * 100 + b'\r\n' for _ in range(10)) + b'0\r\n\r\n'
    out = raw(port, b'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' + ok_body)
    assert out.startswith(b'HTTP/1.1 200 ')
    big = b''.join(b'64\r\n' + b'a' * 100 + b'\r\n' for _ in range(11)) + b'0\r\n\r\n'
    out = raw(port, b'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' + big)
    assert out.startswith(b'HTTP/1.1 413 ')
    assert [r.body_len for r in b.requests] == [1000]


def test_response_headers_by_status_through_the_response_hook(gateway, backends):
    b = backends()
    port = free_port()
    gateway(config(port, b.port, '''
    - name: api
      match: { paths: ["/*"] }
      upstream: up
      filters:
        response-headers: { set: { cache-control: "no-store", x-path: "${path}" }, statuses: [500, 503] }
    '''))
    status, h, _ = request(port, 'GET', '/status/503')
    assert status == 503 and h['cache-control'] == 'no-store' and h['x-path'] == '/status/503'
    status, h, _ = request(port, 'GET', '/status/200')
    assert status == 200 and 'cache-control' not in h and 'x-path' not in h


def test_ip_restriction_over_ipv6(gateway, backends):
    import socket
    b = backends()
    port = free_port()
    cfg = config(port, b.port, '''
    - { name: v6only, match: { paths: ["/*"] }, upstream: up,
        filters: { ip-restriction: { allow: ["::1/128"], deny: [127.0.0.0/8] } } }
    ''').replace(f'listeners: [{{ name: main, address: 127.0.0.1:{port} }}]',
                 f'listeners: [{{ name: main, address: 127.0.0.1:{port} }}, {{ name: v6, address: "[::1]:{port}" }}]')
    gateway(cfg)
    s = socket.create_connection(('::1', port), timeout=5)
    s.sendall(b'GET /from-v6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    out = read_all(s)
    s.close()
    assert out.startswith(b'HTTP/1.1 200 ')
    assert request(port, 'GET', '/from-v4')[0] == 403
    assert [r.target for r in b.requests] == ['/from-v6']
    assert b.requests[0].header('x-forwarded-for') == '::1'


def test_circuit_breaker_opens_half_opens_and_closes(gateway, backends):
    import time
    b = backends()
    port = free_port()
    g = gateway(config(port, b.port, '''
    - { name: flaky, match: { paths: ["/*"] }, upstream: up,
        filters: { circuit-breaker: { failures: 3, break_duration: 800ms, successes: 2 } } }
    '''), workers=2)
    for i in range(3):
        assert request(port, 'GET', f'/status/500?n={i}')[0] == 500
    g.wait_log(r'route "flaky": circuit open for 800 ms \(failures in a row\)')
    reached = len(b.requests)
    for i in range(6):  # open: answered at once, whichever worker, nothing upstream
        status, _, body = request(port, 'GET', '/ok')
        assert status == 503 and body == b'503 Service Unavailable (circuit open)'
    assert len(b.requests) == reached
    time.sleep(0.9)
    assert request(port, 'GET', '/ok')[0] == 200  # half-open: let through
    g.wait_log('circuit half-open')
    assert request(port, 'GET', '/ok')[0] == 200
    g.wait_log(r'route "flaky": circuit closed')
    assert request(port, 'GET', '/ok')[0] == 200
    # a failure while half-open opens it again at once
    for i in range(3):
        request(port, 'GET', f'/status/502?m={i}')
    g.wait_log(r'circuit open for 800 ms', count=2)
    time.sleep(0.9)
    assert request(port, 'GET', '/status/503')[0] == 503
    g.wait_log(r'circuit open for 800 ms \(a failure while half-open\)')
    assert request(port, 'GET', '/ok')[0] == 503
