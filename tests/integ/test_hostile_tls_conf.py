"""Hostile tests, the careless operator: a passphrase-protected TLS key."""
import os
import pty
import select
import signal
import subprocess
import time

import pytest

import pki
from conftest import BIN


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('pki'))
    c = pki.make(d)
    enc = os.path.join(d, 'enc.key')
    subprocess.run(['openssl', 'pkey', '-in', c['a-rsa.key'], '-aes256', '-passout', 'pass:secret', '-out', enc],
                   check=True, capture_output=True)
    c['enc.key'] = enc
    return c


def run_on_a_terminal(args, timeout=5):
    """Runs portico with a terminal as its controlling tty (as an operator
    typing `portico -t` does); returns (exit status or None if it had to be
    killed, everything it printed)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(BIN, [BIN, *args])
    out, deadline, status = b'', time.time() + timeout, None
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b''
            out += chunk
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)
    return status, out.decode(errors='replace')


def test_an_encrypted_key_is_an_error_not_a_passphrase_prompt(certs, tmp_path):
    """`portico -t` (and a load or reload by the master) with a key that is
    protected by a passphrase: OpenSSL's default password callback asks
    "Enter PEM pass phrase:" on the controlling terminal and waits; -t never
    ends, and a master started in the foreground from a shell blocks in the
    same prompt on SIGHUP (checked: after "reloading" it prints the prompt,
    and a later SIGHUP with a good file and SIGTERM are not acted on).  Without a terminal the error
    is "cannot load the key ...: Invalid argument" (a stale errno), which
    does not say the key is encrypted.  nginx (without ssl_password_file)
    and HAProxy fail at once.  Expected: exit status 1 within a second,
    file:line:col and an error that names the key, no prompt."""
    conf = tmp_path / 'p.yaml'
    conf.write_text(f'''listeners:
  - name: tls
    address: 127.0.0.1:1
    tls: {{ certificates: [{{ cert: {certs["a-rsa.crt"]}, key: {certs["enc.key"]} }}] }}
routes:
  - {{ name: h, match: {{ paths: [/h] }}, respond: {{ body: x }} }}
''')
    status, out = run_on_a_terminal(['-t', '-c', str(conf)])
    assert 'pass phrase' not in out.lower(), out
    assert status == 1, (status, out)
    assert f'{conf}:4:' in out and certs['enc.key'] in out, out
    # and without a terminal: the message says what is wrong
    r = subprocess.run([BIN, '-t', '-c', str(conf)], capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL, start_new_session=True)
    assert r.returncode == 1 and 'Invalid argument' not in r.stderr, r.stderr
