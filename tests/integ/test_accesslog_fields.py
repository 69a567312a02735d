"""Issue 16, the access log: a route's access_log (false, or its own
sampling) and access_log.sample; header fields by name ($http_NAME,
$sent_http_NAME, $upstream_http_NAME); $cache_status, $trace_id,
$upstream_connect_time and $upstream_header_time; the JSON format's
fields; the method and target of requests answered 400; and the admin
API's own log."""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse

import pytest

from cache_origin import Origin
from conftest import free_port, raw, request, run_portico, wait_for
from hostile_h2 import H2
from test_h2 import ended, response


def lines(path):
    return open(path, 'rb').read().decode('latin-1').splitlines() if os.path.exists(path) else []


def wait_lines(path, n, what='log lines'):
    wait_for(lambda: len(lines(path)) >= n, what=what)
    return lines(path)


def scripted(req):
    """/PATH?f=Name:value&f=...: those fields, in order (a name twice: two
    fields); &ms=N: after N ms."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(req.target).query)
    fields = {}
    for fl in q.get('f', []):
        k, v = fl.split(':', 1)
        fields.setdefault(k, []).append(v)
    return 200, fields, b'up ' + req.path.encode(), int(q.get('ms', ['0'])[0]) / 1000


@pytest.fixture
def upstream():
    o = Origin()
    for path in ('/h', '/slow', '/c/1', '/p/1', '/items/7'):
        o.handler(path, scripted)
    yield o
    o.stop()


def gw_config(port, up=None, alog='', routes='', admin='', listener='', extra=''):
    ups = f'upstreams: [{{ name: up, targets: ["127.0.0.1:{up.port}"] }}]\n' if up else ''
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}{listener} }}]
{admin}{ups}access_log: {{ buffer: 0, {alog} }}
{extra}routes:
{routes}'''


def respond_route(name, path, status=200, extra=''):
    return f'  - {{ name: {name}, match: {{ paths: ["{path}"] }}, respond: {{ status: {status}, body: "{name}\\n" }}{extra} }}\n'


def proxy_route(name='proxied', path='/*', extra=''):
    return f'  - {{ name: {name}, match: {{ paths: ["{path}"] }}, upstream: up{extra} }}\n'


def keepalive(port, reqs):
    """Sends requests on one connection, one after the other; returns the statuses."""
    import http.client
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    out = []
    try:
        for path, headers in reqs:
            c.request('GET', path, headers=headers or {})
            r = c.getresponse()
            r.read()
            out.append(r.status)
    finally:
        c.close()
    return out


def check_fails(tmp, text):
    p = os.path.join(tmp, 'bad.yaml')
    with open(p, 'w') as f:
        f.write(text)
    r = run_portico('-t', '-c', p)
    assert r.returncode == 1, r.stdout + r.stderr
    return p, r.stderr + r.stdout


# ---- 1. a route's access_log, and sampling ----

def test_a_route_with_access_log_false_is_not_logged_errors_included(gateway, tmpdir_path):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    routes = (respond_route('quiet', '/quiet', extra=', access_log: false') +
              respond_route('quiet-err', '/quiet-err', status=503, extra=', access_log: false') +
              respond_route('loud', '/loud'))
    gateway(gw_config(port, alog=f'path: {log}, format: "$route $status"', routes=routes), workers=1)
    assert keepalive(port, [('/quiet', None), ('/quiet-err', None), ('/loud', None)] * 5) == [200, 503, 200] * 5
    got = wait_lines(log, 5)
    time.sleep(0.3)
    assert lines(log) == ['loud 200'] * 5, got


def test_sampling_keeps_about_the_ratio_and_every_error(gateway, tmpdir_path):
    """sample: 0.3 of 1,000 requests: the count is binomial (sd 14.5); the
    bounds are 6 sd away.  Errors are all kept (sample_errors: always)."""
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    routes = respond_route('ok', '/ok') + respond_route('bad', '/bad', status=502)
    gateway(gw_config(port, alog=f'path: {log}, format: "$route $status", sample: 0.3', routes=routes), workers=2)
    for _ in range(10):
        keepalive(port, [('/ok', None)] * 100)
    keepalive(port, [('/bad', None)] * 50)
    wait_for(lambda: sum(1 for ln in lines(log) if ln == 'bad 502') == 50, what='every error')
    n = sum(1 for ln in lines(log) if ln == 'ok 200')
    assert 210 <= n <= 390, n


def test_sample_errors_sampled_and_sample_zero_log_nothing(gateway, tmpdir_path):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    routes = (respond_route('bad', '/bad', status=500) +
              respond_route('mine', '/mine', extra=', access_log: { sample: 1 }'))
    gateway(gw_config(port, alog=f'path: {log}, format: "$route $status", sample: 0, sample_errors: sampled',
                      routes=routes), workers=1)
    keepalive(port, [('/bad', None)] * 20 + [('/nowhere', None)] * 5 + [('/mine', None)] * 3)
    wait_lines(log, 3)
    time.sleep(0.3)
    assert lines(log) == ['mine 200'] * 3


def test_a_route_overrides_the_global_sampling_key_by_key(gateway, tmpdir_path):
    """Global sample 1 with errors sampled; route a: sample 0 (errors
    kept: its own sample_errors: always); route b: sample_errors always
    alone, so it keeps the global sample of 1."""
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    routes = (respond_route('a', '/a', extra=', access_log: { sample: 0, sample_errors: always }') +
              respond_route('a-err', '/a-err', status=404, extra=', access_log: { sample: 0, sample_errors: always }') +
              respond_route('b', '/b', extra=', access_log: { sample_errors: always }') +
              respond_route('c-err', '/c-err', status=500, extra=', access_log: { sample: 0 }'))
    gateway(gw_config(port, alog=f'path: {log}, format: "$route $status", sample_errors: sampled', routes=routes),
            workers=1)
    keepalive(port, [('/a', None), ('/a-err', None), ('/b', None), ('/c-err', None)] * 4)
    wait_lines(log, 8)
    time.sleep(0.3)
    assert sorted(lines(log)) == sorted(['a-err 404', 'b 200'] * 4)


def test_a_reload_changes_what_is_logged(gateway, tmpdir_path):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    before = respond_route('r', '/r') + respond_route('s', '/s')
    g = gateway(gw_config(port, alog=f'path: {log}, format: "$route $http_x_n"', routes=before), workers=2)
    keepalive(port, [('/r', {'X-N': '1'}), ('/s', {'X-N': '1'})])
    wait_lines(log, 2)
    g.write(gw_config(port, alog=f'path: {log}, format: "$route $http_x_n $sent_http_content_type"',
                      routes=respond_route('r', '/r', extra=', access_log: false') + respond_route('s', '/s')))
    g.reload()
    keepalive(port, [('/r', {'X-N': '2'}), ('/s', {'X-N': '2'})])
    wait_lines(log, 3)
    time.sleep(0.3)
    assert lines(log) == ['r 1', 's 1', 's 2 text/plain']


@pytest.mark.parametrize('where, text, message, at', [
    ('global', 'sample: 1.5', 'expected a ratio from 0 to 1', '1.5'),
    ('global', 'sample: often', 'expected a ratio from 0 to 1', 'often'),
    ('global', 'sample_errors: never', 'unknown value "never"', 'never'),
    ('route', 'access_log: maybe', 'expected false, true or a map', 'maybe'),
    ('route', 'access_log: { sample: -0.1 }', 'expected a ratio from 0 to 1', '-0.1'),
    ('route', 'access_log: { smaple: 0.1 }', 'unknown key "smaple"', 'smaple'),
])
def test_bad_sampling_settings_are_errors_at_their_place(tmpdir_path, where, text, message, at):
    port = free_port()
    if where == 'global':
        cfg = gw_config(port, alog=f'path: /dev/null, {text}', routes=respond_route('r', '/r'))
    else:
        cfg = gw_config(port, alog='path: /dev/null', routes=respond_route('r', '/r', extra=f', {text}'))
    path, err = check_fails(tmpdir_path, cfg)
    row = next(i for i, ln in enumerate(cfg.splitlines(), 1) if text in ln)
    col = cfg.splitlines()[row - 1].index(text) + text.index(at) + 1
    assert f'{path}:{row}:{col}: error: ' in err and message in err, (err, row, col)


# ---- 2. header fields by name ----

def test_request_fields_by_name_joined_and_cased_as_nginx(gateway, tmpdir_path):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, alog=f'path: {log}, format: "[$http_x_tag] [$http_user_agent] [$http_absent] '
                                 f'[$http_x_under_score]"',
                      routes=respond_route('r', '/*')), workers=1)
    out = raw(port, b'GET /1 HTTP/1.1\r\nHost: x\r\nX-Tag: a\r\nx-TAG: b\r\nUser-Agent: ua/1\r\n'
                    b'X-Under-Score: dash\r\nConnection: close\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 200')
    assert wait_lines(log, 1) == ['[a, b] [ua/1] [-] [dash]']


def test_pipelined_requests_each_log_their_own_fields(gateway, tmpdir_path, upstream):
    """Several requests in one write, one with a body between them: the
    input buffer is reused and moves between them, and each line must still
    hold its own request's values (they are copied, not pointed at)."""
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, up=upstream, alog=f'path: {log}, format: "$target $http_x_tag $upstream_http_x_up '
                                               f'$sent_http_x_up"',
                      routes=respond_route('r', '/resp/*') + proxy_route()), workers=1)
    body = b'b' * 200000
    reqs = [b'GET /resp/1 HTTP/1.1\r\nHost: x\r\nX-Tag: one\r\n\r\n',
            b'POST /h?f=X-Up:u2 HTTP/1.1\r\nHost: x\r\nX-Tag: two\r\nContent-Length: %d\r\n\r\n' % len(body) + body,
            b'GET /resp/3 HTTP/1.1\r\nHost: x\r\nX-Tag: ' + b'3' * 900 + b'\r\n\r\n',
            b'GET /h?f=X-Up:u4&f=X-Up:v4 HTTP/1.1\r\nHost: x\r\nX-Tag: four\r\nConnection: close\r\n\r\n']
    out = raw(port, b''.join(reqs), timeout=10)
    assert out.count(b'HTTP/1.1 200') == 4, out[:300]
    got = wait_lines(log, 4)
    assert got == ['/resp/1 one - -', '/h?f=X-Up:u2 two u2 u2', '/resp/3 ' + '3' * 900 + ' - -',
                   '/h?f=X-Up:u4&f=X-Up:v4 four u4, v4 u4, v4'], got


def test_sent_fields_are_what_the_client_got_after_the_filters(gateway, tmpdir_path, upstream):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    filt = ', filters: { response-headers: { set: { x-set: "by-filter" }, remove: [x-up] } }'
    gateway(gw_config(port, up=upstream, alog=f'path: {log}, format: "$upstream_http_x_up|$sent_http_x_up|'
                                               f'$sent_http_x_set|$sent_http_content_length|$sent_http_server"',
                      routes=proxy_route(extra=filt)), workers=1)
    st, hdrs, _ = request(port, 'GET', '/h?f=X-Up:from-up')
    assert st == 200 and 'x-up' not in hdrs and hdrs['x-set'] == 'by-filter'
    assert wait_lines(log, 1) == ['from-up|-|by-filter|5|-']  # 'up /h'; no Server of ours on a proxied answer


def test_a_respond_route_logs_its_sent_fields(gateway, tmpdir_path):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    routes = '  - { name: r, match: { paths: [/r] }, respond: { status: 201, body: "x", headers: { x-r: rr } } }\n'
    gateway(gw_config(port, alog=f'path: {log}, format: "$status $sent_http_x_r $sent_http_content_type '
                                 f'$sent_http_connection"', routes=routes), workers=1)
    st, hdrs, body = request(port, 'GET', '/r')
    assert (st, hdrs['x-r'], body) == (201, 'rr', b'x')
    out = raw(port, b'GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 201') and b'\r\nConnection: close\r\n' in out
    assert wait_lines(log, 2) == ['201 rr text/plain -', '201 rr text/plain close']


def test_header_values_are_escaped_and_cut(gateway, tmpdir_path):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    jlog = os.path.join(tmpdir_path, 'j.log')
    gateway(gw_config(port, alog=f'path: {log}, format: "[$http_x_v]"', routes=respond_route('r', '/*')), workers=1)
    raw(port, b'GET /1 HTTP/1.1\r\nHost: x\r\nX-V: a"b\\c\tt\xffz\r\nConnection: close\r\n\r\n')
    raw(port, b'GET /2 HTTP/1.1\r\nHost: x\r\nX-V: ' + b'v' * 5000 + b'\r\nConnection: close\r\n\r\n')
    raw(port, b'GET /3 HTTP/1.1\r\nHost: x\r\nX-V: ' + b'"' * 3000 + b'\r\nConnection: close\r\n\r\n')
    got = wait_lines(log, 3)
    assert got[0] == '[a\\x22b\\x5cc\\x09t\\xffz]'
    assert got[1] == '[' + 'v' * 1024 + ']'
    assert got[2].startswith('[\\x22') and len(got[2]) <= 2048 + 8 and len(got[2]) >= 2000
    # the same in JSON: valid JSON and UTF-8, whatever the bytes
    port2 = free_port()
    gateway(gw_config(port2, alog=f'path: {jlog}, format: json, fields: [http_x_v, status]',
                      routes=respond_route('r', '/*')), workers=1)
    raw(port2, b'GET /1 HTTP/1.1\r\nHost: x\r\nX-V: a"b\\c\tt\xffz\r\nConnection: close\r\n\r\n')
    raw(port2, b'GET /2 HTTP/1.1\r\nHost: x\r\nX-V: ' + b'\x80' * 3000 + b'\r\nConnection: close\r\n\r\n')
    wait_lines(jlog, 2)
    entries = [json.loads(ln.encode('latin-1').decode('utf-8')) for ln in lines(jlog)]
    assert entries[0] == {'http_x_v': 'a"b\\c\tt\xffz', 'status': 200}
    assert entries[1]['status'] == 200 and set(entries[1]['http_x_v']) == {'\x80'}


def test_credentials_in_header_fields_are_masked(gateway, tmpdir_path, upstream):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, up=upstream, alog=f'path: {log}, format: "$http_authorization|$http_cookie|'
                                               f'$http_x_api_key|$http_proxy_authorization|'
                                               f'$upstream_http_set_cookie|$sent_http_x_auth_token"',
                      routes=proxy_route()), workers=1)
    st, _, _ = request(port, 'GET', '/h?f=Set-Cookie:sid%3Dsecret1%3B%20Path%3D/&f=X-Auth-Token:secret2',
                       headers={'Authorization': 'Bearer secret3', 'Cookie': 'a=secret4; b=secret5',
                                'X-Api-Key': 'secret6', 'Proxy-Authorization': 'secret7'})
    assert st == 200
    (line,) = wait_lines(log, 1)
    assert 'secret' not in line, line
    assert line == 'Bearer ***|a=***; b=***|***|***|sid=***; Path=***|***'


def test_http2_streams_log_their_fields(gateway, tmpdir_path, upstream):
    """Several streams on one connection, each with its own values; what
    HTTP/2 does not carry (Connection) is not among the fields sent."""
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, up=upstream, listener=', http2: true',
                      alog=f'path: {log}, format: "$protocol $target $http_x_tag $sent_http_x_up '
                           f'$sent_http_connection $upstream_http_x_up"',
                      routes=respond_route('r', '/resp') + proxy_route()), workers=1)
    c = H2(port)
    c.request(1, '/h?f=X-Up:s1', extra=[('x-tag', 'one')])
    c.request(3, '/resp', extra=[('x-tag', 'two'), ('x-tag', 'three')])
    c.request(5, '/h?f=X-Up:s5', extra=[('x-tag', 'five')])
    done = set()

    def all_ended(f):
        for sid in (1, 3, 5):
            if ended(sid)(f):
                done.add(sid)
        return len(done) == 3
    got = c.frames(all_ended)
    assert [response(got, sid)[0][':status'] for sid in (1, 3, 5)] == ['200'] * 3
    wait_for(lambda: len(lines(log)) >= 3, what='three lines')
    time.sleep(0.2)
    assert sorted(lines(log)) == sorted(['HTTP/2.0 /h?f=X-Up:s1 one s1 - s1', 'HTTP/2.0 /resp two, three - - -',
                                         'HTTP/2.0 /h?f=X-Up:s5 five s5 - s5'])
    # curl, as a real client: the same
    r = subprocess.run(['curl', '-s', '--http2-prior-knowledge', '-H', 'X-Tag: curl',
                        f'http://127.0.0.1:{port}/h?f=X-Up:c'], capture_output=True, timeout=10)
    assert r.stdout == b'up /h'
    assert wait_lines(log, 4)[-1] == 'HTTP/2.0 /h?f=X-Up:c curl c - c'


def test_a_client_that_leaves_is_logged_with_its_fields(gateway, tmpdir_path, upstream):
    """The client closes while the upstream takes its time: its line (499,
    or 200 when the answer was written before the close was seen) still has
    the request's fields, copied before its buffer went."""
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, up=upstream, alog=f'path: {log}, format: "$status $completion $http_x_tag '
                                               f'$upstream_http_x_up $sent_http_x_up"',
                      routes=proxy_route()), workers=1)
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'GET /slow?ms=500&f=X-Up:late HTTP/1.1\r\nHost: x\r\nX-Tag: gone\r\n\r\n')
    time.sleep(0.1)
    s.close()
    assert wait_lines(log, 1)[0] in ('499 client_gone gone - -', '200 ok gone late late')


def test_many_large_header_variables_make_whole_json_lines(gateway, tmpdir_path):
    """Forty header variables of 3,000 escaped-to-six-bytes values each:
    every line is whole JSON, each value cut at its own limit."""
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    names = [f'http_x_f{i}' for i in range(40)]
    gateway(gw_config(port, alog=f'path: {log}, format: json, fields: [{", ".join(names)}, status]',
                      routes=respond_route('r', '/*')), workers=1)
    head = b'GET /x HTTP/1.1\r\nHost: x\r\n' + b''.join(b'X-F%d: %s\r\n' % (i, b'\x80' * 700)
                                                      for i in range(40))
    for _ in range(3):
        out = raw(port, head + b'Connection: close\r\n\r\n')
        assert out.startswith(b'HTTP/1.1 200')
    for ln in wait_lines(log, 3):
        e = json.loads(ln.encode('latin-1').decode('utf-8'))
        assert e['status'] == 200 and all(e[n] == '\x80' * 340 or 300 <= len(e[n]) <= 700 for n in names), ln[:200]


# ---- 3. $consumer, $cache_status, $trace_id, upstream times ----

def test_cache_status_says_miss_hit_bypass_or_nothing(gateway, tmpdir_path, upstream):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    extra = 'caches: [{ name: default, memory: 1MiB }]\n'
    routes = (proxy_route('cached', '/c/*', extra=', filters: { cache: { default_ttl: 60s } }') +
              proxy_route('plain', '/p/*'))
    gateway(gw_config(port, up=upstream, alog=f'path: {log}, format: "$request_id $target $cache_status '
                                               f'$sent_http_x_up"',
                      extra=extra, routes=routes), workers=1)
    c1 = '/c/1?f=Cache-Control:max-age%3D60&f=X-Up:u'
    for path, method, headers in [(c1, 'GET', {}), (c1, 'GET', {}), (c1, 'GET', {'Cache-Control': 'no-cache'}),
                                  (c1, 'POST', {}), ('/p/1', 'GET', {})]:
        assert request(port, method, path, headers=headers)[0] == 200
    got = [ln.split(' ', 1)[1] for ln in wait_lines(log, 5)]
    # the hit's fields are the stored response's, as the cache sent them
    assert got == [c1 + ' miss u', c1 + ' hit u', c1 + ' miss u', c1 + ' - u', '/p/1 - -']


def test_cache_status_says_revalidated_and_stale(gateway, tmpdir_path, upstream):
    """A stored response that must be revalidated: a 304 answers the
    client from the store (revalidated); an upstream that fails while
    stale-if-error allows it: the stale one is served (stale)."""
    calls = []

    def revalidate(req):
        if req.headers.get('if-none-match') == '"v1"':
            return 304, {'ETag': '"v1"', 'Cache-Control': 'max-age=0'}, b''
        return 200, {'ETag': '"v1"', 'Cache-Control': 'max-age=0'}, b'body'

    def failing(req):
        calls.append(req)
        if len(calls) == 1:
            return 200, {'ETag': '"s1"', 'Cache-Control': 'max-age=0, stale-if-error=60'}, b'body'
        return 503, {}, b'down'
    upstream.handler('/c/r', revalidate)
    upstream.handler('/c/s', failing)
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, up=upstream, alog=f'path: {log}, format: "$target $status $cache_status"',
                      extra='caches: [{ name: default, memory: 1MiB }]\n',
                      routes=proxy_route('cached', '/c/*', extra=', filters: { cache: {} }')), workers=1)
    for path in ['/c/r', '/c/r', '/c/s', '/c/s']:
        st, _, body = request(port, 'GET', path)
        assert (st, body) == (200, b'body'), (path, st, body)
    assert wait_lines(log, 4) == ['/c/r 200 miss', '/c/r 200 revalidated', '/c/s 200 miss', '/c/s 200 stale']
    assert len(calls) == 2


def test_trace_id_is_a_dash_when_not_traced(gateway, tmpdir_path):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    jlog = os.path.join(tmpdir_path, 'j.log')
    gateway(gw_config(port, alog=f'path: {log}, format: "[$trace_id] [$consumer]"', routes=respond_route('r', '/*')),
            workers=1)
    request(port, 'GET', '/x')
    assert wait_lines(log, 1) == ['[-] [-]']
    port2 = free_port()
    gateway(gw_config(port2, alog=f'path: {jlog}, format: json, fields: [trace_id, consumer, cache_status]',
                      routes=respond_route('r', '/*')), workers=1)
    request(port2, 'GET', '/x')
    assert json.loads(wait_lines(jlog, 1)[0]) == {'trace_id': '', 'consumer': '', 'cache_status': ''}


def test_upstream_connect_and_header_times(gateway, tmpdir_path, upstream):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    dead = free_port()
    routes = (respond_route('r', '/resp') + proxy_route('down', '/down').replace('upstream: up', 'upstream: dead') +
              proxy_route())
    cfg = gw_config(port, up=upstream, alog=f'path: {log}, format: "$target $status $upstream_connect_time '
                                            f'$upstream_header_time $upstream_time"', routes=routes)
    cfg = cfg.replace('upstreams: [', f'upstreams: [{{ name: dead, targets: ["127.0.0.1:{dead}"], retries: 0 }}, ')
    gateway(cfg, workers=1)
    assert keepalive(port, [('/slow?ms=300', None), ('/h', None), ('/resp', None)]) == [200, 200, 200]
    assert request(port, 'GET', '/down')[0] == 502
    got = wait_lines(log, 4)
    t = '[0-9]+\\.[0-9]{3}'
    m = re.fullmatch(f'/slow\\?ms=300 200 ({t}) ({t}) ({t})', got[0])
    assert m and float(m.group(2)) >= 0.29 and float(m.group(1)) <= float(m.group(2)) <= float(m.group(3)), got
    m = re.fullmatch(f'/h 200 0\\.000 ({t}) ({t})', got[1])  # the kept-alive connection
    assert m, got
    assert got[2] == '/resp 200 - - -'
    m = re.fullmatch(f'/down 502 - - ({t})', got[3])  # refused: no connection, no head
    assert m, got


# ---- 4. the JSON format's fields ----

def test_json_fields_in_order(gateway, tmpdir_path, upstream):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, up=upstream, alog=f'path: {log}, format: json, fields: [time, status, method, '
                                               f'$target, http_x_tag, sent_http_x_up, upstream_http_x_up, '
                                               f'upstream_header_time, param_id, route]',
                      routes=proxy_route(path='/items/:id')), workers=1)
    request(port, 'GET', '/items/7?f=X-Up:a', headers={'X-Tag': 't'})
    request(port, 'GET', '/nothing')
    got = wait_lines(log, 2)
    e = json.loads(got[0])
    assert list(e) == ['time', 'status', 'method', 'target', 'http_x_tag', 'sent_http_x_up', 'upstream_http_x_up',
                       'upstream_header_time', 'param_id', 'route']
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', e['time'])
    assert (e['status'], e['method'], e['target'], e['http_x_tag'], e['sent_http_x_up'], e['upstream_http_x_up'],
            e['param_id'], e['route']) == (200, 'GET', '/items/7?f=X-Up:a', 't', 'a', 'a', '7', 'proxied')
    assert isinstance(e['upstream_header_time'], float)
    e = json.loads(got[1])
    assert (e['status'], e['http_x_tag'], e['upstream_header_time'], e['param_id'], e['route']) == (404, '', None, '', '')


@pytest.mark.parametrize('alog, message, at', [
    ('format: json, fields: [status, stauts]', 'unknown access log field "stauts"', 'stauts'),
    ('format: json, fields: [status, "http-x"]', 'unknown access log field "http-x"', '"http-x"'),
    ('format: json, fields: [status, http_]', 'unknown access log field "http_"', 'http_'),
    ('format: json, fields: [status, status]', 'access log field "status" is listed twice', 'status]'),
    ('format: combined, fields: [status]', 'fields go with format: json', '[status]'),
    ('format: "$status $sent_http_"', 'unknown variable $sent_http_', '"$status'),
    # a line is one line: a literal with a line feed, a carriage return or
    # an escape byte would write two, or hide what the terminal shows
    ('format: "$status\\nsecond line $method"', 'control byte (0x0a) at offset 7', '"$status'),
    ('format: "$status \\r\\x01 $method"', 'control byte (0x0d)', '"$status'),
    ('format: "[\\e] $status"', 'control byte (0x1b)', '"['),
    ('format: "$Status"', 'unknown variable $Status in the access log format (variables are lower case)', '"$'),
])
def test_bad_json_fields_are_errors_at_their_place(tmpdir_path, alog, message, at):
    cfg = gw_config(free_port(), alog=f'path: /dev/null, {alog}', routes=respond_route('r', '/r'))
    path, err = check_fails(tmpdir_path, cfg)
    row = next(i for i, ln in enumerate(cfg.splitlines(), 1) if 'access_log' in ln)
    col = cfg.splitlines()[row - 1].index(at) + 1
    assert f'{path}:{row}:{col}: error: ' in err and message in err, (err, row, col)


# ---- 5. requests answered 400 ----

@pytest.mark.parametrize('req, want', [
    (b'GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /a\\x01b HTTP/1.1 400'),
    (b'GET /ok HTTP/1.1\r\nHost: x\r\nBad Field: 1\r\n\r\n', 'GET /ok HTTP/1.1 400'),
    (b'GET /ok HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n', 'GET /ok HTTP/1.1 400'),
    (b'GET /v HTTP/2.0\r\n\r\n', 'GET /v - 505'),
    (b'G\x01T /x HTTP/1.1\r\n\r\n', '- - - 400'),
    (b'GET /' + b'a' * 9000 + b' HTTP/1.1\r\n\r\n', 're:GET /a{2000,2047} HTTP/1.1 414'),  # cut
    (b'GET /x\x7f\x1b[31m HTTP/1.1\r\n\r\n', 'GET /x\\x7f\\x1b[31m HTTP/1.1 400'),
])
def test_a_malformed_request_logs_its_method_and_target(gateway, tmpdir_path, req, want):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, alog=f'path: {log}, format: "$method $target $protocol $status"',
                      routes=respond_route('r', '/*')), workers=1)
    out = raw(port, req)
    assert out.startswith(b'HTTP/1.1 ' + want.rsplit(' ', 1)[1].encode())
    (got,) = wait_lines(log, 1)
    assert re.fullmatch(want[3:], got) if want.startswith('re:') else got == want, got


def test_a_malformed_pipelined_request_after_good_ones(gateway, tmpdir_path):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    jlog = os.path.join(tmpdir_path, 'j.log')
    gateway(gw_config(port, alog=f'path: {log}, format: "$method $target $status $http_x_t"',
                      routes=respond_route('r', '/*')), workers=1)
    out = raw(port, b'GET /1 HTTP/1.1\r\nHost: x\r\nX-T: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nX-T: b\r\n\r\n'
                    b'GET /3\x00 HTTP/1.1\r\nHost: x\r\nX-T: c\r\n\r\n')
    assert out.count(b'HTTP/1.1 200') == 2 and b'HTTP/1.1 400' in out
    assert wait_lines(log, 3) == ['GET /1 200 a', 'GET /2 200 b', 'GET /3\\x00 400 -']
    port2 = free_port()
    gateway(gw_config(port2, alog=f'path: {jlog}, format: json, fields: [method, target, status]',
                      routes=respond_route('r', '/*')), workers=1)
    raw(port2, b'PUT /a\x1b\x00"b HTTP/1.1\r\n\r\n')
    assert json.loads(wait_lines(jlog, 1)[0]) == {'method': 'PUT', 'target': '/a\x1b\x00"b', 'status': 400}


def test_an_http2_431_logs_method_and_target(gateway, tmpdir_path):
    port, log = free_port(), os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, listener=', http2: true, max_header_size: 8k',
                      alog=f'path: {log}, format: "$protocol $method $target $status $http_x_big"',
                      routes=respond_route('r', '/*')), workers=1)
    c = H2(port)
    c.request(1, '/too%09big', extra=[('x-big', 'a' * 12000)])
    c.request(3, '/ok', extra=[('x-big', 'small')])
    got = c.frames(ended(3))
    assert response(got, 1)[0][':status'] == '431'
    wait_lines(log, 2)
    assert sorted(lines(log)) == ['HTTP/2.0 GET /ok 200 small', 'HTTP/2.0 GET /too%09big 431 -']


# ---- 6. the admin API's log ----

def test_admin_requests_go_to_their_own_log_never_to_the_traffic_one(gateway, tmpdir_path):
    port, admin = free_port(), free_port()
    log, alog = os.path.join(tmpdir_path, 'a.log'), os.path.join(tmpdir_path, 'admin.log')
    g = gateway(gw_config(port, alog=f'path: {log}, format: "$method $target $status", sample: 0',
                          admin=f'admin: {{ address: 127.0.0.1:{admin}, access_log: {alog} }}\n',
                          routes=respond_route('r', '/*')), workers=2)
    for path in ['/status', '/healthz', '/nope']:
        request(admin, 'GET', path)
    raw(admin, b'GET /x\x01 HTTP/1.1\r\n\r\n')
    request(port, 'GET', '/a', headers={'Host': 'x'})
    got = wait_lines(alog, 4)
    assert got == ['GET /status 200', 'GET /healthz 200', 'GET /nope 404', 'GET /x\\x01 400'], got
    time.sleep(0.3)
    assert lines(log) == []  # sample: 0 and no error: nothing, and nothing of the admin API's
    # SIGUSR1 reopens it too
    os.rename(alog, alog + '.1')
    os.kill(g.proc.pid, signal.SIGUSR1)
    wait_for(lambda: os.path.exists(alog), what='the admin log reopened')

    def logged_anew():
        # each worker reopens on the master's signal: a line of one that has
        # not yet goes to the renamed file, so ask until the new one has one
        request(admin, 'GET', '/healthz')
        end = time.time() + 2.5  # past the 1 s flush
        while time.time() < end and not lines(alog):
            time.sleep(0.05)
        return lines(alog)
    got = wait_for(logged_anew, timeout=20, what='a line in the reopened admin log')
    assert set(got) == {'GET /healthz 200'}, got


def test_without_admin_access_log_admin_requests_are_logged_nowhere(gateway, tmpdir_path):
    port, admin = free_port(), free_port()
    log = os.path.join(tmpdir_path, 'a.log')
    gateway(gw_config(port, alog=f'path: {log}, format: "$target $status"',
                      admin=f'admin: {{ address: 127.0.0.1:{admin} }}\n', routes=respond_route('r', '/*')), workers=1)
    request(admin, 'GET', '/status')
    request(admin, 'GET', '/nope')
    request(port, 'GET', '/t')
    assert wait_lines(log, 1) == ['/t 200']
    time.sleep(0.3)
    assert lines(log) == ['/t 200']


def test_admin_access_log_false_and_bad_values(tmpdir_path):
    base = gw_config(free_port(), alog='path: /dev/null', routes=respond_route('r', '/r'),
                     admin='admin: { address: 127.0.0.1:1, access_log: ADMINLOG }\n')
    p = os.path.join(tmpdir_path, 'ok.yaml')
    with open(p, 'w') as f:
        f.write(base.replace('ADMINLOG', 'false'))
    r = run_portico('-t', '-c', p)
    assert r.returncode == 0, r.stderr
    path, err = check_fails(tmpdir_path, base.replace('ADMINLOG', 'true'))
    assert 'expected the path of the admin API' in err


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to start as root and change users')
def test_the_admin_log_is_made_for_the_workers_user_and_rotated(gateway, tmpdir_path):
    """Started as root with user: nobody, the workers cannot create a file
    in a directory of root's: the master makes the admin API's log for
    them, at start and at each SIGUSR1, as it does the traffic's."""
    import pwd
    d = os.path.join(tmpdir_path, 'logs')
    os.mkdir(d, 0o755)
    port, admin = free_port(), free_port()
    alog = os.path.join(d, 'admin.log')
    g = gateway(gw_config(port, alog=f'path: {d}/access.log, format: "$target $status"',
                          admin=f'admin: {{ address: 127.0.0.1:{admin}, access_log: {alog} }}\n',
                          extra='user: nobody\n', routes=respond_route('r', '/*')), workers=2)
    nobody = pwd.getpwnam('nobody').pw_uid
    assert os.stat(alog).st_uid == nobody
    request(admin, 'GET', '/healthz')
    assert wait_lines(alog, 1) == ['/healthz 200']
    os.rename(alog, alog + '.1')
    os.kill(g.proc.pid, signal.SIGUSR1)
    wait_for(lambda: os.path.exists(alog) and os.stat(alog).st_uid == nobody, what='the new admin log')
    deadline = time.time() + 10
    while time.time() < deadline and '/status 200' not in ''.join(lines(alog)):
        request(admin, 'GET', '/status')  # a worker may reopen after the first of these
        time.sleep(0.1)
    assert '/status 200' in lines(alog) and lines(alog + '.1')[0] == '/healthz 200'


def test_an_admin_request_whose_body_is_cut_short_is_logged(gateway, tmpdir_path):
    """The admin API starts a request once its body is in: a client that
    sent the head and part of the body, then left, was in no log at all
    (the traffic listener logs it 499)."""
    port, admin = free_port(), free_port()
    alog = os.path.join(tmpdir_path, 'admin.log')
    gateway(gw_config(port, admin=f'admin: {{ address: 127.0.0.1:{admin}, access_log: {alog} }}\n',
                      routes=respond_route('r', '/*')), workers=1)
    s = socket.create_connection(('127.0.0.1', admin))
    s.sendall(b'POST /upstreams/x/targets HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc')
    time.sleep(0.2)
    s.close()
    assert request(admin, 'GET', '/healthz')[0] == 200
    got = wait_lines(alog, 2)
    assert got[0].startswith('127.0.0.1 - - [') and '"POST /upstreams/x/targets HTTP/1.1" 499' in got[0], got
    assert '"GET /healthz HTTP/1.1" 200' in got[1], got
