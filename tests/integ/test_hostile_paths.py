"""Hostile tests: what reaches the upstream must never resolve outside the
route that matched."""
import pytest

from conftest import free_port, raw


def _config(port, bport, mode):
    return f'''listeners:
  - name: main
    address: 127.0.0.1:{port}
    escaped_slashes: {mode}
upstreams:
  - name: a
    targets: ["127.0.0.1:{bport}"]
routes:
  - name: public
    match: {{ paths: ["/public/*"] }}
    upstream: a
  - name: admin
    match: {{ paths: ["/admin/*"] }}
    upstream: a
    filters: {{ ip-restriction: {{ deny: [127.0.0.0/8] }} }}
'''


@pytest.mark.parametrize('mode', ['reject', 'decode'])
def test_raw_backslash_does_not_hide_a_dot_segment(gateway, backends, mode):
    """docs/decisions.md 31: "some upstreams take a backslash for a slash, and
    a decoded backslash left in a segment would hide a `..` from us" -- so
    %5C is refused (reject) or made a / (decode).  A raw backslash, which is
    not even a pchar (RFC 3986 3.3), gets neither: /public/..\\admin\\secret
    is routed under /public/ and forwarded as it is, and an upstream that
    takes \\ for / serves /admin/secret, which the admin route refuses to
    this client (403).  Expected: 400 (as for %5C under reject, and as
    HAProxy does for a character outside the URI grammar) or the same
    treatment as %5C; never the raw backslash under another route."""
    b = backends()
    port = free_port()
    gateway(_config(port, b.port, mode), workers=1)
    assert raw(port, b'GET /admin/secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n').startswith(b'HTTP/1.1 403')
    out = raw(port, b'GET /public/..\\admin\\secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 400') or out.startswith(b'HTTP/1.1 403'), out[:60]
    assert not [r.target for r in b.requests if '\\' in r.target], [r.target for r in b.requests]
