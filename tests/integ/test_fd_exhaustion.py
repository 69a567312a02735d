"""Issue 11: a worker out of file descriptors.  accept(2) fails with EMFILE
while the connection stays queued, so a level-triggered listener wakes the
loop again at once: the worker spun at 98% CPU and logged 120,000 lines a
second.  It must pause accepting, log the episode once, and resume."""
import json
import os
import resource
import socket
import subprocess
import time

from conftest import BIN, basic_config, free_port, http_get, proxy_config, read_all, wait_for

LIMIT = 64  # the gateway's RLIMIT_NOFILE, soft and hard

CONFIG_EXTRA_LISTENER = '    timeouts: { header: 60s, idle: 60s }\n'


def cpu_seconds(pid):
    """utime + stime of a process, in seconds, from /proc/<pid>/stat."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    # after "pid (comm)": state is field 3, utime 14 and stime 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def config(port):
    text = basic_config(port)
    # the clients below hold connections that never send a request
    return text.replace(f'    address: 127.0.0.1:{port}\n',
                        f'    address: 127.0.0.1:{port}\n' + CONFIG_EXTRA_LISTENER)


def test_out_of_descriptors_pauses_accepting_and_logs_once(gateway):
    port = free_port()
    g = gateway(config(port), workers=1, rlimit_nofile=LIMIT)
    assert http_get(port, '/hello')[0] == 200
    [worker] = g.worker_pids()
    clients = []
    try:
        for _ in range(3 * LIMIT):  # the kernel queues what the worker cannot accept
            clients.append(socket.create_connection(('127.0.0.1', port), timeout=5))
        g.wait_log(r'accept on main: Too many open files')
        cpu0, t0 = cpu_seconds(worker), time.monotonic()
        time.sleep(3)
        cpu1, t1 = cpu_seconds(worker), time.monotonic()
        share = (cpu1 - cpu0) / (t1 - t0)
        assert share < 0.3, f'the worker used {share:.0%} of a CPU while out of descriptors'
        log = g.log()
        assert len(log.splitlines()) < 30, f'{len(log.splitlines())} log lines:\n{log[-3000:]}'
        # one line for the episode, with the listener, the error and the limit
        assert log.count('accept on main') == 1, log[-3000:]
        assert f'accept on main: Too many open files (RLIMIT_NOFILE {LIMIT}): accepting paused' in log, log
    finally:
        for c in clients:
            c.close()
    # the connections close, the queued ones are accepted (and end at once):
    # accepting works again and the episode's end is logged with its count
    g.wait_log(r'worker 0\[\d+\]: accepting again: \d+ accept failures? for want of descriptors in [\d.]+ s')
    assert wait_for(lambda: http_get(port, '/hello')[0] == 200, what='a request served again')
    assert g.count('accepting again') == 1
    assert g.count('accept on main') == 1
    assert g.proc.poll() is None


def test_the_master_raises_the_soft_limit_to_the_hard_one(gateway):
    port = free_port()
    g = gateway(basic_config(port), workers=1, rlimit_nofile=(100, 1000), extra_args=['-l', 'info'])
    g.wait_log(r'master\[\d+\]: open files limit \(RLIMIT_NOFILE\) raised from 100 to the hard limit, 1000')
    [worker] = g.worker_pids()
    with open(f'/proc/{worker}/limits') as f:
        line = next(x for x in f if x.startswith('Max open files'))
    assert line.split()[3:5] == ['1000', '1000'], line


def run_t(conf, limit):
    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return subprocess.run([BIN, '-t', '-c', conf], capture_output=True, text=True, timeout=30, preexec_fn=lower)


def test_t_warns_when_max_connections_needs_more_than_the_hard_limit(tmpdir_path):
    conf = os.path.join(tmpdir_path, 'p.yaml')
    with open(conf, 'w') as f:
        f.write('listeners:\n'
                '  - name: a\n'
                '    address: 127.0.0.1:1\n'
                '    max_connections: 100\n'
                '  - name: b\n'
                '    address: 127.0.0.1:2\n'
                '    max_connections: 300\n'
                'routes:\n'
                '  - { name: h, match: { paths: [/h] }, respond: { body: x } }\n')
    r = run_t(conf, 256)
    assert r.returncode == 0, r.stderr
    # 100 + 300 client connections, no upstream, 64 more: 464
    assert (f'{conf}:7:22: warning: listeners[1].max_connections: a worker may need 464 file descriptors '
            in r.stderr), r.stderr
    assert 'hard limit RLIMIT_NOFILE of 256' in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith(f'portico: configuration ok: {conf}')
    # within the limit: nothing to say
    r = run_t(conf, 1024)
    assert r.returncode == 0 and r.stderr.strip() == f'portico: configuration ok: {conf}', r.stderr


def test_t_counts_an_upstream_connection_per_client(tmpdir_path):
    conf = os.path.join(tmpdir_path, 'p.yaml')
    with open(conf, 'w') as f:
        f.write('listeners:\n'
                '  - { name: a, address: 127.0.0.1:1, max_connections: 200 }\n'
                'upstreams:\n'
                '  - { name: up, targets: ["127.0.0.1:3", "127.0.0.1:4"], keepalive: { size: 10 } }\n'
                'routes:\n'
                '  - { name: h, match: { paths: ["/*"] }, upstream: up }\n')
    # 200 clients, 200 upstream connections, 2 x 10 idle, 64 more: 484
    r = run_t(conf, 480)
    assert r.returncode == 0, r.stderr
    assert f'{conf}:2:' in r.stderr and 'a worker may need 484 file descriptors' in r.stderr, r.stderr
    assert run_t(conf, 484).stderr.strip() == f'portico: configuration ok: {conf}'


def test_no_descriptor_for_an_upstream_is_a_503_and_not_the_targets_fault(gateway, backends):
    """Accepted clients take every descriptor; one of them sends a request:
    the worker has no socket for the upstream.  That says nothing of the
    targets: 503 at once, no retry, no passive-health failure, one log line
    a second at most."""
    b = backends()
    port, admin = free_port(), free_port()
    g = gateway(proxy_config(port, [b.port], upstream='''
        healthchecks: { passive: { unhealthy: { tcp_failures: 1 }, cooldown: 60s } }
        retries: 3
        keepalive: { size: 0 }
        ''', extra=f'admin: {{ address: 127.0.0.1:{admin} }}').replace(
        f'    address: 127.0.0.1:{port}\n', f'    address: 127.0.0.1:{port}\n' + CONFIG_EXTRA_LISTENER),
        workers=1, rlimit_nofile=LIMIT)
    assert http_get(port, '/x')[0] == 200
    clients = []
    try:
        for _ in range(LIMIT + 8):
            clients.append(socket.create_connection(('127.0.0.1', port), timeout=5))
        g.wait_log(r'accept on main: Too many open files')
        # the last clients are still queued; the first ones were accepted
        # and hold every descriptor (no upstream connection is pooled)
        time.sleep(0.3)
        for c in clients[:5]:
            c.sendall(b'GET /y HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
        answers = [read_all(c) for c in clients[:5]]
        assert any(a.startswith(b'HTTP/1.1 503 ') for a in answers), answers
        assert all(a.startswith((b'HTTP/1.1 503 ', b'HTTP/1.1 200 ')) for a in answers), answers
    finally:
        for c in clients:
            c.close()
    assert wait_for(lambda: http_get(port, '/x')[0] == 200, what='served again')
    assert g.count('no socket for upstream "up": Too many open files') >= 1
    assert g.count('no socket for upstream') <= 2
    assert g.count('marked down') == 0, g.log()[-3000:]
    st = json.loads(http_get(admin, '/status')[2])
    t = st['upstreams'][0]['targets'][0]
    assert t['health'] == 'up' and t['passive']['failures'] == 0, t
