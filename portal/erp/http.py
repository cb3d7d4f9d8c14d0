"""One HTTP client per worker process for ERP calls.

Building an ``httpx.Client`` loads the system's CA certificates (several
milliseconds of CPU) and a new client opens new connections; a job that made its
own client paid both every time. The shared client keeps connections alive across
jobs and threads (httpx clients are thread-safe); credentials travel per request.
"""

from __future__ import annotations

import threading

import httpx

_clients: dict[float, httpx.Client] = {}
_lock = threading.Lock()


def shared_client(timeout: float) -> httpx.Client:
    with _lock:
        client = _clients.get(timeout)
        if client is None or client.is_closed:
            client = httpx.Client(
                timeout=timeout, limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)
            )
            _clients[timeout] = client
        return client
