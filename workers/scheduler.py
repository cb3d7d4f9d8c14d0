"""Periodic jobs (APScheduler), each one a message to the workers.

In production run exactly one scheduler process beside the workers::

    python -m workers.scheduler

In the embedded mode the web process runs the same schedule in a background
thread (``workers.inprocess``). The jobs only send messages; the work, and its
retries, happen in the workers. A missed run is not caught up (``coalesce``): every
job looks at the state of the data, not at the time it was due.
"""

from __future__ import annotations

import logging
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)


def jobs() -> list[tuple[str, Any, Any]]:
    from workers import actors

    return [
        # The relay's safety net: events whose fast-path send was lost.
        ("outbox-sweep", actors.sweep_outbox, IntervalTrigger(seconds=10)),
        # ERP intake: new and changed orders, then receipts, per connected tenant.
        ("erp-pull", actors.pull_erp_all, IntervalTrigger(minutes=5)),
        # Late, at-risk, partial and unconfirmed lines.
        ("exception-detection", actors.detect_exceptions_all, IntervalTrigger(minutes=15)),
        ("notification-digests", actors.send_digests, CronTrigger(hour=7, minute=0)),
        ("document-expiry", actors.document_expiry, CronTrigger(hour=6, minute=0)),
        ("outbox-prune", actors.prune_outbox, CronTrigger(hour=3, minute=30)),
        # Closed periods' scorecard snapshots, on the first of each month (idempotent); every other day only
        # for tenants whose last closed month has none of the current definition version.
        ("scorecard-snapshots", actors.recompute_scorecards, CronTrigger(day=1, hour=4, minute=0)),
        ("scorecard-snapshots-missing", actors.fill_missing_scorecards, CronTrigger(day="2-31", hour=4, minute=0)),
    ]


def install(scheduler: BaseScheduler) -> None:
    for job_id, actor, trigger in jobs():
        scheduler.add_job(
            _send,
            trigger,
            args=[actor],
            id=job_id,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=60,
            replace_existing=True,
        )


def _send(actor: Any) -> None:
    try:
        actor.send()
    except Exception as exc:  # Redis down: the next run tries again
        log.warning("could not queue %s: %s", actor.actor_name, exc)


def main() -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler

    logging.basicConfig(level=logging.INFO)
    scheduler = BlockingScheduler(timezone="UTC")
    install(scheduler)
    log.info("scheduler started: %s", ", ".join(job_id for job_id, _, _ in jobs()))
    scheduler.start()


if __name__ == "__main__":
    main()
