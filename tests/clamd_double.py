"""ClamdProtocolDouble: a test double of clamd's INSTREAM protocol.

A real clamd needs its signature database, which is downloaded from ClamAV's
mirrors; this machine cannot reach them, so clamd cannot start here. The double
speaks the documented protocol over real TCP (``zINSTREAM\\0``, chunks prefixed
with a 4-byte big-endian length, a zero-length end, one ``\\0``-terminated reply)
and flags the EICAR test string wherever it appears in the stream (real clamd
flags the EICAR file itself); ``broken`` makes it answer an error instead.
"""

from __future__ import annotations

import socketserver
import struct
import threading

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class ClamdProtocolDouble:
    def __init__(self) -> None:
        self.scanned: list[bytes] = []
        self.broken = False
        double = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                command = b""
                while not command.endswith(b"\0"):
                    command += self.request.recv(1)
                if command != b"zINSTREAM\0":
                    self.request.sendall(b"UNKNOWN COMMAND\0")
                    return
                data = b""
                while True:
                    size = struct.unpack("!L", self._exactly(4))[0]
                    if size == 0:
                        break
                    data += self._exactly(size)
                double.scanned.append(data)
                if double.broken:
                    self.request.sendall(b"INSTREAM size limit exceeded. ERROR\0")
                elif EICAR in data:
                    self.request.sendall(b"stream: Eicar-Test-Signature FOUND\0")
                else:
                    self.request.sendall(b"stream: OK\0")

            def _exactly(self, size: int) -> bytes:
                out = b""
                while len(out) < size:
                    part = self.request.recv(size - len(out))
                    if not part:
                        raise ConnectionError("client went away")
                    out += part
                return out

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
