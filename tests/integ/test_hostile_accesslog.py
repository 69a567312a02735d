"""Hostile tests: the access log must stay one well-formed line per request
whatever the client puts in the fields it logs."""
import json
import os

from conftest import free_port, proxy_config, raw, wait_for


def _lines(log, n):
    wait_for(lambda: os.path.exists(log) and len(open(log, 'rb').read().splitlines()) >= n, what='log lines')
    return open(log, 'rb').read().splitlines()


def test_json_log_line_with_a_long_user_agent_is_valid_json(gateway, backends, tmpdir_path):
    """A 3,000-byte User-Agent of quotes (each escaped to two bytes) made the
    json line 4,095 bytes cut in the middle of a string: not JSON, and the
    fields after user_agent (upstream_addr, upstream_status, ...) were lost."""
    b = backends()
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(proxy_config(port, [b.port], extra=f'access_log: {{ path: {log}, format: json, buffer: 0 }}'), workers=1)
    out = raw(port, b'GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nUser-Agent: ' + b'"' * 3000 +
              b'\r\nReferer: r\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 200')
    (line,) = _lines(log, 1)
    entry = json.loads(line)  # fails: truncated line
    assert entry['status'] == 200 and entry['upstream_status'] == 200


def test_json_log_line_with_obs_text_is_utf8(gateway, backends, tmpdir_path):
    """obs-text (bytes 0x80-0xff) is valid in a field value (RFC 9110 5.5);
    the json log wrote those bytes raw, so the line is not UTF-8 and no JSON
    parser (RFC 8259 8.1) reads it.  They must be escaped (\\u00ff or
    similar) as the text formats escape them (\\xff)."""
    b = backends()
    port = free_port()
    log = os.path.join(tmpdir_path, 'access.log')
    gateway(proxy_config(port, [b.port], extra=f'access_log: {{ path: {log}, format: json, buffer: 0 }}'), workers=1)
    out = raw(port, b'GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nUser-Agent: ua\xff\xfe\r\nReferer: r\x80\r\n\r\n')
    assert out.startswith(b'HTTP/1.1 200')
    (line,) = _lines(log, 1)
    entry = json.loads(line.decode('utf-8'))  # fails: 0xff is not UTF-8
    assert entry['user_agent'].startswith('ua') and entry['status'] == 200

