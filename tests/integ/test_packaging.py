"""Shipped files: the systemd unit verifies, make install lays files out
and never overwrites an edited configuration."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BIN, SRCDIR

# one pytest-xdist worker for this and test_deb.py: make install in the
# build tree, never beside test_deb.py's make distdir
pytestmark = pytest.mark.xdist_group('build-tree')

BUILDDIR = os.environ.get('PORTICO_BUILDDIR', os.path.dirname(BIN))


def need(tool):
    if shutil.which(tool):
        return
    if os.environ.get('CI'):
        pytest.fail(f'{tool} is not installed')
    pytest.skip(f'{tool} is not installed')


def make(*args):
    """make in the build tree, without the flags of a make that runs us."""
    env = {k: v for k, v in os.environ.items() if k not in ('MAKEFLAGS', 'MAKELEVEL', 'MFLAGS')}
    r = subprocess.run(['make', '-s', '--no-print-directory', '-C', BUILDDIR, *args], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


def install(destdir):
    make('install', f'DESTDIR={destdir}')
    return destdir + make('print-prefix')


def test_make_install_layout_and_keeps_edited_config(tmpdir_path):
    root = install(os.path.join(tmpdir_path, 'dest'))
    for rel in ('sbin/portico', 'share/man/man8/portico.8', 'share/man/man5/portico.yaml.5',
                'etc/portico/portico.yaml', 'lib/systemd/system/portico.service'):
        assert os.path.exists(os.path.join(root, rel)), rel
    conf = os.path.join(root, 'etc/portico/portico.yaml')
    with open(conf, 'a') as f:
        f.write('# edited by the operator\n')
    install(os.path.join(tmpdir_path, 'dest'))
    assert open(conf).read().endswith('# edited by the operator\n')


def test_installed_man_pages_name_the_built_in_paths(tmpdir_path):
    """The man pages are written for /etc and /var; installed, they name
    where this build's binary looks (a /usr/local build: /usr/local/etc)."""
    root = install(os.path.join(tmpdir_path, 'dest'))
    out = subprocess.run([BIN, '-V'], capture_output=True, text=True, timeout=30).stdout
    conf = re.search(r'^configuration file: (\S+)$', out, re.M).group(1)
    page = open(os.path.join(root, 'share/man/man8/portico.8')).read()
    files = page.split('\n.Sh FILES\n', 1)[1].split('\n.Sh ', 1)[0]
    assert f'.It Pa {conf}\nThe configuration file.' in files
    assert f'Default:\n.Pa {conf} .' in page
    yaml5 = open(os.path.join(root, 'share/man/man5/portico.yaml.5')).read()
    assert f'.Pa {conf} .' in yaml5
    # and the default error log (PT_ERROR_LOG_PATH), of a daemon without error_log:
    assert f".It Pa {make('print-localstatedir')}/log/portico/error.log" in files


def test_systemd_unit_verifies(tmpdir_path):
    need('systemd-analyze')
    root = install(os.path.join(tmpdir_path, 'dest'))
    unit_src = open(os.path.join(root, 'lib/systemd/system/portico.service')).read()
    # point the unit at the installed binary and configuration
    sbindir = make('print-sbindir')
    unit_src = unit_src.replace(sbindir + '/portico', os.path.join(root, 'sbin/portico'))
    unit = os.path.join(tmpdir_path, 'portico.service')
    with open(unit, 'w') as f:
        f.write(unit_src)
    man = os.path.join(root, 'share/man')
    r = subprocess.run(['systemd-analyze', 'verify', unit], capture_output=True, text=True,
                       env=dict(os.environ, MANPATH=man), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for line in ('Type=notify', 'KillSignal=SIGQUIT', 'NoNewPrivileges=yes', 'ProtectSystem=strict',
                 'ProtectHome=yes', 'PrivateTmp=yes', 'LimitNOFILE=',
                 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID'):
        assert line in unit_src, line
    lines = unit_src.splitlines()
    assert any(l.startswith('ExecStartPre=') and ' -t ' in l for l in lines)
    reload = [l for l in lines if l.startswith('ExecReload=')]
    assert ' -t ' in reload[0] and 'kill -HUP $MAINPID' in reload[1]  # check first, then signal


def test_license_is_bsd_2_clause():
    text = open(os.path.join(SRCDIR, 'LICENSE')).read()
    assert 'Redistribution and use in source and binary forms' in text
    assert '1. Redistributions of source code' in text and '3.' not in text
