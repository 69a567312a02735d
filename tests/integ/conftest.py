"""Integration test harness: runs the real portico binary on free loopback
ports with inline YAML, and cleans up every process it starts."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import textwrap
import time

import pytest

SRCDIR = os.environ.get('PORTICO_SRCDIR', os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))
BIN = os.environ.get('PORTICO_BIN', os.path.join(SRCDIR, 'portico'))
SANITIZER_MARKS = ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:', 'Sanitizer:DEADLYSIGNAL')


_handed_out = set()


def pytest_configure(config):
    # run_pytest.py runs with pytest-xdist's --dist loadgroup: a module of
    # this group shares one worker, and its module fixtures run once
    config.addinivalue_line('markers', 'xdist_group(name): tests that must share one pytest-xdist worker')


class Stopped:
    """SIGSTOPs a process; SIGCONT on the way out, whatever happened, so a
    failing test leaves nothing frozen (the gateway fixture then kills it)."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def read_text(path):
    """A file's text, or '' when it does not exist (yet)."""
    try:
        with open(path, errors='replace') as f:
            return f.read()
    except FileNotFoundError:
        return ''


def _ephemeral():
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A free loopback port, never one this process handed out before, and
    below the kernel's ephemeral range: a port from bind(0) is one the
    kernel may also give any outgoing connection as its source port before
    the gateway binds it (a test failed on "address already in use (by
    another process)" that way).  Under pytest-xdist each worker takes the
    ports of its own residue modulo the workers, so that no two hand out
    the same one (a test's port that nothing may listen on stays so)."""
    import random
    lo, _ = _ephemeral()
    top = min(lo, 65536) - 1
    worker = os.environ.get('PYTEST_XDIST_WORKER', '')
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1') or 1)
    mine = int(worker[2:]) % workers if worker.startswith('gw') and worker[2:].isdigit() else 0
    while True:
        port = random.randint(20000, top) if top > 21000 else 0
        if port and port % workers != mine:
            continue
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for(pred, timeout=10.0, interval=0.02, what='condition'):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f'timed out after {timeout}s waiting for {what}')


def run_portico(*args, env=None, timeout=30):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, env=env)


class Portico:
    """One gateway under test: its config file, its log, its process."""

    def __init__(self, tmp, yaml_text, workers=2, env=None, extra_args=(), rlimit_nofile=None, wrap=()):
        self.tmp = tmp
        self.conf = os.path.join(tmp, 'portico.yaml')
        self.pidfile = os.path.join(tmp, 'portico.pid')
        self.logfile = os.path.join(tmp, 'error.log')
        self.workers = workers
        self.env = dict(os.environ, **(env or {}))
        self.extra_args = list(extra_args)
        self.rlimit_nofile = rlimit_nofile  # RLIMIT_NOFILE of the gateway: n, (soft, hard), or None
        self.wrap = list(wrap)  # a command that execs the gateway in the same process (unshare ... sh -c 'exec ...')
        self.proc = None
        self.write(yaml_text)

    def write(self, yaml_text):
        # Written aside and renamed into place, as configuration management
        # does: a reload still reading the previous file never sees this one
        # half written (a HUP storm test read a truncated file under ASan).
        tmp = self.conf + '.new'
        with open(tmp, 'w') as f:
            f.write(textwrap.dedent(yaml_text))
        os.replace(tmp, self.conf)

    def start(self, wait=True):
        log = open(self.logfile, 'a')
        preexec = None
        if self.rlimit_nofile:
            import resource
            n = self.rlimit_nofile
            n = n if isinstance(n, tuple) else (n, n)
            preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, n)  # noqa: E731
        self.proc = subprocess.Popen([*self.wrap, BIN, '-f', '-c', self.conf, '-p', self.pidfile, '-w', str(self.workers),
                                      *self.extra_args], stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True, preexec_fn=preexec)
        log.close()
        if wait:
            self.wait_log(r'\] master\[\d+\]: ready: generation 1')
        return self

    def log(self):
        try:
            with open(self.logfile, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def wait_log(self, pattern, count=1, timeout=10):
        def seen():
            if self.proc and self.proc.poll() is not None and self.count(pattern) < count:
                raise AssertionError(f'portico exited ({self.proc.returncode}) before /{pattern}/:\n{self.log()}')
            return self.count(pattern) >= count
        try:
            wait_for(seen, timeout, what=f'/{pattern}/ x{count}')
        except AssertionError as e:
            raise AssertionError(f'{e}\n--- log ---\n{self.log()}') from None

    def reload(self, ok=True):
        """SIGHUP and wait for the outcome line: reload ok, or reload failed."""
        key = r'reload ok' if ok else r'reload failed'
        n = self.count(key)
        os.kill(self.proc.pid, signal.SIGHUP)
        self.wait_log(key, n + 1)

    def worker_pids(self):
        out = subprocess.run(['pgrep', '-P', str(self.proc.pid)], capture_output=True, text=True).stdout
        return sorted(int(x) for x in out.split())

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f'portico did not stop on signal {sig}:\n{self.log()}')

    def kill_all(self):
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix='portico-test-') as d:
        os.chmod(d, 0o755)
        yield d


@pytest.fixture
def gateway(tmpdir_path):
    """Factory: gateway(yaml, workers=2) -> a started Portico.  Every one is
    killed at the end, and the test fails if a sanitizer reported anything."""
    made = []

    def make(yaml_text, start=True, **kw):
        d = tmpdir_path
        if made:  # a second gateway in one test gets its own files
            d = os.path.join(tmpdir_path, f'gateway{len(made)}')
            os.makedirs(d, mode=0o755)
        p = Portico(d, yaml_text, **kw)
        made.append(p)
        return p.start() if start else p

    yield make
    reports = []
    for p in made:
        p.kill_all()
        text = p.log()
        if any(m in text for m in SANITIZER_MARKS):
            reports.append(text)
    assert not reports, 'sanitizer report:\n' + '\n'.join(reports)


def http_get(port, path='/', host='localhost', timeout=5, method='GET', headers=None):
    import http.client
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.request(method, path, headers={'Host': host, **(headers or {})})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def request(port, method, path, body=None, headers=None, timeout=10):
    """One request on its own connection: status, headers (names in lower
    case), body."""
    import http.client
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def read_all(s):
    """Everything a socket (plain or TLS) receives until the peer closes."""
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b''.join(chunks)
        chunks.append(b)


def raw(port, data, timeout=5, until_close=True):
    """Sends bytes, returns everything received until the server closes."""
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if not until_close:
                break
        return b''.join(chunks)
    finally:
        s.close()


DEFAULT_ROUTES = """
- name: hello
  match: { paths: [/hello] }
  respond: { status: 200, body: "hello\\n" }
"""


def basic_config(port, admin_port=None, extra='', routes=None):
    """A configuration with one listener, an optional admin listener, more
    top-level YAML in `extra`, and `routes` (a YAML list, any indentation)."""
    lines = ['listeners:', '  - name: main', f'    address: 127.0.0.1:{port}']
    if admin_port:
        lines.append(f'admin: {{ address: 127.0.0.1:{admin_port} }}')
    if extra:
        lines.append(textwrap.dedent(extra).strip('\n'))
    lines.append('routes:')
    lines.append(textwrap.indent(textwrap.dedent(routes or DEFAULT_ROUTES).strip('\n'), '  '))
    return '\n'.join(lines) + '\n'


@pytest.fixture
def backends():
    """Factory: backends() -> a started recording Backend; all stopped at the end."""
    from backend import Backend
    made = []

    def make(**kw):
        b = Backend(**kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def proxy_config(port, targets, upstream='', route='', extra='', routes_extra=''):
    """One listener, one upstream `up` over `targets`, one catch-all route to it."""
    tl = ', '.join(f'"{t}"' if isinstance(t, str) else f'"127.0.0.1:{t}"' for t in targets)
    up = textwrap.indent(textwrap.dedent(upstream).strip('\n'), '    ')
    rt = textwrap.indent(textwrap.dedent(route).strip('\n'), '    ')
    text = f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
upstreams:
  - name: up
    targets: [{tl}]
{up}
routes:
  - name: main
    match: {{ paths: ["/*"] }}
    upstream: up
{rt}
'''
    if routes_extra:
        text += textwrap.indent(textwrap.dedent(routes_extra).strip('\n'), '  ') + '\n'
    if extra:
        text += textwrap.dedent(extra).strip('\n') + '\n'
    return text
