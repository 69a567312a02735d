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



def test_a_reload_may_move_to_an_overlapping_address_it_holds_itself(gateway):
    """The probe for another owner must not find this master's own sockets:
    127.0.0.1:P to 0.0.0.0:P, and a listener and the admin swapping ports."""
    port, admin = free_port(), free_port()
    g = gateway(basic_config(port, admin, routes=routes('one')))
    g.write(basic_config(port, admin, routes=routes('two')).replace(f'127.0.0.1:{port}', f'0.0.0.0:{port}'))
    g.reload()
    assert http_get(port, '/hello')[2] == b'two'
    g.write(basic_config(admin, port, routes=routes('three')))  # the listener on the admin's port, and back
    g.reload()
    assert http_get(admin, '/hello')[2] == b'three'
    assert http_get(port, '/status')[0] == 200


def test_one_file_with_overlapping_listeners_starts(gateway):
    port = free_port()
    text = basic_config(port, routes=routes('x')).replace(
        'listeners:\n', f'listeners:\n  - {{ name: any, address: 0.0.0.0:{port} }}\n')
    gateway(text)
    assert http_get(port, '/hello')[2] == b'x'
