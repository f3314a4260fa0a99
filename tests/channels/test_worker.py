"""`recoup worker` and its jobs (recoup.channels.tasks): the daily cycle when due, guarded
against a second worker; the outbox sent batch after batch, by several threads, never after
the lease has ended; `--once`; a graceful stop on SIGTERM that leaves nothing half-recorded.

The worker runs on the real clock, so the debtors of these tests live in a time zone where it
is about noon whenever the tests run (inside the contact window)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from recoup.channels import outbox, tasks
from recoup.channels.adapters import OutgoingMessage, SendResult, SmsHttpAdapter
from recoup.channels.models import Interaction, OutboxMessage
from recoup.channels.sinks import SmsGatewaySink, SmtpSink
from recoup.compliance.models import ContactEvent
from recoup.core.settings import Settings, get_settings
from recoup.cycle import service as cycle
from recoup.cycle.models import CyclePartition, CycleRun
from recoup.ledger import service as ledger
from tests import factories
from tests.conftest import DATABASES

SECRET = "worker-secret"
TEMPLATES = ("reminder_overdue", "reminder_before_due", "offer_plan")


def noon_zone(now: dt.datetime | None = None) -> str:
    """An IANA zone where the local time is now between 12:00 and 13:00."""
    now = now or dt.datetime.now(dt.UTC)
    offset = 12 - now.hour  # -11 … +12 hours from UTC
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT-8 is UTC+8


def book(engine: Engine, accounts: int) -> list[int]:
    """Accounts of debtors with a phone and an email address, in a zone where it is noon."""
    zone = noon_zone()
    ids = []
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        for n in range(accounts):
            d = factories.debtor(s, timezone=zone, address=f"上海市浦东新区世纪大道{n + 1}号")
            ledger.add_contact_point(s, d.id, "phone", f"+86138{n:08d}")
            ledger.add_contact_point(s, d.id, "email", f"debtor{n}@example.com")
            ids.append(factories.invoice(s, pf, debtor=d).id)
    return ids


def enqueue(
    engine: Engine, accounts: list[int], per_account: int, channels: tuple[str, ...]
) -> list[str]:
    """`per_account` messages of each channel for every account, due now; their keys."""
    keys = []
    with Session(engine) as s, s.begin():
        for a in accounts:
            for channel in channels:
                for k in range(per_account):
                    key = f"t:{a}:{channel}:{k}"
                    template = TEMPLATES[k % len(TEMPLATES)]
                    outbox.enqueue(s, account_id=a, channel=channel, template=template, key=key)
                    keys.append(key)
    return keys


def mark_cycle_done(engine: Engine, settings: Settings) -> None:
    """Today's daily cycle (business date), so that a worker has only messages to send."""
    today = tasks.business_now(settings, dt.datetime.now(dt.UTC)).date()
    cycle.run_cycle(engine, today, settings=settings)


def statuses(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        return outbox.counts_by_status(s)


def worker_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `recoup worker` subprocess: the test database and quick polling."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOUP_")}
    env.update(
        RECOUP_DATABASE_URL=db_url,
        RECOUP_WORKER_POLL_SECONDS="0.2",
        RECOUP_OUTBOX_RETRY_BASE_SECONDS="0.5",
        RECOUP_OUTBOX_RETRY_MAX_SECONDS="2",
        **extra,
    )
    return env


def sms_env(url: str) -> dict[str, str]:
    return {
        "RECOUP_SMS_ADAPTER": "http",
        "RECOUP_SMS_GATEWAY_URL": url,
        "RECOUP_SMS_GATEWAY_SECRET": SECRET,
    }


def smtp_env(port: int) -> dict[str, str]:
    return {
        "RECOUP_EMAIL_ADAPTER": "smtp",
        "RECOUP_SMTP_HOST": "127.0.0.1",
        "RECOUP_SMTP_PORT": str(port),
        "RECOUP_SMTP_SECURITY": "none",
        "RECOUP_SMTP_FROM": "Recoup <ar@example.com>",
    }


def start_worker(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "recoup.cli", "worker", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Kill a process this test started, if it is still running, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


@pytest.fixture
def sms_sink() -> Iterator[SmsGatewaySink]:
    with SmsGatewaySink(secret=SECRET) as sink:
        yield sink


# --------------------------------------------------------------------------- the daily cycle


def test_the_cycle_runs_once_past_its_time_and_not_again(engine: Engine) -> None:
    book(engine, 2)
    settings = Settings(cycle_time=dt.time(2, 0), business_timezone="Asia/Shanghai")
    before = dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.UTC)  # 01:30 on the 24th in Shanghai
    assert tasks.maybe_run_cycle(engine, settings, before) is None
    with Session(engine) as s:
        assert cycle.list_runs(s) == []
    after = before + dt.timedelta(hours=1)  # 02:30
    result = tasks.maybe_run_cycle(engine, settings, after)
    assert result is not None and result.as_of == dt.date(2026, 11, 24)
    with Session(engine) as s:
        assert cycle.get_run(s, dt.date(2026, 11, 24)).status == "completed"
    assert tasks.maybe_run_cycle(engine, settings, after + dt.timedelta(hours=3)) is None
    with Session(engine) as s:
        assert len(cycle.list_runs(s)) == 1


def test_a_second_worker_does_not_run_the_cycle_another_is_running(engine: Engine) -> None:
    book(engine, 2)
    settings = Settings(cycle_time=dt.time(0, 0))
    now = dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC)
    with tasks.cycle_guard(engine) as first:
        assert first
        with tasks.cycle_guard(engine) as second:
            assert not second
        assert tasks.maybe_run_cycle(engine, settings, now) is None
    with Session(engine) as s:
        assert cycle.list_runs(s) == []
    assert tasks.maybe_run_cycle(engine, settings, now) is not None  # the guard is free again


def test_a_run_stopped_between_partitions_is_resumed(engine: Engine) -> None:
    book(engine, 6)
    settings = Settings(cycle_time=dt.time(0, 0), cycle_partitions=3)
    now = dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC)
    day = tasks.business_now(settings, now).date()

    stop = threading.Event()
    stop.set()  # told to stop: the run ends after the partitions in hand (one per cycle worker)
    assert tasks.maybe_run_cycle(engine, settings, now, stop=stop) is None
    with Session(engine) as s:
        run = cycle.get_run(s, day)
        assert run.status == "running"
        finished = len(
            s.scalars(select(CyclePartition).where(CyclePartition.run_id == run.id)).all()
        )
    assert 1 <= finished <= settings.cycle_workers
    result = tasks.maybe_run_cycle(engine, settings, now)
    assert result is not None
    assert (result.partitions_done, result.partitions_skipped) == (3 - finished, finished)
    with Session(engine) as s:
        assert cycle.get_run(s, day).status == "completed"


def test_letters_are_skipped_without_the_printing_module(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tasks, "PRINTING_MODULE", "recoup.channels.no_printing_here")
    assert tasks.printing_module() is None
    settings = Settings(letters_dir=tmp_path / "letters")
    assert tasks.print_letters(engine, settings, dt.date(2026, 11, 24)) is None
    assert not settings.letters_dir.exists()


# --------------------------------------------------------------------------- dispatch


def test_several_send_threads_send_each_message_once_and_record_it_once(
    engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    accounts = book(engine, 10)
    keys = enqueue(engine, accounts, 3, ("sms",))
    settings = Settings(
        sms_adapter="http",
        sms_gateway_url=sms_sink.url,
        sms_gateway_secret=SECRET,
        outbox_batch_size=7,
    )
    batches: list[int] = []
    total = tasks.dispatch(
        engine, settings, "w", send_threads=4, on_batch=lambda r: batches.append(r.claimed)
    )
    assert (total.claimed, total.sent) == (30, 30) and sum(batches) == 30 and len(batches) == 5
    assert sorted(m.idempotency_key for m in sms_sink.messages) == sorted(keys)
    assert sms_sink.stats().duplicates == 0
    assert statuses(engine) == {"sent": 30}
    with Session(engine) as s:
        assert s.scalar(select(func.count(Interaction.id))) == 30
        assert s.scalar(select(func.count(ContactEvent.id))) == 30
        assert s.scalar(select(func.count(func.distinct(Interaction.outbox_message_id)))) == 30


class _SlowAdapter:
    """Sends through a real adapter and moves the worker's clock on after each message."""

    channel = "sms"

    def __init__(self, inner: SmsHttpAdapter, clock: list[dt.datetime], step: float) -> None:
        self.inner, self.clock, self.step = inner, clock, step

    def send(self, message: OutgoingMessage) -> SendResult:
        result = self.inner.send(message)
        self.clock[0] += dt.timedelta(seconds=self.step)
        return result

    def close(self) -> None:
        self.inner.close()


def test_nothing_is_sent_after_the_lease_has_ended(
    engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    accounts = book(engine, 3)
    enqueue(engine, accounts, 1, ("sms",))
    now = [dt.datetime.now(dt.UTC)]
    settings = Settings(outbox_lease_seconds=30)
    slow = _SlowAdapter(SmsHttpAdapter(sms_sink.url, SECRET), now, step=31)
    a = outbox.Dispatcher(
        engine, settings, worker="a", adapters={"sms": slow}, clock=lambda: now[0]
    )
    result = a.dispatch_once()
    # The first send took longer than the lease: the other two were not sent.
    assert (result.claimed, result.sent) == (3, 1) and sms_sink.stats().requests == 1
    assert statuses(engine) == {"sent": 1, "sending": 2}
    b = outbox.Dispatcher(
        engine, settings, worker="b", adapters={"sms": slow.inner}, clock=lambda: now[0]
    )
    assert b.dispatch_once().sent == 2
    a.close()
    assert statuses(engine) == {"sent": 3} and sms_sink.stats().duplicates == 0


# --------------------------------------------------------------------------- the command


def test_worker_once_runs_the_cycle_and_sends_what_is_due(
    engine: Engine, sms_sink: SmsGatewaySink, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from recoup.cli import app
    from recoup.core.db import get_engine

    accounts = book(engine, 4)
    keys = enqueue(engine, accounts, 2, ("sms", "email"))
    with Session(engine) as s, s.begin():
        letter = outbox.enqueue(
            s, account_id=accounts[0], channel="letter", template="formal_notice", key="letter"
        ).id
    with SmtpSink() as smtp:
        env = {
            **sms_env(sms_sink.url),
            **smtp_env(smtp.port),
            "RECOUP_CYCLE_TIME": "00:00",
            "RECOUP_LETTERS_DIR": str(tmp_path / "letters"),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        get_settings.cache_clear()
        get_engine.cache_clear()
        try:
            run = CliRunner().invoke(app, ["worker", "--once", "--worker-id", "once"])
        finally:
            get_engine().dispose()
            get_engine.cache_clear()
        assert run.exit_code == 0, run.output
        assert smtp.wait_for(8)
        mails = {m.message["X-Idempotency-Key"].strip() for m in smtp.messages}
    assert "sent 16 / 已发送" in run.output
    assert statuses(engine) == {"sent": 17}
    assert {m.idempotency_key for m in sms_sink.messages} | mails == set(keys)
    today = tasks.business_now(get_settings(), dt.datetime.now(dt.UTC)).date()
    with Session(engine) as s:
        # The daily cycle was due (cycle_time 00:00): the worker ran it first, then printed
        # the day's letters.
        assert s.scalar(select(CycleRun.status).where(CycleRun.as_of == today)) == "completed"
        provider_id = s.get_one(OutboxMessage, letter).provider_id
    assert provider_id is not None and provider_id.startswith(f"letters-{today}.pdf#")
    assert (tmp_path / "letters" / f"letters-{today}.pdf").is_file()


@pytest.mark.skipif("sqlite" not in DATABASES, reason="SQLite only")
def test_sigterm_finishes_the_batch_and_exits_0(
    sqlite_template: Path, sms_sink: SmsGatewaySink, tmp_path: Path
) -> None:
    from recoup.core.db import make_engine

    db = tmp_path / "recoup.db"
    db.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    proc = None
    try:
        accounts = book(engine, 10)
        enqueue(engine, accounts, 8, ("sms",))
        mark_cycle_done(engine, Settings(database_url=url))
        # Each message takes the gateway 20 ms: a batch of 10 takes about 0.2 s.
        sms_sink.delay_next(0.02, count=1000)
        env = worker_env(url, **sms_env(sms_sink.url), RECOUP_OUTBOX_BATCH_SIZE="10")
        proc = start_worker(env, tmp_path, "--worker-id", "stopping", "--send-threads", "1")
        assert sms_sink.wait_for(1, timeout=60), "the worker did not start sending"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output
        assert "stopping after the current batch" in output
        with Session(engine) as s:
            rows = s.execute(select(OutboxMessage.idempotency_key, OutboxMessage.status)).all()
        left = {key for key, status in rows if status == "sending"}
        sent = {key for key, status in rows if status == "sent"}
        assert not left, f"claimed but never recorded: {sorted(left)}"
        # It stopped early, and everything the gateway accepted is recorded as sent.
        assert 0 < len(sent) < 80
        assert {m.idempotency_key for m in sms_sink.messages} == sent
    finally:
        if proc is not None:
            stop_process(proc)
        engine.dispose()


def test_the_assignment_follows_the_cycle_once_even_after_a_stop_between_them(
    engine: Engine,
) -> None:
    from recoup.access.service import SYSTEM
    from recoup.workspace import service as workspace
    from recoup.workspace.models import Assignment
    from tests.workspace.helpers import team, user

    accounts = book(engine, 3)
    t = team(engine, "T")
    user(engine, "c1", team_id=t)
    with Session(engine) as s, s.begin():
        workspace.create_rule(s, SYSTEM, name="all", team_id=t)
    settings = Settings(cycle_time=dt.time(0, 0))
    day = tasks.business_now(settings, dt.datetime.now(dt.UTC)).date()
    # The cycle ran, and the worker stopped before the assignment.
    cycle.run_cycle(engine, day, settings=settings)
    with Session(engine) as s:
        assert s.scalar(select(CycleRun.assigned_at).where(CycleRun.as_of == day)) is None
    counts = tasks.maybe_assign(engine)  # the next round
    assert counts is not None and counts["assigned"] == len(accounts)
    with Session(engine) as s:
        assert s.scalar(select(CycleRun.assigned_at).where(CycleRun.as_of == day)) is not None
        assert s.scalar(select(func.count(Assignment.account_id))) == len(accounts)
    assert tasks.maybe_assign(engine) is None  # once
