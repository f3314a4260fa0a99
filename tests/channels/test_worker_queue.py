"""Queue mode's pieces on a real Redis: the queue-wide lock of the daily cycle (one worker at a
time, and not for ever when that worker dies), the tick offered once per interval among all
workers, and the dispatch tasks a tick enqueues for the messages due."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.channels import outbox, tasks
from recoup.core.db import make_engine
from recoup.core.settings import Settings
from tests import factories

REDIS_URL = os.environ.get("RECOUP_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
# 01:00 in Shanghai: before the default cycle_time (02:00), so no tick runs the cycle.
NIGHT = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.UTC)


@contextlib.contextmanager
def fresh_redis() -> Iterator[str]:
    """A Redis database of the tests' own, emptied before and after; skips without Redis."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def redis_db() -> Iterator[str]:
    with fresh_redis() as url:
        yield url


def _queue(url: str, name: str, engine: Engine | None = None, **kw: object) -> tasks.Queue:
    settings = Settings(queue_url=url, worker_poll_seconds=0.5, **kw)  # type: ignore[arg-type]
    return tasks.Queue(engine or make_engine("sqlite://"), settings, name, clock=lambda: NIGHT)


def test_one_worker_at_a_time_holds_the_cycle_lock(
    redis_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _queue(redis_db, "a"), _queue(redis_db, "b")
    with a.queue_lock(tasks.CYCLE_LOCK) as got_a:
        assert got_a
        with b.queue_lock(tasks.CYCLE_LOCK) as got_b:
            assert not got_b
    with b.queue_lock(tasks.CYCLE_LOCK) as got_b:
        assert got_b
    # A worker killed while holding the lock holds it no longer than the lock's TTL.
    monkeypatch.setattr(tasks, "LOCK_TTL_SECONDS", 1)
    dead = a.queue_lock(tasks.CYCLE_LOCK)
    assert dead.__enter__()  # never left: the worker died inside
    with b.queue_lock(tasks.CYCLE_LOCK) as got_b:
        assert not got_b
    time.sleep(1.2)
    with b.queue_lock(tasks.CYCLE_LOCK) as got_b:
        assert got_b


def test_one_tick_per_interval_among_workers(redis_db: str) -> None:
    a, b = _queue(redis_db, "a"), _queue(redis_db, "b")
    assert a.maybe_enqueue_tick()
    assert a.huey.pending_count() == 1
    assert not b.maybe_enqueue_tick()  # the queue is busy
    a.huey.flush()
    assert not b.maybe_enqueue_tick()  # a tick was offered within the interval
    time.sleep(0.6)
    assert b.maybe_enqueue_tick()
    assert b.huey.pending_count() == 1


def test_a_tick_enqueues_dispatch_tasks_for_the_messages_due(redis_db: str, engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        account = factories.invoice(s, pf).id
        for n in range(25):
            at = NIGHT + dt.timedelta(minutes=-1 if n < 23 else 10)  # 23 due, 2 later
            outbox.enqueue(s, account_id=account, channel="sms", template="reminder_overdue", at=at)
    q = _queue(redis_db, "a", engine, outbox_batch_size=10)
    q._tick()
    assert q.stats.ticks == 1 and q.stats.cycles == 0
    assert q.huey.pending_count() == 3  # 23 messages due, batches of 10
    q._tick()
    assert q.huey.pending_count() == 3  # none more while the queue holds some
