"""A tiny authoritative DNS server for tests: A and AAAA records from a dict
that the test may change, NXDOMAIN for other names, every query counted."""
import socket
import struct
import threading


class DnsServer:
    def __init__(self, host='127.0.0.1', port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        # name -> (address, ttl), or a function that returns one for each
        # query; ':' in the address makes it AAAA
        self.records = {}
        self.queries = []  # (name, qtype)
        self.stall = False  # when set, queries are read and never answered
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def stop(self):
        self.stopped = True
        self.sock.close()

    def count(self, name):
        return sum(1 for n, _ in self.queries if n == name)

    def _serve(self):
        while not self.stopped:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                reply = self._answer(data)
            except (ValueError, IndexError, struct.error):
                continue
            if reply and not self.stall:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    return

    def _answer(self, data):
        qid, _flags, qdcount = struct.unpack('>HHH', data[:6])
        if qdcount != 1:
            return None
        labels, i = [], 12
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode().lower())
            i += 1 + data[i]
        qtype, _qclass = struct.unpack('>HH', data[i + 1:i + 5])
        question = data[12:i + 5]
        name = '.'.join(labels)
        self.queries.append((name, qtype))
        rec = self.records.get(name)
        if callable(rec):
            rec = rec()
        answers = b''
        rcode = 0 if rec else 3
        if rec:
            addr, ttl = rec
            v6 = ':' in addr
            if (qtype == 28) == v6 and qtype in (1, 28):
                raw = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, addr)
                answers = struct.pack('>HHHIH', 0xC00C, qtype, 1, ttl, len(raw)) + raw
        head = struct.pack('>HHHHHH', qid, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
        return head + question + answers
