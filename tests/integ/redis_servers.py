"""Real Redis servers for the tests (issue 14), on free loopback ports.

Three pytest fixtures, each a factory; import them into a test module:

    from redis_servers import redis_single, redis_sentinel, redis_cluster  # noqa: F401

    def test_a(redis_single):
        r = redis_single()                    # one redis-server; password=, acl_user=(name, pw), extra=[conf lines]
        r.addr                                # '127.0.0.1:PORT' (r.host, r.port)
        r.cli('GET', 'k')                     # redis-cli's answer, as text ('' for nil)
        r.kill(); r.restart()                 # SIGKILL; the same port again (empty: nothing is saved)
        r.stop(); r.cont()                    # SIGSTOP / SIGCONT;  or: with r.stopped(): ...

    def test_b(redis_sentinel):
        s = redis_sentinel()                  # a master, its replica, one sentinel (quorum 1)
        s.sentinel_addr, s.master_name        # what a client is configured with ('mymaster')
        s.master, s.replica, s.sentinel       # RedisServer objects
        s.master_addr()                       # what the sentinel answers now
        s.kill_master_and_wait()              # SIGKILL the master, wait for the failover (~1-3 s); the new master
        s.failover()                          # SENTINEL FAILOVER (the old master becomes a replica); the new master

    def test_c(redis_cluster):
        c = redis_cluster()                   # 3 masters, no replicas, all 16384 slots, cluster_state:ok
        c.nodes, c.seed_addr                  # RedisServer objects; the first node's address
        c.keyslot(key); c.node_for_key(key)   # CLUSTER KEYSLOT; the node that serves the key's slot
        c.migrate_slot(slot, dst)             # moves the slot and its keys to dst: clients get MOVED
        c.begin_migration(slot, dst)          # MIGRATING/IMPORTING only: a missing key gets ASK
        c.end_migration(slot, dst)            # ... then the keys move and the slot is dst's

Every process runs in its own session and is killed (SIGCONT, then SIGKILL)
when its fixture ends, whatever the test did; an atexit hook kills what
might remain if the interpreter leaves early.  The same classes work
outside pytest as context managers: `with RedisServer(tmpdir) as r: ...`.
"""
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import free_port, wait_for

REDIS_SERVER = shutil.which('redis-server') or '/usr/bin/redis-server'
REDIS_CLI = shutil.which('redis-cli') or '/usr/bin/redis-cli'
_live = set()


def _kill_all():
    for p in list(_live):
        _kill(p)


atexit.register(_kill_all)


def _kill(proc):
    if proc.poll() is None:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
        proc.wait()
    _live.discard(proc)


def _resp(*args):
    out = [f'*{len(args)}\r\n'.encode()]
    for a in args:
        a = str(a).encode()
        out.append(b'$%d\r\n%s\r\n' % (len(a), a))
    return b''.join(out)


class _Started:
    """`with X(...) as x:` starts x, and kills what it started on the way out."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


class RedisServer(_Started):
    """One redis-server (or sentinel) process with its configuration file."""

    def __init__(self, tmpdir, name='redis', port=None, password=None, acl_user=None, extra=(), sentinel=False):
        self.dir = os.path.join(tmpdir, f'{name}')
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.host = '127.0.0.1'
        self.port = port or free_port()
        self.password = password
        self.acl_user = acl_user
        self.sentinel = sentinel
        self.conf = os.path.join(self.dir, 'redis.conf')
        self.logfile = os.path.join(self.dir, 'redis.log')
        self.proc = None
        lines = [f'port {self.port}', 'bind 127.0.0.1', f'dir {self.dir}', f'logfile {self.logfile}',
                 'daemonize no', 'protected-mode no']
        if not sentinel:
            lines += ['save ""', 'appendonly no']
        if password:
            lines += [f'requirepass {password}']
            if not sentinel:
                lines += [f'masterauth {password}']
        if acl_user:
            lines += [f'user {acl_user[0]} on >{acl_user[1]} ~* &* +@all']
        lines += list(extra)
        with open(self.conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    @property
    def addr(self):
        return f'{self.host}:{self.port}'

    def start(self, timeout=15):
        args = [REDIS_SERVER, self.conf] + (['--sentinel'] if self.sentinel else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        _live.add(self.proc)
        try:
            wait_for(self.answers, timeout, interval=0.02, what=f'{self.name} on port {self.port}')
        except AssertionError:
            self.kill()
            raise AssertionError(f'{self.name} did not start:\n{self.log()}') from None
        return self

    def answers(self):
        """Does it answer PING (with -NOAUTH counting as an answer)?"""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                raise AssertionError(f'{self.name} exited ({self.proc.returncode}):\n{self.log()}')
            return False
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                s.sendall(_resp('PING'))
                return s.recv(64)[:1] in (b'+', b'-')
        except OSError:
            return False

    def log(self):
        try:
            with open(self.logfile, errors='replace') as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ''

    def cli(self, *args, check=True, timeout=15, db=0):
        """redis-cli's answer to one command, stripped ('' for nil)."""
        cmd = [REDIS_CLI, '-h', self.host, '-p', str(self.port)] + (['-n', str(db)] if db else [])
        if self.password:
            cmd += ['--no-auth-warning', '-a', self.password]
        p = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f'redis-cli {" ".join(map(str, args))}: {p.stderr or p.stdout}')
        return p.stdout.strip()

    def role(self):
        """'master' or 'slave'; None while the server drops its clients
        (it does so as sentinel turns it into a replica or back)."""
        try:
            return self.info('replication').get('role')
        except AssertionError:
            return None

    def info(self, section):
        out = {}
        for line in self.cli('INFO', section).splitlines():
            if ':' in line:
                k, v = line.split(':', 1)
                out[k] = v.strip()
        return out

    def kill(self):
        if self.proc is not None:
            _kill(self.proc)

    def restart(self):
        self.kill()
        return self.start()

    def state(self):
        """The process state letter of /proc/PID/stat ('T' when stopped)."""
        with open(f'/proc/{self.proc.pid}/stat') as f:
            return f.read().rpartition(')')[2].split()[0]

    def stop(self):
        """SIGSTOP, and returns once the process is stopped."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        wait_for(lambda: self.state() == 'T', 5, interval=0.005, what=f'{self.name} stopped')

    def cont(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        wait_for(lambda: self.state() != 'T', 5, interval=0.005, what=f'{self.name} running')

    @contextlib.contextmanager
    def stopped(self):
        self.stop()
        try:
            yield self
        finally:
            if self.proc.poll() is None:
                self.cont()

    def node_id(self):
        return self.cli('CLUSTER', 'MYID')


class RedisSentinel(_Started):
    """A master, a replica of it and one sentinel that fails over in ~1-3 s."""

    def __init__(self, tmpdir, master_name='mymaster', password=None, sentinel_password=None):
        self.master_name = master_name
        self.master = RedisServer(tmpdir, 'master', password=password, extra=['repl-diskless-sync-delay 0'])
        self.replica = RedisServer(tmpdir, 'replica', password=password,
                                   extra=[f'replicaof 127.0.0.1 {self.master.port}', 'repl-diskless-sync-delay 0'])
        extra = [f'sentinel monitor {master_name} 127.0.0.1 {self.master.port} 1',
                 f'sentinel down-after-milliseconds {master_name} 400',
                 f'sentinel failover-timeout {master_name} 2000',
                 f'sentinel parallel-syncs {master_name} 1']
        if password:
            extra.append(f'sentinel auth-pass {master_name} {password}')
        self.sentinel = RedisServer(tmpdir, 'sentinel', password=sentinel_password, extra=extra, sentinel=True)
        self.servers = [self.master, self.replica, self.sentinel]

    @property
    def sentinel_addr(self):
        return self.sentinel.addr

    def start(self):
        try:
            self.master.start()
            self.replica.start()
            wait_for(lambda: self.replica.info('replication').get('master_link_status') == 'up', 15,
                     interval=0.05, what='the replica in sync')
            self.sentinel.start()
            wait_for(self._sentinel_sees_replica, 20, interval=0.1, what='the sentinel to know the replica')
        except BaseException:
            self.kill()
            raise
        return self

    def _sentinel_sees_replica(self):
        out = self.sentinel.cli('SENTINEL', 'REPLICAS', self.master_name)
        return str(self.replica.port) in out and 's_down' not in out and 'disconnected' not in out

    def master_addr(self):
        out = self.sentinel.cli('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', self.master_name).split()
        return f'{out[0]}:{out[1]}' if len(out) == 2 else None

    def _wait_new_master(self, old, timeout=30):
        wait_for(lambda: self.master_addr() not in (None, old.addr), timeout, interval=0.05,
                 what='the sentinel to name a new master')
        new = self.replica if self.master_addr() == self.replica.addr else None
        assert new is not None, f'unexpected master {self.master_addr()}'
        wait_for(lambda: new.role() == 'master', 15, interval=0.05,
                 what='the replica to become master')
        self.master, self.replica = new, old
        return new

    def kill_master_and_wait(self, timeout=30):
        old = self.master
        old.kill()
        return self._wait_new_master(old, timeout)

    def failover(self, timeout=30):
        old = self.master
        self.sentinel.cli('SENTINEL', 'FAILOVER', self.master_name)
        new = self._wait_new_master(old, timeout)
        # sentinel turns the old master into a replica on its own
        # schedule: 15 s was short once on a loaded machine (a fresh
        # clone's scripts/check)
        wait_for(lambda: old.role() == 'slave', timeout, interval=0.05,
                 what='the old master to become a replica')
        return new

    def kill(self):
        for s in self.servers:
            s.kill()


class RedisCluster(_Started):
    """Three masters, no replicas, every slot assigned."""

    def __init__(self, tmpdir, n=3, password=None):
        self.password = password
        self.nodes = []
        for i in range(n):
            bus = free_port()
            self.nodes.append(RedisServer(tmpdir, f'node{i}', password=password, extra=[
                'cluster-enabled yes', f'cluster-config-file nodes-{i}.conf', 'cluster-node-timeout 2000',
                f'cluster-port {bus}']))

    @property
    def seed_addr(self):
        return self.nodes[0].addr

    def start(self):
        try:
            for node in self.nodes:
                node.start()
            cmd = [REDIS_CLI, '--cluster', 'create', *[x.addr for x in self.nodes], '--cluster-replicas', '0',
                   '--cluster-yes']
            if self.password:
                cmd += ['--no-auth-warning', '-a', self.password]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, f'redis-cli --cluster create: {p.stdout}\n{p.stderr}'
            wait_for(self._ok, 30, interval=0.1, what='cluster_state:ok on every node')
        except BaseException:
            self.kill()
            raise
        return self

    def _ok(self):
        for node in self.nodes:
            info = node.cli('CLUSTER', 'INFO')
            if 'cluster_state:ok' not in info or 'cluster_slots_assigned:16384' not in info:
                return False
            if f'cluster_known_nodes:{len(self.nodes)}' not in info:
                return False
        return True

    def keyslot(self, key):
        return int(self.nodes[0].cli('CLUSTER', 'KEYSLOT', key))

    def node_for_slot(self, slot):
        for node in self.nodes:
            if self._owner(node, slot):
                return node
        raise AssertionError(f'no node serves slot {slot}')

    def _owner(self, node, slot):
        """Does node own slot, by its own CLUSTER NODES line ('myself')?"""
        for line in node.cli('CLUSTER', 'NODES').splitlines():
            f = line.split()
            if 'myself' not in f[2]:
                continue
            for r in f[8:]:
                if r.startswith('['):
                    continue
                lo, _, hi = r.partition('-')
                if int(lo) <= slot <= int(hi or lo):
                    return True
        return False

    def owners(self):
        """slot -> the RedisServer that serves it, from every node's own view."""
        out = {}
        for node in self.nodes:
            for line in node.cli('CLUSTER', 'NODES').splitlines():
                f = line.split()
                if 'myself' not in f[2]:
                    continue
                for r in f[8:]:
                    if not r.startswith('['):
                        lo, _, hi = r.partition('-')
                        for slot in range(int(lo), int(hi or lo) + 1):
                            out[slot] = node
        return out

    def node_for_key(self, key):
        return self.node_for_slot(self.keyslot(key))

    def begin_migration(self, slot, dst):
        src = self.node_for_slot(slot)
        assert src is not dst, 'the slot is on dst already'
        dst.cli('CLUSTER', 'SETSLOT', slot, 'IMPORTING', src.node_id())
        src.cli('CLUSTER', 'SETSLOT', slot, 'MIGRATING', dst.node_id())
        return src

    def end_migration(self, slot, dst, src):
        while True:
            keys = src.cli('CLUSTER', 'GETKEYSINSLOT', slot, 100).split()
            if not keys:
                break
            auth = ['AUTH', self.password] if self.password else []
            src.cli('MIGRATE', dst.host, dst.port, '', 0, 5000, *auth, 'KEYS', *keys)
        for node in [dst, src] + [x for x in self.nodes if x not in (src, dst)]:
            node.cli('CLUSTER', 'SETSLOT', slot, 'NODE', dst.node_id())

    def migrate_slot(self, slot, dst):
        src = self.begin_migration(slot, dst)
        self.end_migration(slot, dst, src)

    def kill(self):
        for node in self.nodes:
            node.kill()


def _serve(cls):
    """A fixture's body: yields a factory of started cls objects, kills them all after."""
    made = []
    with tempfile.TemporaryDirectory(prefix='portico-redis-') as tmp:
        def make(*args, **kw):
            obj = cls(tmp, *args, **kw)
            made.append(obj)
            return obj.start()
        try:
            yield make
        finally:
            for obj in made:
                obj.kill()


@pytest.fixture
def redis_single():
    """Factory: redis_single(password=None, acl_user=None, extra=()) -> a started RedisServer."""
    yield from _serve(lambda tmp, **kw: RedisServer(tmp, f'redis{time.monotonic_ns()}', **kw))


@pytest.fixture
def redis_sentinel():
    """Factory: redis_sentinel(master_name='mymaster', password=None, sentinel_password=None)."""
    yield from _serve(RedisSentinel)


@pytest.fixture
def redis_cluster():
    """Factory: redis_cluster(n=3, password=None) -> a started RedisCluster."""
    yield from _serve(RedisCluster)
