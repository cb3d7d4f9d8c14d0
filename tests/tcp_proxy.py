"""A small TCP proxy in front of a real server, to inject network faults.

* ``drop_response_after(pattern)``: forward the request containing ``pattern`` (the
  server does the work), then close the client's connection instead of passing the
  answer on: "the ERP committed but the connection dropped before the answer".
* ``delay_response_after(pattern, seconds)``: hold that answer back (a worker can be
  killed while it waits).
* ``fail_next(n)``: answer the next ``n`` requests with HTTP 500 without forwarding.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Rule:
    pattern: bytes
    action: str  # drop | delay
    seconds: float = 0.0
    seen: threading.Event = field(default_factory=threading.Event)


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.rules: list[Rule] = []
        self.failures = 0
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop_response_after(self, pattern: str) -> Rule:
        rule = Rule(pattern.encode(), "drop")
        self.rules.append(rule)
        return rule

    def delay_response_after(self, pattern: str, seconds: float) -> Rule:
        rule = Rule(pattern.encode(), "delay", seconds)
        self.rules.append(rule)
        return rule

    def fail_next(self, count: int) -> None:
        self.failures = count

    def close(self) -> None:
        self.running = False
        self.listener.close()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        armed: dict[str, Rule | None] = {"rule": None}
        with self.lock:
            fail = self.failures > 0
            if fail:
                self.failures -= 1
        if fail:
            client.recv(65536)
            client.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            client.close()
            return
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return

        def upstream_to_client() -> None:
            try:
                while True:
                    data = server.recv(65536)
                    if not data:
                        break
                    rule = armed["rule"]
                    if rule is not None:
                        armed["rule"] = None
                        if rule.action == "drop":
                            break
                        time.sleep(rule.seconds)
                    client.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (client, server):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

        threading.Thread(target=upstream_to_client, daemon=True).start()
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                for rule in list(self.rules):
                    if rule.pattern in data:
                        self.rules.remove(rule)
                        armed["rule"] = rule
                        rule.seen.set()
                server.sendall(data)
        except OSError:
            pass
