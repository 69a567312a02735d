"""A gRPC server for tests, with generic handlers (bytes in, bytes out: no
protobuf needed).  Records the peers it saw."""
import time
from concurrent import futures

import grpc


class GrpcServer:
    def __init__(self, tls=None):
        self.peers = []
        self.calls = 0
        h = grpc.method_handlers_generic_handler('test.Echo', {
            'Unary': grpc.unary_unary_rpc_method_handler(self.unary),
            'Fail': grpc.unary_unary_rpc_method_handler(self.fail),
            'Slow': grpc.unary_unary_rpc_method_handler(self.slow),
            'Big': grpc.unary_unary_rpc_method_handler(self.big),
            'Chat': grpc.stream_stream_rpc_method_handler(self.chat),
            'Count': grpc.unary_stream_rpc_method_handler(self.count),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self.server.add_generic_rpc_handlers((h,))
        if tls:
            creds = grpc.ssl_server_credentials([(open(tls[1], 'rb').read(), open(tls[0], 'rb').read())])
            self.port = self.server.add_secure_port('127.0.0.1:0', creds)
        else:
            self.port = self.server.add_insecure_port('127.0.0.1:0')
        self.server.start()

    def stop(self):
        self.server.stop(0)

    def _seen(self, ctx):
        self.calls += 1
        self.peers.append(ctx.peer())

    def unary(self, req, ctx):
        self._seen(ctx)
        ctx.set_trailing_metadata((('x-trailer', 'yes'),))
        md = dict(ctx.invocation_metadata())
        return b'echo:' + req + b' from ' + md.get('x-who', '-').encode()

    def fail(self, req, ctx):
        self._seen(ctx)
        ctx.abort(grpc.StatusCode.NOT_FOUND, 'no such thing')

    def slow(self, req, ctx):
        self._seen(ctx)
        time.sleep(2)
        return b'late'

    def big(self, req, ctx):
        self._seen(ctx)
        return bytes(range(256)) * (3 * 4096)

    def chat(self, it, ctx):
        self._seen(ctx)
        for m in it:
            yield m.upper()

    def count(self, req, ctx):
        self._seen(ctx)
        for i in range(int(req)):
            yield str(i).encode()
