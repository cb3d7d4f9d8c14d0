"""Each tenant's fair share of the queue.

Every outbox event goes through one dramatiq queue; a single FIFO list would make one tenant's burst (an import,
a supplier's system confirming thousands of lines, a large ERP intake, the retries of a slow ERP) hold up every
other tenant's work behind it. So each tenant has a share: its first ``share`` events of each ten-second window
go to the ``portal`` queue, the rest to ``portal-bulk``, whose actors run at a lower priority. A worker consumes
both queues, each with its own prefetch, and runs what it has fetched from ``portal`` first: another tenant's
event waits for a free worker thread, never behind the burst. A tenant within its share is never slowed; one
beyond it still gets its share through the fast queue in every window, and the rest as soon as nothing else waits.

The windows are counted in Redis (one ``INCRBY`` per event, shared by every web and worker process; the
``limits`` library the sign-in limits use), or in the process in the embedded mode.
"""

from __future__ import annotations

import os
from typing import cast

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

WINDOW_SECONDS = 10
DEFAULT_SHARE = 100  # events a tenant sends the fast queue every ten seconds


class FairShare:
    def __init__(self, redis_url: str | None, share: int = DEFAULT_SHARE, namespace: str = "portal") -> None:
        storage: Storage
        if redis_url:
            # Short timeouts, as the broker's: a publish that cannot reach Redis fails fast and the relay sends it.
            storage = cast(Storage, storage_from_string(redis_url, socket_connect_timeout=1, socket_timeout=5))
        else:
            storage = MemoryStorage()
        self._limiter = FixedWindowRateLimiter(storage)
        self._share = RateLimitItemPerSecond(max(1, share), WINDOW_SECONDS, namespace=f"{namespace}-queue-share")

    def admit(self, tenant_id: int, cost: int = 1) -> bool:
        """Count ``cost`` events of the tenant in this window: True while they are within its share."""
        return self._limiter.hit(self._share, str(tenant_id), cost=cost)

    def within(self, tenant_id: int, cost: int = 1) -> bool:
        """Whether ``cost`` more events would still be within the tenant's share (nothing counted)."""
        return self._limiter.test(self._share, str(tenant_id), cost=cost)


def from_environment() -> FairShare:
    return FairShare(
        os.environ.get("REDIS_URL") or None,
        int(os.environ.get("PORTAL_QUEUE_FAIR_SHARE", DEFAULT_SHARE)),
        os.environ.get("PORTAL_QUEUE_NAMESPACE", "portal"),
    )
