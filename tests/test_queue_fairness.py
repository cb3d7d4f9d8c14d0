"""Each tenant's fair share of the queue: beyond its share, a tenant's events go to the bulk queue, which a
worker runs after anything waiting from the shared one. Run on dramatiq's in-memory broker with a real worker
(the embedded mode's), with the share counted in the process and in Redis."""

from __future__ import annotations

import threading
import time

import dramatiq
import pytest

from workers import actors, fairness
from workers.broker import BULK_QUEUE, QUEUE, build_broker

BACKLOG = 60
SHARE = 5


def run_burst(share: int) -> tuple[list[tuple[int, int]], int, list[str]]:
    """A worker of two threads busy with tenant 1's burst of ``BACKLOG`` short jobs, sent fairly with ``share``,
    when one job of tenant 2 is sent: every job in the order it ran, how many had run when it was sent, and
    the queue each job was sent to."""
    broker = build_broker(None)
    ran: list[tuple[int, int]] = []
    lock = threading.Lock()

    def job(tenant_id: int, number: int) -> None:
        time.sleep(0.03)  # long beside the fetch of a message, so that a slow machine cannot blur the order
        with lock:
            ran.append((tenant_id, number))

    fast, bulk = actors.fair_pair(job, "fairness_test_job", broker=broker, max_retries=0)
    counter = fairness.FairShare(None, share)

    queues: list[str] = []

    def send(tenant_id: int, number: int) -> None:
        queues.append((fast if counter.admit(tenant_id) else bulk).send(tenant_id, number).queue_name)

    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=20)
    worker.start()
    try:
        for number in range(BACKLOG):
            send(1, number)
        while len(ran) < 8:
            time.sleep(0.005)
        with lock:
            before = len(ran)
            send(2, 0)
        broker.join(QUEUE, timeout=30_000)
        broker.join(BULK_QUEUE, timeout=30_000)
        worker.join()
    finally:
        worker.stop()
    return ran, before, queues


def test_another_tenants_job_runs_ahead_of_a_tenants_burst():
    ran, before, queues = run_burst(SHARE)
    assert sorted(ran) == [(1, number) for number in range(BACKLOG)] + [(2, 0)]  # each job once
    # Ahead of it only the jobs the two threads were running when it came (and, at worst, one they had just
    # taken): not the 50 of the burst still waiting.
    assert ran.index((2, 0)) - before <= 3
    # The burst's first jobs, within the share, went through the shared queue, and tenant 2's.
    assert queues == [QUEUE] * SHARE + [BULK_QUEUE] * (BACKLOG - SHARE) + [QUEUE]


def test_without_a_share_the_other_tenant_waits_behind_the_burst():
    """What the share changes: with room for every job in the shared queue, tenant 2 waits its turn."""
    ran, _, queues = run_burst(BACKLOG + 1)
    assert set(queues) == {QUEUE}
    assert ran.index((2, 0)) >= BACKLOG - 2


def test_a_tenant_within_its_share_is_counted_per_window():
    share = fairness.FairShare(None, 3)
    assert [share.admit(7) for _ in range(4)] == [True, True, True, False]
    assert share.admit(8) and share.within(8, 2) and not share.within(8, 3)  # each tenant its own share
    assert share.within(8, 2)  # asking does not count


def test_the_share_is_counted_across_processes_in_redis(redis_url):
    import redis

    namespace = f"fairness-test-{time.monotonic_ns()}"
    first, second = (fairness.FairShare(redis_url, 4, namespace) for _ in range(2))
    try:
        assert [first.admit(9), second.admit(9, cost=2), first.admit(9), second.admit(9)] == [True, True, True, False]
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"*{namespace}*"):
            client.delete(key)


@pytest.mark.parametrize("delay_ms", [0, 200])
def test_the_publisher_sends_beyond_the_share_to_the_bulk_queue(monkeypatch, delay_ms):
    """The outbox's publisher: each event counts (a retry too); a transaction's batch goes to the bulk queue
    when its events would not fit the share (they are counted as it splits them)."""
    sent: list[tuple[str, str, int | None]] = []
    monkeypatch.setattr(actors, "_share", fairness.FairShare(None, 3))

    def enqueue(message, delay=None):  # type: ignore[no-untyped-def]
        sent.append((message.queue_name, message.actor_name, delay))

    monkeypatch.setattr(actors.broker, "enqueue", enqueue)
    for event_id in range(4):
        actors.publish(5, event_id, delay_ms)
    actors.publish(6, 1)
    actors.publish_batch(6, [2, 3])
    actors.publish_batch(6, [4, 5, 6])
    fast, bulk = ("portal", "handle_event", delay_ms or None), ("portal-bulk", "handle_event_bulk", delay_ms or None)
    assert sent == [fast, fast, fast, bulk, ("portal", "handle_event", None), ("portal", "handle_events", None),
                    ("portal-bulk", "handle_events_bulk", None)]  # fmt: skip


def test_an_idle_queue_is_polled_again_within_the_cap_whatever_the_worker_asks(redis_url):
    """dramatiq backs an idle consumer off up to the worker's timeout (1 s by default, as the documented
    ``dramatiq workers.actors`` command runs): the portal's Redis broker caps it, so a job sent to an idle queue
    waits at most ``IDLE_POLL_MS`` for the next look. Each consumer a worker opens, of every queue and delay
    queue, gets the cap."""
    from workers.broker import IDLE_POLL_MS

    broker = build_broker(redis_url, namespace=f"idle-poll-test-{time.monotonic_ns()}")
    try:
        assert broker.consume(QUEUE, prefetch=2, timeout=1000).timeout == IDLE_POLL_MS == 100
        assert broker.consume(BULK_QUEUE, timeout=20).timeout == 20  # a shorter one is kept
        broker.declare_queue(QUEUE)
        worker = dramatiq.Worker(broker, worker_threads=1)  # the default timeout, 1 s
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while any(t.consumer is None for t in worker.consumers.values()) and time.monotonic() < deadline:
                time.sleep(0.01)  # each consumer thread opens its consumer as it starts
            timeouts = {thread.consumer.timeout for thread in worker.consumers.values() if thread.consumer}
        finally:
            worker.stop()
        assert len(worker.consumers) == 2 and timeouts == {IDLE_POLL_MS}  # the queue and its delay queue
    finally:
        broker.close()
