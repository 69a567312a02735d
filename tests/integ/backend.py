"""A scriptable HTTP/1.1 backend for the integration tests (standard
library only).  It records every request it receives (method, target,
headers, body digest) and every connection it accepts, and its behaviour
is chosen by the request path:

  /echo              200 with the request body; x-body-md5 and x-body-len headers
  /sink              reads the body, answers its md5 and length (for big uploads)
  /chunked?parts=N   the answer in N chunks
  /close-delimited   no length: the body ends when the connection closes
  /big?size=N[&chunked=1]  N bytes of a repeating pattern
  /slow?ms=N         waits N ms first
  /many-headers?n=N  N header fields x-h-0..x-h-(N-1)
  /hang              never answers
  /status/NNN        answers NNN (no body for 204 and 304)
  /drop              closes the connection without answering
  /stale             answers keep-alive, then closes the connection 50 ms later
  /shape?st=N&fr=F   status N framed as F: cl, cl0, chunked, chunked0, close
                     (Connection: close, no length) or none (no framing
                     header: close-delimited, or bodiless for 204/304/HEAD)
  /location?loc=L[&cloc=C][&st=N][&n=K]   status N (302) with Location: L
                     (K times, 1 by default) and Content-Location: C;
                     {self} in them is the backend's own host:port
  /cut-first?n=N     cacheable; the first request for its target gets a head
                     with Content-Length N and N/2 bytes 'A', then the close;
                     the next ones N bytes 'B'
  anything else      200 "ok <path>"
"""
import hashlib
import socket
import threading
import time
import urllib.parse

PATTERN = bytes(range(256)) * 256  # 64 KiB


def pattern_md5(size):
    h = hashlib.md5()
    left = size
    while left:
        n = min(left, len(PATTERN))
        h.update(PATTERN[:n])
        left -= n
    return h.hexdigest()


class Request:
    def __init__(self, conn_id, method, target, version, headers):
        self.conn_id, self.method, self.target, self.version, self.headers = conn_id, method, target, version, headers
        self.body_len, self.body_md5, self.body, self.chunked = 0, hashlib.md5().hexdigest(), b'', False

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Backend:
    def __init__(self, keep_body=1 << 20, delay_ms=0, port=0, host='127.0.0.1', tls=None):
        self.tls = tls  # an ssl.SSLContext: serve HTTPS
        self.delay = delay_ms / 1000
        self.health = 200  # what GET /healthz answers
        self.fail_status = None  # when set, what every other request gets
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.connections = 0
        self.keep_body = keep_body
        self.lock = threading.Lock()
        self.stopped = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                cid = self.connections
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, cid), daemon=True).start()

    # ---- reading ----
    def _serve(self, c, cid):
        tls_facts = {}
        if self.tls:
            try:
                c = self.tls.wrap_socket(c, server_side=True)
            except (OSError, ValueError):
                c.close()
                return
            cert = c.getpeercert()
            tls_facts = {'tls_reused': c.session_reused, 'tls_sni': getattr(c, 'sni', None),
                         'peer_cn': dict(x[0] for x in cert['subject']).get('commonName') if cert else None}
        f = c.makefile('rb', buffering=65536)
        try:
            while not self.stopped:
                req = self._read_request(f, cid)
                if req is None:
                    return
                req.t = time.monotonic()
                req.__dict__.update(tls_facts)
                with self.lock:
                    self.requests.append(req)
                if not self._respond(c, f, req):
                    return
        except (OSError, ValueError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _read_request(self, f, cid):
        line = f.readline(65536)
        if not line:
            return None
        method, target, version = line.decode('latin-1').rstrip('\r\n').split(' ', 2)
        headers = []
        while True:
            h = f.readline(65536)
            if h in (b'\r\n', b'\n', b''):
                break
            k, _, v = h.decode('latin-1').partition(':')
            headers.append((k, v.strip()))
        req = Request(cid, method, target, version, headers)
        md5, n, keep = hashlib.md5(), 0, []
        te = req.header('transfer-encoding')
        if te and te.lower() == 'chunked':
            req.chunked = True
            while True:
                size = int(f.readline().split(b';')[0], 16)
                if size == 0:
                    while f.readline() not in (b'\r\n', b''):
                        pass
                    break
                left = size
                while left:
                    data = f.read(min(left, 1 << 20))
                    md5.update(data)
                    n += len(data)
                    left -= len(data)
                    if n <= self.keep_body:
                        keep.append(data)
                f.readline()
        elif req.header('content-length'):
            left = int(req.header('content-length'))
            while left:
                data = f.read(min(left, 1 << 20))
                if not data:
                    return None
                md5.update(data)
                n += len(data)
                left -= len(data)
                if n <= self.keep_body:
                    keep.append(data)
        req.body_len, req.body_md5, req.body = n, md5.hexdigest(), b''.join(keep)
        return req

    # ---- answering ----
    @staticmethod
    def _send(c, status, body=b'', headers=(), reason='OK', head_only=False):
        head = f'HTTP/1.1 {status} {reason}\r\n'
        for k, v in headers:
            head += f'{k}: {v}\r\n'
        if not any(k.lower() in ('content-length', 'transfer-encoding') for k, _ in headers):
            if status not in (204, 304):
                head += f'Content-Length: {len(body)}\r\n'
        c.sendall(head.encode() + b'\r\n' + (b'' if head_only else body))

    def _respond(self, c, f, req):
        if self.delay:
            time.sleep(self.delay)
        u = urllib.parse.urlsplit(req.target)
        q = dict(urllib.parse.parse_qsl(u.query))
        path = u.path
        if path == '/healthz':
            self._send(c, self.health, b'health')
        elif self.fail_status:
            self._send(c, self.fail_status, f'failing with {self.fail_status}'.encode(), reason='X')
        elif path == '/echo':
            self._send(c, 200, req.body, [('x-body-md5', req.body_md5), ('x-body-len', str(req.body_len)),
                                          ('content-type', 'application/octet-stream')])
        elif path == '/sink':
            self._send(c, 200, f'{req.body_len} {req.body_md5}'.encode())
        elif path == '/chunked':
            parts = int(q.get('parts', 3))
            c.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-trailer-test: 1\r\n\r\n')
            for i in range(parts):
                data = f'part{i};'.encode()
                c.sendall(b'%x\r\n%s\r\n' % (len(data), data))
            c.sendall(b'0\r\n\r\n')
        elif path == '/close-delimited':
            c.sendall(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end')
            return False
        elif path == '/big':
            size = int(q['size'])
            chunked = q.get('chunked') == '1'
            hdr = 'Transfer-Encoding: chunked' if chunked else f'Content-Length: {size}'
            c.sendall(f'HTTP/1.1 200 OK\r\n{hdr}\r\n\r\n'.encode())
            if req.method == 'HEAD':
                return True  # the head only, as RFC 9110 says
            left = size
            while left:
                n = min(left, len(PATTERN))
                if chunked:
                    c.sendall(b'%x\r\n' % n + PATTERN[:n] + b'\r\n')
                else:
                    c.sendall(PATTERN[:n])
                left -= n
            if chunked:
                c.sendall(b'0\r\n\r\n')
        elif path == '/many-headers':
            self._send(c, 200, b'many', [(f'x-h-{i}', f'v-{i}') for i in range(int(q['n']))])
        elif path == '/slow':
            time.sleep(int(q.get('ms', 100)) / 1000)
            self._send(c, 200, f'slow {q.get("ms")}'.encode())
        elif path == '/hang':
            time.sleep(30)
            return False
        elif path.startswith('/status/'):
            st = int(path.rsplit('/', 1)[1])
            self._send(c, st, b'' if st in (204, 304) else f'status {st}'.encode(), reason='X')
        elif path == '/drop':
            return False
        elif path == '/shape':
            return self._shape(c, req, int(q['st']), q['fr'])
        elif path == '/location':
            me = f'{self.sock.getsockname()[0]}:{self.port}'
            fields = [('Location', q['loc'].replace('{self}', me))] * int(q.get('n', 1))
            if 'cloc' in q:
                fields.append(('Content-Location', q['cloc'].replace('{self}', me)))
            self._send(c, int(q.get('st', 302)), b'moved', fields, reason='Found')
        elif path == '/cut-first':
            n = int(q['n'])
            with self.lock:
                first = sum(r.target == req.target for r in self.requests) == 1
            c.sendall(b'HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n' % n +
                      (b'A' * (n // 2) if first else b'B' * n))
            if first:
                time.sleep(0.1)
                return False
        elif path == '/stale':
            self._send(c, 200, b'stale-ok')
            time.sleep(0.05)
            return False
        else:
            self._send(c, 200, f'ok {path}'.encode())
        return True

    @staticmethod
    def shape_body(st, fr):
        return f'body-{st}-{fr}'.encode() if fr in ('cl', 'chunked', 'close', 'none') else b''

    def _shape(self, c, req, st, fr):
        """One response of a given status and framing (see the module doc).
        Returns whether the connection stays open."""
        body = self.shape_body(st, fr)
        bodiless = req.method == 'HEAD' or st in (204, 304)
        head = f'HTTP/1.1 {st} Shape\r\nx-shape: {st}-{fr}\r\n'
        if fr in ('cl', 'cl0'):
            head += f'Content-Length: {len(body)}\r\n'
        elif fr.startswith('chunked'):
            head += 'Transfer-Encoding: chunked\r\n'
        elif fr == 'close':
            head += 'Connection: close\r\n'
        data = head.encode() + b'\r\n'
        if not bodiless:
            if fr == 'chunked':
                half = len(body) // 2
                data += b'%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n' % (half, body[:half], len(body) - half, body[half:])
            elif fr == 'chunked0':
                data += b'0\r\n\r\n'
            else:
                data += body
        c.sendall(data)
        return fr != 'close' and (bodiless or fr != 'none')


def black_hole():
    """A loopback address that never completes a connect: a listening socket
    with a full accept queue drops further SYNs.  Returns (socket, port,
    fillers); close them all when done."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(0)
    port = s.getsockname()[1]
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(('127.0.0.1', port))
        except BlockingIOError:
            pass
        fillers.append(f)
    time.sleep(0.1)
    return s, port, fillers


def dead_port():
    """A port with nothing listening: connects are refused."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port
