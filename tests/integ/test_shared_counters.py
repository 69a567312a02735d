"""Issue 12: the shared in-flight counters of the targets, one column per
live worker.  A column comes from the master's free list and goes back
only once its worker exited and its counts were taken back, so a worker
that exits never clears a live worker's share, however many workers and
generations there are (up to 256 workers, and a reload doubles them);
with every column held, a new worker waits for one.  Through the real
binary, with more workers than the 128 columns there used to be."""
import json
import os
import signal
import socket
import threading

from conftest import free_port, http_get, wait_for


class Holder:
    """An upstream that accepts and answers nothing: each request sent to
    it stays under way until release() closes the connections (Portico
    then answers 502)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)

    def accepted(self):
        with self.lock:
            return len(self.conns)

    def release(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            c.close()

    def stop(self):
        self.sock.close()
        self.release()


class Clients:
    """Requests sent on connections of their own and left waiting."""

    def __init__(self):
        self.socks = []

    def send(self, port, path, n):
        for i in range(n):
            s = socket.create_connection(('127.0.0.1', port), timeout=60)
            s.sendall(f'GET {path}/{i} HTTP/1.1\r\nHost: t\r\n\r\n'.encode())
            self.socks.append(s)

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


def config(port, admin, early, late, extra=''):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
admin: {{ address: 127.0.0.1:{admin} }}
shutdown_timeout: 300s
{extra}
upstreams:
  - {{ name: early, targets: ["127.0.0.1:{early}"], retries: 0, timeouts: {{ read: 300s }} }}
  - {{ name: late, targets: ["127.0.0.1:{late}"], retries: 0, timeouts: {{ read: 300s }} }}
routes:
  - {{ name: early, match: {{ paths: ["/e/*"] }}, upstream: early }}
  - {{ name: late, match: {{ paths: ["/l/*"] }}, upstream: late }}
  - {{ name: hello, match: {{ paths: [/hello] }}, respond: {{ body: "hello" }} }}
'''


def status(admin):
    return json.loads(http_get(admin, '/status', timeout=30)[2])


def inflight(admin):
    """The in-flight count of each upstream's only target."""
    return {u['name']: u['targets'][0]['inflight'] for u in status(admin)['upstreams']}


def generations(admin):
    """The generation of every worker on the board."""
    return sorted(w['generation'] for w in status(admin)['workers'])


def test_a_worker_that_exits_leaves_the_counts_of_live_ones_alone(gateway):
    early, late = Holder(), Holder()
    clients = Clients()
    try:
        port, admin = free_port(), free_port()
        g = gateway(config(port, admin, early.port, late.port), workers=100)
        # generation 2 takes the next 100 entries of the board while
        # generation 1 drains; then generation 1 is gone
        g.reload()
        wait_for(lambda: generations(admin) == [2] * 100, timeout=60, what='generation 1 gone')
        clients.send(port, '/e', 40)  # held by workers of generation 2
        wait_for(lambda: early.accepted() == 40, timeout=60, what='40 requests at early')
        assert inflight(admin) == {'early': 40, 'late': 0}
        # generation 3 on the entries generation 1 left; generation 2 stays
        # for the requests it holds
        g.reload()
        clients.send(port, '/l', 40)  # held by workers of generation 3
        wait_for(lambda: late.accepted() == 40, timeout=60, what='40 requests at late')
        assert inflight(admin) == {'early': 40, 'late': 40}
        # the workers of generation 2 finish and exit: what they counted
        # is taken back, and nothing of what generation 3 counts
        early.release()
        wait_for(lambda: generations(admin) == [3] * 100, timeout=60, what='generation 2 gone')
        assert inflight(admin) == {'early': 0, 'late': 40}
        assert http_get(port, '/hello')[2] == b'hello'
        late.release()
        # after the load: nothing under way, nothing below zero
        wait_for(lambda: inflight(admin) == {'early': 0, 'late': 0}, timeout=60, what='every count back to 0')
        assert g.count(r'reload ok: generation 3, 100 workers') == 1
    finally:
        clients.close()
        early.stop()
        late.stop()


def test_a_new_worker_waits_for_a_column_when_every_one_is_held(gateway):
    early, late = Holder(), Holder()
    port, admin = free_port(), free_port()
    # the watchdog would kill the stopped workers; here they must stay
    g = gateway(config(port, admin, early.port, late.port, extra='worker_watchdog: 0s'), workers=256)
    first = g.worker_pids()
    assert len(first) == 256
    for pid in first:  # they cannot drain, so they keep their columns
        os.kill(pid, signal.SIGSTOP)
    try:
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(r'reload: generation 2', timeout=60)
        wait_for(lambda: len(g.worker_pids()) == 512, timeout=60, what='512 workers')
        # generations 1 and 2 hold all 512 columns: generation 3 waits
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(r'reload: generation 3', timeout=60)
        g.wait_log(r'worker \d+ \(generation 3\) not started: all 512 columns of the shared counters are held by '
                   r'live workers; tried again every second until one exits', timeout=60)
        # generation 2 serves until generation 3 is ready, so it is
        # generation 1, draining (and stopped here), that is told to stop
        # now: killed once its grace passes, it frees the columns
        g.wait_log(r'generation 1: 256 workers still draining hold the counter columns new workers need: '
                   r'stopping them now', timeout=60)
        g.wait_log(r'reload ok: generation 3, 256 workers', timeout=90)
    finally:
        for pid in first:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert not set(first) & set(g.worker_pids())
    wait_for(lambda: generations(admin) == [3] * 256, timeout=90, what='generation 2 gone')
    # every worker has its own entry, and counts on its own column
    workers = status(admin)['workers']
    assert len({w['pid'] for w in workers}) == 256
    clients = Clients()
    try:
        clients.send(port, '/l', 30)
        wait_for(lambda: late.accepted() == 30, timeout=60, what='30 requests at late')
        assert inflight(admin) == {'early': 0, 'late': 30}
        late.release()
        wait_for(lambda: inflight(admin) == {'early': 0, 'late': 0}, timeout=60, what='every count back to 0')
    finally:
        clients.close()
        early.stop()
        late.stop()
