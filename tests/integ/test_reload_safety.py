"""Reload safety (issue 12): the old generation drains only once the new
one is ready, and serves on when the new one fails to start; host names
are resolved without blocking the master, within resolver.timeout; old
generations neither pile up past max_old_generations nor outlive their
shutdown_timeout.

Some tests run the gateway in a mount namespace of its own, where the test
puts its own /etc/resolv.conf (a DNS server on port 53 of a loopback
address, which never answers until told to) or /etc/group (a FIFO nobody
writes: a worker that changes to `user:` blocks in initgroups(3) before it
is ready, as on a stuck directory service).  Those need root."""
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import threading
import time

import pytest

try:
    import websockets
except ImportError:  # python3-websockets
    websockets = None

from conftest import Stopped, basic_config, free_port, http_get, proxy_config, wait_for
from test_reload import connect_refused
from dns_server import DnsServer

BOUND = 20  # seconds: far above every timeout these tests set, far below what they guard against


def routes(body):
    return f'''
    - name: hello
      match: {{ paths: [/hello] }}
      respond: {{ body: "{body}" }}
    '''


def status(admin):
    return json.loads(http_get(admin, '/status')[2])


def is_gone(pid):
    """Exited and reaped: a zombie still has its /proc entry."""
    return not os.path.exists(f'/proc/{pid}')


def private_etc(tmp, resolv=None, group_fifo=False):
    """A command that runs the gateway (same pid) in a mount namespace where
    /etc/resolv.conf has the text `resolv`, and /etc/group is a FIFO."""
    if os.geteuid() != 0:
        pytest.skip('needs root: a mount namespace, port 53, user:')
    if not shutil.which('unshare'):
        if os.environ.get('CI'):
            pytest.fail('unshare is not installed')
        pytest.skip('unshare is not installed')
    mounts = []
    if resolv:
        path = os.path.join(tmp, 'resolv.conf')
        with open(path, 'w') as f:
            f.write(resolv)
        mounts.append(f'mount --bind {path} /etc/resolv.conf')
    if group_fifo:
        path = os.path.join(tmp, 'group.fifo')
        os.mkfifo(path)
        mounts.append(f'mount --bind {path} /etc/group')
    return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', ' && '.join(mounts + ['exec "$0" "$@"'])]


@pytest.fixture
def dns53():
    """A DNS server on port 53 of a loopback address of its own (another
    gateway's tests may hold another), silent until told to answer."""
    if os.geteuid() != 0:
        pytest.skip('needs root: port 53')
    for _ in range(20):
        host = f'127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}'
        try:
            d = DnsServer(host=host, port=53)
            break
        except OSError:
            continue
    else:
        raise AssertionError('no loopback address with port 53 free')
    d.host = host
    d.stall = True
    yield d
    d.stop()


def resolv_conf(dns):
    # glibc would wait 30 s twice per query: far past every bound here
    return f'nameserver {dns.host}\noptions timeout:30 attempts:2\n'


# ---- the old generation serves until the new one is ready ----

def test_the_old_generation_serves_until_the_new_one_is_ready_or_fails(gateway, tmpdir_path):
    wrap = private_etc(tmpdir_path, group_fifo=True)
    port, admin, added = free_port(), free_port(), free_port()
    extra = 'worker_watchdog: 0s\nreload_timeout: 3s'
    g = gateway(basic_config(port, admin, extra=extra, routes=routes('old')), workers=2, wrap=wrap)
    old = g.worker_pids()
    # as user nobody, the new workers hang in initgroups(3), before they are ready
    g.write(basic_config(port, admin, extra=extra + '\nuser: nobody', routes=routes('new')).replace(
        'listeners:\n', f'listeners:\n  - {{ name: added, address: 127.0.0.1:{added} }}\n'))
    os.kill(g.proc.pid, signal.SIGHUP)
    g.wait_log(r'reload: generation 2 ')
    new = wait_for(lambda: len(g.worker_pids()) == 4 and set(g.worker_pids()) - set(old), what='the new workers')
    # meanwhile the old workers serve, and were not asked to drain
    for _ in range(10):
        assert http_get(port, '/hello')[2] == b'old'
    states = {w['pid']: (w['generation'], w['state']) for w in status(admin)['workers']}
    assert {p: states[p] for p in old} == {p: (1, 'running') for p in old}
    assert {states[p] for p in new} == {(2, 'starting')}
    g.wait_log(r'reload failed: generation 2 not ready after reload_timeout \(3000 ms\): 0 of 2 workers ready; '
               r'still serving generation 1', timeout=BOUND)
    wait_for(lambda: all(is_gone(p) for p in new), what='the new workers killed')
    assert g.worker_pids() == old
    assert http_get(port, '/hello')[2] == b'old'
    st = status(admin)
    assert (st['generation'], st['reloads'], st['reload_failures']) == (1, 0, 1)
    assert connect_refused(added)  # only the failed file had it: closed again
    # and the next reload works
    g.write(basic_config(port, admin, extra=extra, routes=routes('next')))
    g.reload()
    assert http_get(port, '/hello')[2] == b'next'
    wait_for(lambda: not set(old) & set(g.worker_pids()), what='the old workers to exit')
    st = status(admin)
    assert (st['generation'], st['reloads'], st['reload_failures']) == (3, 1, 1)


def test_a_new_worker_that_dies_before_it_is_ready_fails_the_reload(gateway, tmpdir_path):
    wrap = private_etc(tmpdir_path, group_fifo=True)
    port, admin = free_port(), free_port()
    extra = 'worker_watchdog: 0s\nreload_timeout: 1h'
    g = gateway(basic_config(port, admin, extra=extra, routes=routes('old')), workers=2, wrap=wrap)
    old = g.worker_pids()
    g.write(basic_config(port, admin, extra=extra + '\nuser: nobody', routes=routes('new')))
    os.kill(g.proc.pid, signal.SIGHUP)
    new = wait_for(lambda: len(g.worker_pids()) == 4 and sorted(set(g.worker_pids()) - set(old)),
                   what='the new workers')
    os.kill(new[0], signal.SIGKILL)
    g.wait_log(rf'reload failed: worker \d \(pid {new[0]}\) of generation 2 killed by signal 9 \(Killed\) before '
               r'the generation was ready; still serving generation 1', timeout=BOUND)
    g.wait_log(rf'pid {new[1]}, generation 2\) killed as its generation failed to start')
    assert 'respawning' not in g.log()  # a new worker is not replaced: its generation is given up
    assert g.worker_pids() == old
    assert http_get(port, '/hello')[2] == b'old'
    # The watchdog, on in the new file, kills them for the master: the same.
    g.write(basic_config(port, admin, extra='worker_watchdog: 1s\nuser: nobody', routes=routes('new')))
    os.kill(g.proc.pid, signal.SIGHUP)
    g.wait_log(r'reload failed: worker \d \(pid \d+\) of generation 3 killed by the watchdog before the generation '
               r'was ready; still serving generation 1', timeout=BOUND)
    wait_for(lambda: g.worker_pids() == old, what='the new workers gone')
    assert status(admin)['reload_failures'] == 2
    g.write(basic_config(port, admin, extra=extra, routes=routes('fixed')))
    g.reload()
    assert http_get(port, '/hello')[2] == b'fixed'


# ---- host names are resolved without blocking the master ----

def test_a_reload_whose_names_do_not_resolve_in_time_fails_and_a_hup_meanwhile_follows(
        gateway, backends, tmpdir_path, dns53):
    wrap = private_etc(tmpdir_path, resolv=resolv_conf(dns53))
    a, b, c = backends(), backends(), backends()
    port, admin = free_port(), free_port()

    def cfg(target):
        return proxy_config(port, [target], extra=f'admin: {{ address: 127.0.0.1:{admin} }}\n'
                                                  'resolver: { timeout: 4s }')
    g = gateway(cfg(a.port), workers=1, wrap=wrap)
    g.write(cfg(f'svc.test:{c.port}'))
    os.kill(g.proc.pid, signal.SIGHUP)
    wait_for(lambda: dns53.count('svc.test'), what='the query for svc.test')
    # The master answers signals while the name is being resolved...
    os.kill(g.proc.pid, signal.SIGUSR1)
    g.wait_log(r'logs reopened', timeout=BOUND)
    # ...and remembers a reload asked for meanwhile, of the file as it is then.
    g.write(cfg(b.port))
    os.kill(g.proc.pid, signal.SIGHUP)
    g.wait_log(r'reload requested while another is under way', timeout=BOUND)
    assert 'reload failed' not in g.log()  # both came while the name was still unanswered
    assert http_get(port, '/during')[0] == 200 and a.requests[-1].target == '/during'
    g.wait_log(r'reload failed: resolving host names took longer than resolver.timeout \(4000 ms\): '
               rf'"svc.test:{c.port}" \(upstream "up"\) unanswered; still serving generation 1', timeout=BOUND)
    g.wait_log(r'reload ok: generation 2', timeout=BOUND)
    assert http_get(port, '/after')[0] == 200 and b.requests[-1].target == '/after'
    # A server that answers: the address the master got is the one used.
    dns53.records['svc.test'] = ('127.0.0.1', 300)
    dns53.stall = False
    g.write(cfg(f'svc.test:{c.port}'))
    g.reload()
    assert http_get(port, '/resolved')[0] == 200 and c.requests[-1].target == '/resolved'
    st = status(admin)
    assert (st['generation'], st['reloads'], st['reload_failures']) == (3, 2, 1)


def test_sigterm_during_a_stalled_resolution_stops_the_master(gateway, backends, tmpdir_path, dns53):
    wrap = private_etc(tmpdir_path, resolv=resolv_conf(dns53))
    a = backends()
    port = free_port()
    g = gateway(proxy_config(port, [a.port], extra='resolver: { timeout: 60s }'), workers=2, wrap=wrap)
    g.write(proxy_config(port, [f'svc.test:{a.port}'], extra='resolver: { timeout: 60s }'))
    os.kill(g.proc.pid, signal.SIGHUP)
    wait_for(lambda: dns53.count('svc.test'), what='the query for svc.test')
    g.proc.send_signal(signal.SIGTERM)
    assert g.proc.wait(BOUND) == 0  # long before the 60s of resolver.timeout, or glibc's own
    log = g.log()
    assert 'the reload under way is abandoned' in log and 'fast stop' in log and 'stopped' in log


def test_a_start_whose_names_do_not_resolve_in_time_fails(gateway, tmpdir_path, dns53):
    wrap = private_etc(tmpdir_path, resolv=resolv_conf(dns53))
    g = gateway(proxy_config(free_port(), ['svc.test:80'], extra='resolver: { timeout: 1s }'), wrap=wrap,
                start=False)
    g.start(wait=False)
    assert g.proc.wait(BOUND) == 1
    assert ('[crit] master[' in g.log() and 'resolving host names took longer than resolver.timeout (1000 ms): '
            '"svc.test:80" (upstream "up") unanswered' in g.log()), g.log()


# ---- old generations: at most max_old_generations, none past shutdown_timeout ----

async def silent(ws, path=None):
    await ws.wait_closed()  # says nothing; ends when the proxy drops it


async def is_open(ws):
    """Does a ping through the proxy come back?"""
    try:
        await asyncio.wait_for(await ws.ping(), 5)
        return True
    except (websockets.ConnectionClosed, asyncio.TimeoutError):
        return False


async def closed(ws):
    try:
        await asyncio.wait_for(ws.wait_closed(), BOUND)
        return True
    except asyncio.TimeoutError:
        return False


def needs_websockets():
    if websockets is None:
        if os.environ.get('CI'):
            pytest.fail('python3-websockets is not installed')
        pytest.skip('python3-websockets is not installed')


def test_old_generations_past_max_old_generations_are_stopped(gateway):
    needs_websockets()
    bport, port = free_port(), free_port()
    extra = 'shutdown_timeout: 1h\nmax_old_generations: 2'

    async def main():
        async with websockets.serve(silent, '127.0.0.1', bport):
            g = gateway(proxy_config(port, [bport], extra=extra), workers=1)
            socks = []
            for n in range(1, 7):  # a WebSocket through each of generations 1 to 6, and 5 reloads
                socks.append(await websockets.connect(f'ws://127.0.0.1:{port}/{n}', ping_interval=None))
                if n < 6:
                    await asyncio.to_thread(g.reload)
            for n in (1, 2, 3):
                assert await closed(socks[n - 1]), n
                assert g.count(rf'generation {n}: 1 worker still draining, past max_old_generations \(2\): '
                               r'stopping it now') == 1
            for n in (4, 5, 6):
                assert await is_open(socks[n - 1]), n
            # generations 4 and 5 draining, and 6
            await asyncio.to_thread(wait_for, lambda: len(g.worker_pids()) == 3, BOUND, 0.05, 'three workers')
            for ws in socks:
                await ws.close()

    asyncio.run(asyncio.wait_for(main(), 120))




def test_shutdown_timeout_is_a_hard_stop(gateway):
    needs_websockets()
    # A worker that does not stop by itself (its loop stopped: SIGSTOP, and
    # no watchdog to see it) is killed by the master past its
    # shutdown_timeout, and later reloads do not wait for it meanwhile.
    bport, port, admin = free_port(), free_port(), free_port()
    extra = f'admin: {{ address: 127.0.0.1:{admin} }}\nshutdown_timeout: 1s\nworker_watchdog: 0s\n' \
            'max_old_generations: 100'

    def running(gen):
        try:  # the only worker of generation 1 is stopped: asked too early, nobody answers
            return any(w['generation'] == gen and w['state'] == 'running' for w in status(admin)['workers'])
        except OSError:
            return False

    async def main():
        async with websockets.serve(silent, '127.0.0.1', bport):
            g = gateway(proxy_config(port, [bport], extra=extra), workers=1)
            ws = await websockets.connect(f'ws://127.0.0.1:{port}/', ping_interval=None)
            victim = g.worker_pids()[0]
            with Stopped(victim):
                for n in range(2, 7):  # 5 reloads
                    os.kill(g.proc.pid, signal.SIGHUP)
                    await asyncio.to_thread(wait_for, lambda: running(n), BOUND, 0.05, f'generation {n} running')
                await asyncio.to_thread(
                    g.wait_log, rf'worker 0 \(pid {victim}, generation 1\) still running \d+ ms after SIGQUIT, '
                                r'past its shutdown_timeout: killing it', 1, BOUND)
                assert await closed(ws)
                await asyncio.to_thread(wait_for, lambda: is_gone(victim), BOUND, 0.05, 'the stopped worker reaped')
            assert f'worker 0 (pid {victim}, generation 1) killed after shutdown_timeout' in g.log()
            # once the stopped worker no longer holds it back (logged just after the reaping)
            await asyncio.to_thread(g.wait_log, r'reload ok: generation 6', 1, BOUND)
            assert [w['generation'] for w in status(admin)['workers']] == [6]

    asyncio.run(asyncio.wait_for(main(), 120))


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGQUIT])
def test_a_stop_during_a_reload_kills_new_workers_stuck_at_start_at_once(gateway, tmpdir_path, sig):
    """New workers hung before they are ready hold no connection (they
    listen only once ready) and act on no signal but SIGKILL: a stop does
    not wait the kill grace for them (hostile review: 5 s for SIGTERM)."""
    wrap = private_etc(tmpdir_path, group_fifo=True)
    port, admin = free_port(), free_port()
    extra = 'worker_watchdog: 0s\nreload_timeout: 60s\nshutdown_timeout: 30s'
    g = gateway(basic_config(port, admin, extra=extra, routes=routes('old')), workers=2, wrap=wrap)
    old = g.worker_pids()
    g.write(basic_config(port, admin, extra=extra + '\nuser: nobody', routes=routes('new')))
    os.kill(g.proc.pid, signal.SIGHUP)
    g.wait_log(r'reload: generation 2 ')
    wait_for(lambda: len(g.worker_pids()) == 4, what='the new workers')
    assert g.stop(sig, timeout=15) == 0
    # the old workers stop as asked (nothing in flight); the stuck ones are
    # killed at once, not after the grace the master gives workers that
    # do not stop in time
    assert g.count('did not stop in time') == 0, g.log()[-2000:]
    assert all(is_gone(p) for p in old)


def test_every_reload_of_a_hup_storm_has_its_outcome_and_its_ready(gateway, tmpdir_path):
    """Thirty SIGHUPs 50 ms apart under traffic: each reload that starts
    says "reload ok" for its generation, each RELOADING=1 is answered by a
    READY=1 before the next one (systemd waits for it), and the old workers
    that drained are not logged as a warning."""
    path = os.path.join(tmpdir_path, 'notify.sock')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    msgs, stop = [], threading.Event()

    def collect():
        while not stop.is_set():
            try:
                msgs.append(sock.recv(4096).decode())
            except socket.timeout:
                pass

    def traffic():
        while not stop.is_set():
            try:
                http_get(port, '/hello')
            except OSError:
                pass

    port, admin = free_port(), free_port()
    threads = [threading.Thread(target=collect)] + [threading.Thread(target=traffic) for _ in range(4)]
    try:
        g = gateway(basic_config(port, admin, routes=routes('0')), workers=16, env={'NOTIFY_SOCKET': path})
        for t in threads:
            t.start()
        for i in range(1, 31):
            g.write(basic_config(port, admin, routes=routes(str(i))))
            os.kill(g.proc.pid, signal.SIGHUP)
            time.sleep(0.05)
        wait_for(lambda: http_get(port, '/hello')[2] == b'30' and status(admin)['generation'] > 1 and
                 msgs and 'READY=1' in msgs[-1] and re.findall(r'reload: generation (\d+)', g.log())[-1] in
                 re.findall(r'reload ok: generation (\d+)', g.log()), what='the last reload', timeout=BOUND)
    finally:
        stop.set()
        for t in threads:
            if t.ident:
                t.join()
        sock.close()
    log = g.log()
    started = re.findall(r'reload: generation (\d+)', log)
    assert len(started) >= 2
    assert started == re.findall(r'reload ok: generation (\d+)', log)
    assert 'reload failed' not in log
    kinds = ''.join('R' if 'RELOADING=1' in m else 'Y' if 'READY=1' in m else '' for m in msgs)
    assert kinds == 'Y' + 'RY' * (kinds.count('R')), kinds
    assert kinds.count('R') == log.count('reloading ')
    wait_for(lambda: len(g.worker_pids()) == 16, what='the old workers to exit', timeout=BOUND)
    assert not re.findall(r'\[warn\].*exited with status 0', g.log())
