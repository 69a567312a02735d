"""nginx (Debian's package) as the backend: static files of several sizes
through Portico, checked by digest, and connection reuse counted by nginx
itself ($connection in its access log)."""
import hashlib
import http.client
import os
import shutil
import signal
import subprocess

import pytest

from conftest import free_port, proxy_config, wait_for

NGINX = shutil.which('nginx') or '/usr/sbin/nginx'


@pytest.fixture
def nginx_backend(tmpdir_path):
    if not os.path.exists(NGINX):  # scripts/deps installs it: never a skip
        pytest.fail('nginx is not installed (scripts/deps test installs it)')
    root = os.path.join(tmpdir_path, 'nginx')
    www = os.path.join(root, 'www')
    os.makedirs(www)
    files = {}
    for name, size in (('small', 13), ('4k', 4096), ('1m', 1 << 20), ('9m', 9 * (1 << 20) + 7)):
        data = os.urandom(size)
        with open(os.path.join(www, name), 'wb') as f:
            f.write(data)
        files[name] = hashlib.md5(data).hexdigest()
    os.chmod(tmpdir_path, 0o755)
    for d in (root, www):
        os.chmod(d, 0o755)
    for name in files:
        os.chmod(os.path.join(www, name), 0o644)
    port = free_port()
    conf = os.path.join(root, 'nginx.conf')
    with open(conf, 'w') as f:
        f.write(f'''
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format conn '$connection $request_method $uri $status';
    access_log {root}/access.log conn;
    keepalive_requests 100000;
    client_body_temp_path {root}/body;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{ alias {www}/; }}
        location = /post {{ return 200 "posted $content_length\\n"; }}
    }}
}}
''')
    proc = subprocess.Popen([NGINX, '-p', root, '-c', conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    import socket

    def up():
        try:
            socket.create_connection(('127.0.0.1', port), 0.2).close()
            return True
        except OSError:
            return False
    try:
        wait_for(up, what='nginx')
        yield port, files, os.path.join(root, 'access.log')
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_static_files_through_portico_from_nginx(gateway, nginx_backend):
    nport, files, log = nginx_backend
    port = free_port()
    gateway(proxy_config(port, [nport]), workers=1)
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    for _ in range(3):
        for name, digest in files.items():
            c.request('GET', f'/files/{name}')
            r = c.getresponse()
            body = r.read()
            assert r.status == 200 and hashlib.md5(body).hexdigest() == digest, name
    c.request('HEAD', '/files/9m')
    r = c.getresponse()
    assert r.getheader('Content-Length') == str(9 * (1 << 20) + 7) and r.read() == b''
    c.request('POST', '/post', body=b'x' * 100000)
    r = c.getresponse()
    assert r.read() == b'posted 100000\n'
    c.close()


def test_nginx_sees_its_connections_reused(gateway, nginx_backend):
    nport, _, log = nginx_backend
    port = free_port()
    gateway(proxy_config(port, [nport]), workers=2)
    for i in range(10):
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        for _ in range(100):
            c.request('GET', '/files/small')
            assert c.getresponse().read() and True
        c.close()
    wait_for(lambda: os.path.exists(log) and len(open(log).read().splitlines()) >= 1000, what='nginx log')
    lines = open(log).read().splitlines()
    assert len(lines) == 1000
    conns = {l.split()[0] for l in lines}
    assert len(conns) <= 4, f'{len(conns)} upstream connections for 1000 requests'
