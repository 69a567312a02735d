"""HTTP/2 memory under clients that never open their flow-control windows:
the response bytes a connection may pin are bounded per connection (see
docs/decisions.md, "HTTP/2 response memory per connection")."""
import asyncio
import socket
import subprocess
import threading
import time

import hpack
from hyperframe.frame import HeadersFrame, SettingsFrame

from conftest import BIN, free_port, http_get

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
BODY = 256 * 1024  # what every upstream response carries
# the documented ceiling: 2 MiB of budget plus 16 KiB for each of the
# (2 MiB / 64 KiB) streams under way, per connection
CEILING_PER_CONN = 2 * 1024 * 1024 + 32 * 16 * 1024


class BigBackend:
    """An asyncio HTTP/1.1 upstream: every request gets BODY bytes, written
    as the gateway reads them.  Counts the requests it has seen."""

    def __init__(self):
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait(5)

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, '127.0.0.1', 0, backlog=4096))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _serve(self, r, w):
        chunk = b'x' * 16384
        try:
            while True:
                await r.readuntil(b'\r\n\r\n')
                self.requests += 1
                w.write(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % BODY)
                for _ in range(BODY // len(chunk)):
                    w.write(chunk)
                    await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        w.close()

    def stop(self):
        async def shutdown():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def sanitized_build():
    return 'sanitizers' in subprocess.run([BIN, '-V'], capture_output=True, text=True).stdout


def rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def test_clients_that_never_open_their_windows_pin_a_bounded_amount(gateway):
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
        enc = hpack.Encoder()
        conns = []
        for i in range(100):  # 100 connections x 128 streams, windows of 1 KiB never opened
            s = socket.create_connection(('127.0.0.1', port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            frames = SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1024}).serialize()
            for k in range(128):
                h = HeadersFrame(1 + 2 * k)
                h.data = enc.encode([(':method', 'GET'), (':scheme', 'http'), (':authority', 'm'),
                                     (':path', f'/big/{i}/{k}')])
                h.flags.add('END_HEADERS')
                h.flags.add('END_STREAM')
                frames += h.serialize()
            s.sendall(PREFACE + frames)
            conns.append(s)
            enc = hpack.Encoder()
        # wait until the gateway has taken what it will take
        peak, last, still = 0, -1, 0
        deadline = time.time() + 30
        while time.time() < deadline and still < 6:
            time.sleep(0.5)
            now = (rss_kib(worker), b.requests)
            peak = max(peak, now[0])
            still = still + 1 if now == last else 0
            last = now
        grown = (peak - base) * 1024
        # the streams held back by the budget did not even reach the upstream
        assert b.requests <= 100 * 32, b.requests
        if not sanitized_build():  # ASan's shadow and quarantine are not our memory
            # the worker's RSS grew from under 314 to 324 MiB here, run to run (the
            # allocator's and the kernel's state): 128 MiB over the budget of
            # the 100 connections, where the streams past it (b.requests) would be GiBs
            assert grown < 100 * CEILING_PER_CONN + (128 << 20), (grown >> 20, b.requests)
        for s in conns:
            s.close()
        assert http_get(port, '/after')[0] == 200
    finally:
        b.stop()


def test_streams_past_the_budget_wait_and_then_finish(gateway):
    """connection_buffer: 256k leaves room for 4 streams under way; the
    others wait unstarted while the client holds its windows, and all are
    served once it opens them."""
    from hyperframe.frame import DataFrame, WindowUpdateFrame
    from test_h2 import RawH2, response
    b = BigBackend()
    try:
        port = free_port()
        gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true,
               http2_settings: {{ connection_buffer: 256k }} }}]
upstreams: [{{ name: up, targets: ["127.0.0.1:{b.port}"] }}]
routes:
  - {{ name: all, match: {{ paths: ["/*"] }}, upstream: up }}
''', workers=1)
        c = RawH2(port)
        c.send(SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1024}))
        for k in range(16):
            c.request(1 + 2 * k, f'/big/{k}')
        got = c.frames(lambda f: False, timeout=1.5)
        assert b.requests == 4
        inc = WindowUpdateFrame(0)
        inc.window_increment = 64 << 20
        c.send(inc, SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 8 << 20}))
        total = [sum(len(f.data) for f in got if isinstance(f, DataFrame))]

        def all_in(f):
            total[0] += len(f.data) if isinstance(f, DataFrame) else 0
            return total[0] >= 16 * BODY
        got += c.frames(all_in, timeout=20)
        for k in range(16):
            head, body, rst = response(got, 1 + 2 * k)
            assert head[':status'] == '200' and len(body) == BODY and rst is None, (k, len(body))
        assert b.requests == 16
    finally:
        b.stop()
