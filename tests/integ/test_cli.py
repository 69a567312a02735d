"""The command line: -t, -T, -V, -h, usage errors, and start-up failures
that must give one clear message and exit 1."""
import os
import socket
import subprocess

import pytest

from conftest import BIN, Portico, basic_config, free_port, run_portico


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def test_t_good_file(tmpdir_path):
    conf = write(tmpdir_path, 'ok.yaml', basic_config(free_port()))
    r = run_portico('-t', '-c', conf)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == f'portico: configuration ok: {conf}'
    assert r.stdout == ''


def test_t_bad_file_reports_every_error_with_location(tmpdir_path):
    conf = write(tmpdir_path, 'bad.yaml', 'listeners:\n  - address: nowhere\nworkers: lots\nupstream: []\n')
    r = run_portico('-t', '-c', conf)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert f'{conf}:2:14: error: listeners[0].address: expected a numeric IP address and port, such as ' \
           f'127.0.0.1:8080, not "nowhere"' in lines
    assert f'{conf}:3:10: error: workers: expected "auto" or a number of workers from 1 to 256, not "lots"' in lines
    assert f'{conf}:4:1: error: unknown key "upstream"; did you mean "upstreams"?' in lines
    assert lines[-1] == f'portico: configuration has errors: {conf}'


def test_shipped_example_is_valid():
    src = os.environ.get('PORTICO_SRCDIR', '.')
    r = run_portico('-t', '-c', os.path.join(src, 'etc', 'portico.yaml'))
    assert r.returncode == 0, r.stderr


def test_T_prints_effective_config_with_secrets_redacted(tmpdir_path):
    conf = write(tmpdir_path, 'c.yaml', basic_config(free_port(), routes='''
        - name: secret
          match: { paths: [/s] }
          respond: { body: "${PT_SECRET}", headers: { x-key: "${PT_SECRET}" } }
    '''))
    r = run_portico('-T', '-c', conf, env=dict(os.environ, PT_SECRET='hunter2'))
    assert r.returncode == 0, r.stderr
    assert 'hunter2' not in r.stdout
    assert 'body: "${PT_SECRET}"' in r.stdout
    assert 'max_headers: 100' in r.stdout  # defaults are filled in
    assert 'idle: 1m' in r.stdout
    # and what -T prints is a configuration that checks
    again = write(tmpdir_path, 'again.yaml', r.stdout)
    r2 = run_portico('-t', '-c', again, env=dict(os.environ, PT_SECRET='x'))
    assert r2.returncode == 0, r2.stderr


def test_version_and_help():
    r = run_portico('-V')
    assert r.returncode == 0 and r.stdout.startswith('portico 0.')
    assert 'build options:' in r.stdout
    r = run_portico('--help')
    assert r.returncode == 0
    for flag in ('--config', '--test', '--dump', '--signal', '--pid-file', '--foreground', '--workers',
                 '--log-level', '--version', '--help'):
        assert flag in r.stdout


@pytest.mark.parametrize('args,needle', [
    (['-x'], 'invalid option'),
    (['-w', '0'], '-w takes a number of workers from 1 to 256'),
    (['-w', 'many'], '-w takes a number of workers'),
    (['-l', 'loud'], '-l takes crit, error'),
    (['-s', 'explode'], '-s takes reload, stop, quit or reopen'),
    (['stray'], 'unexpected argument'),
])
def test_usage_errors_exit_2(args, needle):
    r = run_portico(*args)
    assert r.returncode == 2
    assert needle in r.stderr


def start_fails(tmpdir_path, yaml_text, *args):
    p = Portico(tmpdir_path, yaml_text)
    return subprocess.run([BIN, '-f', '-c', p.conf, '-p', p.pidfile, '-w', '1', *args], capture_output=True,
                          text=True, timeout=15)


def test_missing_config_file(tmpdir_path):
    r = run_portico('-f', '-c', os.path.join(tmpdir_path, 'nope.yaml'))
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == f'{tmpdir_path}/nope.yaml: error: cannot open: No such file or directory'


def test_unreadable_config_file(tmpdir_path):
    # root reads anything, so use something that is not a file
    r = run_portico('-f', '-c', tmpdir_path)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == f'{tmpdir_path}: error: not a regular file'


def test_port_in_use(tmpdir_path):
    busy = socket.socket()
    busy.bind(('127.0.0.1', 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        r = start_fails(tmpdir_path, basic_config(port))
        assert r.returncode == 1
        crit = [l for l in r.stderr.splitlines() if '[crit]' in l]
        assert len(crit) == 1, r.stderr
        assert f'listener main: cannot listen on 127.0.0.1:{port}: address already in use' in crit[0]
    finally:
        busy.close()


def test_unknown_user(tmpdir_path):
    r = start_fails(tmpdir_path, basic_config(free_port(), extra='user: no-such-user-xyz'))
    assert r.returncode == 1
    # checked with the file, as -t does: at the key (issue 12)
    conf = os.path.join(tmpdir_path, 'portico.yaml')
    assert r.stderr.splitlines() == [f'{conf}:4:7: error: user: unknown user "no-such-user-xyz"'], r.stderr


def test_already_running(gateway, tmpdir_path):
    g = gateway(basic_config(free_port()))
    r = subprocess.run([BIN, '-f', '-c', g.conf, '-p', g.pidfile], capture_output=True, text=True, timeout=15)
    assert r.returncode == 1
    assert f'already running as pid {g.proc.pid}' in r.stderr


def test_daemon_mode_writes_pid_file_and_detaches(tmpdir_path):
    port = free_port()
    p = Portico(tmpdir_path, basic_config(port, extra=f'error_log: {{ path: {tmpdir_path}/daemon.log }}'))
    r = subprocess.run([BIN, '-c', p.conf, '-p', p.pidfile, '-w', '1'], capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stderr
    pid = int(open(p.pidfile).read())
    try:
        assert pid != 0 and os.getsid(pid) == pid  # its own session: detached
        from conftest import http_get, wait_for
        wait_for(lambda: 'ready: generation 1' in open(f'{tmpdir_path}/daemon.log').read(), what='ready')
        assert http_get(port, '/hello')[0] == 200
        r = run_portico('-s', 'stop', '-p', p.pidfile)
        assert r.returncode == 0
        wait_for(lambda: not os.path.exists(p.pidfile), what='pid file removed')
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def test_signal_without_running_master(tmpdir_path):
    r = run_portico('-s', 'reload', '-p', os.path.join(tmpdir_path, 'none.pid'))
    assert r.returncode == 1
    assert 'is portico running?' in r.stderr
