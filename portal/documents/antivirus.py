"""Optional virus scan of uploads with clamd, failing closed.

When ``CLAMD_ADDRESS`` is set (``host:port`` or ``unix:/path/to/clamd.ctl``) every
upload is streamed to clamd with its ``INSTREAM`` command before anything is
stored. A file clamd flags is refused and named; if clamd cannot be reached, times
out or answers anything but ``OK``, the upload is refused too (503): nothing
unscanned is ever stored. The protocol is small (a command, length-prefixed
chunks, a zero-length end, one reply line), so it is spoken here directly; the
Python clamd clients on PyPI are unmaintained.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from portal.documents.validation import UploadRejected

CHUNK = 64 * 1024
Scanner = Callable[[bytes], None]


def scanner_for(address: str, *, timeout: float = 30.0) -> Scanner | None:
    if not address:
        return None

    def scan(data: bytes) -> None:
        reply = instream(address, data, timeout=timeout)
        if reply == "OK":
            return
        if reply.endswith("FOUND"):
            name = reply.removesuffix("FOUND").strip()
            raise UploadRejected(f"The virus scanner found {name} in this file; it was not stored.")
        raise UploadRejected(
            f"The virus scanner could not check this file ({reply}); it was not stored. Please try again later.",
            503,
        )

    return scan


def _connect(address: str, timeout: float) -> socket.socket:
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address.removeprefix("unix:"))
        return sock
    host, _, port = address.rpartition(":")
    return socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)


def instream(address: str, data: bytes, *, timeout: float = 30.0) -> str:
    """clamd's verdict for ``data``: ``OK``, ``<signature> FOUND`` or an error text; fails closed."""
    try:
        with _connect(address, timeout) as sock:
            sock.sendall(b"zINSTREAM\0")
            for start in range(0, len(data), CHUNK):
                chunk = data[start : start + CHUNK]
                sock.sendall(struct.pack("!L", len(chunk)) + chunk)
            sock.sendall(struct.pack("!L", 0))
            reply = b""
            while not reply.endswith(b"\0"):
                part = sock.recv(4096)
                if not part:
                    break
                reply += part
    except OSError as exc:
        raise UploadRejected(
            "The virus scanner cannot be reached, so the file was not stored. Please try again in a few minutes.",
            503,
        ) from exc
    text = reply.rstrip(b"\0").decode("utf-8", "replace").strip()
    # "stream: OK" / "stream: Eicar-Test-Signature FOUND" / "INSTREAM size limit exceeded. ERROR"
    return text.removeprefix("stream:").strip() or "no answer"
