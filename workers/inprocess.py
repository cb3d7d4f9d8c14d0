"""Workers inside the web process, for the embedded mode (no Redis, one command).

The actors run on dramatiq's in-memory broker with a worker of two threads, and
the periodic jobs on a background scheduler: the same code as the production
processes, only hosted here. Outbox rows make this as safe as the real thing: a
message lost with the process is re-sent by the sweep after a restart.
"""

from __future__ import annotations

import atexit
import logging
import threading

import dramatiq
from flask import Flask

from workers import context

log = logging.getLogger(__name__)
_started = False
_lock = threading.Lock()


def start(app: Flask) -> None:
    global _started
    with _lock:
        if _started:
            return
        _started = True
    from apscheduler.schedulers.background import BackgroundScheduler

    from workers import actors, scheduler

    context.bind(app)
    worker = dramatiq.Worker(actors.broker, worker_threads=2, worker_timeout=100)
    worker.start()
    background = BackgroundScheduler(daemon=True, timezone="UTC")
    scheduler.install(background)
    background.start()
    log.info("in-process workers started (2 threads) with the periodic jobs")

    def stop() -> None:
        background.shutdown(wait=False)
        worker.stop(timeout=5000)

    atexit.register(stop)
