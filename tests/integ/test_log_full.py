"""Issue 11: the access log on a full file system.  Each failed write logged
an error line: 491 lines in 6 s, and with buffer: 0 one per request
(239,610 lines in 5 s), which filled the error log's disk too.  Now a
worker reports at most once a minute with the count of entries lost,
counts them on the status board (/status), and a line cut by a full disk
does not swallow the next one."""
import errno
import json
import os
import re
import signal
import subprocess

import pytest

from conftest import basic_config, free_port, http_get, wait_for

FAILED = re.compile(r'access log write failed: (\S+): No space left on device; (\d+) entr(?:y|ies) lost')


def fill(path):
    """Writes a file until the file system has no room left."""
    with open(path, 'wb', buffering=0) as f:
        try:
            while True:
                f.write(b'\0' * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


@pytest.fixture
def small_fs(tmpdir_path):
    """A 64 KiB tmpfs, unmounted at the end (lazily if a gateway still holds
    a file there)."""
    d = os.path.join(tmpdir_path, 'full')
    os.mkdir(d)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', d], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs (needs root): {r.stderr.strip()}')
    try:
        yield d
    finally:
        if subprocess.run(['umount', d], capture_output=True).returncode != 0:
            subprocess.run(['umount', '-l', d], check=True)


def lost_by_worker(admin_port):
    status, _, body = http_get(admin_port, '/status')
    assert status == 200
    return [w['access_log_lost'] for w in json.loads(body)['workers']]


@pytest.mark.parametrize('buffer', ['', ', buffer: 0'], ids=['buffered', 'unbuffered'])
def test_a_full_disk_is_reported_once_with_the_entries_lost(gateway, small_fs, buffer):
    fill(os.path.join(small_fs, 'filler'))
    alog = os.path.join(small_fs, 'access.log')
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin, extra=f'access_log: {{ path: {alog}, format: json{buffer} }}'),
                workers=2)
    n = 300
    for _ in range(n):
        assert http_get(port, '/hello')[0] == 200
    wait_for(lambda: sum(lost_by_worker(admin)) >= n, timeout=15, what='the lost entries on /status')
    # the admin API's requests (/status) are not the traffic log's (issue 16)
    assert sum(lost_by_worker(admin)) == n
    assert g.stop(signal.SIGQUIT) == 0
    lines = [m for m in FAILED.finditer(g.log())]
    # one report at the first failure, one at exit: not one per write
    assert 1 <= len(lines) <= 2 * 2, g.log()[-3000:]
    assert all(m.group(1) == alog for m in lines)
    # together they tell every entry that was lost: all of them
    assert sum(int(m.group(2)) for m in lines) == n, g.log()[-3000:]
    assert g.count('access log write failed') == len(lines)
    assert os.path.getsize(alog) == 0


def test_a_line_cut_by_a_full_disk_is_counted_and_not_glued_to_the_next(gateway, small_fs):
    alog = os.path.join(small_fs, 'access.log')
    with open(alog, 'w') as f:
        f.write('before\n')  # the file's first page has room for about ten lines
    fill(os.path.join(small_fs, 'filler'))
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin, extra=f'access_log: {{ path: {alog}, format: json, buffer: 0 }}'),
                workers=1)
    n = 40
    for _ in range(n):
        assert http_get(port, '/hello')[0] == 200
    with open(alog) as f:
        text = f.read()
    assert not text.endswith('\n'), 'no line was cut: the test needs a partial write'
    written = text.count('\n') - 1  # whole entries, "before" aside
    assert 0 < written < n
    g.wait_log(r'access log write failed: .*; 1 entry lost')  # the cut one
    # room again: the next entries are written, each on its own line
    os.unlink(os.path.join(small_fs, 'filler'))
    m = 5
    for _ in range(m):
        assert http_get(port, '/hello')[0] == 200
    wait_for(lambda: sum(lost_by_worker(admin)) == n - written, what=f'{n - written} entries lost on /status')
    with open(alog) as f:
        rows = f.read().split('\n')
    assert rows[0] == 'before'
    parsed = []
    for row in rows[1:]:
        try:
            parsed.append(json.loads(row))
        except ValueError:
            pass
    # the written entries and the ones after the disk had room again (some
    # /status requests among them), but for the cut one, which stands alone
    hello = [e for e in parsed if e['target'] == '/hello']
    assert len(hello) == written + m, rows
    assert g.stop(signal.SIGQUIT) == 0
    counts = [int(x.group(2)) for x in FAILED.finditer(g.log())]
    assert counts[0] == 1 and sum(counts) == n - written and len(counts) <= 2, g.log()[-3000:]


def test_the_total_lost_outlives_the_workers_that_lost_them(gateway, small_fs):
    fill(os.path.join(small_fs, 'filler'))
    alog = os.path.join(small_fs, 'access.log')
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin, extra=f'access_log: {{ path: {alog}, format: json, buffer: 0 }}'),
                workers=2)
    for _ in range(50):
        assert http_get(port, '/hello')[0] == 200

    def total():
        status, _, body = http_get(admin, '/status')
        return json.loads(body)['access_log_lost']
    wait_for(lambda: total() >= 50, what='50 entries lost')
    before = total()
    old = set(g.worker_pids())
    g.reload()  # the workers that lost them exit
    wait_for(lambda: not old & set(g.worker_pids()), what='the old workers to exit')
    st = json.loads(http_get(admin, '/status')[2])
    assert all(w['access_log_lost'] <= 2 for w in st['workers'])  # the new ones lost only the /status entries
    assert st['access_log_lost'] >= before, (st['access_log_lost'], before)


def test_a_file_size_limit_loses_entries_without_killing_workers(gateway, tmpdir_path):
    """RLIMIT_FSIZE (ulimit -f): a write past it raised SIGXFSZ, which
    killed the worker at each log write, so requests failed and the file
    ended in half a line.  Now the write fails (EFBIG) and the entries are
    lost and counted, as on a full disk."""
    alog = os.path.join(tmpdir_path, 'access.log')
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin, extra=f'access_log: {{ path: {alog}, format: json, buffer: 0 }}'),
                workers=1)
    (pid,) = g.worker_pids()
    subprocess.run(['prlimit', '--pid', str(pid), '--fsize=8192'], check=True)
    n = 200
    for _ in range(n):
        assert http_get(port, '/hello')[0] == 200
    assert g.worker_pids() == [pid]  # never killed
    wait_for(lambda: sum(lost_by_worker(admin)) > 0, timeout=10, what='the lost entries on /status')
    kept = open(alog).read()
    assert len(kept) <= 8192  # the last line may be cut at the limit: nothing can end it there
    assert all(json.loads(l) for l in kept.split('\n')[:-1])
    assert sum(lost_by_worker(admin)) + kept.count('\n') == n  # whole lines, and the rest counted lost
