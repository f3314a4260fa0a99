"""The worker's jobs (后台任务), each safe to run again and safe to run in several workers at once:

- `maybe_run_cycle`: the daily cycle for the business date, once the local time is past
  `cycle_time` and that date's run has not completed. The cycle is idempotent and claims its
  partitions in the database; a guard (`cycle_guard`: a PostgreSQL advisory lock, or a lock
  on the SQLite file) keeps two workers from running the same date at the same time, and in
  queue mode a queue-wide lock (Huey's `lock_task`) keeps the others from even trying.
- `dispatch`: the outbox, batch after batch, until a batch comes back empty or the worker is
  told to stop. Batches are claimed in the database with a lease (FOR UPDATE SKIP LOCKED on
  PostgreSQL), which is what keeps two workers from sending the same message; the queue only
  spreads the work.
- `print_letters`: the day's letters into the print file, through
  `recoup.channels.printing.print_due_letters` when that module is installed.

`Queue` puts the same jobs on Huey (Redis) for queue mode: a `tick` task, enqueued every
`worker_poll_seconds` by whichever worker gets there first, runs the cycle and the letters
under Huey locks and enqueues dispatch tasks while messages are due.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib
import logging
import math
import os
import socket
import threading
import time
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.orm import Session

from recoup.channels import outbox
from recoup.channels.adapters import Adapter
from recoup.core.db import UtcDateTime, utcnow
from recoup.core.settings import Settings
from recoup.cycle import service as cycle

log = logging.getLogger("recoup.worker")

PRINTING_MODULE = "recoup.channels.printing"
# Locks of queue mode. A worker killed while holding one loses it after the TTL; the database
# guard underneath still keeps a second cycle of the same date from starting meanwhile.
CYCLE_LOCK = "recoup.daily-cycle"
LETTERS_LOCK = "recoup.letters"
LOCK_TTL_SECONDS = 600
# The PostgreSQL advisory lock key of the daily cycle (a stable 63-bit number).
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(CYCLE_LOCK.encode()).digest()[:8], "big") >> 1


# Delete a lock only if this worker still holds it (it may have expired and been taken).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Stopped(Exception):
    """The worker was told to stop; raised between partitions of the cycle (the run resumes
    with the partitions left the next time)."""


# --------------------------------------------------------------------------- the daily cycle


def business_now(settings: Settings, now: dt.datetime) -> dt.datetime:
    """`now` in the business time zone."""
    return now.astimezone(zoneinfo.ZoneInfo(settings.business_timezone))


def cycle_due(engine: Engine, settings: Settings, now: dt.datetime) -> dt.date | None:
    """The business date whose cycle should run now: today (business time zone), once the
    local time is past `cycle_time`, unless that date's run has completed or a later date
    has already run (dates never go backwards). None when there is nothing to do."""
    local = business_now(settings, now)
    if local.time() < settings.cycle_time:
        return None
    day = local.date()
    with Session(engine) as session:
        latest = cycle.list_runs(session, limit=1)
    if latest and (latest[0].as_of > day or (latest[0].as_of == day and _completed(latest[0]))):
        return None
    return day


def _completed(run: Any) -> bool:
    return bool(run.status == "completed")


@contextlib.contextmanager
def cycle_guard(engine: Engine) -> Iterator[bool]:
    """Whether this worker may run the daily cycle now: True while it holds the database's
    guard, False when another worker holds it. PostgreSQL: a session advisory lock on a
    connection of its own (the server releases it if the worker dies). SQLite: an exclusive
    lock on a file next to the database (released by the system if the worker dies)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _ADVISORY_KEY}).scalar()
            )
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})
                    conn.commit()
        return
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:" or "mode=memory" in path:
        yield True  # a database only this process sees
        return
    import fcntl

    with open(f"{path}.cycle-lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def maybe_run_cycle(
    engine: Engine,
    settings: Settings,
    now: dt.datetime,
    *,
    stop: threading.Event | None = None,
) -> cycle.CycleResult | None:
    """Run (or resume) the daily cycle for the business date if it is due (`cycle_due`) and
    no other worker is running it; the result, or None when nothing ran. A run interrupted
    by `stop` (between partitions) is resumed by the next call."""
    day = cycle_due(engine, settings, now)
    if day is None:
        return None
    with cycle_guard(engine) as mine:
        if not mine:
            log.info("the cycle for %s is being run by another worker", day)
            return None
        # Checked again under the guard: another worker may have finished it meanwhile.
        day = cycle_due(engine, settings, now)
        if day is None:
            return None

        def between_partitions(done: int, total: int) -> None:
            if stop is not None and stop.is_set():
                raise Stopped(f"stopped after partition {done + 1} of {total}")

        with Session(engine) as session:
            unfinished = [
                r.as_of
                for r in cycle.list_runs(session, limit=10)
                if r.as_of < day and not _completed(r)
            ]
        try:
            # An earlier date left unfinished (a worker stopped mid-run) is finished first:
            # the cycle refuses a new date while one is open.
            for earlier in sorted(unfinished):
                cycle.run_cycle(engine, earlier, settings=settings, on_partition=between_partitions)
            result = cycle.run_cycle(
                engine, day, settings=settings, on_partition=between_partitions
            )
        except Stopped as exc:
            log.info("daily cycle for %s interrupted: %s", day, exc)
            return None
        maybe_assign(engine)
        return result


def maybe_assign(engine: Engine) -> dict[str, int] | None:
    """Cases follow the accounts' new stages and buckets (分案) before the day's work starts:
    the assignment after the latest completed cycle, if it has not followed it yet (a worker
    stopped between the two does it at its next round). Its counts, or None."""
    from recoup.workspace import service as workspace

    with Session(engine) as session, session.begin():
        counts = workspace.assign_after_cycle(session, by="worker")
    if counts is not None:
        log.info("assignment after the daily cycle: %s", counts)
    return counts


# --------------------------------------------------------------------------- letters


def printing_module() -> Any | None:
    """`recoup.channels.printing` if it is installed, else None."""
    try:
        return importlib.import_module(PRINTING_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == PRINTING_MODULE:
            return None
        raise


def print_letters(
    engine: Engine, settings: Settings, day: dt.date, *, worker: str = "printer"
) -> Any | None:
    """The letters due on `day` into the day's print file, through
    `recoup.channels.printing.print_due_letters` (idempotent: a day's file is written once);
    its result, or None, and nothing done, when that module is not installed."""
    module = printing_module()
    if module is None:
        return None
    return module.print_due_letters(engine, settings, day, worker=worker)


# --------------------------------------------------------------------------- dispatch


def dispatch(
    engine: Engine,
    settings: Settings,
    worker_id: str,
    *,
    stop: threading.Event | None = None,
    dispatcher: outbox.Dispatcher | None = None,
    adapters: Mapping[str, Adapter] | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
    send_threads: int = 1,
    on_batch: Callable[[outbox.DispatchResult], None] | None = None,
) -> outbox.DispatchResult:
    """Send what is due, batch after batch, until a batch comes back empty or `stop` is set
    (checked between batches: a claimed batch is always sent and recorded), each batch sent
    while the next is prepared (`Dispatcher.run`). Pass a `dispatcher` to keep its
    connections across calls; otherwise one is made and closed."""
    own = dispatcher is None
    d = dispatcher or outbox.Dispatcher(
        engine,
        settings,
        worker=worker_id,
        adapters=adapters,
        clock=clock,
        send_threads=send_threads,
    )
    try:
        return d.run(stop, on_batch)
    finally:
        if own:
            d.close()


def due_messages(engine: Engine, now: dt.datetime, limit: int) -> int:
    """How many messages a worker could claim now (pending and due, or under an expired
    lease), counted up to `limit`."""
    chans = ", ".join(f"'{c}'" for c in outbox.SENT_BY_PROVIDER)
    sql = text(f"""
        SELECT COUNT(*) FROM (
          SELECT 1 FROM outbox_message
          WHERE channel IN ({chans})
            AND ((status = 'pending' AND next_attempt_at <= :now)
                 OR (status = 'sending' AND locked_until < :now))
          LIMIT :n) due""").bindparams(bindparam("now", type_=UtcDateTime()))
    with engine.connect() as conn:
        return int(conn.execute(sql, {"now": now, "n": limit}).scalar() or 0)


def worker_name(worker_id: str | None = None) -> str:
    """A worker id unique to this process: the given one, or host:pid."""
    if worker_id:
        return worker_id
    return f"{socket.gethostname()}:{os.getpid()}"[:48]


# --------------------------------------------------------------------------- queue mode


@dataclass
class QueueStats:
    ticks: int = 0
    cycles: int = 0
    dispatch_tasks: int = 0


class Queue:
    """The jobs on Huey (RedisHuey at `settings.queue_url`): `tick` and `dispatch` tasks that
    every `recoup worker` of the same queue shares. Each process consuming the queue holds one
    dispatcher (and its provider connections) per consumer thread, under a worker id of its
    own (`<worker_id>/<thread>`), so leases never mix between threads."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        worker_id: str,
        *,
        stop: threading.Event | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        send_threads: int = 1,
        name: str = "recoup",
    ) -> None:
        from huey import RedisHuey

        if not settings.queue_url:
            raise ValueError("queue mode needs queue_url (redis://…)")
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id
        self.stop = stop or threading.Event()
        self.clock = clock
        self.send_threads = send_threads
        self.stats = QueueStats()
        self.huey = RedisHuey(name, url=settings.queue_url, results=False, utc=True)
        self._local = threading.local()
        self._dispatchers: list[outbox.Dispatcher] = []
        self._lock = threading.Lock()
        self._letters_done: dt.date | None = None
        self._tick_key = f"{name}.tick-pending"
        self.tick_task = self.huey.task(name="recoup.tick")(self._tick)
        self.dispatch_task = self.huey.task(name="recoup.dispatch")(self._dispatch)

    # -- what the tasks do --

    def _dispatcher(self) -> outbox.Dispatcher:
        d: outbox.Dispatcher | None = getattr(self._local, "dispatcher", None)
        if d is None:
            with self._lock:
                n = len(self._dispatchers) + 1
                d = outbox.Dispatcher(
                    self.engine,
                    self.settings,
                    worker=f"{self.worker_id}/{n}"[:64],
                    clock=self.clock,
                    send_threads=self.send_threads,
                )
                self._dispatchers.append(d)
            self._local.dispatcher = d
        return d

    def _dispatch(self) -> dict[str, int]:
        d = self._dispatcher()
        result = dispatch(self.engine, self.settings, d.worker, stop=self.stop, dispatcher=d)
        with self._lock:
            self.stats.dispatch_tasks += 1
        if result.claimed:
            log.info(
                "%s: claimed %d, sent %d, retried %d, failed %d, blocked %d",
                d.worker,
                result.claimed,
                result.sent,
                result.retried,
                result.failed,
                result.blocked,
            )
        return {"claimed": result.claimed, "sent": result.sent}

    def _tick(self) -> None:
        """The cycle and the letters when due (each under its lock), then dispatch tasks for
        the messages due: about one per batch due, while the queue holds none already."""
        now = self.clock()
        with self._lock:
            self.stats.ticks += 1
        try:
            if cycle_due(self.engine, self.settings, now) is not None:
                with self.queue_lock(CYCLE_LOCK) as mine:
                    if mine and maybe_run_cycle(self.engine, self.settings, now, stop=self.stop):
                        with self._lock:
                            self.stats.cycles += 1
        except Exception:  # a cycle that fails must not hold the messages back
            log.exception("daily cycle failed / 日终批处理失败")
        try:
            with self.queue_lock(CYCLE_LOCK) as mine:
                if mine:
                    maybe_assign(self.engine)
        except Exception:
            log.exception("case assignment failed / 分案失败")
        try:
            self._maybe_print_letters(now)
        except Exception:
            log.exception("printing the letters failed / 信函打印失败")
        if self.stop.is_set() or self.huey.pending_count() > 0:
            return
        batch = self.settings.outbox_batch_size
        due = due_messages(self.engine, self.clock(), batch * 16)
        for _ in range(min(16, math.ceil(due / batch))):
            self.dispatch_task()

    def _maybe_print_letters(self, now: dt.datetime) -> None:
        """The day's letters, once the day's cycle has run (it writes them); once a day per
        worker (the printing module writes a day's file once)."""
        local = business_now(self.settings, now)
        if self._letters_done == local.date() or local.time() < self.settings.cycle_time:
            return
        if printing_module() is None or cycle_due(self.engine, self.settings, now) is not None:
            return
        with self.queue_lock(LETTERS_LOCK) as mine:
            if not mine:
                return
            print_letters(self.engine, self.settings, local.date(), worker=self.worker_id)
        self._letters_done = local.date()

    @contextlib.contextmanager
    def queue_lock(self, name: str) -> Iterator[bool]:
        """Whether this worker holds the queue-wide lock `name`, for the block, and for at
        most LOCK_TTL_SECONDS (a worker killed while holding it does not hold it for ever):
        Huey's `lock_task` where Redis expires hash fields (7.4 or later), else a Redis key
        with an expiry, the same thing."""
        from huey.exceptions import TaskLockedException

        if self.huey.storage.supports_hash_ttl:
            try:
                lock = self.huey.lock_task(name, ttl=LOCK_TTL_SECONDS)
                lock.acquire()
            except TaskLockedException:
                yield False
                return
            try:
                yield True
            finally:
                lock.release()
            return
        key, token = f"{self.huey.name}.lock.{name}", uuid.uuid4().hex
        conn = self.huey.storage.conn
        if not conn.set(key, token, nx=True, ex=LOCK_TTL_SECONDS):
            yield False
            return
        try:
            yield True
        finally:
            conn.eval(_RELEASE, 1, key, token)

    # -- driving --

    def maybe_enqueue_tick(self) -> bool:
        """Enqueue a tick when the queue is empty, unless a worker enqueued one within the
        poll interval (a Redis key with that expiry); whether this call did."""
        if self.huey.pending_count() > 0:
            return False  # the queue is busy: the tick after it will do
        ttl_ms = max(100, int(self.settings.worker_poll_seconds * 1000))
        conn = self.huey.storage.conn
        if not conn.set(self._tick_key, self.worker_id, nx=True, px=ttl_ms):
            return False
        self.tick_task()
        return True

    def close(self) -> None:
        with self._lock:
            dispatchers, self._dispatchers = self._dispatchers, []
        for d in dispatchers:
            d.close()


def run_ticker(queue: Queue, stop: threading.Event) -> threading.Thread:
    """A thread that offers a tick every `worker_poll_seconds` until `stop` is set."""

    def loop() -> None:
        while not stop.is_set():
            try:
                queue.maybe_enqueue_tick()
            except Exception:  # Redis restarting: try again at the next interval
                log.exception("cannot enqueue the tick")
            stop.wait(queue.settings.worker_poll_seconds)

    thread = threading.Thread(target=loop, name="recoup-ticker", daemon=True)
    thread.start()
    return thread


def monotonic_clock(start: dt.datetime) -> Callable[[], dt.datetime]:
    """A clock that starts at `start` and runs at the real pace (benchmarks and tests that
    need a fixed time of day)."""
    t0 = time.monotonic()
    return lambda: start + dt.timedelta(seconds=time.monotonic() - t0)
