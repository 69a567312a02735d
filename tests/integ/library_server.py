"""The library.v1 gRPC services of tests/integ/protos/library.proto, for
the transcoding tests: protoc makes the descriptor set and the Python
messages in a directory (compile()); LibraryServer serves them on a free
port and records every call it gets (method, request message, metadata)."""
import os
import subprocess
import sys
import time
from concurrent import futures

import grpc

PROTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'protos')


def compile_protos(out_dir, files=('library.proto',), protos=PROTOS):
    """protoc: out_dir/library.pb (a FileDescriptorSet with its imports) and
    the Python modules; returns the descriptor set's path."""
    os.makedirs(out_dir, exist_ok=True)
    pb = os.path.join(out_dir, 'library.pb')
    subprocess.run(['protoc', f'-I{protos}', '-I/usr/include', '--include_imports', f'--descriptor_set_out={pb}',
                    f'--python_out={out_dir}', *files, 'google/api/http.proto', 'google/api/annotations.proto'],
                   check=True, cwd=protos)
    return pb


def modules(out_dir):
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    import library_pb2  # noqa: E402
    return library_pb2


def status_details(code, message, details):
    """A google.rpc.Status (code 1, message 2, details 3: Any) by hand."""
    def varint(v):
        out = b''
        while True:
            b = v & 0x7f
            v >>= 7
            out += bytes([b | (0x80 if v else 0)])
            if not v:
                return out

    def ld(num, data):
        return varint(num << 3 | 2) + varint(len(data)) + data
    body = varint(1 << 3) + varint(code) + ld(2, message.encode())
    for url, value in details:
        body += ld(3, ld(1, url.encode()) + ld(2, value))
    return body


class LibraryServer:
    def __init__(self, out_dir):
        self.pb = modules(out_dir)
        from google.protobuf import empty_pb2
        self.empty = empty_pb2.Empty
        self.calls = []  # (method, request, metadata dict)
        pb = self.pb
        u = grpc.unary_unary_rpc_method_handler
        s = grpc.unary_stream_rpc_method_handler

        def h(kind, fn, req, resp):
            return kind(fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)
        lib = grpc.method_handlers_generic_handler('library.v1.Library', {
            'GetBook': h(u, self.get_book, pb.GetBookRequest, pb.Book),
            'ListBooks': h(u, self.list_books, pb.ListBooksRequest, pb.ListBooksResponse),
            'StreamBooks': h(s, self.stream_books, pb.ListBooksRequest, pb.Book),
            'CreateBook': h(u, self.create_book, pb.CreateBookRequest, pb.Book),
            'UpdateBook': h(u, self.update_book, pb.UpdateBookRequest, pb.Book),
            'DeleteBook': h(u, self.delete_book, pb.DeleteBookRequest, self.empty),
            'PutBook': h(u, self.put_book, pb.Book, pb.Book),
            'GetFile': h(u, self.get_file, pb.FileRequest, pb.FileResponse),
            'FileVerb': h(u, self.file_verb, pb.FileRequest, pb.FileResponse),
            'GetTitle': h(u, self.get_title, pb.GetBookRequest, pb.Book),
            'Echo': h(u, self.echo, pb.Everything, pb.Everything),
            'Fail': h(u, self.fail, pb.FailRequest, pb.Book),
            'StreamFail': h(s, self.stream_fail, pb.FailRequest, pb.Book),
        })
        plain = grpc.method_handlers_generic_handler('library.v1.Plain', {
            'Echo': h(u, self.echo, pb.Everything, pb.Everything),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self.server.add_generic_rpc_handlers((lib, plain))
        self.port = self.server.add_insecure_port('127.0.0.1:0')
        self.server.start()

    def stop(self):
        self.server.stop(0)

    def _seen(self, name, req, ctx):
        self.calls.append((name, req, dict(ctx.invocation_metadata())))

    def last(self, name):
        got = [c for c in self.calls if c[0] == name]
        assert got, f'the server got no {name} call; it got {[c[0] for c in self.calls]}'
        return got[-1]

    def book(self, name, title=None):
        b = self.pb.Book(name=name, title=title or f'Title of {name}', genre=self.pb.FICTION,
                         page_count=(1 << 40) + 1, tags=['a', 'b'])
        b.published.seconds = 1700000000
        b.published.nanos = 5000000
        return b

    def get_book(self, req, ctx):
        self._seen('GetBook', req, ctx)
        ctx.send_initial_metadata((('x-meta', 'head'),))
        if 'slowhead' in req.name:  # the head at once, the answer past the gateway's read timeout
            time.sleep(2.5)
        ctx.set_trailing_metadata((('x-trailer', 'tail'),))
        return self.book(req.name)

    def list_books(self, req, ctx):
        self._seen('ListBooks', req, ctx)
        r = self.pb.ListBooksResponse(shelf=req.shelf, page_size=req.page_size, tags=req.tags, genre=req.genre)
        if req.HasField("filter"):
            r.filter.CopyFrom(req.filter)
        return r

    def stream_books(self, req, ctx):
        self._seen('StreamBooks', req, ctx)
        for i in range(req.page_size):
            yield self.book(f'shelves/{req.shelf}/books/{i}')
            if req.shelf == 'slow':
                time.sleep(1.5)

    def create_book(self, req, ctx):
        self._seen('CreateBook', req, ctx)
        b = self.pb.Book()
        b.CopyFrom(req.book)
        b.name = f'shelves/{req.shelf}/books/{req.request_id or "new"}'
        return b

    def update_book(self, req, ctx):
        self._seen('UpdateBook', req, ctx)
        b = self.pb.Book()
        b.CopyFrom(req.book)
        b.tags.extend(req.update_mask.paths)
        return b

    def delete_book(self, req, ctx):
        self._seen('DeleteBook', req, ctx)
        return self.empty()

    def put_book(self, req, ctx):
        self._seen('PutBook', req, ctx)
        return req

    def get_file(self, req, ctx):
        self._seen('GetFile', req, ctx)
        return self.pb.FileResponse(path=req.path, version=req.version, verb='get')

    def file_verb(self, req, ctx):
        self._seen('FileVerb', req, ctx)
        return self.pb.FileResponse(path=req.file_id, version=req.version, verb='touch')

    def get_title(self, req, ctx):
        self._seen('GetTitle', req, ctx)
        return self.book(req.name, title=f'T:{req.name}')

    def echo(self, req, ctx):
        self._seen('Echo', req, ctx)
        return req

    def _abort(self, req, ctx):
        if req.with_details:
            book = self.book('shelves/x/books/y').SerializeToString()
            ctx.set_trailing_metadata((('grpc-status-details-bin', status_details(
                req.code, req.message, [('type.googleapis.com/library.v1.Book', book),
                                        ('type.googleapis.com/other.Unknown', b'\x08\x01')])),))
        ctx.abort(grpc.StatusCode([c for c in grpc.StatusCode if c.value[0] == req.code][0]), req.message)

    def fail(self, req, ctx):
        self._seen('Fail', req, ctx)
        self._abort(req, ctx)

    def stream_fail(self, req, ctx):
        self._seen('StreamFail', req, ctx)
        for i in range(req.after):
            yield self.book(f'shelves/s/books/{i}')
        self._abort(req, ctx)
