"""Test certificates made with the openssl command: a CA, server
certificates (RSA and ECDSA) for a.test and *.b.test, client certificates
(one from the CA, one self-signed), and a key that matches nothing."""
import os
import subprocess


def _run(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True, capture_output=True)


def _key(d, name, kind):
    if kind == 'rsa':
        _run('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', f'{name}.key', cwd=d)
    else:
        _run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f'{name}.key', cwd=d)


def _signed(d, name, kind, cn, sans, ca='ca', usage='serverAuth'):
    _key(d, name, kind)
    ext = os.path.join(d, f'{name}.ext')
    with open(ext, 'w') as f:
        f.write(f'subjectAltName={sans}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n')
    _run('req', '-new', '-key', f'{name}.key', '-subj', f'/CN={cn}/O=Portico Tests', '-out', f'{name}.csr', cwd=d)
    _run('x509', '-req', '-in', f'{name}.csr', '-CA', f'{ca}.crt', '-CAkey', f'{ca}.key', '-CAcreateserial',
         '-days', '30', '-extfile', ext, '-out', f'{name}.crt', cwd=d)


def der_dns_sans(*names):
    """A subjectAltName value in openssl's raw form (DER:...) with these
    dNSName entries, bytes as given: for names no CA should sign, such
    as ones with CR or LF."""
    def tlv(tag, body):
        n = len(body)
        ln = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8, n & 255])
        return bytes([tag]) + ln + body
    return 'DER:' + tlv(0x30, b''.join(tlv(0x82, n) for n in names)).hex(':')


def client_with_sans(d, name, *sans):
    """A client certificate from the CA of make(d) whose DNS SANs are the
    given bytes; returns (cert path, key path)."""
    _signed(d, name, 'ec', name, der_dns_sans(*sans), usage='clientAuth')
    return os.path.join(d, name + '.crt'), os.path.join(d, name + '.key')


def make(d):
    """Writes everything into directory d; returns {name: path}."""
    _key(d, 'ca', 'rsa')
    _run('req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=Portico Test CA', '-days', '30', '-out', 'ca.crt',
         cwd=d)
    _signed(d, 'a-rsa', 'rsa', 'a.test', 'DNS:a.test')
    _signed(d, 'a-ec', 'ec', 'a.test', 'DNS:a.test')
    _signed(d, 'b-wild', 'ec', '*.b.test', 'DNS:*.b.test')
    _signed(d, 'client', 'ec', 'client-1', 'DNS:client-1.example,email:ops@example.com', usage='clientAuth')
    _key(d, 'rogue-ca', 'ec')
    _run('req', '-x509', '-new', '-key', 'rogue-ca.key', '-subj', '/CN=Rogue CA', '-days', '30', '-out',
         'rogue-ca.crt', cwd=d)
    _signed(d, 'rogue', 'ec', 'rogue', 'DNS:rogue.example', ca='rogue-ca', usage='clientAuth')
    _key(d, 'other', 'rsa')
    return {n: os.path.join(d, n) for n in os.listdir(d)}
