"""The transactional outbox: written with the change, queued after commit, run once,
retried with attempts counted in the database, swept when a send was lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import outbox
from portal.db import utcnow
from portal.outbox import HANDLERS, GiveUp, OutboxEvent, Retry, emit, process_event, sweep
from tests.conftest import tenant_session
from tests.factories import make_tenant


@pytest.fixture
def published() -> Iterator[list[tuple[int, int, int]]]:
    """Record what would go to the queue instead of sending it."""
    sent: list[tuple[int, int, int]] = []
    previous = outbox._publisher, outbox._batch_publisher
    outbox.set_publisher(lambda tenant_id, event_id, delay: sent.append((tenant_id, event_id, delay)))
    yield sent
    outbox.set_publisher(*previous)


@pytest.fixture
def test_topic() -> Iterator[str]:
    topic = "test.topic"
    yield topic
    HANDLERS.pop(topic, None)


@pytest.fixture
def tenant_id(committed_db) -> int:  # type: ignore[no-untyped-def]
    with tenant_session(committed_db, None) as s:
        return make_tenant(s).id


def _event(database, tenant_id: int, topic: str, payload: dict | None = None) -> int:  # type: ignore[no-untyped-def]
    with tenant_session(database, tenant_id) as s:
        event = emit(s, tenant_id, topic, payload or {})
        s.flush()
        return event.id


def _load(database, tenant_id: int, event_id: int) -> OutboxEvent:  # type: ignore[no-untyped-def]
    with tenant_session(database, tenant_id) as s:
        return s.execute(select(OutboxEvent).where(OutboxEvent.id == event_id)).scalar_one()


def test_event_is_queued_only_after_its_transaction_commits(committed_db, tenant_id, published):
    with tenant_session(committed_db, tenant_id) as s:
        event = emit(s, tenant_id, "order.created", {"order_id": 1})
        s.flush()
        assert published == []  # still inside the transaction
    assert published == [(tenant_id, event.id, 0)]


def test_rolled_back_change_leaves_no_event_and_sends_nothing(committed_db, tenant_id, published):
    s = committed_db.session()
    from portal.db import set_context

    set_context(s, tenant_id=tenant_id)
    emit(s, tenant_id, "order.created", {"order_id": 1})
    s.flush()
    s.rollback()
    s.close()
    assert published == []
    with tenant_session(committed_db, tenant_id) as s:
        assert s.execute(select(OutboxEvent)).first() is None


def test_a_transactions_events_go_to_the_queue_as_one_message(committed_db, tenant_id, published):
    """With a batch publisher, the events one transaction wrote are sent as one message after the commit (a
    lone event as itself); a transaction rolled back before sends nothing and leaves nothing behind."""
    batches: list[tuple[int, list[int]]] = []
    outbox.set_publisher(outbox._publisher, batch=lambda tenant, ids: batches.append((tenant, ids)))
    s = committed_db.session()
    try:
        from portal.db import set_context

        set_context(s, tenant_id=tenant_id)
        emit(s, tenant_id, "order.created", {"order_id": 0})
        s.flush()
        s.rollback()
        set_context(s, tenant_id=tenant_id)
        events = [emit(s, tenant_id, "order.created", {"order_id": n}) for n in range(3)]
        s.flush()
        assert batches == []  # still inside the transaction
        s.commit()
        assert batches == [(tenant_id, [event.id for event in events])] and published == []
        lone = emit(s, tenant_id, "order.created", {"order_id": 9})
        s.commit()
        assert published == [(tenant_id, lone.id, 0)] and len(batches) == 1
    finally:
        s.close()


def test_a_batch_message_becomes_one_message_per_event(monkeypatch):
    from workers import actors

    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(actors, "publish", lambda tenant_id, event_id, delay_ms=0: sent.append((tenant_id, event_id)))
    actors.handle_events.fn(7, [11, 12, 13])
    assert sent == [(7, 11), (7, 12), (7, 13)]


def test_handlers_run_once_however_often_the_event_is_delivered(committed_db, tenant_id, test_topic):
    runs: list[int] = []
    outbox.handler(test_topic)(lambda session, event: runs.append(event.id))
    event_id = _event(committed_db, tenant_id, test_topic)
    assert process_event(committed_db, tenant_id, event_id).status == "done"
    assert process_event(committed_db, tenant_id, event_id).status == "skipped"
    assert runs == [event_id]
    stored = _load(committed_db, tenant_id, event_id)
    assert stored.done_at is not None and stored.attempts == 1 and stored.state == "done"


def test_a_failure_is_recorded_and_backed_off_then_succeeds(committed_db, tenant_id, test_topic):
    calls: list[int] = []

    def flaky(session, event):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise Retry("ERP answered 500")

    outbox.handler(test_topic, backoff_base=30)(flaky)
    event_id = _event(committed_db, tenant_id, test_topic)
    outcome = process_event(committed_db, tenant_id, event_id)
    assert outcome.status == "retry" and outcome.retry_in == timedelta(seconds=30)
    stored = _load(committed_db, tenant_id, event_id)
    assert stored.attempts == 1 and stored.last_error == "ERP answered 500" and stored.done_at is None
    assert stored.available_at > utcnow() + timedelta(seconds=20)
    assert process_event(committed_db, tenant_id, event_id).status == "done"
    stored = _load(committed_db, tenant_id, event_id)
    assert stored.attempts == 2 and stored.last_error == "" and stored.done_at is not None


def test_the_handlers_changes_roll_back_with_a_failure(committed_db, tenant_id, test_topic):
    def writes_then_fails(session, event):  # type: ignore[no-untyped-def]
        emit(session, tenant_id, "test.child", {})
        raise RuntimeError("boom")

    outbox.handler(test_topic)(writes_then_fails)
    event_id = _event(committed_db, tenant_id, test_topic)
    outcome = process_event(committed_db, tenant_id, event_id)
    assert outcome.status == "retry" and "RuntimeError: boom" in outcome.error
    with tenant_session(committed_db, tenant_id) as s:
        assert s.execute(select(OutboxEvent).where(OutboxEvent.topic == "test.child")).first() is None


def test_after_the_last_attempt_the_event_is_failed_and_kept(committed_db, tenant_id, test_topic):
    def always_down(session, event):  # type: ignore[no-untyped-def]
        raise Retry("unreachable")

    outbox.handler(test_topic, max_attempts=2)(always_down)
    event_id = _event(committed_db, tenant_id, test_topic)
    assert process_event(committed_db, tenant_id, event_id).status == "retry"
    assert process_event(committed_db, tenant_id, event_id).status == "failed"
    assert process_event(committed_db, tenant_id, event_id).status == "skipped"
    stored = _load(committed_db, tenant_id, event_id)
    assert stored.failed_at is not None and stored.state == "failed" and stored.last_error == "unreachable"


def test_an_attempt_is_counted_even_when_the_worker_dies_in_it(committed_db, tenant_id, test_topic):
    """A worker killed mid-handler never reaches max_retries in Redis; the database counts."""

    class Killed(BaseException):
        pass

    def dies(session, event):  # type: ignore[no-untyped-def]
        raise Killed

    outbox.handler(test_topic, max_attempts=2)(dies)
    event_id = _event(committed_db, tenant_id, test_topic)
    for _ in range(2):
        with pytest.raises(Killed):
            process_event(committed_db, tenant_id, event_id)
    stored = _load(committed_db, tenant_id, event_id)
    assert stored.attempts == 2 and stored.done_at is None
    # The next delivery gives up instead of dying forever.
    assert process_event(committed_db, tenant_id, event_id).status == "failed"


def test_sweep_sends_what_the_fast_path_lost_and_resends_what_was_never_done(committed_db, tenant_id, published):
    outbox.set_publisher(None)  # the queue was down at commit time
    event_id = _event(committed_db, tenant_id, "order.created")
    outbox.set_publisher(lambda t, e, d: published.append((t, e, d)))
    now = utcnow()
    assert sweep(committed_db, now=now) == 0  # still the fast path's, within the grace period
    assert sweep(committed_db, now=now + timedelta(seconds=11)) == 1
    assert published == [(tenant_id, event_id, 0)]
    assert sweep(committed_db, now=now + timedelta(seconds=30)) == 0  # sent, not yet overdue
    assert sweep(committed_db, now=now + timedelta(seconds=11 + 61)) == 1  # sent but never done: lost
    with tenant_session(committed_db, tenant_id) as s:
        s.execute(select(OutboxEvent).where(OutboxEvent.id == event_id)).scalar_one().done_at = utcnow()
    assert sweep(committed_db, now=now + timedelta(seconds=500)) == 0


def test_sweep_respects_the_back_off(committed_db, tenant_id, published, test_topic):
    outbox.handler(test_topic, backoff_base=300)(lambda s, e: (_ for _ in ()).throw(Retry("down")))
    event_id = _event(committed_db, tenant_id, test_topic)
    process_event(committed_db, tenant_id, event_id)
    published.clear()
    assert sweep(committed_db, now=utcnow() + timedelta(seconds=60)) == 0
    assert sweep(committed_db, now=utcnow() + timedelta(seconds=320)) == 1


def test_a_failure_no_attempt_can_mend_fails_the_event_at_once(committed_db, tenant_id, published, test_topic):
    """GiveUp (a conflict someone must look at) fails the event at its first attempt, with its reason, instead of
    backing off through the attempts it has left; nothing is sent again."""
    outbox.handler(test_topic, max_attempts=8)(lambda s, e: (_ for _ in ()).throw(GiveUp("conflict: edited")))
    event_id = _event(committed_db, tenant_id, test_topic)
    outcome = process_event(committed_db, tenant_id, event_id)
    assert (outcome.status, outcome.error) == ("failed", "conflict: edited")
    stored = _load(committed_db, tenant_id, event_id)
    assert stored.state == "failed" and stored.attempts == 1 and stored.last_error == "conflict: edited"
    published.clear()
    assert sweep(committed_db, now=utcnow() + timedelta(days=1)) == 0 and published == []


def test_an_administrator_retry_gives_a_failed_event_new_attempts(committed_db, tenant_id, published, test_topic):
    outbox.handler(test_topic, max_attempts=1)(lambda s, e: (_ for _ in ()).throw(Retry("down")))
    event_id = _event(committed_db, tenant_id, test_topic)
    assert process_event(committed_db, tenant_id, event_id).status == "failed"
    published.clear()
    with tenant_session(committed_db, tenant_id) as s:
        outbox.retry(s, s.execute(select(OutboxEvent).where(OutboxEvent.id == event_id)).scalar_one())
    assert published == [(tenant_id, event_id, 0)]
    stored = _load(committed_db, tenant_id, event_id)
    assert stored.failed_at is None and stored.attempts == 0 and stored.state == "waiting"


def test_another_tenants_event_is_not_run(committed_db, tenant_id, test_topic):
    runs: list[int] = []
    outbox.handler(test_topic)(lambda session, event: runs.append(event.id))
    event_id = _event(committed_db, tenant_id, test_topic)
    with tenant_session(committed_db, None) as s:
        other = make_tenant(s).id
    assert process_event(committed_db, other, event_id).status == "skipped"
    assert runs == []


def test_prune_removes_old_done_events_only(committed_db, tenant_id):
    done_id = _event(committed_db, tenant_id, "order.created")
    open_id = _event(committed_db, tenant_id, "order.created")
    with tenant_session(committed_db, tenant_id) as s:
        done = s.execute(select(OutboxEvent).where(OutboxEvent.id == done_id)).scalar_one()
        done.done_at = utcnow() - timedelta(days=40)
    assert outbox.prune(committed_db) == 1
    with tenant_session(committed_db, tenant_id) as s:
        remaining = set(s.execute(select(OutboxEvent.id)).scalars())
    assert remaining == {open_id}
