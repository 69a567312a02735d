"""Values that ${NAME} takes from the environment are never shown (issue
12): -T prints them as written wherever they are, filter configurations
included, whatever their type; configuration errors about them quote them
as written; the error log, the access log and /status mask them."""
import json
import os

from backend import dead_port
from conftest import free_port, http_get, run_portico

TOKEN = 'tok-7f3a9c1e5b'          # a bearer token
BACKEND_SECRET = 'be-hidden-42x'   # in a header sent upstream
PATH_SECRET = 'p4th-s3cr3t'


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def env(**kw):
    return dict(os.environ, **kw)


DUMP_CONF = '''workers: ${W}
shutdown_timeout: ${GRACE}
listeners:
  - name: main
    address: "127.0.0.1:${PORT}"
    http2: ${H2}
upstreams:
  - name: up
    balancer: "${BAL}"
    targets: ["${BACKEND}"]
routes:
  - name: api
    match: { paths: ["/api/${PATH_SECRET}/*"], headers: { x-tenant: "${TENANT}" } }
    upstream: up
    filters:
      request-headers: { set: { authorization: "Bearer ${TOKEN}" }, add: { x-tenant: "${TENANT}" } }
      fault-injection: { abort: { status: 503, percentage: "${PCT}" } }
  - name: hello
    match: { paths: [/hello] }
    respond: { body: "${BODY}" }
global_filters:
  response-headers: { set: { x-served-by: "${NODE}" } }
'''
DUMP_ENV = dict(W='3', GRACE='17s', PORT='18123', H2='true', BAL='least-connections', BACKEND='10.20.30.40:8080',
                PATH_SECRET=PATH_SECRET, TENANT='tenant-a8b7c6', TOKEN=TOKEN, PCT='7', BODY='body-9d8e7f',
                NODE='node-5e6f7a')


def test_T_prints_every_env_value_as_written(tmpdir_path):
    conf = write(tmpdir_path, 'c.yaml', DUMP_CONF)
    r = run_portico('-T', '-c', conf, env=env(**DUMP_ENV))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # filter configurations (printed in flow style) were the leak: a route's
    # and global_filters'
    assert TOKEN not in out and 'Bearer ${TOKEN}' in out
    assert '"x-tenant": "${TENANT}"' in out and '"x-served-by": "${NODE}"' in out
    assert 'percentage: "${PCT}"' in out
    # every other type too: a count, a duration, an address, a boolean, an
    # enum, a list item, a target given as a plain string, a match value
    assert 'workers: "${W}"' in out and 'shutdown_timeout: "${GRACE}"' in out
    assert 'address: "127.0.0.1:${PORT}"' in out and 'http2: "${H2}"' in out
    assert 'balancer: "${BAL}"' in out and '- address: "${BACKEND}"' in out
    assert '"/api/${PATH_SECRET}/*"' in out and 'body: "${BODY}"' in out
    for name, value in DUMP_ENV.items():
        if name not in ('W', 'PCT', 'H2'):  # 3, 7 and true are elsewhere too
            assert value not in out, name
    # what -T prints loads back to the same configuration
    again = write(tmpdir_path, 'again.yaml', out)
    r2 = run_portico('-T', '-c', again, env=env(**DUMP_ENV))
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout.split('\n', 1)[1] == out.split('\n', 1)[1]


def test_errors_about_env_values_quote_them_as_written(tmpdir_path):
    conf = write(tmpdir_path, 'bad.yaml', '''workers: ${W}
listeners:
  - name: main
    address: "127.0.0.1:${PORT}"
    max_connections: ${MAXC}
upstreams:
  - name: up
    targets: ["${BACKEND}"]
    balancer: "${BAL}"
routes:
  - name: r
    match: { paths: [/x] }
    upstream: "${UP}"
    filters:
      fault-injection: { abort: { status: "${STATUS}" } }
''')
    secrets = dict(W='0', PORT='99999', MAXC='0', BACKEND='no-port-b4ck3nd', BAL='roundrobin-x1y2',
                   UP='billing-z9y8', STATUS='999')
    r = run_portico('-t', '-c', conf, env=env(**secrets))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert f'{conf}:1:10: error: workers: expected "auto" or a number of workers from 1 to 256, not "${{W}}"' in lines
    assert f'{conf}:4:14: error: listeners[0].address: port out of range 1-65535, not "127.0.0.1:${{PORT}}"' in lines
    assert f'{conf}:5:22: error: listeners[0].max_connections: ${{MAXC}} is out of range 1-1000000' in lines
    assert f'{conf}:8:15: error: upstreams[0].targets[0].address: expected host:port, not "${{BACKEND}}"' in lines
    assert any(line.startswith(f'{conf}:9:15: error: upstreams[0].balancer: unknown value "${{BAL}}"')
               for line in lines), lines
    assert f'{conf}:13:15: error: routes[0].upstream: unknown upstream "${{UP}}" (known: up)' in lines
    assert any(line.startswith(f'{conf}:15:43: error: routes[0].filters.fault-injection.abort.status: ${{STATUS}} is '
                               'out of range') for line in lines), lines
    for name, value in secrets.items():
        if len(value) > 1:  # "0" is in other numbers
            assert value not in r.stderr, name


def test_running_gateway_never_shows_env_values(tmpdir_path, gateway, backends):
    b = backends()
    port, admin = free_port(), free_port()
    backend = f'127.0.0.1:{b.port}'
    log = os.path.join(tmpdir_path, 'access.log')
    # a refused target makes workers log the target's address
    refused = 'refused-target'
    g = gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
admin: {{ address: 127.0.0.1:{admin} }}
access_log: {{ path: {log}, format: "$route $upstream_addr $status", buffer: 0 }}
upstreams:
  - {{ name: "${{UPNAME}}", targets: ["${{BACKEND}}"] }}
  - {{ name: dead, targets: ["${{DEAD}}"], retries: 0 }}
routes:
  - name: "${{ROUTE}}"
    match: {{ paths: ["/api/*"] }}
    upstream: "${{UPNAME}}"
    filters: {{ request-headers: {{ set: {{ authorization: "Bearer ${{TOKEN}}", x-b: "${{BSECRET}}" }} }} }}
  - {{ name: dead, match: {{ paths: ["/dead"] }}, upstream: dead }}
''', workers=1, env=dict(UPNAME='orders-up-secret', BACKEND=backend, DEAD=f'127.0.0.1:{dead_port()}',
                          ROUTE='route-name-secret', TOKEN=TOKEN, BSECRET=BACKEND_SECRET))
    assert http_get(port, '/api/x')[0] == 200
    # the values still do their work
    req = b.requests[-1]
    assert req.header('authorization') == f'Bearer {TOKEN}' and req.header('x-b') == BACKEND_SECRET
    assert http_get(port, '/dead')[0] == 502
    g.wait_log(r'\$\{DEAD\}')  # the refused connect, with its target masked
    status = http_get(admin, '/status')[2].decode()
    st = json.loads(status)
    assert st['upstreams'][0]['name'] == '${UPNAME}'
    assert st['upstreams'][0]['targets'][0]['address'] == '${BACKEND}'
    with open(log) as f:
        access = f.read()
    assert '${ROUTE} ${BACKEND} 200' in access
    for text in (g.log(), status, access):
        for value in ('orders-up-secret', backend, 'route-name-secret', TOKEN, BACKEND_SECRET):
            assert value not in text, (value, text)
