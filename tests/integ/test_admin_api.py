"""The admin API's probes, the effective configuration and who may change
state (issue 16): /healthz, /ready, /config, admin.token."""
import json
import os
import re
import signal
import time

import pytest

from conftest import free_port, request, run_portico, wait_for

TOKEN = 'abcdefghijklmnop0123456789'
PW_HASH = '$6$saltsalt$pauPrmdmG4BTE9h2HPmywiw152IFch6BJCEsaY6D.PLTfpV8sqvXwWdyfsgVgozkYH9B80bAip/08R2BPH2xk/'


def config(port, admin, extra_admin='', address='127.0.0.1'):
    return f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
admin: {{ address: "{address}:{admin}"{extra_admin} }}
caches: [{{ name: default, memory: 2MiB }}]
redis: {{ addresses: ["127.0.0.1:1"], password: "redis-pass-literal" }}
consumers:
  - name: alice
    credentials: [{{ type: key-auth, key: "key-of-alice-literal" }}, {{ type: basic-auth, username: al, password: "$6$saltsalt$pauPrmdmG4BTE9h2HPmywiw152IFch6BJCEsaY6D.PLTfpV8sqvXwWdyfsgVgozkYH9B80bAip/08R2BPH2xk/" }}]
routes:
  - name: main
    match: {{ paths: ["/*"] }}
    respond: {{ status: 200, body: "ok" }}
    filters:
      key-auth: {{}}
      request-headers: {{ set: {{ "X-Quote": "a\\"b\\\\c" }} }}
'''


@pytest.fixture
def admin_gw(gateway):
    def make(extra_admin='', env=None, workers=2, address='127.0.0.1'):
        port, admin = free_port(), free_port()
        g = gateway(config(port, admin, extra_admin, address), workers=workers, env=env)
        return g, port, admin
    return make


def test_healthz_and_ready_answer_probes(admin_gw):
    g, port, admin = admin_gw()
    s, h, b = request(admin, 'GET', '/healthz')
    assert (s, json.loads(b)) == (200, {'status': 'alive'}) and h['cache-control'] == 'no-store'
    s, h, b = request(admin, 'GET', '/ready')
    assert s == 200 and json.loads(b) == {'status': 'ready', 'generation': 1, 'running': 2, 'starting': 0}
    s, h, b = request(admin, 'HEAD', '/ready')
    assert s == 200 and b == b''
    for path in ('/healthz', '/ready', '/config'):
        s, h, b = request(admin, 'POST', path, body=b'x')
        assert s == 405 and h['allow'] == 'GET, HEAD', path


def test_ready_says_503_while_a_worker_is_missing(admin_gw):
    g, port, admin = admin_gw()
    seen = set()
    deadline = time.time() + 10
    # A worker that dies soon after its start is started again after a
    # growing delay: /ready must say so meanwhile, and 200 again after.
    while time.time() < deadline and 503 not in seen:
        pids = g.worker_pids()
        if pids:
            try:
                os.kill(pids[0], signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(20):
            s, h, b = request(admin, 'GET', '/ready')
            seen.add(s)
            if s == 503:
                d = json.loads(b)
                assert d['status'] == 'not ready' and d['running'] < 2, d
                break
            time.sleep(0.005)
    assert 503 in seen
    wait_for(lambda: request(admin, 'GET', '/ready')[0] == 200, timeout=40, what='ready again')


def test_config_is_json_with_every_secret_masked(admin_gw):
    g, port, admin = admin_gw(extra_admin=', token: "${PT_TEST_ADMIN_TOKEN}"', env={'PT_TEST_ADMIN_TOKEN': TOKEN})
    s, h, b = request(admin, 'GET', '/config')
    assert s == 200 and h['content-type'] == 'application/json'
    doc = json.loads(b)
    assert re.fullmatch('[0-9a-f]{64}', doc['sha256']) and doc['generation'] == 1
    c = doc['config']
    assert c['admin']['token'] == '${PT_TEST_ADMIN_TOKEN}'
    assert c['redis']['password'] == '<redacted>'
    creds = c['consumers'][0]['credentials']
    assert creds[0]['key'] == '<redacted>' and creds[1]['password'] == '<redacted>' and creds[1]['username'] == 'al'
    assert c['routes'][0]['filters']['request-headers']['set']['X-Quote'] == 'a"b\\c'
    assert c['listeners'][0]['address'] == f'127.0.0.1:{port}' and c['caches'][0]['memory'] == '2m'
    for secret in (TOKEN, 'redis-pass-literal', 'key-of-alice-literal', PW_HASH):
        assert secret.encode() not in b
    # the same as -T, key for key
    r = run_portico('-T', '-c', g.conf, env={'PT_TEST_ADMIN_TOKEN': TOKEN})
    assert r.returncode == 0 and 'routes:' in r.stdout and TOKEN not in r.stdout


def test_state_changes_need_the_token(admin_gw):
    g, port, admin = admin_gw(extra_admin=f', token: "{TOKEN}"')
    purge = '/cache/default?key=x'
    s, h, b = request(admin, 'DELETE', purge)
    assert s == 401 and 'Bearer' in h['www-authenticate'] and TOKEN not in b.decode()
    for auth in (f'Bearer {TOKEN}x', f'Bearer {TOKEN[:-1]}', 'Bearer ', f'Basic {TOKEN}', TOKEN, f'Bearer  {TOKEN}'):
        assert request(admin, 'DELETE', purge, headers={'Authorization': auth})[0] == 401, auth
    assert request(admin, 'DELETE', purge, headers={'Authorization': f'Bearer {TOKEN}'})[0] == 200
    assert request(admin, 'DELETE', purge, headers={'Authorization': f'bearer {TOKEN}'})[0] == 200
    # reading needs none
    assert request(admin, 'GET', '/status')[0] == 200
    assert TOKEN not in g.log()


def test_two_authorization_fields_are_refused(admin_gw):
    import socket
    g, port, admin = admin_gw(extra_admin=f', token: "{TOKEN}"')
    s = socket.create_connection(('127.0.0.1', admin))
    s.sendall(f'DELETE /cache/default?key=x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n'
              f'Authorization: Bearer wrong\r\nConnection: close\r\n\r\n'.encode())
    data = b''
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    assert data.startswith(b'HTTP/1.1 401'), data


def test_without_a_token_only_a_loopback_admin_may_change_state(admin_gw):
    g, port, admin = admin_gw()
    assert request(admin, 'DELETE', '/cache/default?key=x')[0] == 200
    g2, port2, admin2 = admin_gw(address='0.0.0.0', extra_admin=', allow_remote: true')
    s, h, b = request(admin2, 'DELETE', '/cache/default?key=x')
    assert s == 403 and 'admin.token' in json.loads(b)['error']
    assert request(admin2, 'GET', '/status')[0] == 200


@pytest.mark.parametrize('token,message', [('short', 'at least 16 bytes'), ('has a space in it ok', 'no spaces')])
def test_a_bad_token_is_located(tmpdir_path, token, message):
    path = os.path.join(tmpdir_path, 'p.yaml')
    with open(path, 'w') as f:
        f.write(config(free_port(), free_port(), f', token: "{token}"'))
    r = run_portico('-t', '-c', path)
    assert r.returncode != 0 and re.search(r'p\.yaml:4:\d+: error: .*' + message, r.stderr), r.stderr
    assert token not in r.stderr
