"""Issue 14: the workers' Redis client (src/redis/, redis.h), driven by
tests/tools/redis_driver against real redis-server processes started by
redis_servers.py: answers, pipelining on one connection, AUTH (password,
ACL user, wrong password), SELECT, NOSCRIPT, a server killed or SIGSTOPped
(fallback at once or within the timeout, one log line per episode, back
after a probe), a sentinel failover, and a 3-node cluster (slots, MOVED,
ASK)."""
import os
import queue
import subprocess
import threading
import time

import pytest

from conftest import SANITIZER_MARKS, SRCDIR, wait_for
from redis_servers import redis_cluster, redis_sentinel, redis_single  # noqa: F401

BUILDDIR = os.environ.get('PORTICO_BUILDDIR', os.path.join(SRCDIR, 'build'))
DRIVER = os.path.join(BUILDDIR, 'tests', 'tools', 'redis_driver')
MARGIN_MS = 150  # what a loaded machine (or ASan) may add to a timer

pytestmark = pytest.mark.skipif(not os.path.exists(DRIVER), reason=f'{DRIVER} is not built (make check builds it)')


class Answer:
    def __init__(self, f):
        self.id, self.key, self.status = int(f[1]), f[2], f[3]
        self.vals = [int(x) for x in f[4:-1]]
        self.ms = float(f[-1])

    def __repr__(self):
        return f'<answer {self.id} {self.key} {self.status} {self.vals} {self.ms}ms>'


class Driver:
    """tests/tools/redis_driver as a process: commands in, answers out."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([DRIVER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
        self.answers = {}
        self.lines = queue.Queue()
        self.err = []
        self.next_id = 0
        self.cv = threading.Condition()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self):
        for line in self.proc.stdout:
            f = line.split()
            if f and f[0] == 'answer':
                with self.cv:
                    self.answers[int(f[1])] = Answer(f)
                    self.cv.notify_all()
            elif f:
                self.lines.put(line.strip())

    def _read_err(self):
        for line in self.proc.stderr:
            self.err.append(line)

    def log(self):
        return ''.join(self.err)

    def send(self, *cmds):
        self.proc.stdin.write(''.join(c + '\n' for c in cmds))
        self.proc.stdin.flush()

    def line(self, prefix, timeout=30):
        end = time.time() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, end - time.time()))
            except queue.Empty:
                raise AssertionError(f'no "{prefix}" line from the driver in {timeout}s; log:\n{self.log()}')
            if line.startswith(prefix):
                return line

    def answer(self, id, timeout=30):
        with self.cv:
            if not self.cv.wait_for(lambda: id in self.answers, timeout):
                raise AssertionError(f'no answer {id} in {timeout}s; log:\n{self.log()}')
            return self.answers[id]

    def eval(self, key, incr=1):
        self.next_id += 1
        self.send(f'eval {key} {incr}')
        return self.answer(self.next_id)

    def burst(self, n, prefix, incr=1):
        """n evals sent at once; their answers, in the order they were made."""
        first = self.next_id + 1
        self.next_id += n
        self.send(f'burst {n} {prefix} {incr}', 'sync')
        self.line('synced', timeout=60)
        return [self.answer(i) for i in range(first, first + n)]

    def cancel(self, key):
        self.next_id += 1
        self.send(f'cancel {key}')
        return self.next_id

    def stats(self):
        self.send('stats')
        return {k: int(v) for k, v in (kv.split('=') for kv in self.line('stats ').split()[1:])}

    def wait_ready(self, ms):
        self.send(f'wait_ready {ms}')
        return self.line('ready ', timeout=ms / 1000 + 30).split()[1] == '1'

    def slot(self, key):
        self.send(f'slot {key}')
        return int(self.line(f'slot {key} ').split()[2])

    def close(self):
        """Ends the driver (after its pending answers); its error log."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f'the driver did not end:\n{self.log()}')
        time.sleep(0.05)
        assert self.proc.returncode == 0, f'the driver exited {self.proc.returncode}:\n{self.log()}'
        return self.log()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


@pytest.fixture
def driver():
    """Factory: driver(*args) -> a running Driver; killed at the end, and the
    test fails on any sanitizer report in its error log."""
    made = []

    def make(*args):
        d = Driver(*args)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()
    reports = [d.log() for d in made if any(m in d.log() for m in SANITIZER_MARKS)]
    assert not reports, 'sanitizer report:\n' + '\n'.join(reports)


def episodes_logged(log):
    return log.count('limits count locally until it answers')


def eval_until_ok(d, key, seconds=20):
    """Evals every 50 ms until one is answered OK: all the answers."""
    answers, end = [], time.time() + seconds
    while time.time() < end:
        answers.append(d.eval(key))
        if answers[-1].status == 'OK':
            break
        time.sleep(0.05)
    return answers


def test_answers_pipelined_on_one_connection(redis_single, driver):
    r = redis_single()
    d = driver('--addr', r.addr, '--timeout', '2000')
    assert d.wait_ready(3000)
    a = d.eval('k', 5)
    assert a.status == 'OK' and a.vals[0] == 5 and 0 < a.vals[1] <= 600000, a
    answers = d.burst(2000, 'p=', 1)
    assert [a.status for a in answers] == ['OK'] * 2000
    # one connection, in order: the n-th call sent is the n-th increment
    assert [a.vals[0] for a in answers] == list(range(1, 2001))
    assert r.cli('GET', 'p') == '2000'
    clients = [c for c in r.cli('CLIENT', 'LIST').splitlines() if 'cmd=client' not in c]
    assert len(clients) == 1, clients
    st = d.stats()
    assert st['connects'] == 1 and st['calls'] == 2001 and st['answers'] == 2001 and st['fallbacks'] == 0, st
    assert episodes_logged(d.close()) == 0


def test_auth_with_a_password_and_with_an_acl_user(redis_single, driver):
    r = redis_single(password='pw-Secret-42')
    d = driver('--addr', r.addr, '--password', 'pw-Secret-42')
    assert d.wait_ready(3000)
    assert d.eval('a', 2).vals[0] == 2
    r2 = redis_single(password='admin-Secret-1', acl_user=('limiter', 'lim-Secret-7'))
    d2 = driver('--addr', r2.addr, '--username', 'limiter', '--password', 'lim-Secret-7')
    assert d2.wait_ready(3000)
    assert d2.eval('b', 3).vals[0] == 3
    assert 'user=limiter' in r2.cli('CLIENT', 'LIST')
    for log in (d.close(), d2.close()):
        assert episodes_logged(log) == 0 and 'Secret' not in log


def test_wrong_password_is_logged_without_it_and_falls_back(redis_single, driver):
    r = redis_single(password='right-Secret-1')
    d = driver('--addr', r.addr, '--password', 'wrong-Secret-2', '--probe', '50', '--timeout', '500')
    assert not d.wait_ready(300)
    a = d.eval('k')
    assert a.status == 'NULL' and a.ms < 50, a
    time.sleep(0.5)  # probes keep failing: still one line
    st = d.stats()
    assert st['episodes'] == 1 and st['fallback'] == 1 and st['fallbacks'] >= 1, st
    log = d.close()
    assert 'AUTH failed' in log and 'WRONGPASS' in log, log
    assert episodes_logged(log) == 1, log
    assert 'Secret' not in log, log
    assert r.cli('EXISTS', 'k') == '0'


def test_select_database(redis_single, driver):
    r = redis_single()
    d = driver('--addr', r.addr, '--db', '3')
    assert d.wait_ready(3000)
    assert d.eval('dbkey', 7).vals[0] == 7
    assert r.cli('GET', 'dbkey', db=3) == '7'
    assert r.cli('GET', 'dbkey') == ''
    d.close()


def test_noscript_after_script_flush_loads_it_again(redis_single, driver):
    r = redis_single()
    d = driver('--addr', r.addr, '--timeout', '1000')
    assert d.wait_ready(3000)
    assert d.eval('n').vals[0] == 1
    assert d.stats()['loads'] == 1  # the first EVALSHA met NOSCRIPT too
    assert d.eval('n').vals[0] == 2 and d.stats()['loads'] == 1
    assert r.cli('SCRIPT', 'FLUSH') == 'OK'
    assert d.eval('n').vals[0] == 3
    st = d.stats()
    assert st['loads'] == 2 and st['episodes'] == 0 and st['fallbacks'] == 0, st
    d.close()


def test_killed_server_falls_back_at_once_and_the_probe_brings_it_back(redis_single, driver):
    r = redis_single()
    d = driver('--addr', r.addr, '--timeout', '1000', '--probe', '100')
    assert d.wait_ready(3000)
    assert d.eval('k').status == 'OK'
    r.kill()
    answers = [d.eval('k') for _ in range(20)]
    # not after the 1 s timeout: the closed connection says it at once
    assert all(a.status != 'OK' and a.ms < 200 for a in answers), answers
    time.sleep(0.6)  # several probes fail meanwhile
    assert d.stats()['fallback'] == 1
    r.restart()
    assert d.wait_ready(5000)
    a = d.eval('k')
    assert a.status == 'OK' and a.vals[0] == 1, a  # a new, empty server
    st = d.stats()
    assert st['episodes'] == 1 and st['fallback'] == 0, st
    log = d.close()
    assert episodes_logged(log) == 1, log
    assert log.count('answers again') == 1, log


def test_sigstopped_server_answers_every_call_within_the_timeout(redis_single, driver):
    r = redis_single()
    d = driver('--addr', r.addr, '--timeout', '200', '--probe', '100')
    assert d.wait_ready(3000)
    assert d.eval('s').status == 'OK'
    with r.stopped():
        answers = d.burst(50, 's=')
        time.sleep(0.5)  # probes connect (the kernel accepts) and get no PONG
        answers += [d.eval('s') for _ in range(5)]
        assert not d.wait_ready(300)
    assert all(a.status in ('FALLBACK', 'NULL') and a.ms <= 200 + MARGIN_MS for a in answers), answers
    assert sum(a.status == 'FALLBACK' for a in answers) == 50  # in flight: answered at the timeout
    assert d.wait_ready(5000)
    assert d.eval('s').status == 'OK'
    st = d.stats()
    assert st['episodes'] == 1 and st['fallbacks'] == 55, st
    log = d.close()
    assert episodes_logged(log) == 1 and 'no answer within 200 ms' in log, log


def test_host_name_resolved_without_blocking(redis_single, driver):
    with open('/etc/hosts') as f:
        if not any(line.split()[:1] == ['127.0.0.1'] and 'localhost' in line.split() for line in f):
            pytest.skip('localhost is not 127.0.0.1 in /etc/hosts')
    r = redis_single()
    d = driver('--addr', f'localhost:{r.port}')
    assert d.wait_ready(3000)
    assert d.eval('h').vals[0] == 1
    d.close()


def test_cancel_and_free_with_calls_in_flight(redis_single, driver):
    r = redis_single()
    d = driver('--addr', r.addr, '--timeout', '1000')
    assert d.wait_ready(3000)
    cancelled = [d.cancel('c') for _ in range(10)]
    assert d.eval('c').status == 'OK'
    with r.stopped():
        d.send('burst 100 f 1')
        d.next_id += 100
        d.send('renew')  # pt_redis_free with 100 calls in flight: none is called back
        d.line('renewed')
    assert d.wait_ready(3000)
    assert d.eval('c').status == 'OK'
    d.close()
    assert not any(i in d.answers for i in cancelled)
    assert not any(i in d.answers for i in range(cancelled[-1] + 2, cancelled[-1] + 102))


def test_sentinel_failover_in_the_middle(redis_sentinel, driver):
    s = redis_sentinel()
    d = driver('--mode', 'sentinel', '--addr', s.sentinel_addr, '--master-name', s.master_name,
               '--timeout', '300', '--probe', '100')
    assert d.wait_ready(3000)
    assert d.eval('fo').vals[0] == 1
    wait_for(lambda: s.replica.cli('GET', 'fo') == '1', 5, what='the write on the replica')
    old = s.master
    new = s.kill_master_and_wait()
    answers = eval_until_ok(d, 'fo')
    assert answers[-1].status == 'OK' and answers[-1].vals[0] == 2, answers
    assert all(a.ms <= 300 + MARGIN_MS for a in answers), answers
    assert new.cli('GET', 'fo') == '2'
    st = d.stats()
    assert st['failovers'] == 1 and st['episodes'] == 1, st
    log = d.close()
    assert f'is at {new.addr} now (was {old.addr})' in log, log


def test_sentinel_graceful_failover_read_only_master(redis_sentinel, driver):
    s = redis_sentinel()
    d = driver('--mode', 'sentinel', '--addr', s.sentinel_addr, '--master-name', s.master_name,
               '--timeout', '300', '--probe', '100')
    assert d.wait_ready(3000)
    assert d.eval('g').status == 'OK'
    new = s.failover()  # the old master lives on as a replica
    answers = eval_until_ok(d, 'g')
    assert answers[-1].status == 'OK', answers
    assert new.cli('GET', 'g') == str(answers[-1].vals[0])
    assert d.stats()['failovers'] == 1
    d.close()


def test_cluster_keys_on_every_node(redis_cluster, driver):
    c = redis_cluster()
    d = driver('--mode', 'cluster', '--addr', c.seed_addr, '--timeout', '2000')
    assert d.wait_ready(3000)
    keys = [f'key:{i}' for i in range(60)] + ['{user1000}.following', '{user1000}.followers', 'foo{}{bar}',
                                             'foo{bar}{zap}', 'foo', '{}', 'a{b']
    for k in keys:
        assert d.slot(k) == c.keyslot(k), k
    first = d.next_id + 1
    d.next_id += len(keys)
    d.send(*[f'eval {k} 1' for k in keys], 'sync')
    d.line('synced')
    assert all(d.answer(i).status == 'OK' for i in range(first, first + len(keys)))
    owners = c.owners()
    used = set()
    for k in keys:
        node = owners[c.keyslot(k)]
        assert node.cli('GET', k) == '1', k
        used.add(node.port)
    assert len(used) == 3
    st = d.stats()
    assert st['moved'] == 0 and st['asked'] == 0 and st['connects'] == 3 and st['fallbacks'] == 0, st
    d.close()


def test_cluster_moved_after_a_migration(redis_cluster, driver):
    c = redis_cluster()
    d = driver('--mode', 'cluster', '--addr', c.seed_addr, '--timeout', '2000')
    assert d.wait_ready(3000)
    assert d.eval('mv').vals[0] == 1
    slot = c.keyslot('mv')
    src = c.node_for_slot(slot)
    dst = next(n for n in c.nodes if n is not src)
    c.migrate_slot(slot, dst)
    a = d.eval('mv')
    assert a.status == 'OK' and a.vals[0] == 2, a
    assert d.stats()['moved'] == 1
    assert d.eval('mv').vals[0] == 3
    st = d.stats()
    assert st['moved'] == 1 and st['episodes'] == 0, st  # the map was updated
    assert dst.cli('GET', 'mv') == '3' and src.cli('CLUSTER', 'COUNTKEYSINSLOT', slot) == '0'
    d.close()


def test_cluster_ask_during_a_migration(redis_cluster, driver):
    c = redis_cluster()
    d = driver('--mode', 'cluster', '--addr', c.seed_addr, '--timeout', '2000')
    assert d.wait_ready(3000)
    key = 'ask:{tag7}'
    slot = c.keyslot(key)
    src = c.node_for_slot(slot)
    dst = next(n for n in c.nodes if n is not src)
    c.begin_migration(slot, dst)
    a = d.eval(key)  # not on src: -ASK, then ASKING + the script on dst (which has not loaded it yet)
    assert a.status == 'OK' and a.vals[0] == 1, a
    st = d.stats()
    assert st['asked'] == 1 and st['moved'] == 0 and st['episodes'] == 0, st
    assert dst.cli('CLUSTER', 'COUNTKEYSINSLOT', slot) == '1'
    c.end_migration(slot, dst, src)
    assert d.eval(key).vals[0] == 2
    assert d.stats()['moved'] == 1
    d.close()
