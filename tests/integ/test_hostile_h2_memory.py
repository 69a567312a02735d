"""Hostile tests: worker memory under HTTP/2 clients that never open their
windows, with request heads made large by HPACK (docs/decisions.md 36)."""
import socket
import time

import hpack
from hyperframe.frame import HeadersFrame, SettingsFrame

from conftest import free_port, http_get
from test_h2_memory import CEILING_PER_CONN, PREFACE, BigBackend, rss_kib, sanitized_build


def test_hpack_indexed_request_heads_do_not_lift_the_per_connection_ceiling(gateway):
    """50 connections of 128 streams each, windows of 1 KiB never opened
    (as in test_h2_memory), but every request carries seven 4,000-byte
    fields (28 KiB, under max_header_size 32k), sent as one HPACK literal
    per connection and then one byte per field (dynamic table index 62):
    7 KiB on the wire per connection.  Measured: the worker grows by about
    430 MiB, 8.5 MiB per connection, against the documented ceiling of
    2.5 MiB (budget + 16 KiB per running stream) "whatever
    max_concurrent_streams says": the 96 streams waiting for the budget each
    keep their 28 KiB head built (st->in), and every running stream copies
    its head several times (stream buffer, stream connection input, upstream
    head).  That is over 1,000 bytes of worker memory for each byte
    received, so a few hundred connections take gigabytes.  Expected: what
    a connection pins stays near its documented ceiling, e.g. by counting
    request heads of started and waiting streams in the budget, or by
    refusing (REFUSED_STREAM) streams past it instead of buffering their
    heads."""
    b = BigBackend()
    try:
        port = free_port()
        g = gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
''', workers=1)
        worker = g.worker_pids()[0]
        base = rss_kib(worker)
        conns, wire = [], 0
        for i in range(50):
            enc = hpack.Encoder()
            s = socket.create_connection(('127.0.0.1', port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            frames = SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1024}).serialize()
            for k in range(128):
                path = f'/big/{i}/{k}'.encode()
                # :method GET, :scheme http (static), :authority m and :path not indexed
                block = b'\x82\x86\x01\x01m\x04' + bytes([len(path)]) + path
                if k == 0:
                    block += enc.encode([('x-pad', 'p' * 4000)]) + b'\xbe' * 6  # indexed at 62
                else:
                    block += b'\xbe' * 7
                h = HeadersFrame(1 + 2 * k)
                h.data = block
                h.flags.add('END_HEADERS')
                h.flags.add('END_STREAM')
                frames += h.serialize()
            s.sendall(PREFACE + frames)
            wire += len(frames)
            conns.append(s)
        peak, last, still = 0, -1, 0
        deadline = time.time() + 30
        while time.time() < deadline and still < 6:
            time.sleep(0.5)
            now = (rss_kib(worker), b.requests)
            peak = max(peak, now[0])
            still = still + 1 if now == last else 0
            last = now
        grown = (peak - base) * 1024
        for s in conns:
            s.close()
        assert http_get(port, '/after')[0] == 200
        if not sanitized_build():  # ASan's shadow and quarantine are not our memory
            assert grown < 50 * CEILING_PER_CONN + (64 << 20), \
                f'{grown >> 20} MiB for {wire >> 10} KiB received ({grown // max(wire, 1)} bytes per byte)'
    finally:
        b.stop()
