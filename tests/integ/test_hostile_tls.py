"""Hostile tests: client certificate names templated into headers
(${tls_client_san}) must be the certificate's names, whole, or refused."""
import pytest

import pki
from conftest import free_port
from test_template_injection import ROUTES, config, get, status


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('pki'))
    c = pki.make(d)
    # the classic NUL-in-a-name certificate (a CA that checks only the
    # registrable suffix signs it for the owner of attacker.test)
    c['nul'] = pki.client_with_sans(d, 'nul', b'admin.internal\x00.attacker.test')
    # a long first name, then one that does not fit in Portico's 1,024-byte
    # buffer: 1,005 + ',' + 17 = 1,023 bytes keep exactly "admin.internal.co"
    c['long'] = pki.client_with_sans(d, 'long', b'a' * 991 + b'.attacker.test', b'admin.internal.com.attacker.test')
    return c


def test_a_nul_in_a_san_is_refused_not_cut_short(gateway, backends, certs):
    """A dNSName "admin.internal\\0.attacker.test" reached the upstream as
    x-san: admin.internal (pt_tls_client_san prints each name with "%.*s",
    which stops at the NUL), and the client's response as the same: the
    name the certificate really carries is not the one the upstream is
    told.  NUL is a CTL, which decision 30 refuses for every other control
    byte (0x01, CR, LF get 400 and nothing goes upstream), and OpenSSL's
    own hostname checks refuse embedded NULs.  Expected: 400, nothing
    upstream, and no truncated name in a response either."""
    b = backends()
    port = free_port()
    gateway(config(port, b.port, certs, ROUTES), workers=1)
    head, _ = get(port, certs, 'nul', '/req/x')
    assert [r.header('x-san') for r in b.requests] == [], 'the upstream was told a name the certificate does not hold'
    assert status(head) == 400, head
    head, body = get(port, certs, 'nul', '/resp/x')
    assert b'admin.internal' not in head, head


def test_a_san_list_too_long_for_the_buffer_is_not_cut_inside_a_name(gateway, backends, certs):
    """SANs that do not fit the 1,024-byte buffer: snprintf writes the part
    of the last name that fits and pt_tls_client_san stops there, leaving
    the cut name in the value.  With the names chosen so that the cut
    falls after "admin.internal.co", the upstream is told the client is
    (among others) admin.internal.co, a name the certificate does not
    carry.  Expected: either the whole list or a refusal (400, as for a
    value that is too long), never a name cut short."""
    b = backends()
    port = free_port()
    gateway(config(port, b.port, certs, ROUTES), workers=1)
    head, _ = get(port, certs, 'long', '/req/x')
    names = {'a' * 991 + '.attacker.test', 'admin.internal.com.attacker.test'}
    for r in b.requests:
        got = r.header('x-san').split(',')
        assert set(got) <= names, f'the upstream was told {got[-1][:40]!r}, not a name of the certificate'
    assert status(head) in (200, 400), head
