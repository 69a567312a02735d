"""The worker watchdog (issue 11): a worker whose event loop stops turning
is killed and replaced on its slot, so the connections queued on that
slot's socket are served; a reload does not wait on it; /status shows how
old each worker's heartbeat is."""
import json
import os
import re
import selectors
import signal
import socket
import time

from conftest import Stopped, basic_config, free_port, http_get, run_portico, wait_for

BOUND = 15  # seconds: far above the 1s watchdog, far below "hangs"


def status(admin, timeout=5):
    return json.loads(http_get(admin, '/status', timeout=timeout)[2])


def workers_by_pid(admin, timeout=5):
    return {w['pid']: w for w in status(admin, timeout)['workers']}


def is_gone(pid):
    """Exited and reaped: a zombie still has its /proc entry."""
    return not os.path.exists(f'/proc/{pid}')




def fetch_many(port, n, bound):
    """n GET /hello, each on a new connection, all opened before any answer
    is read.  Returns the list of raw answers (None: none within bound)."""
    sel = selectors.DefaultSelector()
    got = [None] * n
    bufs = [b''] * n
    socks = []
    try:
        for i in range(n):
            s = socket.create_connection(('127.0.0.1', port), timeout=5)
            socks.append(s)
            s.sendall(b'GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, i)
        end = time.time() + bound
        left = n
        while left and time.time() < end:
            for key, _ in sel.select(timeout=max(0.0, end - time.time())):
                i = key.data
                try:
                    b = key.fileobj.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionError:
                    b = b''
                bufs[i] += b
                if not b:
                    got[i] = bufs[i]
                    sel.unregister(key.fileobj)
                    left -= 1
        return got
    finally:
        sel.close()
        for s in socks:
            s.close()


def test_a_stopped_worker_is_killed_and_its_queue_served(gateway):
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin, extra='worker_watchdog: 1s'), workers=2)
    before = workers_by_pid(admin)
    assert len(before) == 2
    victim = min(before)
    slot = before[victim]['slot']
    with Stopped(victim):
        answers = fetch_many(port, 200, BOUND)
        hung = sum(a is None for a in answers)
        assert hung == 0, f'{hung} of 200 connections not answered within {BOUND}s\n{g.log()}'
        assert all(a.startswith(b'HTTP/1.1 200') and a.endswith(b'hello\n') for a in answers)
        g.wait_log(rf'\[error\] .*worker {slot} \(pid {victim}, generation 1, running\) silent for \d+ ms, '
                   r'more than worker_watchdog \(1000 ms\): killing it')
        g.wait_log(rf'worker {slot} \(pid {victim}\) killed by the watchdog; respawning now')
        wait_for(lambda: is_gone(victim), what='the stopped worker reaped')
    after = status(admin, timeout=BOUND)['workers']
    assert sorted(w['slot'] for w in after) == [0, 1]
    new = [w for w in after if w['slot'] == slot][0]
    assert new['pid'] != victim
    assert g.count('silent for') == 1  # the other worker was left alone
    assert http_get(port, '/hello')[0] == 200


def test_heartbeat_age_in_status(gateway):
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin), workers=2)  # default: 10s, beats every second
    wait_for(lambda: all(w['state'] == 'running' for w in status(admin)['workers']), what='workers running')
    end = time.monotonic() + 4  # longer than the bound: an age that only grows would pass it
    while time.monotonic() < end:
        ws = status(admin)['workers']
        assert len(ws) == 2
        for w in ws:
            assert 0 <= w['heartbeat_age_ms'] < 3000, w
        time.sleep(0.5)


def test_nothing_is_killed_when_the_watchdog_is_off(gateway):
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin, extra='worker_watchdog: 0s'), workers=2)
    victim = min(workers_by_pid(admin))

    def victim_age(pred):
        # Our connection may be queued for the stopped worker: try again
        # on a new one (another source port, likely the other socket).
        try:
            w = workers_by_pid(admin, timeout=1).get(victim)
        except OSError:
            return False
        return w is not None and pred(w['heartbeat_age_ms'])

    with Stopped(victim):
        # 2.5s silent: past what a 1s watchdog would allow, and the age says so
        wait_for(lambda: victim_age(lambda ms: ms > 2500), timeout=BOUND, what='a stale heartbeat')
        assert victim in g.worker_pids()
    assert not is_gone(victim)
    assert 'silent for' not in g.log()
    wait_for(lambda: victim_age(lambda ms: ms < 2000), timeout=BOUND, what='the heartbeat again')


def test_a_reload_does_not_wait_for_a_stopped_old_worker(gateway):
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin, extra='worker_watchdog: 1s'), workers=2)
    victim = min(workers_by_pid(admin))
    with Stopped(victim):
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(r'reload ok: generation 2', timeout=BOUND)
        g.wait_log(rf'\(pid {victim}, generation 1, running\) silent for \d+ ms')
        wait_for(lambda: is_gone(victim), what='the stopped worker reaped')
    assert not re.search(rf'pid {victim}\).*respawning', g.log())  # an old worker is not replaced
    st = status(admin, timeout=BOUND)
    assert st['generation'] == 2
    assert sorted((w['generation'], w['slot']) for w in st['workers']) == [(2, 0), (2, 1)]


def test_a_worker_that_hangs_at_start_backs_off(gateway, tmpdir_path):
    # The access log becomes a FIFO nobody reads after the master opened
    # it: a new worker blocks opening it, never ready, never beating.
    port = free_port()
    alog = os.path.join(tmpdir_path, 'access.log')
    g = gateway(basic_config(port, extra=f'worker_watchdog: 1s\naccess_log: {{ path: {alog} }}'), workers=1)
    first = g.worker_pids()[0]
    os.unlink(alog)
    os.mkfifo(alog)
    os.kill(first, signal.SIGKILL)
    g.wait_log(r'killed by the watchdog; respawning in \d+ ms', count=2, timeout=BOUND)
    log = g.log()
    assert re.search(r'generation 1, starting\) silent for \d+ ms', log)
    # as for a crash at start (the SIGKILL above may have been one: 100 ms)
    delays = [int(d) for d in re.findall(r'killed by the watchdog; respawning in (\d+) ms', log)]
    assert delays[0] in (100, 200) and delays[1] == 2 * delays[0], delays
    # with a file again, the next one starts and serves
    os.unlink(alog)
    open(alog, 'w').close()
    wait_for(lambda: http_get(port, '/hello', timeout=2)[0] == 200, timeout=BOUND, what='a worker serving')


def test_T_prints_it_and_a_bad_value_is_located(tmpdir_path):
    conf = os.path.join(tmpdir_path, 'c.yaml')
    with open(conf, 'w') as f:
        f.write(basic_config(free_port()))
    r = run_portico('-T', '-c', conf)
    assert r.returncode == 0, r.stderr
    assert 'worker_watchdog: 10s' in r.stdout.splitlines()
    with open(conf, 'w') as f:
        f.write(basic_config(free_port(), extra='worker_watchdog: 500ms'))
    r = run_portico('-t', '-c', conf)
    assert r.returncode == 1
    want = f'{conf}:4:18: error: worker_watchdog: 500ms is out of range (0s, which turns it off, or 1000 to 3600000 ms)'
    assert want in r.stderr.splitlines(), r.stderr
