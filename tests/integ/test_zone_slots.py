"""Issue 12: the slots of the shared target zone, where every worker finds
a target's health and in-flight count by its address.  A name that
resolves to address after address frees the slots no worker uses any
more instead of filling the zone; a zone that fills all the same says so;
a reload that resizes the zone (more or fewer targets) carries the
health of every target into the new one."""
import json

import pytest

from backend import dead_port
from conftest import free_port, http_get, wait_for
from dns_server import DnsServer

FULL = r'shared zone "upstream-targets" is full: all 64 slots are in use'


@pytest.fixture
def dns():
    d = DnsServer()
    yield d
    d.stop()


def rotating(dns, name):
    """Every query for name gets an address it never got before."""
    n = [0]

    def answer():
        n[0] += 1
        k = n[0]
        return (f'127.1.{k // 250}.{k % 250 + 1}', 1)
    dns.records[name] = answer


def dns_config(port, admin, dns_port, target, valid):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
admin: {{ address: 127.0.0.1:{admin} }}
resolver: {{ nameservers: ["127.0.0.1:{dns_port}"], timeout: 2s, valid: {valid} }}
upstreams:
  - {{ name: up, targets: ["{target}"] }}
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
'''


def status(admin):
    return json.loads(http_get(admin, '/status', timeout=30)[2])


def test_a_name_through_many_addresses_does_not_fill_the_zone(gateway, dns):
    rotating(dns, 'svc.test')
    port, admin = free_port(), free_port()
    g = gateway(dns_config(port, admin, dns.port, f'svc.test:{dead_port()}', '50ms'), workers=2)
    # three times the 64 slots the zone has: each address took one for good
    wait_for(lambda: dns.count('svc.test') >= 200, timeout=120, what='200 answers')
    assert g.count(r'target svc\.test:\d+ resolves to 127\.1\.') >= 190
    st = status(admin)
    target = st['upstreams'][0]['targets'][0]
    assert target['address'].startswith('127.1.') and target['health'] == 'up', target  # still shared
    zone = st['zones'][0]
    assert zone['name'] == 'upstream-targets' and zone['slots'] == 64, zone
    assert zone['used'] <= 4 and zone['refused'] == 0, zone  # the two workers' addresses, and a move under way
    assert g.count('is full') == 0


def test_a_full_zone_is_logged(gateway, dns):
    rotating(dns, 'svc.test')
    port, admin = free_port(), free_port()
    # 80 workers, each at an address of its own: more than the 64 slots
    g = gateway(dns_config(port, admin, dns.port, f'svc.test:{dead_port()}', '1h'), workers=80)
    wait_for(lambda: dns.count('svc.test') >= 80, timeout=60, what='80 answers')
    g.wait_log(FULL, timeout=60)
    g.wait_log(r'resolves to 127\.1\.', count=80, timeout=60)
    zone = status(admin)['zones'][0]
    assert zone['used'] == 64 and zone['refused'] >= 16, zone
    assert g.count(FULL) == 1  # once, not once per worker


def health_config(port, admin, ports, more=0):
    """Upstream up over ports, with passive checks; `more` targets in an
    upstream of their own make the zone bigger."""
    targets = ', '.join(f'"127.0.0.1:{p}"' for p in ports)
    others = ', '.join(f'"127.0.2.{i + 1}:80"' for i in range(more))
    text = f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
admin: {{ address: 127.0.0.1:{admin} }}
upstreams:
  - name: up
    targets: [{targets}]
    retries: 0
    healthchecks: {{ passive: {{ cooldown: 1h, unhealthy: {{ http_statuses: [500], http_failures: 2 }} }} }}
'''
    if more:
        text += f'  - {{ name: others, targets: [{others}] }}\n'
    return text + '''routes:
  - { name: all, match: { paths: ["/*"] }, upstream: up }
'''


def targets(admin):
    st = status(admin)
    return {t['address']: t for t in st['upstreams'][0]['targets']}, (st.get('zones') or [{}])[0]


def test_health_is_kept_when_a_reload_resizes_the_zone(gateway, backends):
    a, b = backends(), backends()
    a.fail_status = 500
    port, admin = free_port(), free_port()
    g = gateway(health_config(port, admin, [a.port, b.port]), workers=2)
    for i in range(6):
        http_get(port, f'/x{i}')
    g.wait_log(rf'target 127\.0\.0\.1:{a.port} marked down after 2 failing responses in a row', timeout=30)
    seen = len(a.requests)
    ts, zone = targets(admin)
    assert ts[f'127.0.0.1:{a.port}']['health'] == 'down'

    # 100 more targets: a zone of 256 slots, which a's health moves into
    g.write(health_config(port, admin, [a.port, b.port], more=100))
    g.reload()
    ts, zone = targets(admin)
    t = ts[f'127.0.0.1:{a.port}']
    assert t['health'] == 'down' and t['marked_down'] == 1 and t['passive']['down_for_ms'] > 60000, t
    assert zone['slots'] == 256, zone
    for i in range(20):
        assert http_get(port, f'/big{i}')[0] == 200
    assert len(a.requests) == seen  # the new generation never tried it

    # and back: a zone of 64 again, a new one, still with a's health
    g.write(health_config(port, admin, [a.port, b.port]))
    g.reload()
    ts, zone = targets(admin)
    assert ts[f'127.0.0.1:{a.port}']['health'] == 'down' and zone['slots'] == 64, (zone, ts)
    for i in range(20):
        assert http_get(port, f'/small{i}')[0] == 200
    assert len(a.requests) == seen
    # once the old generation is gone, the slots of the 100 targets it had
    # are freed: only a's and b's are left
    wait_for(lambda: targets(admin)[1]['used'] == 2, timeout=30, what='2 slots in use')
    assert g.count(r'marked down') == 1
