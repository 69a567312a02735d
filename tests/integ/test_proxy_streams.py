"""Long-lived and large streams through the proxy: a WebSocket echo, and
1 GiB up and down with the gateway's memory read from /proc."""
import asyncio
import hashlib
import http.client
import socket
import subprocess
import threading
import time

import pytest

from backend import PATTERN, pattern_md5
from conftest import BIN, free_port, proxy_config, wait_for

websockets = pytest.importorskip('websockets')


def sanitized_build():
    return 'sanitizers' in subprocess.run([BIN, '-V'], capture_output=True, text=True).stdout


def test_websocket_echo_through_the_proxy(gateway):
    bport, port = free_port(), free_port()

    async def echo(ws, path=None):
        async for msg in ws:
            await ws.send(msg)

    async def main():
        async with websockets.serve(echo, '127.0.0.1', bport):
            gateway(proxy_config(port, [bport]), workers=1)
            async with websockets.connect(f'ws://127.0.0.1:{port}/chat') as ws:
                for i in range(50):
                    await ws.send(f'message {i}')
                    assert await ws.recv() == f'message {i}'
                big = bytes(range(256)) * 4096  # 1 MiB binary frame, both ways
                await ws.send(big)
                assert await ws.recv() == big

    asyncio.run(asyncio.wait_for(main(), 30))


def test_websocket_tunnel_closes_when_idle(gateway):
    bport, port = free_port(), free_port()

    async def silent(ws, path=None):
        await ws.wait_closed()  # says nothing; ends when the proxy drops it

    async def main():
        async with websockets.serve(silent, '127.0.0.1', bport):
            cfg = proxy_config(port, [bport]).replace(
                f'    address: 127.0.0.1:{port}\n', f'    address: 127.0.0.1:{port}\n    timeouts: {{ idle: 500ms }}\n')
            gateway(cfg, workers=1)
            async with websockets.connect(f'ws://127.0.0.1:{port}/', ping_interval=None) as ws:
                t0 = time.time()
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert 0.4 < time.time() - t0 < 3

    asyncio.run(asyncio.wait_for(main(), 30))


def peak_rss_kib(pids):
    """The largest VmHWM (peak resident set) among pids, in KiB."""
    peak = 0
    for pid in pids:
        for line in open(f'/proc/{pid}/status'):
            if line.startswith('VmHWM:'):
                peak = max(peak, int(line.split()[1]))
    return peak


def test_one_gib_upload_and_download_in_bounded_memory(gateway, backends):
    size = (256 if sanitized_build() else 1024) << 20  # ASan's quarantine is not our memory
    b = backends(keep_body=0)
    port = free_port()
    g = gateway(proxy_config(port, [b.port]), workers=1)
    pids = [g.proc.pid] + g.worker_pids()

    def body():
        left = size
        while left:
            n = min(left, len(PATTERN))
            yield PATTERN[:n]
            left -= n

    c = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
    c.request('POST', '/sink', body=body(), headers={'Content-Length': str(size)})
    r = c.getresponse()
    assert r.status == 200
    assert r.read().decode() == f'{size} {pattern_md5(size)}'

    c.request('GET', f'/big?size={size}')
    r = c.getresponse()
    h, n = hashlib.md5(), 0
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    assert n == size and h.hexdigest() == pattern_md5(size)
    c.close()
    peak = peak_rss_kib(pids)
    print(f'peak RSS of the gateway processes: {peak} KiB for {size >> 20} MiB each way')
    if not sanitized_build():
        assert peak < 64 * 1024, f'peak RSS {peak} KiB'
