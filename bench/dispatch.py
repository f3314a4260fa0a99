"""Benchmark: sending the outbox (发送) — one worker, one dispatcher, to a provider in another
process.

    python bench/dispatch.py --messages 100000                    # SMS gateway sink, SQLite
    python bench/dispatch.py --messages 100000 --channel email    # SMTP sink
    python bench/dispatch.py --messages 100000 --db postgresql    # server: RECOUP_DATABASE_URL

Builds the demo book (`--accounts`, see recoup/demo) and runs its first daily cycle, then writes
`--messages` outbox rows in one bulk insert, spread round-robin over the accounts of Chinese
portfolios whose debtor has a usable phone (sms) or email address (email) and no stop flag,
with the message templates written for that channel (reminders, overdue notice, plan offer).
It starts the provider as a separate process (`python -m recoup.channels.sinks sms|smtp`,
recording every message it receives to a file) and times `recoup.channels.tasks.dispatch`
with real adapters over real sockets until the outbox is empty: per batch, the claim with its
lease, the cancellation check, the compliance guard at send time, addressing, rendering every
message from the ledger, sending, and recording outcomes, interactions and contact events.

The worker's clock starts at 11:00 in Shanghai on the book's date and runs at the real pace, so
every message is inside the contact window whenever the benchmark is run.

At the end it checks that every message is `sent` and that the provider received every key:
the SMS gateway exactly once (its duplicates, a repeated key, would be dropped and are
counted), the SMTP server at least once with the duplicates counted. `--profile FILE` writes a
cProfile of the timed part.

Last line: `messages=<n> seconds=<s> per_second=<r>`.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, bindparam, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_database, machine
from recoup.channels import outbox, tasks
from recoup.core.db import UtcDateTime
from recoup.core.settings import Settings
from recoup.demo import service as demo

AS_OF = dt.date(2026, 11, 23)
# 11:00 in Shanghai on AS_OF: inside every Chinese rule set's contact window.
START = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)
SECRET = "bench-secret"
TEMPLATES = ("reminder_before_due", "reminder_due_tomorrow", "reminder_overdue", "offer_plan")
KIND = {"sms": "phone", "email": "email"}


@contextmanager
def sink(kind: str, record: Path) -> Iterator[dict[str, Any]]:
    """The provider as a separate process; its address (the JSON line it prints when ready)."""
    cmd = [sys.executable, "-m", "recoup.channels.sinks", kind, "--port", "0"]
    cmd += ["--record", str(record)] + (["--secret", SECRET] if kind == "sms" else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {kind} sink did not start")
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def build(engine: Engine, accounts: int, messages: int, channel: str) -> int:
    """The demo book and `messages` due outbox rows for real accounts; how many accounts the
    messages are spread over."""
    t0 = time.perf_counter()
    demo.load_demo(engine, accounts, as_of=AS_OF, run_cycle=True, with_staff=False)
    t1 = time.perf_counter()
    with engine.begin() as conn:
        rows = conn.execute(
            text("""
                SELECT a.id, a.debtor_id, a.portfolio_id FROM account a
                JOIN portfolio p ON p.id = a.portfolio_id
                JOIN debtor d ON d.id = a.debtor_id
                WHERE p.jurisdiction = 'CN' AND a.status NOT IN ('settled', 'written_off')
                  AND EXISTS (SELECT 1 FROM contact_point cp WHERE cp.debtor_id = d.id
                              AND cp.kind = :kind AND cp.owner = 'self' AND cp.is_active
                              AND NOT cp.do_not_contact)
                  AND NOT EXISTS (SELECT 1 FROM debtor_flag f WHERE f.debtor_id = d.id
                                  AND f.cleared_at IS NULL)
                ORDER BY a.id"""),
            {"kind": KIND[channel]},
        ).all()
        if not rows:
            raise SystemExit("no account of the book can receive this channel")
        due = START - dt.timedelta(minutes=5)
        conn.execute(
            text("""
                INSERT INTO outbox_message (idempotency_key, account_id, debtor_id,
                  portfolio_id, channel, template, status, attempts, next_attempt_at,
                  created_at, updated_at)
                VALUES (:key, :a, :d, :p, :channel, :template, 'pending', 0, :due, :due, :due)
            """).bindparams(bindparam("due", type_=UtcDateTime())),
            [
                {
                    "key": f"bench:{i}",
                    "a": rows[i % len(rows)][0],
                    "d": rows[i % len(rows)][1],
                    "p": rows[i % len(rows)][2],
                    "channel": channel,
                    "template": TEMPLATES[i % len(TEMPLATES)],
                    "due": due,
                }
                for i in range(messages)
            ],
        )
    print(
        f"book of {accounts:,} accounts built and run for {AS_OF} in {t1 - t0:.1f}s; "
        f"{messages:,} {channel} messages over {len(rows):,} accounts written in "
        f"{time.perf_counter() - t1:.1f}s"
    )
    return len(rows)


def settings_for(engine: Engine, channel: str, address: dict[str, Any], args: Any) -> Settings:
    common: dict[str, Any] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "outbox_batch_size": args.batch_size,
    }
    if channel == "sms":
        return Settings(
            **common,
            sms_adapter="http",
            sms_gateway_url=address["url"],
            sms_gateway_secret=SECRET,
        )
    return Settings(
        **common,
        email_adapter="smtp",
        smtp_host=address["host"],
        smtp_port=address["port"],
        smtp_security="none",
        smtp_from="Recoup <ar@example.com>",
        public_base_url="https://collect.example",
    )


def check(engine: Engine, channel: str, record: Path, messages: int) -> tuple[bool, str]:
    """Every message sent, and the provider's view of the keys."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, COUNT(*) FROM outbox_message GROUP BY status"))
        statuses: dict[str, int] = {str(s): int(n) for s, n in rows}
    lines = [json.loads(x) for x in record.read_text("utf-8").splitlines() if x.strip()]
    received = Counter(r["idempotency_key"] for r in lines)
    expected = {f"bench:{i}" for i in range(messages)}
    missing = len(expected - set(received))
    extra = len(set(received) - expected)
    if channel == "sms":
        accepted = Counter(r["idempotency_key"] for r in lines if not r["duplicate"])
        once = all(n == 1 for n in accepted.values()) and len(accepted) == messages
        dropped = sum(1 for r in lines if r["duplicate"])
        ok = once and not missing and not extra and statuses == {"sent": messages}
        return ok, (
            f"outbox: {statuses}; sink accepted {len(accepted):,} unique keys "
            f"(each exactly once: {once}), missing {missing}, unknown {extra}, "
            f"repeated keys dropped by the gateway {dropped}"
        )
    dup = sum(n - 1 for n in received.values())
    ok = not missing and not extra and statuses == {"sent": messages}
    return ok, (
        f"outbox: {statuses}; SMTP sink received {len(received):,} unique keys in "
        f"{len(lines):,} messages (duplicates {dup}), missing {missing}, unknown {extra}"
    )


def run(engine: Engine, settings: Settings, args: Any) -> outbox.DispatchResult:
    """The worker's dispatch until the outbox is empty (or, `--sequential`, batch by batch
    without overlapping the sending of one batch with the preparing of the next)."""
    clock = tasks.monotonic_clock(START)
    if not args.sequential:
        return tasks.dispatch(
            engine, settings, "bench", clock=clock, send_threads=args.send_threads
        )
    d = outbox.Dispatcher(
        engine, settings, worker="bench", clock=clock, send_threads=args.send_threads
    )
    total = outbox.DispatchResult()
    try:
        while (result := d.dispatch_once()).claimed:
            total.add(result)
    finally:
        d.close()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--accounts", type=int, default=20_000)
    ap.add_argument("--channel", choices=["sms", "email"], default="sms")
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--send-threads", type=int, default=4, help="concurrent sends per batch")
    ap.add_argument(
        "--sequential",
        action="store_true",
        help="claim, prepare, send and record one batch after the other (no overlap)",
    )
    ap.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="sms: the gateway answers each request after this many milliseconds",
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--profile", type=Path, default=None, help="write a cProfile here")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        with fresh_database(args.db, work) as engine:
            build(engine, args.accounts, args.messages, args.channel)
            record = work / f"{args.channel}.jsonl"
            with sink("sms" if args.channel == "sms" else "smtp", record) as address:
                settings = settings_for(engine, args.channel, address, args)
                if args.latency and args.channel == "sms":
                    control = address["url"].rsplit("/", 1)[0] + "/_sink/delay"
                    delay = {"seconds": args.latency / 1000, "count": 2 * args.messages}
                    httpx.post(control, json=delay).raise_for_status()
                profiler = cProfile.Profile() if args.profile else None
                t0 = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                result = run(engine, settings, args)
                seconds = time.perf_counter() - t0
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(str(args.profile))
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
                time.sleep(0.5)  # the sink writes its record as messages arrive
            print(
                f"dispatched: claimed {result.claimed:,}, sent {result.sent:,}, "
                f"retried {result.retried}, failed {result.failed}, blocked {result.blocked}, "
                f"deferred {result.deferred}, errors {result.errors}"
            )
            ok, report = check(engine, args.channel, record, args.messages)
            print(f"verified: {'OK' if ok else 'FAILED'} — {report}")
    print(
        f"db={args.db} channel={args.channel} batch={args.batch_size} "
        f"send_threads={args.send_threads} sequential={args.sequential} latency={args.latency}ms"
    )
    rate = args.messages / seconds
    print(f"messages={args.messages} seconds={seconds:.2f} per_second={rate:.0f}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
