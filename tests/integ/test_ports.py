"""Issue 12: a second Portico may not share the first one's ports.  Slots
share an address through SO_REUSEPORT, which let a second instance (with
another pid file) start on the same addresses and split the traffic
between two configurations."""
import pytest

from conftest import basic_config, free_port, http_get


def routes(text):
    return f'''
  - name: r
    match: {{ paths: ["/hello"] }}
    respond: {{ status: 200, body: "{text}" }}
'''


@pytest.mark.parametrize('which', ['listener', 'admin'])
def test_a_second_instance_on_the_same_address_fails_to_start(gateway, which):
    port, admin = free_port(), free_port()
    first = gateway(basic_config(port, admin, routes=routes('first')))
    other_port = free_port()
    second = gateway(basic_config(port if which == 'listener' else other_port, admin if which == 'admin' else free_port(),
                                  routes=routes('second')), start=False)
    second.start(wait=False)
    assert second.proc.wait(15) == 1
    name = 'main' if which == 'listener' else 'admin'
    addr = f'127.0.0.1:{port if which == "listener" else admin}'
    assert f'listener {name}: cannot listen on {addr}: address already in use' in second.log(), second.log()
    # the first one has all of its traffic, and reloads on its own addresses
    for _ in range(20):
        assert http_get(port, '/hello')[2] == b'first'
    first.write(basic_config(port, admin, routes=routes('first again')))
    first.reload()
    for _ in range(20):
        assert http_get(port, '/hello')[2] == b'first again'
    assert http_get(admin, '/status')[0] == 200

