"""Active health checks through the real binary: probes from one process,
results shared by every worker, kept across reloads, shown in /status."""
import json
import threading
import time

from backend import Backend, dead_port
from conftest import free_port, http_get, wait_for

ACTIVE = ('healthchecks: { active: { http_path: /healthz, host: probe.example, '
          'healthy: { interval: 200ms, successes: 2 }, unhealthy: { interval: 200ms, http_failures: 2 } } }')


def config(port, admin, ports, upstream):
    targets = ', '.join(f'"127.0.0.1:{p}"' for p in ports)
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
admin: {{ address: 127.0.0.1:{admin} }}
upstreams:
  - {{ name: up, targets: [{targets}], {upstream} }}
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''


def probes(b):
    return [r for r in b.requests if r.target == '/healthz']


def served(b):
    return [r for r in b.requests if r.target != '/healthz']


def targets(admin):
    st = json.loads(http_get(admin, '/status')[2])
    return {t['address']: t for t in st['upstreams'][0]['targets']}


def test_probes_mark_down_and_bring_back_in_every_worker(gateway, backends):
    a, b = backends(), backends()
    port, admin = free_port(), free_port()
    g = gateway(config(port, admin, [a.port, b.port], ACTIVE), workers=2)
    wait_for(lambda: len(probes(a)) >= 2 and len(probes(b)) >= 2, what='first probes')
    p = probes(a)[0]
    assert p.method == 'GET' and p.header('host') == 'probe.example'
    assert p.header('user-agent').startswith('portico/') and 'health-check' in p.header('user-agent')
    # one prober for the node, not one per worker: ~10 probes of a target in 2 s at 200 ms
    n0 = len(probes(a))
    time.sleep(2)
    n = len(probes(a)) - n0
    assert 6 <= n <= 13, n

    a.health = 500
    g.wait_log(rf'target 127\.0\.0\.1:{a.port} marked down by active checks after 2 probes answered with an '
               r'unhealthy status in a row')
    assert g.count('marked down by active checks') == 1  # logged once, not by every worker
    a_before = len(served(a))
    for i in range(40):  # new connections: both workers serve some
        assert http_get(port, f'/d{i}')[0] == 200
    assert len(served(a)) == a_before  # no worker sends to a
    t = targets(admin)[f'127.0.0.1:{a.port}']
    assert t['health'] == 'down' and t['marked_down'] == 1 and t['active']['last'] == 500
    assert t['active']['probes_failed'] >= 2 and targets(admin)[f'127.0.0.1:{b.port}']['health'] == 'up'

    a.health = 200
    g.wait_log(rf'target 127\.0\.0\.1:{a.port} is healthy again after 2 successful probes')
    for i in range(40):
        assert http_get(port, f'/u{i}')[0] == 200
    assert len(served(a)) - a_before >= 10  # back in the rotation
    assert targets(admin)[f'127.0.0.1:{a.port}']['health'] == 'up'

    # killed: the probes cannot connect (tcp_failures: 2 by default); restarted: back
    port_a = a.port
    a.stop()
    g.wait_log(rf'target 127\.0\.0\.1:{port_a} marked down by active checks after 2 probes that could not connect')
    for i in range(20):
        assert http_get(port, f'/k{i}')[0] == 200
    t = targets(admin)[f'127.0.0.1:{port_a}']
    assert t['health'] == 'down' and t['active']['last'] == 'connection failed'
    a2 = backends(port=port_a)
    g.wait_log(rf'target 127\.0\.0\.1:{port_a} is healthy again', count=2)
    for i in range(40):
        assert http_get(port, f'/r{i}')[0] == 200
    assert len(served(a2)) >= 10


def test_health_state_survives_a_reload(gateway, backends):
    a, b = backends(), backends()
    a.health = 503
    port, admin = free_port(), free_port()
    g = gateway(config(port, admin, [a.port, b.port], ACTIVE), workers=2)
    g.wait_log(rf'target 127\.0\.0\.1:{a.port} marked down by active checks')
    g.write(config(port, admin, [a.port, b.port], ACTIVE).replace('upstream: up }', 'upstream: up, priority: 1 }'))
    g.reload()
    # the new generation knows at once: had it started afresh, a would take
    # requests until two probes failed
    for i in range(30):
        assert http_get(port, f'/after{i}')[0] == 200
    assert served(a) == []
    assert targets(admin)[f'127.0.0.1:{a.port}']['health'] == 'down'
    assert g.count('marked down by active checks') == 1
    # the draining generation's prober stopped; the new one probes, alone
    n0 = len(probes(a))
    time.sleep(2)
    assert 6 <= len(probes(a)) - n0 <= 13


def test_tcp_probes_and_the_defaults(gateway, backends):
    live, dead = backends(), dead_port()
    port, admin = free_port(), free_port()
    g = gateway(config(port, admin, [live.port, dead],
                       'healthchecks: { active: { type: tcp, healthy: { interval: 100ms }, '
                       'unhealthy: { interval: 100ms } } }'), workers=1)
    g.wait_log(rf'target 127\.0\.0\.1:{dead} marked down by active checks after 2 probes that could not connect')
    assert live.requests == []  # tcp probes send nothing
    for i in range(10):
        assert http_get(port, f'/t{i}')[0] == 200  # never the dead one: no 502
    t = targets(admin)
    assert t[f'127.0.0.1:{live.port}']['health'] == 'up' and t[f'127.0.0.1:{live.port}']['active']['probes_ok'] >= 2


def test_passive_marks_down_and_only_probes_bring_back(gateway, backends):
    a, b = backends(), backends()
    port, admin = free_port(), free_port()
    up = ('retries: 0, healthchecks: { passive: { unhealthy: { http_statuses: [500], http_failures: 2 } }, '
          'active: { http_path: /healthz, healthy: { interval: 300ms, successes: 3 }, '
          'unhealthy: { interval: 300ms } } }')
    g = gateway(config(port, admin, [a.port, b.port], up), workers=1)
    # real traffic fails on a (its /status/500), while its probes succeed
    sts = [http_get(port, '/status/500')[0] for _ in range(4)]
    assert sts.count(500) == 4
    g.wait_log(rf'target 127\.0\.0\.1:{a.port} marked down after 2 failing responses in a row; '
               r'back when probes succeed')
    g.wait_log(rf'target 127\.0\.0\.1:{a.port} is healthy again after 3 successful probes')


def test_active_config_errors(gateway):
    port = free_port()
    g = gateway(config(port, free_port(), [dead_port()], 'healthchecks: { active: { type: grpc, '
                                                        'healthy: { interval: 5 } } }'), start=False)
    from conftest import run_portico
    r = run_portico('-t', '-c', g.conf)
    assert r.returncode != 0
    assert ':4:79: error: upstreams[0].healthchecks.active.type: unknown value "grpc" (expected one of: http, tcp)' \
        in r.stderr, r.stderr
    assert ':4:106: error: upstreams[0].healthchecks.active.healthy.interval: a duration needs a unit' in r.stderr
