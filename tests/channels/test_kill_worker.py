"""No message lost, none sent twice, while workers are killed (queue mode, PostgreSQL).

Three `recoup worker` processes share a Redis queue; every half second to a second one of them
is killed with SIGKILL (mid-batch: no chance to record what it sent) and a new one started. The
providers are separate processes recording what they receive. At the end every message is
`sent`, recorded once; the SMS gateway accepted each key exactly once (a resend after a kill
carries the same idempotency key and is answered as a duplicate); the SMTP server received each
key at least once, every copy with the same Message-ID and X-Idempotency-Key, so that a
receiving system can drop the copies. Delivery is at least once, made exactly once by the
provider's idempotency key."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from recoup.channels.adapters import message_id
from recoup.channels.models import Interaction, OutboxMessage
from recoup.core.db import make_engine
from recoup.core.schema import metadata
from recoup.core.settings import Settings
from tests.channels.test_worker import (
    SECRET,
    book,
    enqueue,
    mark_cycle_done,
    sms_env,
    smtp_env,
    statuses,
    worker_env,
)
from tests.channels.test_worker_queue import fresh_redis
from tests.conftest import DATABASES

pytestmark = pytest.mark.skipif(
    "postgresql" not in DATABASES, reason="queue mode is tested on PostgreSQL"
)


@pytest.fixture
def redis_db() -> Iterator[str]:
    with fresh_redis() as url:
        yield url


@pytest.fixture
def pg_engine(pg_database: str) -> Iterator[Engine]:
    engine = make_engine(pg_database)
    try:
        yield engine
    finally:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        engine.dispose()


@contextlib.contextmanager
def sink_process(kind: str, record: Path) -> Iterator[dict[str, Any]]:
    """A provider as a separate process, recording to `record`; its address."""
    cmd = [sys.executable, "-m", "recoup.channels.sinks", kind, "--port", "0"]
    cmd += ["--record", str(record)] + (["--secret", SECRET] if kind == "sms" else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, f"the {kind} sink did not start"
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Workers:
    """`recoup worker` processes this test started, each logging to a file of its own."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.live: list[subprocess.Popen[bytes]] = []
        self.all: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(self) -> None:
        n = len(self.all)
        log = (self.folder / f"worker-{n}.log").open("wb")
        self._logs.append(log)
        args = ["--worker-id", f"w{n}", "--threads", "2", "--send-threads", "2"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "recoup.cli", "worker", *args],
            env=self.env,
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.live.append(proc)
        self.all.append(proc)

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice(self.live)
        self.live.remove(victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)

    def stop_all(self, timeout: float) -> list[int | None]:
        """SIGTERM to every live worker once it has started (before, Python's default action
        ends it); their exit codes (None: still running)."""
        deadline = time.monotonic() + timeout
        for proc in self.live:
            log = self.folder / f"worker-{self.all.index(proc)}.log"
            while "mode /" not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline, "a worker did not start"
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.live:
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                codes.append(None)
        return codes

    def close(self) -> None:
        for proc in self.all:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        for log in self._logs:
            log.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- worker-{n}.log\n" + (self.folder / f"worker-{n}.log").read_text(errors="replace")
            for n in range(len(self.all))
        )


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]


def test_killed_workers_lose_no_message_and_send_none_twice(
    pg_database: str, pg_engine: Engine, redis_db: str, tmp_path: Path
) -> None:
    rng = random.Random()
    accounts = book(pg_engine, 50)
    # SMS and emails side by side, so that a batch in flight when its worker dies holds both.
    keys = enqueue(pg_engine, accounts, 3, ("sms", "email"))
    sms_keys = {k for k in keys if ":sms:" in k}
    email_keys = {k for k in keys if ":email:" in k}
    total = len(keys)
    mark_cycle_done(pg_engine, Settings(database_url=pg_database))
    sms_log, mail_log = tmp_path / "sms.jsonl", tmp_path / "mail.jsonl"
    with sink_process("sms", sms_log) as sms, sink_process("smtp", mail_log) as smtp:
        # A gateway that takes 50 ms per message keeps batches in flight when the kills come.
        control = sms["url"].rsplit("/", 1)[0] + "/_sink/delay"
        httpx.post(control, json={"seconds": 0.05, "count": 10_000}).raise_for_status()
        env = worker_env(
            pg_database,
            **sms_env(sms["url"]),
            **smtp_env(smtp["port"]),
            RECOUP_QUEUE_URL=redis_db,
            RECOUP_OUTBOX_LEASE_SECONDS="3",
            RECOUP_OUTBOX_BATCH_SIZE="10",
        )
        workers = Workers(env, tmp_path)
        try:
            for _ in range(3):
                workers.start()
            deadline = time.monotonic() + 30
            while not sms_log.exists() or len(records(sms_log)) < 10:
                assert time.monotonic() < deadline, "no worker started sending\n" + workers.logs()
                time.sleep(0.1)
            kills = 0
            for _ in range(6):
                time.sleep(rng.uniform(0.5, 1.0))
                workers.kill_one(rng)
                kills += 1
                workers.start()
            deadline = time.monotonic() + 40
            while statuses(pg_engine) != {"sent": total}:
                assert time.monotonic() < deadline, (
                    f"not all sent: {statuses(pg_engine)}\n" + workers.logs()
                )
                time.sleep(0.2)
            codes = workers.stop_all(timeout=20)
            assert codes == [0] * len(codes), workers.logs()
        finally:
            workers.close()
        time.sleep(0.3)  # the sinks write each record as it arrives
    assert kills == 6

    # The SMS gateway accepted every key exactly once; resends were answered as duplicates.
    gateway = records(sms_log)
    accepted = [r["idempotency_key"] for r in gateway if not r["duplicate"]]
    assert sorted(accepted) == sorted(sms_keys)
    dropped = sum(1 for r in gateway if r["duplicate"])

    # The SMTP server received every key; every copy of a key carries the same Message-ID.
    copies: dict[str, set[str]] = defaultdict(set)
    received: dict[str, int] = defaultdict(int)
    for r in records(mail_log):
        copies[r["idempotency_key"]].add(r["message_id"])
        received[r["idempotency_key"]] += 1
    assert set(copies) == email_keys
    assert all(ids == {message_id(key)} for key, ids in copies.items())
    email_copies = sum(n - 1 for n in received.values())

    with Session(pg_engine) as s:
        # Each outcome recorded once: one interaction per message, nothing left claimed.
        assert s.scalar(select(func.count(Interaction.id))) == total
        assert s.scalar(select(func.count(func.distinct(Interaction.outbox_message_id)))) == total
        resent = s.scalar(select(func.count()).where(OutboxMessage.attempts > 1))
    print(
        f"\n{total} messages, {kills} workers killed: {resent} sent again after a kill; "
        f"SMS duplicates dropped by the gateway: {dropped}; email copies received: "
        f"{email_copies}"
    )
