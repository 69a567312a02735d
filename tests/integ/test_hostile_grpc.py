"""Hostile tests: gRPC through the real binary with a real grpcio client."""
import time
from concurrent import futures

import pytest

grpc = pytest.importorskip('grpc')

from conftest import free_port  # noqa: E402
from grpc_server import GrpcServer  # noqa: E402
from test_grpc import config  # noqa: E402


@pytest.fixture
def server():
    s = GrpcServer()
    yield s
    s.stop()


def test_forty_concurrent_bidi_calls_on_one_channel_all_finish(gateway, server):
    """40 bidi-streaming calls at once on one grpcio channel (one HTTP/2
    connection), each sending 20 messages of 8 KB.  With 30 calls all
    finish in half a second; with 40, most fail after the upstream read
    timeout (5 s here) with RST_STREAM INTERNAL_ERROR ("gRPC call failed:
    upstream timed out").  The default connection_buffer (2 MiB) runs 32
    calls; the 8 others wait unstarted, but the client's DATA for them is
    buffered unacknowledged and takes the connection's 65,535-byte receive
    window, so the 32 running calls never get the rest of their messages
    (see test_hostile_h2_flow).  The documented cost of the budget is that
    calls wait, not that the running ones starve.  Expected: all 40 calls
    get their 20 answers."""
    port = free_port()
    gateway(config(port, [server.port]), workers=1)

    def chat(i):
        def gen():
            for _ in range(20):
                yield b'm' * 8000
                time.sleep(0.01)
        try:
            return len(list(ch.stream_stream('/test.Echo/Chat')(gen(), timeout=15)))
        except grpc.RpcError as e:
            return f'{e.code()}: {e.details()}'
    with grpc.insecure_channel(f'127.0.0.1:{port}') as ch, futures.ThreadPoolExecutor(40) as ex:
        res = list(ex.map(chat, range(40)))
    assert res == [20] * 40, [r for r in res if r != 20][:3]
