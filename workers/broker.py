"""The process-wide dramatiq broker, chosen once from the environment.

With ``REDIS_URL`` set, messages go through Redis (the web processes send, the
``dramatiq workers.actors`` processes consume). Without it, dramatiq's in-memory
``StubBroker`` is used and the web process runs the workers itself
(``workers.inprocess``): the embedded mode shows the whole loop with no server.

Actors bind to the broker when they are declared, so this module must be
imported (it is, by ``workers.actors``) before any actor is.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.stub import StubBroker

QUEUE = "portal"
# A tenant's events beyond its fair share (``workers.fairness``) and the long per-tenant jobs: a queue of their
# own, consumed beside QUEUE, whose actors run at a lower priority (dramatiq runs the lowest number first).
BULK_QUEUE = "portal-bulk"
BULK_PRIORITY = 100


def build_broker(redis_url: str | None, *, namespace: str | None = None) -> dramatiq.Broker:
    if redis_url:
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(
            url=redis_url,
            namespace=namespace or os.environ.get("PORTAL_QUEUE_NAMESPACE", "portal"),
            # Short socket timeouts: a web request that cannot reach Redis must not hang;
            # its events stay in the outbox for the relay.
            socket_connect_timeout=1,
            socket_timeout=5,
            health_check_interval=30,
        )
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker


def _configure() -> dramatiq.Broker:
    broker = build_broker(os.environ.get("REDIS_URL") or None)
    dramatiq.set_broker(broker)
    return broker


broker = _configure()
