"""The Debian package (debian/): built with dpkg-buildpackage from exactly
what `make dist` ships, checked by its file list and lintian, then
unpacked into a scratch root (dpkg -x), where its binary checks and serves
its own production configuration as the user its sysusers.d entry makes."""
import fnmatch
import glob
import gzip
import os
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import free_port, http_get, read_text, wait_for
from test_packaging import make, need

# one pytest-xdist worker for this and test_packaging.py: the package is
# built once, and no other test runs make in the build tree meanwhile
pytestmark = pytest.mark.xdist_group('build-tree')

# Every file the package holds (directories aside), with its mode.
FILES = {
    '/etc/logrotate.d/portico': '-rw-r--r--',
    '/etc/portico/portico.yaml': '-rw-r--r--',
    '/lib/systemd/system/portico.service': '-rw-r--r--',
    '/usr/lib/sysusers.d/portico.conf': '-rw-r--r--',
    '/usr/lib/tmpfiles.d/portico.conf': '-rw-r--r--',
    '/usr/sbin/portico': '-rwxr-xr-x',
    '/usr/share/doc/portico/changelog.Debian.gz': '-rw-r--r--',
    '/usr/share/doc/portico/copyright': '-rw-r--r--',
    '/usr/share/man/man5/portico.yaml.5.gz': '-rw-r--r--',
    '/usr/share/man/man8/portico.8.gz': '-rw-r--r--',
}
CONFFILES = {'/etc/logrotate.d/portico', '/etc/portico/portico.yaml'}


def clean_env(**extra):
    """Our environment without what a make running the tests adds: its
    jobserver, and the srcdir that Automake's test harness exports."""
    drop = ('MAKEFLAGS', 'MAKELEVEL', 'MFLAGS', 'MAKEOVERRIDES', 'srcdir')
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


@pytest.fixture(scope='module')
def built():
    """The .deb and .changes, built once for the module in a temporary
    directory from `make distdir`: the work tree is never written to, and
    the package builds from the dist tarball's files only."""
    for tool in ('dpkg-buildpackage', 'dh', 'dh_installsysusers'):
        need(tool)
    with tempfile.TemporaryDirectory(prefix='portico-deb-') as top:
        os.chmod(top, 0o755)
        src = os.path.join(top, 'portico')
        make('distdir', f'distdir={src}')
        # make distcheck's source tree is read-only, and so is its copy;
        # dh_autoreconf rewrites configure in it
        for d, _, files in os.walk(src):
            for name in [d] + [os.path.join(d, f) for f in files]:
                os.chmod(name, os.stat(name).st_mode | 0o200)
        r = subprocess.run(['dpkg-buildpackage', '-us', '-uc', '-b'], cwd=src, capture_output=True, text=True,
                           timeout=900, env=clean_env(DEB_BUILD_OPTIONS=f'parallel={os.cpu_count() or 1}'))
        assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
        debs = glob.glob(os.path.join(top, 'portico_*.deb'))
        changes = glob.glob(os.path.join(top, 'portico_*.changes'))
        assert len(debs) == 1 and len(changes) == 1, os.listdir(top)
        yield {'deb': debs[0], 'changes': changes[0], 'top': top}


@pytest.fixture(scope='module')
def root(built):
    """The package unpacked into a scratch root that has Debian's base users
    and groups (base-passwd), then, as on installation, the package's
    sysusers.d and tmpfiles.d entries applied to it."""
    need('systemd-sysusers')
    need('systemd-tmpfiles')
    r = os.path.join(built['top'], 'root')
    os.makedirs(os.path.join(r, 'etc'))
    subprocess.run(['dpkg', '-x', built['deb'], r], check=True, timeout=60)
    for db in ('passwd', 'group'):
        shutil.copy(f'/usr/share/base-passwd/{db}.master', os.path.join(r, 'etc', db))
    for cmd in (['systemd-sysusers', f'--root={r}', 'portico.conf'],
                ['systemd-tmpfiles', f'--root={r}', '--create', 'portico.conf']):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
    return r


def nss_env(root):
    """Users and groups looked up in the scratch root's files, so that the
    packaged binary finds `portico` without it being added to this
    machine (nss_wrapper, as Samba's test suite uses it)."""
    lib = glob.glob('/usr/lib/*/libnss_wrapper.so')
    if not lib and os.environ.get('CI'):
        pytest.fail('libnss-wrapper is not installed')
    if not lib:
        pytest.skip('libnss-wrapper is not installed')
    return clean_env(LD_PRELOAD=lib[0], NSS_WRAPPER_PASSWD=os.path.join(root, 'etc/passwd'),
                     NSS_WRAPPER_GROUP=os.path.join(root, 'etc/group'))


def portico(root, *args, env=None):
    return subprocess.run([os.path.join(root, 'usr/sbin/portico'), *args], capture_output=True, text=True,
                          timeout=30, env=env or clean_env())


def man_text(root, page):
    with gzip.open(os.path.join(root, 'usr/share/man', page + '.gz'), 'rt') as f:
        return f.read()


def effective(root, env):
    """`portico -T`: the packaged configuration with every default."""
    r = portico(root, '-T', '-c', os.path.join(root, 'etc/portico/portico.yaml'), env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_package_holds_the_files_of_a_service(built):
    out = subprocess.run(['dpkg-deb', '-c', built['deb']], capture_output=True, text=True, check=True).stdout
    files = {}
    for line in out.splitlines():
        mode, owner, _size, _date, _time, path = line.split(None, 5)
        assert owner == 'root/root', line
        if not mode.startswith('d'):
            files[path[1:]] = mode
    assert files == FILES
    info = subprocess.run(['dpkg-deb', '-I', built['deb'], 'conffiles'], capture_output=True, text=True,
                          check=True).stdout
    assert set(info.split()) == CONFFILES
    depends = subprocess.run(['dpkg-deb', '-f', built['deb'], 'Depends'], capture_output=True, text=True,
                             check=True).stdout
    assert 'systemd' in depends  # postinst runs systemd-sysusers


def test_lintian_reports_no_errors(built):
    need('lintian')
    r = subprocess.run(['lintian', '--fail-on', 'error', built['changes']], capture_output=True, text=True,
                       timeout=600, env=clean_env())
    errors = [l for l in r.stdout.splitlines() if l.startswith('E: ')]
    assert r.returncode == 0 and not errors, r.stdout + r.stderr


def test_binary_and_man_pages_name_the_packaged_configuration(root):
    version = portico(root, '-V')
    assert version.returncode == 0, version.stderr
    conf = re.search(r'^configuration file: (\S+)$', version.stdout, re.M).group(1)
    assert conf == '/etc/portico/portico.yaml'
    assert os.path.isfile(root + conf)  # the conffile is where the binary looks
    portico8 = man_text(root, 'man8/portico.8')
    files = portico8.split('\n.Sh FILES\n', 1)[1].split('\n.Sh ', 1)[0]
    assert f'.It Pa {conf}\nThe configuration file.' in files
    assert f'Default:\n.Pa {conf} .' in portico8  # under -c
    assert f'.Pa {conf} .' in man_text(root, 'man5/portico.yaml.5')


def test_production_configuration_checks_with_the_packaged_user(root):
    """-t runs as on an installed system: the user that the configuration
    names exists because the package's sysusers.d entry made it, whether
    or not -t looks the user up."""
    env = nss_env(root)
    ids = subprocess.run(['id', '-u', 'portico'], capture_output=True, text=True, env=env)
    assert ids.returncode == 0, 'the sysusers.d entry made no portico user: ' + ids.stderr
    # -t checks the machine too (the log directories exist, and the workers'
    # user can reach the error log): here they are the scratch root's
    text = open(os.path.join(root, 'etc/portico/portico.yaml')).read()
    for old, new in ((' /var/log/portico/', f' {root}/var/log/portico/'), (' /run/portico/', f' {root}/run/portico/')):
        assert old in text, old
        text = text.replace(old, new)
    conf = os.path.join(root, 'checked.yaml')
    with open(conf, 'w') as f:
        f.write(text)
    r = portico(root, '-t', '-c', conf, env=env)
    assert r.returncode == 0 and 'configuration ok' in r.stderr, r.stderr
    assert 'warning' not in r.stderr, r.stderr
    dump = effective(root, env)
    for line in ('workers: auto', 'user: "portico"', 'pid_file: "/run/portico/portico.pid"',
                 '  path: "/var/log/portico/error.log"', '  path: "/var/log/portico/access.log"',
                 '    address: 0.0.0.0:8080', '  address: 127.0.0.1:9180'):
        assert line in dump.splitlines(), line


def test_unit_tmpfiles_and_logrotate_cover_the_configured_paths(root):
    """Under ProtectSystem=strict the gateway writes only where the unit
    says: every file the configuration writes is in such a directory, which
    tmpfiles.d creates at boot, and logrotate rotates the logs."""
    unit = open(os.path.join(root, 'lib/systemd/system/portico.service')).read()
    keys = {}
    for line in unit.splitlines():
        if '=' in line and not line.startswith('#'):
            k, v = line.split('=', 1)
            keys.setdefault(k, []).extend(v.split())
    assert keys['ProtectSystem'] == ['strict']
    writable = ['/run/' + d for d in keys.get('RuntimeDirectory', [])]
    writable += ['/var/log/' + d for d in keys.get('LogsDirectory', [])]
    writable += [p.lstrip('-') for p in keys.get('ReadWritePaths', [])]
    dump = effective(root, nss_env(root))
    paths = re.findall(r'^(?:pid_file|  path): "(/[^"]+)"$', dump, re.M)
    assert len(paths) == 3, dump  # pid file, error log, access log
    tmpfiles = open(os.path.join(root, 'usr/lib/tmpfiles.d/portico.conf')).read()
    made = re.findall(r'^d (\S+) ', tmpfiles, re.M)
    rotate = open(os.path.join(root, 'etc/logrotate.d/portico')).read()
    globs = re.findall(r'^(/\S+) \{', rotate, re.M)
    for p in paths:
        d = os.path.dirname(p)
        assert d in writable, f'{p}: the unit does not let portico write to {d} ({writable})'
        assert d in made, f'{p}: tmpfiles.d does not create {d}'
        assert os.path.isdir(root + d)  # systemd-tmpfiles --root made it
        if p.endswith('.log'):
            assert any(fnmatch.fnmatch(p, g) for g in globs), f'{p}: not rotated by {globs}'
    assert 'create 0640 portico adm' in rotate  # new logs belong to the workers' user


def test_packaged_unit_verifies(root, tmpdir_path):
    need('systemd-analyze')
    unit = open(os.path.join(root, 'lib/systemd/system/portico.service')).read()
    assert 'ExecStart=/usr/sbin/portico -f -c /etc/portico/portico.yaml' in unit
    path = os.path.join(tmpdir_path, 'portico.service')
    with open(path, 'w') as f:
        f.write(unit.replace('/usr/sbin/portico', os.path.join(root, 'usr/sbin/portico')))
    r = subprocess.run(['systemd-analyze', 'verify', path], capture_output=True, text=True, timeout=60,
                       env=clean_env(MANPATH=os.path.join(root, 'usr/share/man')))
    assert r.returncode == 0, r.stdout + r.stderr


def test_production_configuration_serves_from_the_scratch_root(root):
    """The packaged binary runs the packaged configuration, moved only to
    free loopback ports and into the scratch root's directories: /healthz
    answers, the access log is written, and when started as root the
    workers run as the sysusers.d user."""
    env = nss_env(root)
    port, admin = free_port(), free_port()
    text = open(os.path.join(root, 'etc/portico/portico.yaml')).read()
    for old, new in (('0.0.0.0:8080', f'127.0.0.1:{port}'), ('127.0.0.1:9180', f'127.0.0.1:{admin}'),
                     (' /var/log/portico/', f' {root}/var/log/portico/'), (' /run/portico/', f' {root}/run/portico/')):
        assert old in text, old
        text = text.replace(old, new)
    conf = os.path.join(root, 'moved.yaml')
    with open(conf, 'w') as f:
        f.write(text)
    proc = subprocess.Popen([os.path.join(root, 'usr/sbin/portico'), '-f', '-w', '1', '-c', conf], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    error_log = os.path.join(root, 'var/log/portico/error.log')
    try:
        def answers():
            if proc.poll() is not None:
                raise AssertionError(f'portico exited ({proc.returncode}):\n' + read_text(error_log))
            try:
                return http_get(port, '/healthz')
            except OSError:
                return None
        status, _, body = wait_for(answers, what='/healthz')
        assert (status, body) == (200, b'ok\n')
        access_log = os.path.join(root, 'var/log/portico/access.log')
        wait_for(lambda: '"/healthz"' in read_text(access_log), what='the access log entry')
        if os.geteuid() == 0:
            uid = subprocess.run(['id', '-u', 'portico'], capture_output=True, text=True, env=env).stdout.strip()
            workers = subprocess.run(['pgrep', '-P', str(proc.pid)], capture_output=True, text=True).stdout.split()
            assert workers
            for w in workers:
                status_lines = open(f'/proc/{w}/status').read()
                assert re.search(rf'^Uid:\s+{uid}\s', status_lines, re.M), status_lines
            assert os.stat(access_log).st_uid == int(uid)  # the workers can reopen it after rotation
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, read_text(error_log)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the workers too, whatever happened
        except ProcessLookupError:
            pass
        proc.wait()


