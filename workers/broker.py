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
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

QUEUE = "portal"
# A tenant's events beyond its fair share (``workers.fairness``) and the long per-tenant jobs: a queue of their
# own, consumed beside QUEUE, whose actors run at a lower priority (dramatiq runs the lowest number first).
BULK_QUEUE = "portal-bulk"
BULK_PRIORITY = 100


# How long a worker's consumer of an empty queue may wait before it looks again. dramatiq backs off an idle
# consumer exponentially up to the worker's timeout, 1 s unless ``dramatiq_worker_timeout`` says otherwise: each
# hop of a confirmation's way to the ERP (the answer's event, its fan-out, the push event, the push) taken from an
# idle queue could then wait up to a second, and with each tenant's fair share the shared queue is often idle
# while a burst runs from the bulk one. Capped here, whatever the command line says: an idle worker process's four
# consumers (each queue and its delay queue) then ask Redis about ten times a second each.
IDLE_POLL_MS = int(os.environ.get("PORTAL_QUEUE_IDLE_POLL_MS", "100"))


class PortalRedisBroker(RedisBroker):
    """dramatiq's Redis broker, whose consumers of an empty queue look again within ``IDLE_POLL_MS``."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> dramatiq.Consumer:
        return super().consume(queue_name, prefetch=prefetch, timeout=min(timeout, IDLE_POLL_MS))


def build_broker(redis_url: str | None, *, namespace: str | None = None) -> dramatiq.Broker:
    if redis_url:
        return PortalRedisBroker(
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
