"""The process model: respawn, graceful stop, signals through the pid file,
log reopening, systemd notifications, privileges and crash back-off."""
import os
import pwd
import re
import signal
import socket
import time

import pytest

from conftest import basic_config, free_port, http_get, run_portico, wait_for


def big_route(size):
    return f'''
    - name: hello
      match: {{ paths: [/hello] }}
      respond: {{ body: "hello" }}
    - name: big
      match: {{ paths: [/big] }}
      respond: {{ body: "{'x' * size}" }}
    '''


def test_killed_worker_is_respawned_and_others_unaffected(gateway):
    port = free_port()
    g = gateway(basic_config(port), workers=2)
    before = g.worker_pids()
    assert len(before) == 2
    victim, survivor = before
    os.kill(victim, signal.SIGKILL)
    g.wait_log(rf'worker \d \(pid {victim}\) killed by signal 9 \(Killed\); respawning')
    wait_for(lambda: len(g.worker_pids()) == 2 and victim not in g.worker_pids(), what='a new worker')
    after = g.worker_pids()
    assert survivor in after  # the other worker was left alone
    for _ in range(20):
        assert http_get(port, '/hello')[0] == 200


def test_quit_lets_an_in_flight_response_finish(gateway):
    port = free_port()
    size = 4 * 1024 * 1024
    g = gateway(basic_config(port, extra='shutdown_timeout: 20s', routes=big_route(size)), workers=1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(20)
    s.connect(('127.0.0.1', port))
    s.sendall(b'GET /big HTTP/1.1\r\nHost: a\r\n\r\n')
    got = s.recv(4096)
    os.kill(g.proc.pid, signal.SIGQUIT)  # while most of the body is unsent
    g.wait_log('graceful stop')
    time.sleep(0.3)
    assert g.proc.poll() is None  # still finishing
    total = [got]
    while True:
        time.sleep(0.0005)
        b = s.recv(65536)
        if not b:
            break
        total.append(b)
    data = b''.join(total)
    head, _, body = data.partition(b'\r\n\r\n')
    assert len(body) == size and body == b'x' * size
    assert g.proc.wait(10) == 0
    # new connections are refused once it stopped
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(('127.0.0.1', port), timeout=2)


def test_term_is_a_fast_stop(gateway):
    port = free_port()
    g = gateway(basic_config(port))
    s = socket.create_connection(('127.0.0.1', port))  # an idle client does not hold it up
    t0 = time.time()
    assert g.stop(signal.SIGTERM) == 0
    assert time.time() - t0 < 3
    assert not os.path.exists(g.pidfile)
    s.close()


def test_signals_through_the_pid_file(gateway):
    port = free_port()
    g = gateway(basic_config(port))
    assert int(open(g.pidfile).read()) == g.proc.pid
    g.write(basic_config(port, routes='''
    - name: hello
      match: { paths: [/hello] }
      respond: { body: "reloaded" }
    '''))
    r = run_portico('-s', 'reload', '-p', g.pidfile)
    assert r.returncode == 0, r.stderr
    g.wait_log('reload ok')
    assert http_get(port, '/hello')[2] == b'reloaded'
    r = run_portico('-s', 'stop', '-p', g.pidfile)
    assert r.returncode == 0
    assert g.proc.wait(10) == 0
    assert not os.path.exists(g.pidfile)


def test_pid_file_from_the_configuration(gateway, tmpdir_path):
    port = free_port()
    pidfile = os.path.join(tmpdir_path, 'from-config.pid')
    g = gateway(basic_config(port, extra=f'pid_file: {pidfile}'), start=False)
    g.pidfile = pidfile
    g.extra_args = []
    # start without -p: the configuration names the pid file
    import subprocess
    from conftest import BIN
    log = open(g.logfile, 'a')
    g.proc = subprocess.Popen([BIN, '-f', '-c', g.conf, '-w', '1'], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    log.close()
    g.wait_log('ready: generation 1')
    assert int(open(pidfile).read()) == g.proc.pid
    r = run_portico('-s', 'quit', '-c', g.conf)  # -s finds it through -c
    assert r.returncode == 0, r.stderr
    assert g.proc.wait(10) == 0


def test_usr1_reopens_logs_after_a_rename(gateway, tmpdir_path):
    port = free_port()
    elog = os.path.join(tmpdir_path, 'err.log')
    alog = os.path.join(tmpdir_path, 'access.log')
    g = gateway(basic_config(port, extra=f'error_log: {{ path: {elog} }}\n'
                                         f'access_log: {{ path: {alog}, format: common, flush: 100ms }}'),
                start=False)
    g.logfile = elog
    g.start()
    http_get(port, '/hello')
    wait_for(lambda: os.path.exists(alog) and 'GET /hello' in open(alog).read(), what='first access line')
    os.rename(alog, alog + '.1')
    os.rename(elog, elog + '.1')
    r = run_portico('-s', 'reopen', '-p', g.pidfile)
    assert r.returncode == 0
    wait_for(lambda: os.path.exists(elog) and 'logs reopened' in open(elog).read(), what='new error log')
    time.sleep(0.3)  # workers reopen on their own signal
    http_get(port, '/hello?after')
    wait_for(lambda: os.path.exists(alog) and 'GET /hello?after' in open(alog).read(), what='new access log')
    assert 'GET /hello?after' not in open(alog + '.1').read()
    assert 'GET /hello ' in open(alog + '.1').read()


def test_sd_notify_messages(gateway, tmpdir_path):
    path = os.path.join(tmpdir_path, 'notify.sock')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    port = free_port()
    try:
        g = gateway(basic_config(port), env={'NOTIFY_SOCKET': path})

        def next_msg():
            return dict(l.split('=', 1) for l in sock.recv(4096).decode().splitlines())

        m = next_msg()
        assert m['READY'] == '1' and m['MAINPID'] == str(g.proc.pid) and m['STATUS'].startswith('serving')
        os.kill(g.proc.pid, signal.SIGHUP)
        m = next_msg()
        assert m['RELOADING'] == '1' and int(m['MONOTONIC_USEC']) > 0
        usec = int(m['MONOTONIC_USEC'])
        assert abs(usec / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)) < 10
        m = next_msg()
        assert m['READY'] == '1' and 'generation 2' in m['STATUS']
        # a failed reload still ends with READY=1, and says why
        g.write('listeners: [{ address: nowhere }]\n')
        os.kill(g.proc.pid, signal.SIGHUP)
        assert next_msg()['RELOADING'] == '1'
        m = next_msg()
        assert m['READY'] == '1' and 'reload failed' in m['STATUS']
        os.kill(g.proc.pid, signal.SIGQUIT)
        m = next_msg()
        assert m['STOPPING'] == '1'
        assert g.proc.wait(10) == 0
    finally:
        sock.close()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root to change users')


@needs_root
def test_workers_drop_privileges(gateway):
    port = free_port()
    nobody = pwd.getpwnam('nobody')
    g = gateway(basic_config(port, extra='user: nobody'))
    for pid in g.worker_pids():
        status = open(f'/proc/{pid}/status').read()
        uids = re.search(r'^Uid:\s+(\d+)\s+(\d+)\s+(\d+)', status, re.M).groups()
        assert set(int(u) for u in uids) == {nobody.pw_uid}
    assert os.stat(f'/proc/{g.proc.pid}').st_uid == 0  # the master keeps root to bind on reload
    assert http_get(port, '/hello')[0] == 200


@needs_root
def test_a_worker_that_keeps_dying_is_respawned_with_back_off(gateway, tmpdir_path):
    # The access log is in a directory the workers' user cannot enter, so
    # every worker dies at start; the master must not spin.
    private = os.path.join(tmpdir_path, 'private')
    os.mkdir(private, 0o700)
    port = free_port()
    g = gateway(basic_config(port, extra=f'user: nobody\naccess_log: {{ path: {private}/access.log }}'),
                workers=1, start=False)
    g.start(wait=False)
    g.wait_log(r'respawning in 800 ms', timeout=15)
    time.sleep(1.0)
    log = g.log()
    delays = [int(x) for x in re.findall(r'respawning in (\d+) ms', log)]
    assert delays[:4] == [100, 200, 400, 800], delays
    assert len(delays) < 10  # a hot loop would have made hundreds
    assert 'cannot open the access log' in log
    assert g.proc.poll() is None  # the master itself stays up


def test_a_reload_lets_a_proxied_request_in_flight_finish(gateway, backends, tmp_path):
    """The worker drains while a request waits for its upstream: the
    request's head deadline (header: 1s) must not be armed again then; it
    was, and the client got 408 with a log line of nothing."""
    b = backends(delay_ms=2500)
    port = free_port()
    log = tmp_path / 'access.log'
    g = gateway(f'''listeners: [{{ name: main, address: "127.0.0.1:{port}", timeouts: {{ header: 1s }} }}]
access_log: {{ path: {log}, format: json, flush: 10ms }}
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes: [{{ name: slow, match: {{ paths: ["/*"] }}, upstream: up }}]
''', workers=1)
    s = socket.create_connection(('127.0.0.1', port))
    s.settimeout(15)
    s.sendall(b'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n')
    time.sleep(0.5)
    g.reload()
    data = b''
    while b'\r\n\r\n' not in data or not data.endswith(b'}') and b'content-length' not in data.lower():
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b'HTTP/1.1 200'), data[:200]
    import json
    lines = wait_for(lambda: [json.loads(l) for l in log.read_text().splitlines()] or None, what='a log line')
    assert [(l['status'], l['route'], l['target']) for l in lines] == [(200, 'slow', '/slow')], lines
