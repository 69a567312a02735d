"""A gRPC server for tests, with generic handlers (bytes in, bytes out: no
protobuf needed).  Records the peers it saw."""
import time
from concurrent import futures

import grpc


class GrpcServer:
    def __init__(self, tls=None):
        self.peers = []
        self.calls = 0
        self.metadata = []  # of each unary call, as a dict
        h = grpc.method_handlers_generic_handler('test.Echo', {
            'Unary': grpc.unary_unary_rpc_method_handler(self.unary),
            'Fail': grpc.unary_unary_rpc_method_handler(self.fail),
            'Slow': grpc.unary_unary_rpc_method_handler(self.slow),
            'Big': grpc.unary_unary_rpc_method_handler(self.big),
            'Chat': grpc.stream_stream_rpc_method_handler(self.chat),
            'Count': grpc.unary_stream_rpc_method_handler(self.count),
            'ChatEarly': grpc.stream_stream_rpc_method_handler(self.chat_early),
            'SumEarly': grpc.stream_unary_rpc_method_handler(self.sum_early),
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
        self.metadata.append(md)
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

    def chat_early(self, it, ctx):
        """Answers the first message and ends the call while the client
        still streams."""
        self._seen(ctx)
        first = next(it)
        ctx.set_trailing_metadata((('x-early', 'yes'),))
        yield first.upper()

    def sum_early(self, it, ctx):
        """A client-streaming call answered after the first message."""
        self._seen(ctx)
        first = next(it)
        ctx.set_trailing_metadata((('x-early', 'yes'),))
        return b'got ' + first


class RawEarlyUpstream:
    """An HTTP/2 gRPC upstream written frame by frame: every call is
    answered at once (HEADERS, one message, trailers with END_STREAM) while
    the request stream is still open, and the stream is reset (NO_ERROR)
    only `reset_after` seconds later, or never (None).  With `status` other
    than 200, the answer is that :status alone.  `data`, when given, is
    the DATA frame's payload as it is (framed or not) instead of one framed
    message "early"; `trailers`, the trailer fields instead of grpc-status 0
    and x-early: yes.  The request heads it got are in .heads (dicts)."""

    def __init__(self, reset_after=None, status='200', data=None, trailers=None, interim=None):
        import socket
        import threading
        self.interim = interim  # a 1xx status sent in a HEADERS frame of its own before the head
        self.reset_after = reset_after
        self.status = status
        self.data = data
        self.trailers = trailers or [('grpc-status', '0'), ('x-early', 'yes')]
        self.heads = []
        self.calls = 0
        self.ls = socket.socket()
        self.ls.bind(('127.0.0.1', 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        for s in [self.ls, *self.conns]:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        import threading
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        import threading
        import hpack
        from hyperframe.frame import (DataFrame, Frame, HeadersFrame, RstStreamFrame, SettingsFrame,
                                      WindowUpdateFrame)
        enc, dec = hpack.Encoder(), hpack.Decoder()
        lock = threading.Lock()

        def send(*frames):
            with lock:
                try:
                    s.sendall(b''.join(f.serialize() for f in frames))
                except OSError:
                    pass

        wu = WindowUpdateFrame(0)
        wu.window_increment = 1 << 24
        send(SettingsFrame(0), wu)
        buf, seen = b'', set()
        try:
            while len(buf) < 24:
                buf += s.recv(65536) or b'x' * 24
            buf = buf[24:]
            while True:
                while len(buf) >= 9:
                    f, length = Frame.parse_frame_header(memoryview(buf[:9]))
                    if len(buf) < 9 + length:
                        break
                    f.parse_body(memoryview(buf[9:9 + length]))
                    buf = buf[9 + length:]
                    if isinstance(f, SettingsFrame) and 'ACK' not in f.flags:
                        ack = SettingsFrame(0)
                        ack.flags.add('ACK')
                        send(ack)
                    elif isinstance(f, HeadersFrame) and f.stream_id not in seen:
                        seen.add(f.stream_id)
                        self.heads.append(dict(dec.decode(f.data)))
                        self.calls += 1
                        sid = f.stream_id
                        if self.status != '200':
                            head = HeadersFrame(sid)
                            head.data = enc.encode([(':status', self.status)])
                            head.flags.add('END_HEADERS')
                            head.flags.add('END_STREAM')
                            send(head)
                            continue
                        if self.interim:
                            early = HeadersFrame(sid)
                            early.data = enc.encode([(':status', self.interim), ('link', '</x>; rel=preload')])
                            early.flags.add('END_HEADERS')
                            send(early)
                        head = HeadersFrame(sid)
                        head.data = enc.encode([(':status', '200'), ('content-type', 'application/grpc')])
                        head.flags.add('END_HEADERS')
                        msg = b'early'
                        data = DataFrame(sid)
                        data.data = b'\0' + len(msg).to_bytes(4, 'big') + msg if self.data is None else self.data
                        tr = HeadersFrame(sid)
                        tr.data = enc.encode(self.trailers)
                        tr.flags.add('END_HEADERS')
                        tr.flags.add('END_STREAM')
                        send(head, data, tr)
                        if self.reset_after is not None:
                            threading.Timer(self.reset_after, send, (RstStreamFrame(sid, error_code=0),)).start()
                data = s.recv(65536)
                if not data:
                    return
                buf += data
        except OSError:
            return
