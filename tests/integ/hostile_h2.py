"""A raw HTTP/2 client for the hostile tests: like test_h2.RawH2, but a
header block split over CONTINUATION frames is put together before it is
decoded (the HEADERS frame gets .headers, the CONTINUATIONs are kept)."""
import socket
import time

from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame, PingFrame, SettingsFrame

from test_h2 import RawH2


class H2(RawH2):
    def frames(self, until, timeout=5):
        self.flush()
        got, deadline = [], time.time() + timeout
        pending_head = None
        while time.time() < deadline:
            while len(self.buf) >= 9:
                f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) < 9 + length:
                    break
                f.parse_body(memoryview(self.buf[9:9 + length]))
                self.buf = self.buf[9 + length:]
                if isinstance(f, HeadersFrame):
                    if 'END_HEADERS' in f.flags:
                        f.headers = dict(self.dec.decode(f.data))
                    else:
                        pending_head, f.block = f, bytearray(f.data)
                elif isinstance(f, ContinuationFrame) and pending_head is not None:
                    pending_head.block += f.data
                    if 'END_HEADERS' in f.flags:
                        pending_head.headers = dict(self.dec.decode(bytes(pending_head.block)))
                        pending_head = None
                if isinstance(f, SettingsFrame) and 'ACK' not in f.flags:
                    ack = SettingsFrame(0)
                    ack.flags.add('ACK')
                    self.s.sendall(ack.serialize())
                if isinstance(f, PingFrame) and 'ACK' not in f.flags and self.answer_pings:
                    ack = PingFrame(0)
                    ack.flags.add('ACK')
                    ack.opaque_data = f.opaque_data
                    self.s.sendall(ack.serialize())
                got.append(f)
                if until(f):
                    return got
            try:
                self.s.settimeout(max(0.01, deadline - time.time()))
                data = self.s.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                data = b''
            if not data:
                got.append(None)
                return got
            self.buf += data
        return got
