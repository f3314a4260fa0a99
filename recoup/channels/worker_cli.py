"""`recoup worker`: the background worker (后台任务进程) — the daily cycle at `cycle_time`, the
outbox, the day's letters.

Embedded mode (no `queue_url`): one process does everything in a loop — the cycle when due,
the outbox until it is empty, the letters — then sleeps `worker_poll_seconds`.

Queue mode (`queue_url = "redis://…"`): the jobs go through Huey (Redis); several `recoup worker`
processes, on one machine or several, share them. Each runs a Huey consumer with `--threads`
threads in its own process, and offers a tick every `worker_poll_seconds` (one tick per
interval among all workers) that runs the cycle and the letters under Huey locks and enqueues
dispatch tasks while messages are due. The database claim (with its lease) is what keeps a
message from being sent twice; the queue spreads the work.

SIGTERM or Ctrl-C stops the worker gracefully: the batch being sent is finished and recorded,
then the process exits 0. A second signal stops it at once (the batch's lease then runs out
and another worker sends it again, with the same idempotency key).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer
from huey.consumer import Consumer
from rich.console import Console
from rich.logging import RichHandler
from sqlalchemy import Engine, inspect

from recoup.channels import outbox, tasks
from recoup.channels.adapters import adapter_for
from recoup.core.console import print_error
from recoup.core.db import get_engine, utcnow
from recoup.core.errors import DomainError
from recoup.core.settings import Settings, get_settings

console = Console()
log = logging.getLogger("recoup.worker")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    once: bool = typer.Option(
        False, "--once", help="Run one round (cycle if due, send what is due) and exit."
    ),
    worker_id: str = typer.Option(
        None, "--worker-id", help="This worker's name in claims and logs (default host:pid)."
    ),
    threads: int = typer.Option(
        2, "--threads", min=1, max=64, help="Queue mode: consumer threads of this process."
    ),
    send_threads: int = typer.Option(
        4, "--send-threads", min=1, max=64, help="Messages of a batch sent at the same time."
    ),
) -> None:
    """Run the background worker: daily cycle, outbox, letters. 运行后台任务进程。"""
    _logging()
    stop = threading.Event()
    previous = on_signals(stop)  # first of all: a SIGTERM while starting stops it cleanly
    try:
        settings = get_settings()
        engine = get_engine()
        name = tasks.worker_name(worker_id)
        check_ready(engine, settings)
        queue = f", queue {_safe_url(settings.queue_url)}" if settings.queue_url else ""
        console.print(
            f"[bold]recoup worker[/bold] {name}: "
            + ("queue mode / 队列模式" if settings.queue_url else "embedded mode / 嵌入模式")
            + queue
        )
        if settings.queue_url and not once:
            code = run_queue(engine, settings, name, stop, threads, send_threads)
        else:
            code = run_embedded(engine, settings, name, stop, once=once, send_threads=send_threads)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    raise typer.Exit(code)


# --------------------------------------------------------------------------- embedded mode


def run_embedded(
    engine: Engine,
    settings: Settings,
    name: str,
    stop: threading.Event,
    *,
    once: bool = False,
    send_threads: int = 4,
) -> int:
    """Rounds of cycle, letters and dispatch until told to stop (or, `once`, one round);
    the exit code. `stop` is set by SIGTERM and SIGINT."""
    dispatcher = outbox.Dispatcher(engine, settings, worker=name, send_threads=send_threads)
    letters_day: dt.date | None = None
    ok = True
    try:
        while not stop.is_set():
            letters_day, ok = _round(engine, settings, name, stop, dispatcher, letters_day)
            if once or stop.is_set():
                break
            stop.wait(settings.worker_poll_seconds)
    finally:
        dispatcher.close()
    console.print(f"{name}: stopped / 已停止")
    return 0 if ok or not once else 1


def _round(
    engine: Engine,
    settings: Settings,
    name: str,
    stop: threading.Event,
    dispatcher: outbox.Dispatcher,
    letters_day: dt.date | None,
) -> tuple[dt.date | None, bool]:
    """The cycle if due, the day's letters once, then every message due; each step on its
    own, so that a cycle that fails does not hold the messages back. The day whose letters
    were printed, and whether every step went through."""
    now = utcnow()
    ok = True
    try:
        ran = tasks.maybe_run_cycle(engine, settings, now, stop=stop)
        if ran is not None:
            console.print(
                f"{name}: daily cycle {ran.as_of} done in {ran.seconds:.1f}s / 日终批处理完成 "
                f"({ran.partitions_done} partitions)"
            )
    except DomainError as exc:  # e.g. a later date already ran: nothing a worker can do
        print_error(console, exc)
        ok = False
    except Exception:
        log.exception("daily cycle failed / 日终批处理失败")
        ok = False
    try:
        tasks.maybe_assign(engine)  # after the cycle, or after a worker stopped between the two
    except Exception:
        log.exception("case assignment failed / 分案失败")
        ok = False
    try:
        letters_day = _letters(engine, settings, name, now, letters_day)
    except Exception:
        log.exception("printing the letters failed / 信函打印失败")
        ok = False
    try:
        total = tasks.dispatch(
            engine, settings, name, stop=stop, dispatcher=dispatcher, on_batch=_batch_line(name)
        )
        if total.claimed:
            console.print(f"{name}: {_counts(total)}")
    except Exception:  # the database or a provider is down: try again next round
        log.exception("sending failed / 发送失败")
        ok = False
    return letters_day, ok


def _letters(
    engine: Engine, settings: Settings, name: str, now: dt.datetime, done: dt.date | None
) -> dt.date | None:
    """The day's letters, once a day, after the day's cycle (which writes them)."""
    local = tasks.business_now(settings, now)
    if (
        done == local.date()
        or local.time() < settings.cycle_time
        or tasks.printing_module() is None
        or tasks.cycle_due(engine, settings, now) is not None
    ):
        return done
    printed = tasks.print_letters(engine, settings, local.date(), worker=name)
    if printed is not None and (printed.printed or printed.failed or printed.blocked):
        console.print(
            f"{name}: letters of {local.date()} / 信函: printed {printed.printed} / 已打印, "
            f"failed {printed.failed} / 失败, blocked {printed.blocked} / 拦截"
            + (f" → {printed.path}" if printed.path else "")
        )
    return local.date()


# --------------------------------------------------------------------------- queue mode


def run_queue(
    engine: Engine,
    settings: Settings,
    name: str,
    stop: threading.Event,
    threads: int,
    send_threads: int,
) -> int:
    """A Huey consumer with `threads` threads in this process, and the ticker, until `stop`
    is set (by SIGTERM or SIGINT); the exit code."""
    if stop.is_set():
        return 0
    queue = tasks.Queue(engine, settings, name, stop=stop, send_threads=send_threads)
    consumer = _Consumer(queue.huey, stop, workers=threads)
    ticker = tasks.run_ticker(queue, stop)
    try:
        consumer.run()
    finally:
        stop.set()
        ticker.join(timeout=5)
        queue.close()
    stats = queue.stats
    console.print(
        f"{name}: stopped / 已停止 (ticks {stats.ticks}, dispatch tasks {stats.dispatch_tasks}, "
        f"cycles {stats.cycles})"
    )
    return 0


class _Consumer(Consumer):
    """Huey's consumer (thread workers; no periodic tasks: the ticker offers ticks) that stops
    gracefully once `stop` is set — by SIGTERM or SIGINT alike, where Huey would stop at once
    on one of them — and whose running jobs stop after their batch (they watch `stop` too)."""

    def __init__(self, huey: Any, stop: threading.Event, *, workers: int) -> None:
        self.recoup_stop = stop
        super().__init__(
            huey,
            workers=workers,
            worker_type="thread",
            periodic=False,
            scheduler_interval=1,
        )

    def _set_signal_handlers(self) -> None:
        """Keep the worker's own handlers, which set `stop`."""

    def loop(self, health_check_ts: float | None = None) -> float | None:
        if self.recoup_stop.is_set() and getattr(self, "_signum", None) is None:
            self._signum = signal.SIGTERM
            self._restart, self._graceful = False, True
        result: float | None = super().loop(health_check_ts)
        return result


# --------------------------------------------------------------------------- helpers


def on_signals(stop: threading.Event, *, quiet: bool = False) -> dict[int, Any]:
    """SIGTERM and SIGINT set `stop` (a second one stops at once); the handlers they had
    before."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set() and not quiet:
            console.print(
                "stopping after the current batch (again to stop at once) / "
                "当前批次完成后停止（再按一次立即停止）"
            )
        stop.set()
        _second_signal_stops_at_once(signum)

    return {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}


def _second_signal_stops_at_once(signum: int) -> None:
    signal.signal(
        signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler
    )


def check_ready(engine: Engine, settings: Settings) -> None:
    """Refuse to start on a database without the schema, or with a provider set up wrong."""
    if not inspect(engine).has_table("outbox_message"):
        console.print(
            "[red]the database has no schema yet: run `recoup init` first / "
            "数据库尚未初始化：请先运行 recoup init[/red]"
        )
        raise typer.Exit(1)
    for channel in outbox.SENT_BY_PROVIDER:
        try:
            adapter_for(channel, settings).close()
        except DomainError as exc:
            print_error(console, exc)
            raise typer.Exit(1) from exc


def _counts(r: outbox.DispatchResult) -> str:
    parts = [
        f"sent {r.sent} / 已发送",
        f"retry {r.retried} / 重试",
        f"failed {r.failed} / 失败",
        f"blocked {r.blocked} / 拦截",
        f"cancelled {r.cancelled} / 取消",
        f"deferred {r.deferred} / 延后",
    ]
    return ", ".join(parts)


def _batch_line(name: str) -> Any:
    def line(result: outbox.DispatchResult) -> None:
        log.info("%s: batch of %d: %s", name, result.claimed, _counts(result))

    return line


def _safe_url(url: str) -> str:
    """The queue's URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


def _logging() -> None:
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler])
    logging.getLogger("huey").setLevel(logging.WARNING)
    for noisy in ("httpx", "weasyprint", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
