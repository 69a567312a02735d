"""Reload: a changed file takes effect, a broken one changes nothing, and
twenty reloads under continuous load fail no request."""
import http.client
import os
import socket
import threading
import time

from conftest import basic_config, free_port, http_get, wait_for


def routes(body, extra=''):
    return f'''
    - name: hello
      match: {{ paths: [/hello] }}
      respond: {{ body: "{body}" }}
    {extra}
    '''


def test_hup_applies_a_changed_route(gateway):
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin_port=admin, routes=routes('one')))
    assert http_get(port, '/hello')[2] == b'one'
    assert http_get(port, '/new')[0] == 404
    old_pids = g.worker_pids()
    g.write(basic_config(port, admin_port=admin, routes=routes('two', '''
    - name: new
      match: { paths: [/new] }
      respond: { status: 202 }
    ''')))
    g.reload()
    assert http_get(port, '/hello')[2] == b'two'
    assert http_get(port, '/new')[0] == 202
    assert 'reload: generation 2 (+1 route, ~1 route)' in g.log()
    wait_for(lambda: not set(old_pids) & set(g.worker_pids()), what='old workers to exit')
    import json
    st = json.loads(http_get(admin, '/status')[2])
    assert st['generation'] == 2 and st['reloads'] == 1
    assert all(w['generation'] == 2 for w in st['workers'])


def test_hup_with_a_broken_file_keeps_the_old_configuration(gateway):
    port = free_port()
    g = gateway(basic_config(port, routes=routes('stable')))
    pids = g.worker_pids()
    g.write('listeners:\n  - address: 127.0.0.1:%d\nroutes:\n  - respond: { status: 999 }\n  - { upstream: nope }\n'
            'bogus: true\n' % port)
    g.reload(ok=False)
    log = g.log()
    assert f'{g.conf}:4:24: error: routes[0].respond.status: 999 is out of range 200-599' in log
    assert f'{g.conf}:5:17: error: routes[1].upstream: unknown upstream "nope" (no upstreams are defined)' in log
    assert f'{g.conf}:6:1: error: unknown key "bogus"' in log
    assert 'reload failed: 3 errors' in log and 'still serving generation 1' in log
    assert http_get(port, '/hello')[2] == b'stable'
    assert g.worker_pids() == pids  # nothing was restarted


def test_reload_with_a_missing_file_keeps_serving(gateway):
    port = free_port()
    g = gateway(basic_config(port, routes=routes('still here')))
    os.rename(g.conf, g.conf + '.moved')
    g.reload(ok=False)
    assert 'cannot open: No such file or directory' in g.log()
    assert http_get(port, '/hello')[2] == b'still here'


def test_reload_with_a_busy_port_keeps_serving(gateway):
    port = free_port()
    g = gateway(basic_config(port, routes=routes('kept')))
    busy = socket.socket()
    busy.bind(('127.0.0.1', 0))
    busy.listen(1)
    bport = busy.getsockname()[1]
    try:
        g.write(basic_config(port, routes=routes('new')).replace(
            'listeners:\n', f'listeners:\n  - {{ name: second, address: 127.0.0.1:{bport} }}\n'))
        g.reload(ok=False)
        assert f'listener second: cannot listen on 127.0.0.1:{bport}: address already in use' in g.log()
        assert http_get(port, '/hello')[2] == b'kept'
    finally:
        busy.close()


def test_reload_with_an_unknown_user_keeps_serving(gateway):
    port = free_port()
    g = gateway(basic_config(port, routes=routes('kept')))
    g.write(basic_config(port, extra='user: no-such-user-xyz', routes=routes('new')))
    g.reload(ok=False)
    # checked with the file, as -t does: at the key (issue 12)
    assert f'{g.conf}:4:7: error: user: unknown user "no-such-user-xyz"' in g.log()
    assert f'reload failed: 1 error in {g.conf}' in g.log()
    assert http_get(port, '/hello')[2] == b'kept'


def test_reload_adds_and_removes_listeners(gateway):
    p1, p2 = free_port(), free_port()
    g = gateway(basic_config(p1, routes=routes('x')))
    g.write(basic_config(p1, routes=routes('x')).replace(
        'listeners:\n', f'listeners:\n  - {{ name: second, address: 127.0.0.1:{p2} }}\n'))
    g.reload()
    assert http_get(p2, '/hello')[0] == 200
    g.write(basic_config(p2, routes=routes('x')))
    g.reload()
    assert http_get(p2, '/hello')[0] == 200
    wait_for(lambda: connect_refused(p1), what=f'port {p1} to be closed')


def connect_refused(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_twenty_reloads_under_load_fail_no_request(gateway):
    port = free_port()
    g = gateway(basic_config(port, extra='shutdown_timeout: 10s', routes=routes('v0')), workers=2)
    stop = threading.Event()
    results = {'ok': 0, 'errors': []}
    lock = threading.Lock()

    def new_connections():
        while not stop.is_set():
            try:
                status, _, body = http_get(port, '/hello', timeout=10)
                assert status == 200 and body.startswith(b'v'), (status, body)
                with lock:
                    results['ok'] += 1
            except Exception as e:  # noqa: BLE001 - any failure counts
                with lock:
                    results['errors'].append(f'new: {e!r}')

    def kept_alive():
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        while not stop.is_set():
            try:
                c.request('GET', '/hello')
                r = c.getresponse()
                body = r.read()
                assert r.status == 200 and body.startswith(b'v'), (r.status, body)
                if r.getheader('Connection') == 'close':
                    c.close()  # the old worker said so: reconnect, as clients do
                with lock:
                    results['ok'] += 1
            except Exception as e:  # noqa: BLE001
                with lock:
                    results['errors'].append(f'kept: {e!r}')
                c.close()
        c.close()

    threads = [threading.Thread(target=f) for f in (new_connections, new_connections, kept_alive, kept_alive)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 21):
            time.sleep(0.1)
            g.write(basic_config(port, extra='shutdown_timeout: 10s', routes=routes(f'v{i}')))
            g.reload()
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert results['errors'] == []
    assert results['ok'] > 200, results['ok']
    assert http_get(port, '/hello')[2] == b'v20'
    assert g.count('reload ok') == 20
