"""Issue 13: jwt-auth through the real binary.  Tokens are the RFC 7515
appendix vectors (HS256, RS256, ES256, their keys served as a JWKS) and
tokens signed in the test with openssl (PS256, ES384, ES512, EdDSA, RS256)
and Python's hmac (HS*).  Each must pass; a tampered payload, a tampered
signature, alg none and RS/HS confusion must fail.  Then exp/nbf at the
leeway's edge, iss and aud, JWKS over HTTPS from a server the test runs
(rotation, an unknown kid refreshing it once, the server down keeping the
last keys), the verified-token cache, and secrets in no log."""
import base64
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import pki
from conftest import free_port, http_get, run_portico


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


# ---- RFC 7515 appendix A ----

A1_KEY = 'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow'
A1_TOKEN = ('eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.'
            'eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.'
            'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')
A2_JWK = {'kty': 'RSA',
          'n': 'ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-'
               'SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-'
               'KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8'
               'NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ',
          'e': 'AQAB'}
A2_TOKEN = ('eyJhbGciOiJSUzI1NiJ9.'
            'eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.'
            'cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9u'
            'JdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_e'
            'SN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5'
            'AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw')
A3_JWK = {'kty': 'EC', 'crv': 'P-256', 'x': 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
          'y': 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0'}
A3_TOKEN = ('eyJhbGciOiJFUzI1NiJ9.'
            'eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.'
            'DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q')


def tamper_payload(tok):
    h, p, s = tok.split('.')
    claims = json.loads(b64u_dec(p))
    claims['iss'] = claims.get('iss', '') + 'x'
    return f'{h}.{b64u(json.dumps(claims).encode())}.{s}'


def tamper_sig(tok):
    h, p, s = tok.split('.')
    sig = bytearray(b64u_dec(s))
    sig[len(sig) // 2] ^= 1
    return f'{h}.{p}.{b64u(bytes(sig))}'


def alg_none(tok):
    _, p, _ = tok.split('.')
    return f'{b64u(json.dumps({"alg": "none"}).encode())}.{p}.'


# ---- tokens made here ----

class Keys:
    """Keys made with openssl in a directory; signs with them."""

    def __init__(self, d):
        self.d = d
        self.run('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key')
        for crv in ('P-256', 'P-384', 'P-521'):
            self.run('genpkey', '-algorithm', 'EC', '-pkeyopt', f'ec_paramgen_curve:{crv}', '-out', f'{crv}.key')
        self.run('genpkey', '-algorithm', 'ED25519', '-out', 'ed.key')
        for k in ('rsa', 'P-256', 'P-384', 'P-521', 'ed'):
            self.run('pkey', '-in', f'{k}.key', '-pubout', '-out', f'{k}.pub')

    def run(self, *args, data=None):
        return subprocess.run(['openssl', *args], cwd=self.d, input=data, capture_output=True, check=True).stdout

    def path(self, name):
        return os.path.join(self.d, name)

    def sign(self, alg, claims, header=None, secret=None):
        hdr = {'alg': alg, 'typ': 'JWT', **(header or {})}
        si = f'{b64u(json.dumps(hdr).encode())}.{b64u(json.dumps(claims).encode())}'.encode()
        if alg.startswith('HS'):
            sig = hmac.new(secret, si, getattr(hashlib, 'sha' + alg[2:])).digest()
        elif alg.startswith('RS') or alg.startswith('PS'):
            extra = ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest'] if alg[0] == 'P' else []
            sig = self.run('dgst', '-sha' + alg[2:], '-sign', 'rsa.key', *extra, data=si)
        elif alg.startswith('ES'):
            crv, size = {'ES256': ('P-256', 32), 'ES384': ('P-384', 48), 'ES512': ('P-521', 66)}[alg]
            der = self.run('dgst', '-sha' + alg[2:], '-sign', f'{crv}.key', data=si)
            sig = der_to_raw(der, size)
        else:
            with open(self.path('in.bin'), 'wb') as f:
                f.write(si)
            sig = self.run('pkeyutl', '-sign', '-inkey', 'ed.key', '-rawin', '-in', 'in.bin')
        return f'{si.decode()}.{b64u(sig)}'


def der_to_raw(der, size):
    """An ECDSA-Sig-Value (DER) as the JOSE r||s."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    out = b''
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b'\x00')
        out += v.rjust(size, b'\x00')
        i += 2 + n
    return out


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    return Keys(str(tmp_path_factory.mktemp('jwtkeys')))


HS_SECRET = b'a-secret-of-at-least-32-bytes-for-hs256!!'


def claims(**kw):
    now = int(time.time())
    return {'iss': 'issuer-1', 'sub': 'user-7', 'exp': now + 600, **kw}


def route(filters):
    return f'''routes:
  - name: api
    match: {{ paths: ["/api/*"] }}
    upstream: up
    filters: {{ jwt-auth: {{ {filters} }} }}
'''


def static_config(port, bport, keys, filters=''):
    creds = [f'{{ type: jwt-auth, key: issuer-1, algorithm: HS256, secret: "{HS_SECRET.decode()}" }}',
             f'{{ type: jwt-auth, key: rsa-iss, algorithm: RS256, public_key: {keys.path("rsa.pub")} }}',
             f'{{ type: jwt-auth, key: ps-iss, algorithm: PS256, public_key: {keys.path("rsa.pub")} }}',
             f'{{ type: jwt-auth, key: es256-iss, algorithm: ES256, public_key: {keys.path("P-256.pub")} }}',
             f'{{ type: jwt-auth, key: es384-iss, algorithm: ES384, public_key: {keys.path("P-384.pub")} }}',
             f'{{ type: jwt-auth, key: es512-iss, algorithm: ES512, public_key: {keys.path("P-521.pub")} }}',
             f'{{ type: jwt-auth, key: ed-iss, algorithm: EdDSA, public_key: {keys.path("ed.pub")} }}',
             f'{{ type: jwt-auth, key: hs512-iss, algorithm: HS512, secret: "{(HS_SECRET * 2).decode()}" }}']
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{bport}"] }}]
consumers:
  - name: alice
    credentials: [{", ".join(creds)}]
''' + route(filters)


def get(port, token, path='/api/x', how='header'):
    if how == 'header':
        return http_get(port, path, headers={'Authorization': f'Bearer {token}'})
    if how == 'query':
        return http_get(port, f'{path}?jwt={token}')
    return http_get(port, path, headers={'Cookie': f'a=1; tok={token}'})


def test_every_algorithm_with_consumer_keys_and_what_must_fail(gateway, backends, keys):
    b = backends()
    port = free_port()
    gateway(static_config(port, b.port, keys), workers=1)
    for alg, iss, secret in (('HS256', 'issuer-1', HS_SECRET), ('HS512', 'hs512-iss', HS_SECRET * 2),
                             ('RS256', 'rsa-iss', None), ('PS256', 'ps-iss', None), ('ES256', 'es256-iss', None),
                             ('ES384', 'es384-iss', None), ('ES512', 'es512-iss', None), ('EdDSA', 'ed-iss', None)):
        tok = keys.sign(alg, claims(iss=iss), secret=secret)
        st, _, _ = get(port, tok)
        assert st == 200, alg
        r = b.requests[-1]
        assert (r.header('x-consumer-username'), r.header('x-credential-identifier')) == ('alice', iss), alg
        n = len(b.requests)
        for bad in (tamper_payload(tok), tamper_sig(tok), alg_none(tok)):
            st, h, _ = get(port, bad)
            assert st == 401, (alg, bad)
            assert h['WWW-Authenticate'] == 'Bearer realm="portico", error="invalid_token"'
        assert len(b.requests) == n
    # RS/HS confusion: the RSA public key's PEM as an HS256 secret, for a key pinned to RS256
    pem = open(keys.path('rsa.pub'), 'rb').read()
    assert get(port, keys.sign('HS256', claims(iss='rsa-iss'), secret=pem))[0] == 401
    # a token signed right, with another alg than the key's
    assert get(port, keys.sign('RS384', claims(iss='rsa-iss')))[0] == 401
    assert get(port, keys.sign('PS256', claims(iss='rsa-iss')))[0] == 401
    # no token, another scheme, garbage
    st, h, _ = http_get(port, '/api/x')
    assert st == 401 and h['WWW-Authenticate'] == 'Bearer realm="portico"'
    assert http_get(port, '/api/x', headers={'Authorization': 'Basic eDp5'})[0] == 401
    for junk in ('a.b', 'a.b.c', '...', 'x' * 20000):
        assert get(port, junk)[0] == 401


def test_claims_at_the_edges(gateway, backends, keys):
    b = backends()
    port = free_port()
    gateway(static_config(port, b.port, keys, 'claims_to_verify: [exp, nbf], leeway: 30s, issuer: issuer-1, '
                                              'audiences: [api, other], cache: false'), workers=1)
    now = int(time.time())

    def tok(**kw):
        return keys.sign('HS256', claims(**kw), secret=HS_SECRET)
    assert get(port, tok(nbf=now - 10, aud='api'))[0] == 200
    assert get(port, tok(nbf=now - 10, aud=['x', 'other']))[0] == 200
    assert get(port, tok(exp=now - 20, nbf=now - 100, aud='api'))[0] == 200   # within the leeway
    assert get(port, tok(exp=now - 40, nbf=now - 100, aud='api'))[0] == 401   # past it
    assert get(port, tok(nbf=now + 20, aud='api'))[0] == 200                  # within the leeway
    assert get(port, tok(nbf=now + 60, aud='api'))[0] == 401
    assert get(port, tok(aud='api'))[0] == 401                                # nbf is to be verified
    assert get(port, tok(nbf=now - 10, aud='nope'))[0] == 401
    assert get(port, tok(nbf=now - 10))[0] == 401                              # no aud
    c = claims(nbf=now - 10, aud='api')
    del c['exp']
    assert get(port, keys.sign('HS256', c, secret=HS_SECRET))[0] == 401       # exp is to be verified
    # another issuer (the credential is found by iss: one for an issuer of its own)
    st, _, body = get(port, keys.sign('ES256', claims(iss='es256-iss', nbf=now - 10, aud='api')))
    assert st == 401 and json.loads(body)['message'] == 'The token has another issuer'


def test_token_in_the_query_or_a_cookie_and_hidden(gateway, backends, keys, tmpdir_path):
    b = backends()
    port = free_port()
    alog = os.path.join(tmpdir_path, 'a.log')
    gateway(static_config(port, b.port, keys, 'cookie: tok, hide_credentials: true').replace(
        'upstreams:', f'access_log: {{ path: {alog}, format: "$target $status", flush: 50ms }}\nupstreams:'),
        workers=1)
    tok = keys.sign('HS256', claims(), secret=HS_SECRET)
    assert get(port, tok, path='/api/q', how='query')[0] == 200
    assert b.requests[-1].target == '/api/q'
    assert get(port, tok, how='cookie')[0] == 200
    assert b.requests[-1].header('cookie') == 'a=1'
    assert get(port, tok)[0] == 200 and b.requests[-1].header('authorization') is None
    time.sleep(0.3)
    assert tok not in open(alog).read() and '/api/q?jwt=*** 200' in open(alog).read()


# ---- JWKS over HTTPS ----

class Jwks:
    """An HTTPS server of a JWKS the test changes; counts fetches."""

    def __init__(self, certs):
        self.doc, self.fetches, self.down = {'keys': []}, 0, False
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.fetches += 1
                if srv.down:
                    self.send_response(500)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                body = json.dumps(srv.doc).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs['a-ec.crt'], certs['a-ec.key'])
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope='module')
def certs(tmp_path_factory):
    return pki.make(str(tmp_path_factory.mktemp('pki')))


@pytest.fixture
def jwks(certs):
    s = Jwks(certs)
    yield s
    s.stop()


def jwk_of_pub(keys, name, kid, alg=None):
    """A public key as a JWK, from openssl's text dump."""
    der = keys.run('pkey', '-pubin', '-in', f'{name}.pub', '-outform', 'DER')
    if name == 'ed':
        return {'kty': 'OKP', 'crv': 'Ed25519', 'x': b64u(der[-32:]), 'kid': kid}
    if name.startswith('P-'):
        size = {'P-256': 32, 'P-384': 48, 'P-521': 66}[name]
        pt = der[-(2 * size + 1):]
        assert pt[0] == 4
        return {'kty': 'EC', 'crv': name, 'x': b64u(pt[1:1 + size]), 'y': b64u(pt[1 + size:]), 'kid': kid}
    text = keys.run('rsa', '-pubin', '-in', 'rsa.pub', '-noout', '-modulus').decode()
    n = bytes.fromhex(text.strip().split('=', 1)[1])
    return {'kty': 'RSA', 'n': b64u(n), 'e': 'AQAB', 'kid': kid, **({'alg': alg} if alg else {})}


def jwks_config(port, bport, jport, certs, filters=''):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams:
  - {{ name: up, targets: ["127.0.0.1:{bport}"] }}
  - {{ name: idp, scheme: https, targets: ["127.0.0.1:{jport}"], tls: {{ ca: {certs["ca.crt"]}, sni: a.test }} }}
consumers:
  - {{ name: user-7 }}
''' + route(f'jwks: {{ uri: "https://idp/keys.json", refresh: 10m, timeout: 2s }}, consumer_claim: sub, '
            f'claims_to_verify: [], {filters}')


def test_rfc_7515_vectors_from_a_jwks(gateway, backends, jwks, certs):
    b = backends()
    for jwk, token in ((A2_JWK, A2_TOKEN), (A3_JWK, A3_TOKEN),
                       ({'kty': 'oct', 'k': A1_KEY, 'alg': 'HS256'}, A1_TOKEN)):
        jwks.doc = {'keys': [jwk]}
        port = free_port()
        g = gateway(jwks_config(port, b.port, jwks.port, certs), workers=1)
        if jwk['kty'] == 'oct':  # a symmetric key is never taken from a JWKS
            assert get(port, token)[0] in (401, 503)
            continue
        assert get(port, token)[0] == 200, jwk['kty']
        assert b.requests[-1].header('x-consumer-username') is None  # no sub in the vector
        for bad in (tamper_payload(token), tamper_sig(token), alg_none(token)):
            assert get(port, bad)[0] == 401
        g.stop() if hasattr(g, 'stop') else None


def test_jwks_rotation_unknown_kid_and_the_server_down(gateway, backends, keys, jwks, certs):
    b = backends()
    port = free_port()
    jwks.doc = {'keys': [jwk_of_pub(keys, 'P-256', 'k1'), jwk_of_pub(keys, 'rsa', 'r1', 'RS256')]}
    g = gateway(jwks_config(port, b.port, jwks.port, certs), workers=1)
    t1 = keys.sign('ES256', claims(), header={'kid': 'k1'})
    assert get(port, t1)[0] == 200
    assert b.requests[-1].header('x-consumer-username') == 'user-7'
    assert b.requests[-1].header('x-credential-identifier') == 'k1'
    assert get(port, keys.sign('RS256', claims(), header={'kid': 'r1'}))[0] == 200
    fetches = jwks.fetches
    # a new key: the first token that names it makes one refresh, and waits for it
    jwks.doc = {'keys': [jwk_of_pub(keys, 'P-256', 'k1'), jwk_of_pub(keys, 'ed', 'k2')]}
    t2 = keys.sign('EdDSA', claims(), header={'kid': 'k2'})
    assert get(port, t2)[0] == 200
    assert jwks.fetches == fetches + 1
    # an unknown kid again within 10 s: no new fetch
    assert get(port, keys.sign('ES256', claims(), header={'kid': 'k9'}))[0] == 401
    assert jwks.fetches == fetches + 1
    # r1 is gone from the set: a token of it that was cached is verified again, and fails
    assert get(port, keys.sign('RS256', claims(), header={'kid': 'r1'}))[0] == 401
    # the server down: the last keys are kept
    jwks.down = True
    time.sleep(10.5)
    assert get(port, keys.sign('ES256', claims(), header={'kid': 'k3'}))[0] == 401  # makes a fetch, which fails
    assert get(port, t1)[0] == 200 and get(port, t2)[0] == 200
    g.wait_log(r'jwt-auth: cannot fetch the key set https://idp/keys\.json: status 500; keeping the last one')


def test_no_key_set_yet_is_refused_and_logged_once(gateway, backends, keys, jwks, certs):
    b = backends()
    port = free_port()
    jwks.down = True
    g = gateway(jwks_config(port, b.port, jwks.port, certs), workers=1)
    t1 = keys.sign('ES256', claims(), header={'kid': 'k1'})
    for _ in range(3):
        st, _, body = get(port, t1)
        assert st == 503 and json.loads(body)['message'] == "The token's keys cannot be fetched"
    assert len(b.requests) == 0
    assert g.log().count('cannot fetch the key set') == 1


def test_the_cache_answers_without_verifying_again(gateway, backends, keys, tmpdir_path):
    """A cached token still expires: at its exp it is refused."""
    b = backends()
    port = free_port()
    gateway(static_config(port, b.port, keys), workers=1)
    tok = keys.sign('RS256', claims(iss='rsa-iss', exp=int(time.time()) + 2))
    for _ in range(5):
        assert get(port, tok)[0] == 200
    time.sleep(2.5)
    assert get(port, tok)[0] == 401


def test_configuration_errors(tmp_path, keys):
    base = 'listeners: [{ name: m, address: "127.0.0.1:1" }]\nroutes: [{ name: r, respond: {} }]\nconsumers:\n'
    small = tmp_path / 'small.pem'
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out',
                    str(tmp_path / 'small.key')], check=True, capture_output=True)
    subprocess.run(['openssl', 'pkey', '-in', str(tmp_path / 'small.key'), '-pubout', '-out', str(small)], check=True,
                   capture_output=True)
    cases = [
        ('{ type: jwt-auth, key: k, algorithm: HS999, secret: "0123456789012345678901234567890123" }',
         'unknown algorithm "HS999"'),
        ('{ type: jwt-auth, key: k, algorithm: none, secret: "0123456789012345678901234567890123" }',
         'unknown algorithm "none"'),
        ('{ type: jwt-auth, key: k, algorithm: HS256, secret: short }', 'secret'),
        (f'{{ type: jwt-auth, key: k, algorithm: RS256, public_key: {small} }}', '1024'),
        (f'{{ type: jwt-auth, key: k, algorithm: ES384, public_key: {keys.path("P-256.pub")} }}', 'P-256'),
        ('{ type: jwt-auth, key: k, algorithm: RS256, public_key: /etc/hostname }', 'public_key'),
        (f'{{ type: jwt-auth, key: k, algorithm: HS256, public_key: {keys.path("rsa.pub")} }}',
         'HS256 takes a secret'),
    ]
    for cred, want in cases:
        f = tmp_path / 'p.yaml'
        f.write_text(base + f'  - {{ name: a, credentials: [{cred}] }}\n')
        r = run_portico('-t', '-c', str(f))
        assert r.returncode == 1 and 'p.yaml:4:' in r.stderr and want in r.stderr, (want, r.stderr)
        assert '0123456789012345678901234567890123' not in r.stderr


def test_rfc_7515_a1_hs256_with_a_base64_secret(gateway, backends):
    """A.1's key is 64 bytes that are not text: secret_base64 carries it."""
    b = backends()
    port = free_port()
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
consumers:
  - name: joe
    credentials: [{{ type: jwt-auth, key: joe, algorithm: HS256, secret: "{A1_KEY}", secret_base64: true }}]
''' + route('claims_to_verify: []'), workers=1)
    assert get(port, A1_TOKEN)[0] == 200
    assert b.requests[-1].header('x-consumer-username') == 'joe'
    for bad in (tamper_payload(A1_TOKEN), tamper_sig(A1_TOKEN), alg_none(A1_TOKEN)):
        assert get(port, bad)[0] == 401
