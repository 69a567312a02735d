"""Operating Portico as nginx's users do (issue 12): logs that workers
running as `user:` can reopen after a rotation, fatal start errors that
reach stderr when the log is a file, -t that checks the user and the error
log's directory, -s reload that checks the file before it signals, and the
shipped logrotate file."""
import grp
import gzip
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import BIN, SRCDIR, basic_config, free_port, http_get, read_text, run_portico, wait_for

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='needs root to start as root and change users')




def write_conf(tmp, text, name='t.yaml'):
    path = os.path.join(tmp, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def logs_dir(tmp):
    d = os.path.join(tmp, 'logs')
    os.mkdir(d, 0o755)
    return d


def logged_config(port, d, extra=''):
    return basic_config(port, extra=f'error_log: {{ path: {d}/error.log }}\n'
                                    f'access_log: {{ path: {d}/access.log, format: common, buffer: 0 }}\n{extra}')


def start_logged(gateway, text, d, workers=2):
    """A gateway whose error log is a file: wait for ready in that file."""
    g = gateway(text, workers=workers, start=False)
    g.logfile = os.path.join(d, 'error.log')
    return g.start()


def reopened_by_all(g, elog):
    """Every process says "logs reopened" in the new file: the master, then
    each worker."""
    text = read_text(elog)
    pids = [g.proc.pid] + g.worker_pids()
    return all(re.search(rf'\[{pid}\]: logs reopened', text) for pid in pids)


@needs_root
def test_reopen_as_root_with_user_moves_master_and_workers_to_new_files(gateway, tmpdir_path):
    d = logs_dir(tmpdir_path)
    elog, alog = os.path.join(d, 'error.log'), os.path.join(d, 'access.log')
    port = free_port()
    g = start_logged(gateway, logged_config(port, d, 'user: nobody'), d)
    nobody = pwd.getpwnam('nobody')
    assert http_get(port, '/hello?before')[0] == 200
    os.rename(elog, elog + '.1')
    os.rename(alog, alog + '.1')
    r = run_portico('-s', 'reopen', '-p', g.pidfile)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: reopened_by_all(g, elog), what='"logs reopened" from the master and both workers')
    # the master made the new files and gave them to the workers' user
    assert os.stat(elog).st_uid == nobody.pw_uid and os.stat(alog).st_uid == nobody.pw_uid
    assert 'cannot reopen' not in read_text(elog + '.1') + read_text(elog)
    assert http_get(port, '/hello?after')[0] == 200
    wait_for(lambda: 'GET /hello?after' in read_text(alog), what='the new access log')
    assert 'GET /hello?after' not in read_text(alog + '.1') and 'GET /hello?before' in read_text(alog + '.1')
    # and again: the second rotation finds the files the first one made
    os.rename(elog, elog + '.2')
    os.kill(g.proc.pid, signal.SIGUSR1)
    wait_for(lambda: reopened_by_all(g, elog), what='a second reopen')


def run_start(conf, pidfile):
    """Runs portico -f on a configuration that must not start: (exit status,
    stderr).  Should it start all the same, its whole process group is
    killed."""
    p = subprocess.Popen([BIN, '-f', '-c', conf, '-p', pidfile], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        _, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError('portico started') from None
    return p.returncode, err


def start_failing(tmp, text):
    """run_start on text, and the error log file."""
    conf = write_conf(tmp, text, 'fail.yaml')
    rc, err = run_start(conf, os.path.join(tmp, 'fail.pid'))
    return rc, err, read_text(os.path.join(tmp, 'logs', 'error.log'))


def test_fatal_start_errors_reach_stderr_with_a_file_error_log(tmpdir_path):
    d = logs_dir(tmpdir_path)
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        rc, err, log = start_failing(tmpdir_path, basic_config(port, extra=f'error_log: {{ path: {d}/error.log }}'))
    # systemd's journal shows stderr: more than status=1
    assert rc == 1
    assert re.search(rf'^portico: .*127\.0\.0\.1:{port}.*address already in use', err, re.M | re.I), err
    assert re.search(rf'\[crit\] master\[\d+\]: .*127\.0\.0\.1:{port}.*address already in use', log, re.I), log
    rc, err, _ = start_failing(tmpdir_path, basic_config(free_port(), extra=f'error_log: {{ path: {d}/error.log }}\n'
                                                                             'user: no-such-user-x'))
    assert rc == 1 and 'unknown user "no-such-user-x"' in err, err


def test_t_reports_an_unknown_user_at_its_key(tmpdir_path):
    conf = write_conf(tmpdir_path, basic_config(free_port(), extra='user: no-such-user-x'))
    r = run_portico('-t', '-c', conf)
    assert r.returncode == 1
    assert f'{conf}:4:7: error: user: unknown user "no-such-user-x"' in r.stderr.splitlines(), r.stderr
    assert r.stderr.splitlines()[-1] == f'portico: configuration has errors: {conf}'


def test_t_reports_a_log_directory_that_does_not_exist(tmpdir_path):
    missing = os.path.join(tmpdir_path, 'no-such-dir')
    conf = write_conf(tmpdir_path, basic_config(free_port(), extra=f'error_log: {{ path: {missing}/error.log }}\n'
                                                                    f'access_log: {{ path: {missing}/access.log }}'))
    r = run_portico('-t', '-c', conf)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert f'{conf}:4:20: error: error_log.path: cannot create {missing}/error.log: the directory {missing}: ' \
           'No such file or directory' in lines, r.stderr
    assert f'{conf}:5:21: error: access_log.path: cannot create {missing}/access.log: the directory {missing}: ' \
           'No such file or directory' in lines, r.stderr
    assert not os.path.exists(missing)  # -t creates nothing
    # -T alone prints the configuration, which may be for another machine
    r = run_portico('-T', '-c', conf)
    assert r.returncode == 0 and f'path: "{missing}/error.log"' in r.stdout, r.stderr


@needs_root
def test_t_reports_an_error_log_the_workers_cannot_reach(tmpdir_path):
    private = os.path.join(tmpdir_path, 'private')
    os.mkdir(private, 0o700)
    port = free_port()
    conf = write_conf(tmpdir_path, basic_config(port, extra=f'user: nobody\nerror_log: {{ path: {private}/error.log }}'))
    r = run_portico('-t', '-c', conf)
    assert r.returncode == 1
    assert f'{conf}:5:20: error: error_log.path: the workers, as user "nobody", cannot reach {private}/error.log ' \
           f'({private}: Permission denied), so they could not reopen it after a rotation' in r.stderr.splitlines(), \
        r.stderr
    assert not os.path.exists(f'{private}/error.log')
    # the start refuses it as -t does, with the same message
    rc, err = run_start(conf, os.path.join(tmpdir_path, 'x.pid'))
    assert rc == 1 and 'cannot reach' in err, err
    # a directory they may enter is fine, though only root may write in it:
    # the master creates the file and gives it to them
    os.chmod(private, 0o755)
    r = run_portico('-t', '-c', conf)
    assert r.returncode == 0, r.stderr


def test_s_reload_reports_the_errors_of_the_file_and_signals_nothing(gateway):
    port = free_port()
    g = gateway(basic_config(port))
    good = basic_config(port, extra=f'pid_file: {g.pidfile}', routes='''
        - { name: new, match: { paths: [/hello] }, respond: { body: "new" } }''')
    g.write(good.replace('paths: [/hello]', 'path: [/hello]'))
    r = run_portico('-s', 'reload', '-c', g.conf)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert any(line.startswith(f'{g.conf}:6:') and 'unknown key "path"; did you mean "paths"?' in line
               for line in lines), r.stderr
    assert lines[-1] == f'portico: configuration has errors: {g.conf}; not reloading'
    assert 'no pid' not in r.stderr
    # the same with -p: the file is checked before the pid file is read
    r = run_portico('-s', 'reload', '-c', g.conf, '-p', g.pidfile)
    assert r.returncode == 1 and 'not reloading' in r.stderr
    assert g.count('reloading') == 0  # nothing was signalled
    # a good file reloads, and a file with errors does not keep -s stop from working
    g.write(good)
    r = run_portico('-s', 'reload', '-c', g.conf)
    assert r.returncode == 0, r.stderr
    g.wait_log('reload ok')
    assert http_get(port, '/hello')[2] == b'new'
    g.write(good.replace('paths: [/hello]', 'path: [/hello]'))
    r = run_portico('-s', 'stop', '-c', g.conf, '-p', g.pidfile)
    assert r.returncode == 0, r.stderr
    assert g.proc.wait(10) == 0


LOGROTATE = os.path.join(SRCDIR, 'etc', 'portico.logrotate')


def need_logrotate():
    if shutil.which('logrotate'):
        return shutil.which('logrotate')
    if os.environ.get('CI'):
        pytest.fail('logrotate is not installed')
    pytest.skip('logrotate is not installed')


def shipped_logrotate(tmp, d='/var/log/portico', pidfile='/run/portico/portico.pid', user=None):
    """The shipped file, with its logs in d, portico (this build's) told of
    pidfile, and new files for user (and a group of theirs) rather than the
    package's `portico`, which this machine may not have."""
    pw = pwd.getpwnam(user) if user else pwd.getpwuid(os.geteuid())
    group = 'adm' if user and has_group('adm') else grp.getgrgid(pw.pw_gid).gr_name
    text = read_text(LOGROTATE)
    for old, new in (('/var/log/portico', d), ('/usr/sbin/portico -s reopen', f'{BIN} -s reopen -p {pidfile}'),
                     ('/run/portico/portico.pid', pidfile), ('create 0640 portico adm', f'create 0640 {pw.pw_name} {group}')):
        assert old in text, old
        text = text.replace(old, new)
    return write_conf(tmp, text, 'logrotate.conf')


def has_group(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_logrotate_file_parses(tmpdir_path):
    lr = need_logrotate()
    conf = shipped_logrotate(tmpdir_path)
    r = subprocess.run([lr, '-d', '-s', os.path.join(tmpdir_path, 'state'), conf], capture_output=True, text=True,
                       timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert 'error' not in out.lower(), out
    assert 'rotating pattern: /var/log/portico/*.log  after 1 days (14 rotations)' in out, out
    text = read_text(LOGROTATE)
    for directive in ('compress', 'delaycompress', 'missingok', 'notifempty', 'sharedscripts'):
        assert re.search(rf'^\s+{directive}$', text, re.M), directive


def test_logrotate_rotates_a_running_gateway(gateway, tmpdir_path):
    lr = need_logrotate()
    d = logs_dir(tmpdir_path)
    elog, alog = os.path.join(d, 'error.log'), os.path.join(d, 'access.log')
    port = free_port()
    user = 'nobody' if os.geteuid() == 0 else None
    g = start_logged(gateway, logged_config(port, d, f'user: {user}' if user else ''), d)
    conf = shipped_logrotate(tmpdir_path, d, g.pidfile, user)
    state = os.path.join(tmpdir_path, 'logrotate.state')

    def rotate():
        r = subprocess.run([lr, '-f', '-s', state, conf], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr

    assert http_get(port, '/hello?first')[0] == 200
    wait_for(lambda: 'GET /hello?first' in read_text(alog), what='the first access line')
    rotate()
    # renamed, not compressed yet (delaycompress); the new files are the workers' user's
    assert 'GET /hello?first' in read_text(alog + '.1') and 'ready: generation 1' in read_text(elog + '.1')
    wait_for(lambda: reopened_by_all(g, elog), what='"logs reopened" in the new error log')
    if user:
        for f in (elog, alog):
            assert os.stat(f).st_uid == pwd.getpwnam(user).pw_uid
            if has_group('adm'):  # what logrotate made, kept: not given again to the user's group
                assert grp.getgrgid(os.stat(f).st_gid).gr_name == 'adm'
    assert http_get(port, '/hello?second')[0] == 200
    wait_for(lambda: 'GET /hello?second' in read_text(alog), what='the new access log')
    assert 'GET /hello?second' not in read_text(alog + '.1')
    rotate()
    # the first period is compressed now, the second is .1
    with gzip.open(alog + '.2.gz', 'rt') as f:
        assert 'GET /hello?first' in f.read()
    assert 'GET /hello?second' in read_text(alog + '.1')
    assert os.path.exists(elog + '.2.gz')
    wait_for(lambda: reopened_by_all(g, elog), what='"logs reopened" after the second rotation')
    assert http_get(port, '/hello?third')[0] == 200
    wait_for(lambda: 'GET /hello?third' in read_text(alog), what='the third access log')


def test_the_units_capabilities_let_the_master_reload_reopen_and_stop(gateway, tmpdir_path):
    """The master under exactly the unit's CapabilityBoundingSet, with its
    workers as another user: it must still signal them (reload, stop) and
    reopen logs that logrotate created for that user (hostile review: with
    neither CAP_KILL nor CAP_DAC_OVERRIDE, reload and stop hung)."""
    import pwd
    import shutil
    if os.geteuid() != 0 or not shutil.which('setpriv'):
        pytest.skip('needs root and setpriv')
    unit = os.path.join(os.environ.get('PORTICO_BUILDDIR', os.path.dirname(BIN)), 'etc', 'portico.service')
    caps = next(l for l in open(unit) if l.startswith('CapabilityBoundingSet=')).split('=', 1)[1].split()
    bounding = '-all,' + ','.join('+' + c[4:].lower() for c in caps)
    port = free_port()
    elog, alog = os.path.join(tmpdir_path, 'error.log'), os.path.join(tmpdir_path, 'access.log')
    os.chmod(tmpdir_path, 0o755)

    def conf(body):
        return basic_config(port, extra=f'user: nobody\nshutdown_timeout: 3s\nerror_log: {{ path: {elog} }}\n'
                                        f'access_log: {{ path: {alog} }}',
                            routes=f'- {{ name: h, match: {{ paths: [/hello] }}, respond: {{ body: "{body}" }} }}')
    g = gateway(conf('one'), start=False, wrap=['setpriv', f'--bounding-set={bounding}', '--inh-caps=-all', '--'])
    g.start()
    old = g.worker_pids()
    g.write(conf('two'))
    g.reload()
    wait_for(lambda: not set(old) & set(g.worker_pids()), what='the old workers to exit')
    assert http_get(port, '/hello')[2] == b'two'
    nobody = pwd.getpwnam('nobody').pw_uid
    for f in (elog, alog):  # as the packaged logrotate file does: create 0640 portico adm
        os.rename(f, f + '.1')
        open(f, 'w').close()
        os.chown(f, nobody, 4)
        os.chmod(f, 0o640)
    os.kill(g.proc.pid, signal.SIGUSR1)
    wait_for(lambda: 'logs reopened' in open(elog).read(), what='the master to reopen its log')
    g.write(conf('three'))
    g.reload()  # the master opens the access log again
    assert http_get(port, '/hello')[2] == b'three'
    assert 'Permission denied' not in open(elog).read() + open(elog + '.1').read()
    assert g.stop(signal.SIGTERM, timeout=15) == 0
