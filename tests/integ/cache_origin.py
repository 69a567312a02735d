"""An origin for the cache tests whose answers the test scripts, path by
path (standard library only).  `origin.set(path, status, headers, body)`
fixes what a path answers; `origin.handler(path, fn)` lets fn(req) return
(status, headers, body) or (status, headers, body, delay_s).  Every request
is recorded (method, path with query, headers as a lower-case dict, body);
`origin.count(path)` says how many reached it.  HTTP/1.1 keep-alive,
Content-Length framing unless a `transfer-encoding: chunked` header is
scripted (the body then goes as three chunks)."""
import socket
import threading
import time


class Req:
    def __init__(self, method, target, headers, body):
        self.method, self.target, self.headers, self.body = method, target, headers, body
        self.path = target.split('?', 1)[0]


class Origin:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.routes = {}
        self.requests = []
        self.lock = threading.Lock()
        self.stopped = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, path, status=200, headers=None, body=b'ok'):
        self.routes[path] = lambda req: (status, dict(headers or {}), body)

    def handler(self, path, fn):
        self.routes[path] = fn

    def count(self, path=None, method=None):
        with self.lock:
            return sum(1 for r in self.requests
                       if (path is None or r.path == path) and (method is None or r.method == method))

    def last(self, path):
        with self.lock:
            return [r for r in self.requests if r.path == path][-1]

    def stop(self):
        self.stopped = True
        try:  # shutdown wakes the accept() under way, which a close alone would leave taking one more
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self.conns:  # shut down: a makefile() keeps the descriptor open past close()
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read_request(self, f):
        line = f.readline()
        if not line:
            return None
        method, target, _ = line.decode('latin-1').split(' ', 2)
        headers = {}
        while True:
            h = f.readline()
            if h in (b'\r\n', b'\n', b''):
                break
            k, v = h.decode('latin-1').split(':', 1)
            k = k.strip().lower()
            headers[k] = headers[k] + ', ' + v.strip() if k in headers else v.strip()
        body = b''
        if 'content-length' in headers:
            body = f.read(int(headers['content-length']))
        elif headers.get('transfer-encoding', '').lower() == 'chunked':
            while True:
                n = int(f.readline().split(b';')[0], 16)
                if n == 0:
                    while f.readline() not in (b'\r\n', b''):
                        pass
                    break
                body += f.read(n)
                f.readline()
        return Req(method, target, headers, body)

    def _serve(self, c):
        f = c.makefile('rb')
        try:
            while True:
                req = self._read_request(f)
                if req is None:
                    return
                with self.lock:
                    self.requests.append(req)
                fn = self.routes.get(req.path)
                out = fn(req) if fn else (404, {}, b'no route')
                status, headers, body = out[:3]
                if len(out) > 3 and out[3]:
                    time.sleep(out[3])
                if isinstance(body, str):
                    body = body.encode()
                chunked = any(k.lower() == 'transfer-encoding' for k in headers)
                bodiless = req.method == 'HEAD' or status in (204, 304) or status < 200
                head = f'HTTP/1.1 {status} X\r\n'
                for k, v in headers.items():
                    for one in (v if isinstance(v, list) else [v]):
                        head += f'{k}: {one}\r\n'
                if not chunked and not bodiless:
                    head += f'Content-Length: {len(body)}\r\n'
                head += '\r\n'
                data = head.encode('latin-1')
                if not bodiless:
                    if chunked:
                        parts = [body[:len(body) // 3], body[len(body) // 3:2 * len(body) // 3],
                                 body[2 * len(body) // 3:]]
                        for p in parts:
                            if p:
                                data += b'%x\r\n' % len(p) + p + b'\r\n'
                        data += b'0\r\n\r\n'
                    else:
                        data += body
                c.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            c.close()
