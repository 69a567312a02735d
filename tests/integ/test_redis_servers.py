"""The Redis fixtures themselves (redis_servers.py): what they start
answers, and nothing they started outlives them, even when the code using
them fails in the middle."""
import os
import signal
import tempfile

import pytest

from redis_servers import RedisCluster, RedisSentinel, redis_single  # noqa: F401


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:
        return f.read().split()[2] != 'Z'


def test_a_failing_user_leaves_no_server_behind():
    pids = []
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(RuntimeError):
            with RedisSentinel(d) as s:
                pids += [x.proc.pid for x in s.servers]
                assert s.master_addr() == s.master.addr
                s.master.stop()  # even a stopped one
                raise RuntimeError('the test failed here')
        with pytest.raises(RuntimeError):
            with RedisCluster(d) as c:
                pids += [x.proc.pid for x in c.nodes]
                assert c.nodes[0].cli('SET', 'x', '1', check=False)
                raise RuntimeError('the test failed here')
    assert len(pids) == 6 and not any(alive(p) for p in pids)


def test_single_kill_stop_restart(redis_single):
    r = redis_single(password='pw')
    assert r.cli('SET', 'k', 'v') == 'OK' and r.cli('GET', 'k') == 'v'
    with r.stopped():
        assert r.state() == 'T'
    assert r.cli('PING') == 'PONG'
    pid = r.proc.pid
    r.kill()
    assert not alive(pid)
    r.restart()
    assert r.cli('GET', 'k') == ''  # nothing is saved
    os.kill(r.proc.pid, signal.SIGSTOP)  # left stopped: the fixture still kills it
