"""The daily cycle (日终批处理), set-based.

For an as-of date D, per partition of account ids, in one transaction:

1. aggregate the unpaid instalments due on or before D per account (oldest due date, overdue
   amount, interest and fees falling due since the account's `recognised_through`, the
   principal-days on which penalty accrues since `accrued_through`, late fees for instalments
   whose grace period ended since then) and limit penalty and late fees to the annualised
   cap, in one statement, into the temporary table `cyc`;
2. append ledger entries (recognition, penalty and late-fee accrual) and update the accounts
   (balances, DPD, bucket, stage, overdue amount, status, watermarks), in the order each
   database does fastest;
3. return cured accounts to current;
4. record the partition as done.

Before the partitions, the instalments of generated schedules falling due by D or within the
strategy's longest reminder lead are stored where an import left them to be written when needed
(recoup.ledger.schedules).

Only accounts with something due, or that were delinquent, are touched. Every step is SQL over
the partition: there is no Python loop per account. Re-running a date changes nothing, because
the watermarks are already at D; a run killed midway resumes with the partitions that did not
commit, and each of those starts from exactly the state an uninterrupted run would have seen.

Speed (docs/benchmarks.md): statistics are gathered on `cyc` so that the planners join it the
cheap way round; on SQLite a second thread checkpoints the write-ahead log while the run goes
on, and indexed columns are written only where they change; on PostgreSQL each partition
commits without waiting for its WAL flush (safe: a lost partition is redone whole) and the
account table leaves room for same-page (HOT) updates.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from recoup.arrangements.service import check_arrangements
from recoup.channels import outbox
from recoup.core.db import utcnow
from recoup.core.errors import Conflict, Invalid, NotFound
from recoup.core.settings import Settings, get_settings
from recoup.cycle.models import CyclePartition, CycleRun
from recoup.ledger import rules, schedules
from recoup.ledger.models import Account
from recoup.promises import service as promises
from recoup.strategy import planning

K = rules.YEAR_PPM
BIG = 1_000_000_000  # "no watermark": more days than any account can have


@dataclass
class CycleResult:
    run_id: int
    as_of: dt.date
    partitions_done: int
    partitions_skipped: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)


class _Sql:
    """The few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def days_to_d(self, col: str) -> str:
        """Whole days from the date in `col` to the run date :d."""
        if self.pg:
            return f"(CAST(:d AS DATE) - {col})"
        return f"CAST(julianday(:d) - julianday({col}) AS INTEGER)"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})" if self.pg else f"MAX({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})" if self.pg else f"MIN({a}, {b})"

    def sum(self, expr: str) -> str:
        # PostgreSQL's SUM(bigint) is NUMERIC, whose "/" is not integer division.
        return f"CAST(SUM({expr}) AS BIGINT)" if self.pg else f"SUM({expr})"

    def unpaid(self, col: str) -> str:
        # Spelled as the partial index ix_instalment_unpaid is, so that the planner uses it.
        return f"NOT {col}" if self.pg else f"{col} = 0"

    def analyze(self, name: str) -> str:
        # Neither database gathers statistics on temporary tables by itself. Without them
        # SQLite's planner guesses the table is large and, for every join against account,
        # first builds a Bloom filter by reading all of account (a second per million rows).
        return f"ANALYZE {name}" if self.pg else f"ANALYZE temp.{name}"

    def temp(self, name: str, select_sql: str) -> str:
        if self.pg:
            return f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {select_sql}"
        return f"CREATE TEMP TABLE {name} AS {select_sql}"


def _case_bucket(col: str, bounds: list[int]) -> str:
    parts = [f"WHEN {col} <= {int(b)} THEN 'M{i}'" for i, b in enumerate(bounds)]
    return f"(CASE {' '.join(parts)} ELSE 'M{len(bounds)}+' END)"


def _case_stage(col: str, thresholds: dict[str, int]) -> str:
    parts = [
        f"WHEN {col} >= {int(v)} THEN '{_quote(k)}'"
        for k, v in sorted(thresholds.items(), key=lambda kv: -kv[1])
    ]
    return f"(CASE {' '.join(parts)} ELSE 'current' END)"


def _case_rank(col: str, thresholds: dict[str, int]) -> str:
    names = sorted(thresholds, key=lambda k: thresholds[k])
    parts = [f"WHEN '{_quote(k)}' THEN {i + 1}" for i, k in enumerate(names)]
    return f"(CASE {col} {' '.join(parts)} ELSE 0 END)"


def _quote(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"stage name {name!r} must be letters, digits and underscores")
    return name


def _scaled(base: str, rate: str, half: bool) -> str:
    """SQL form of rules.scaled_rate_amount: base*rate/K without 64-bit overflow."""
    h = K // 2 if half else 0
    return f"(({base}) / {K}) * ({rate}) + ((({base}) % {K}) * ({rate}) + {h}) / {K}"


def partition_sql(dialect: str, settings: Settings) -> list[tuple[str, str]]:
    """The statements of one partition, in order, as (name, sql)."""
    q = _Sql(dialect)
    dd_due = q.days_to_d("i.due_date")
    dd_acc = f"COALESCE({q.days_to_d('a.accrued_through')}, {BIG})"
    unpaid_p = "(i.principal_due - i.principal_paid)"
    unpaid_all = f"({unpaid_p} + (i.interest_due - i.interest_paid) + (i.fee_due - i.fee_paid))"
    is_new = "(a.recognised_through IS NULL OR i.due_date > a.recognised_through)"
    scope = (
        f"{q.unpaid('i.is_paid')} AND i.due_date <= :d AND i.account_id >= :lo "
        f"AND i.account_id < :hi AND a.status <> 'written_off'"
        # PostgreSQL does not carry the range over the join by itself; SQLite does not need it.
        + (" AND a.id >= :lo AND a.id < :hi" if q.pg else "")
    )
    pen_days = q.greatest("0", q.least(f"{dd_due} - a.grace_days", dd_acc))
    crossed = f"{dd_due} > a.grace_days AND {dd_due} - a.grace_days <= {dd_acc}"
    agg = f"""
        SELECT i.account_id AS id,
          MIN(CASE WHEN i.due_date < :d THEN i.due_date END) AS oldest_due,
          {q.sum(f"CASE WHEN i.due_date < :d THEN {unpaid_all} ELSE 0 END")} AS od_sched,
          {q.sum(f"CASE WHEN {is_new} THEN i.interest_due ELSE 0 END")} AS rec_interest,
          {q.sum(f"CASE WHEN {is_new} THEN i.fee_due ELSE 0 END")} AS rec_fee,
          {q.sum(f"CASE WHEN i.due_date < :d THEN {unpaid_p} * {pen_days} ELSE 0 END")}
            AS pen_base,
          {
        q.sum(
            f"CASE WHEN i.due_date < :d AND {crossed} THEN a.late_fee_fixed + "
            f"({unpaid_all} * a.late_fee_rate_ppm + 500000) / 1000000 ELSE 0 END"
        )
    }
            AS lf_raw
        FROM instalment i JOIN account a ON a.id = i.account_id
        WHERE {scope}
        GROUP BY i.account_id"""
    elapsed = q.greatest("0", q.days_to_d("a.start_date"))
    cap_total = _scaled(f"a.principal * {elapsed}", "a.cap_rate_ppm", half=False)
    pen_raw = _scaled("g.pen_base", "a.penalty_rate_ppm", half=True)
    dpd = f"COALESCE({q.days_to_d('g.oldest_due')}, 0)"
    room = q.greatest("0", f"{cap_total} - (a.charges_total + g.rec_interest + g.rec_fee)")
    lf_capped = q.least("g.lf_raw", q.greatest("0", "g.room - " + q.least("g.pen_raw", "g.room")))
    # An account in an arrangement (还款计划) accrues no penalty or late fee while it lasts.
    no_charges = "CASE WHEN a.status = 'in_arrangement' THEN 0"
    # One statement: aggregate, then limit to the cap with the account's terms. The account's
    # status and currency are carried along so that the counts read `cyc` alone. MATERIALIZED
    # keeps SQLite from flattening `g` into the outer query, which would compute the room
    # under the cap (dates and all) again for every reference to it.
    step1 = f"""
        WITH g AS MATERIALIZED (
          SELECT g.id, g.oldest_due, g.od_sched, g.rec_interest, g.rec_fee,
                 {no_charges} ELSE g.lf_raw END AS lf_raw,
                 {no_charges} ELSE {pen_raw} END AS pen_raw,
                 CASE WHEN a.cap_rate_ppm IS NULL THEN NULL
                      ELSE {room}
                 END AS room,
                 {dpd} AS dpd,
                 a.status AS old_status, a.bucket AS old_bucket, a.currency,
                 a.recognised_through
          FROM ({agg}) g JOIN account a ON a.id = g.id
          WHERE a.id >= :lo AND a.id < :hi
        )
        SELECT g.id, g.oldest_due, g.od_sched, g.rec_interest, g.rec_fee, g.pen_raw, g.lf_raw,
               g.room, g.dpd, g.old_status, g.old_bucket, g.currency, g.recognised_through,
               CASE WHEN g.room IS NULL THEN g.pen_raw
                    ELSE {q.least("g.pen_raw", "g.room")} END AS pen,
               CASE WHEN g.room IS NULL THEN g.lf_raw
                    ELSE {lf_capped} END AS lf
        FROM g"""
    bucket = _case_bucket("c.dpd", settings.bucket_bounds)
    by_dpd = _case_stage("c.dpd", settings.stage_thresholds)
    # A stage the strategy moved the account into is kept while it is overdue (rules.stage_after).
    stage = (
        f"(CASE WHEN c.dpd <= 0 THEN {by_dpd} "
        f"WHEN {_case_rank(by_dpd, settings.stage_thresholds)} >= "
        f"{_case_rank('account.stage', settings.stage_thresholds)} THEN {by_dpd} "
        "ELSE account.stage END)"
    )
    new_status = (
        "CASE WHEN account.status IN ('current', 'delinquent') THEN "
        "(CASE WHEN c.dpd > 0 THEN 'delinquent' ELSE 'current' END) "
        "ELSE account.status END"
    )
    new_status_c = new_status.replace("account.status", "c.old_status")
    cols = "account_id, instalment_seq, entry_date, kind, component, amount, created_at"
    # Only the accounts the aggregate found something to recognise for (on an ordinary day,
    # those with an instalment falling due today), not every instalment of the partition again.
    recognise = f"""
        INSERT INTO ledger_entry ({cols})
        SELECT i.account_id, i.seq, i.due_date, 'recognise', '{{comp}}', i.{{comp}}_due, :now
        FROM cyc c JOIN instalment i ON i.account_id = c.id
        WHERE c.rec_{{comp}} > 0 AND {q.unpaid("i.is_paid")} AND i.due_date <= :d
          AND {is_new.replace("a.", "c.")} AND i.{{comp}}_due > 0"""
    classify = f"""
              bucket = {bucket},
              status_since = CASE WHEN ({new_status}) <> account.status THEN :d
                                  ELSE account.status_since END,
              status = {new_status}"""
    update = f"""
            UPDATE account SET
              interest_balance = account.interest_balance + c.rec_interest,
              fee_balance = account.fee_balance + c.rec_fee,
              penalty_balance = account.penalty_balance + c.pen,
              late_fee_balance = account.late_fee_balance + c.lf,
              charges_total = account.charges_total + c.rec_interest + c.rec_fee + c.pen + c.lf,
              oldest_unpaid_due = c.oldest_due,
              dpd = c.dpd,
              stage_since = CASE WHEN {stage} <> account.stage THEN :d
                                 ELSE account.stage_since END,
              stage = {stage},
              overdue_amount = c.od_sched + account.penalty_balance + c.pen
                               + account.late_fee_balance + c.lf,
              recognised_through = :d,
              accrued_through = :d{{classify}}
            FROM cyc c
            WHERE account.id = c.id AND account.id >= :lo AND account.id < :hi"""
    updates = [
        # PostgreSQL compares the old and new values of indexed columns (bucket, status) and
        # keeps the update on its page (HOT) when they are equal: one statement. SQLite rewrites
        # the index entries of every row whose UPDATE names an indexed column, changed or not,
        # so there bucket and status are set by a second statement only where they change.
        ("update", update.format(classify="," + classify) if q.pg else update.format(classify="")),
    ]
    if not q.pg:
        updates.append(
            (
                "reclassify",
                f"""
            UPDATE account SET{classify}
            FROM cyc c
            WHERE account.id = c.id AND account.id >= :lo AND account.id < :hi
              AND (c.old_bucket <> {bucket} OR c.old_status <> ({new_status_c}))""",
            )
        )
    entries = [
        ("recognise_interest", recognise.format(comp="interest")),
        ("recognise_fee", recognise.format(comp="fee")),
        (
            "accrue_penalty",
            f"""
            INSERT INTO ledger_entry ({cols})
            SELECT id, NULL, :d, 'accrual', 'penalty', pen, :now FROM cyc WHERE pen > 0""",
        ),
        (
            "accrue_late_fee",
            f"""
            INSERT INTO ledger_entry ({cols})
            SELECT id, NULL, :d, 'accrual', 'late_fee', lf, :now FROM cyc WHERE lf > 0""",
        ),
    ]
    m0 = rules.bucket_for(0, settings.bucket_bounds)
    s0 = rules.stage_for(0, settings.stage_thresholds)
    tuning = [
        # Per transaction, PostgreSQL only. JIT compilation costs more than it saves on these
        # statements; the aggregate wants more than the default 4 MB to hash in memory; and a
        # partition need not wait for its WAL to reach the disk: if the server crashed first,
        # the partition would be lost whole (its record with it) and the resumed run redoes it.
        ("jit", "SET LOCAL jit = off"),
        ("work_mem", "SET LOCAL work_mem = '256MB'"),
        ("synchronous_commit", "SET LOCAL synchronous_commit = off"),
    ]
    return [
        *(tuning if q.pg else []),
        ("drop", "DROP TABLE IF EXISTS cyc"),
        ("aggregate", q.temp("cyc", step1)),
        ("analyze", q.analyze("cyc")),
        # PostgreSQL: update the accounts first, so that the foreign-key checks of the ledger
        # entries find each account row already locked by this transaction.
        *(updates + entries if q.pg else entries + updates),
        (
            "cure",
            f"""
            UPDATE account SET
              dpd = 0, bucket = '{m0}', stage = '{s0}', oldest_unpaid_due = NULL,
              stage_since = CASE WHEN account.stage <> '{s0}' THEN :d
                                 ELSE account.stage_since END,
              overdue_amount = account.penalty_balance + account.late_fee_balance,
              status_since = CASE WHEN account.status = 'delinquent' THEN :d
                                  ELSE account.status_since END,
              status = CASE WHEN account.status = 'delinquent' THEN 'current'
                            ELSE account.status END
            WHERE account.id >= :lo AND account.id < :hi
              AND (account.dpd > 0 OR account.status = 'delinquent')
              AND account.id NOT IN (SELECT c.id FROM cyc c)""",
        ),
    ]


# Counts and amounts of a partition, per currency: minor units of different currencies never
# add up, so amounts are kept in the counts as "<amount>:<currency>", e.g. "penalty_accrued:CNY".
COUNTS_SQL = """
    SELECT currency,
           COUNT(*) AS touched,
           SUM(CASE WHEN dpd > 0 THEN 1 ELSE 0 END) AS delinquent,
           SUM(CASE WHEN dpd > 0 AND old_status = 'current' THEN 1 ELSE 0 END) AS newly_delinquent,
           SUM(CASE WHEN room IS NOT NULL AND pen + lf < pen_raw + lf_raw THEN 1 ELSE 0 END)
             AS capped,
           SUM(pen) AS penalty_accrued,
           SUM(lf) AS late_fees_charged,
           SUM(rec_interest) AS interest_recognised,
           SUM(rec_fee) AS fees_recognised
    FROM cyc
    GROUP BY currency"""

AMOUNT_KEYS = ("penalty_accrued", "late_fees_charged", "interest_recognised", "fees_recognised")
COUNT_KEYS = ("touched", "delinquent", "newly_delinquent", "capped", "cured")
ACTION_KEYS = ("actions_planned", "actions_blocked", "actions_cancelled", "messages_queued")


def amount_key(amount: str, currency: str) -> str:
    return f"{amount}:{currency}"


def split_amount_key(key: str) -> tuple[str, str] | None:
    """("penalty_accrued", "CNY") for "penalty_accrued:CNY"; None for a plain count."""
    name, sep, currency = key.partition(":")
    return (name, currency) if sep else None


def _bounds(id_min: int, id_max: int, n: int) -> list[tuple[int, int]]:
    """n contiguous, non-empty-width ranges [lo, hi) covering id_min..id_max."""
    span = max(1, id_max - id_min + 1)
    step = -(-span // n)
    out = []
    for p in range(n):
        lo = id_min + p * step
        hi = min(id_min + (p + 1) * step, id_max + 1)
        out.append((lo, max(lo, hi)))
    return out


def start_run(session: Session, as_of: dt.date, partitions: int) -> CycleRun:
    """Create the run of a date, or return the unfinished one to resume it."""
    later = session.scalar(
        select(CycleRun.as_of)
        .where(CycleRun.as_of > as_of)
        .order_by(CycleRun.as_of.desc())
        .limit(1)
    )
    if later is not None:
        raise Invalid(
            "as_of",
            as_of.isoformat(),
            f"the cycle has already run for a later date ({later.isoformat()}); "
            "dates cannot go backwards",
        )
    unfinished = session.scalar(
        select(CycleRun.as_of)
        .where(CycleRun.as_of < as_of, CycleRun.status != "completed")
        .limit(1)
    )
    if unfinished is not None:
        raise Conflict(
            f"the run for {unfinished.isoformat()} did not finish; run that date again first"
        )
    run = session.scalar(select(CycleRun).where(CycleRun.as_of == as_of))
    if run is not None:
        return run
    id_min, id_max = session.execute(select(func.min(Account.id), func.max(Account.id))).one()
    run = CycleRun(
        as_of=as_of,
        status="running",
        partitions=partitions,
        id_min=id_min or 0,
        id_max=id_max or 0,
        counts={},
        started_at=utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def run_partition(
    conn: Connection,
    run: CycleRun,
    partition: int,
    lo: int,
    hi: int,
    statements: list[tuple[str, str]],
    plan: planning.Plan | None = None,
    default_zone: str = "Asia/Shanghai",
) -> dict[str, int] | None:
    """Do one partition inside the caller's transaction; None if it was already done."""
    t0 = time.perf_counter()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(CyclePartition).values(
                    run_id=run.id,
                    partition=partition,
                    id_from=lo,
                    id_to=hi,
                    accounts=0,
                    counts={},
                    finished_at=utcnow(),
                    seconds=0.0,
                )
            )
    except IntegrityError:
        return None  # done already, by an earlier attempt or by another worker
    params: dict[str, Any] = {"d": run.as_of, "lo": lo, "hi": hi, "now": utcnow()}
    counts: dict[str, int] = {}
    for name, sql in statements:
        if name == "analyze":  # cyc is complete: read its counts
            counts.update(dict.fromkeys(("touched", "delinquent", "newly_delinquent", "capped"), 0))
            for row in conn.execute(text(COUNTS_SQL)).mappings():
                for key in ("touched", "delinquent", "newly_delinquent", "capped"):
                    counts[key] += int(row[key])
                for key in AMOUNT_KEYS:
                    counts[amount_key(key, row["currency"])] = int(row[key])
        result = conn.execute(text(sql), params)
        if name == "cure":
            counts["cured"] = int(result.rowcount or 0)
    # Promises to pay against the payments up to D, before planning reads promise_state.
    counts.update(promises.check_promises(conn, run.as_of, lo, hi, params["now"]))
    # Arrangements: instalments paid, broken ones back to delinquent, before planning.
    counts.update(check_arrangements(conn, run.as_of, lo, hi, params["now"]))
    if plan is not None and not plan.empty:  # planning reads `cyc` too
        counts.update(
            planning.plan_partition(conn, plan, run.as_of, lo, hi, default_zone, params["now"])
        )
        # The messages among the actions, for the outbox, in this same transaction.
        counts["messages_queued"] = outbox.enqueue_planned(conn, run.as_of, lo, hi, params["now"])
    conn.execute(text("DROP TABLE IF EXISTS cyc"))
    conn.execute(
        update(CyclePartition)
        .where(CyclePartition.run_id == run.id, CyclePartition.partition == partition)
        .values(
            accounts=counts.get("touched", 0),
            counts=counts,
            finished_at=utcnow(),
            seconds=time.perf_counter() - t0,
        )
    )
    return counts


@contextmanager
def _checkpointer(engine: Engine, conn: Connection) -> Iterator[None]:
    """SQLite: copy the write-ahead log back into the database file from a second thread while
    the run goes on, as PostgreSQL's checkpointer does, instead of at every partition's commit
    on the run's own connection (a third of a run's time at a million accounts). A passive
    checkpoint never blocks the writer; whatever is left is copied before this returns."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:" or "mode=memory" in path:
        yield
        return
    raw: Any = conn.connection.driver_connection
    stop = threading.Event()

    def checkpoint_loop() -> None:
        other = sqlite3.connect(path, timeout=30, check_same_thread=False)
        try:
            while not stop.wait(0.2):
                other.execute("PRAGMA wal_checkpoint(PASSIVE)")
            other.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            other.close()

    raw.execute("PRAGMA wal_autocheckpoint=0")
    worker = threading.Thread(target=checkpoint_loop, name="recoup-checkpoint", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()
        raw.execute("PRAGMA wal_autocheckpoint=1000")


def run_cycle(
    engine: Engine,
    as_of: dt.date,
    *,
    partitions: int | None = None,
    only: list[int] | None = None,
    settings: Settings | None = None,
    on_partition: Callable[[int, int], None] | None = None,
    fail_after: int | None = None,
    connection: Connection | None = None,
) -> CycleResult:
    """Run (or resume) the cycle for `as_of`. `only` limits the work to some partitions, for
    spreading one date over several workers. `fail_after` is a test hook that raises after that
    many partitions have committed, to simulate a crash. With `connection` (already in a
    transaction) everything runs inside it, partitions as savepoints: the strategy dry run
    uses that and rolls the whole thing back."""
    settings = settings or get_settings()
    t0 = time.perf_counter()

    @contextmanager
    def session_tx() -> Iterator[Session]:
        if connection is None:
            with Session(engine) as session, session.begin():
                yield session
        else:
            # commit() releases this session's savepoint; the caller's transaction stays open
            # (closing without it would roll the savepoint back).
            with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
                yield session
                session.commit()

    with session_tx() as session:
        run = start_run(session, as_of, partitions or settings.cycle_partitions)
        session.flush()
        session.expunge(run)
    statements = partition_sql(engine.dialect.name, settings)
    if connection is None:
        with engine.connect() as conn:
            plan = planning.compile_plan(conn, as_of, settings.plan_catch_up_days)
    else:
        plan = planning.compile_plan(connection, as_of, settings.plan_catch_up_days)
    # Generated schedules not all stored: the instalments falling due by D (the aggregate) and
    # within the longest reminder lead (planning) are written first, in a transaction of their
    # own (a run killed after it finds them written when it starts again).
    through = as_of + dt.timedelta(days=max(0, plan.max_lead if not plan.empty else 0))
    if connection is None:
        with engine.begin() as conn:
            schedules.store_due(conn, through)
    else:
        schedules.store_due(connection, through)
    bounds = _bounds(run.id_min, run.id_max, run.partitions)
    todo = [p for p in range(len(bounds)) if only is None or p in only]
    done = skipped = 0
    lock = threading.Lock()

    def next_partition() -> int | None:
        with lock:
            if not todo:
                return None
            if fail_after is not None and done >= fail_after:
                raise RuntimeError(f"simulated crash after {done} partitions")
            return todo.pop(0)

    def partitions_on(conn: Connection, nested: bool) -> None:
        nonlocal done, skipped
        while (p := next_partition()) is not None:
            lo, hi = bounds[p]
            with conn.begin_nested() if nested else conn.begin():
                counts = run_partition(
                    conn, run, p, lo, hi, statements, plan, settings.default_timezone
                )
            with lock:
                if counts is None:
                    skipped += 1
                else:
                    done += 1
                if on_partition is not None:
                    on_partition(p, len(bounds))

    def worker() -> None:
        with engine.connect() as conn, _checkpointer(engine, conn):
            with conn.begin():
                planning.prepare(conn, plan, as_of)
            try:
                partitions_on(conn, nested=False)
            finally:
                with conn.begin():
                    planning.finish(conn)

    # PostgreSQL: several partitions at once, each on its own connection (they touch disjoint
    # ranges of accounts). A crash simulated by `fail_after` stays sequential, so that exactly
    # that many partitions are done.
    workers = 1
    if connection is None and engine.dialect.name == "postgresql" and fail_after is None:
        workers = max(1, min(settings.cycle_workers, len(todo)))
    if connection is not None:
        planning.prepare(connection, plan, as_of)
        partitions_on(connection, nested=True)
        planning.finish(connection)
    elif workers == 1:
        worker()
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="recoup-cycle") as pool:
            futures = [pool.submit(worker) for _ in range(workers)]
            wait(futures, return_when=FIRST_EXCEPTION)
            with lock:
                if any(f.done() and f.exception() is not None for f in futures):
                    todo.clear()  # the others stop after the partition in hand
            wait(futures)
            for future in futures:
                error = future.exception()
                if error is not None:
                    raise error
    elapsed = time.perf_counter() - t0
    with session_tx() as session:
        run = session.get_one(CycleRun, run.id)
        rows = session.scalars(select(CyclePartition).where(CyclePartition.run_id == run.id)).all()
        totals = dict.fromkeys(
            COUNT_KEYS + promises.CHECK_KEYS + (ACTION_KEYS if not plan.empty else ()), 0
        )
        for row in rows:
            for key, value in row.counts.items():
                totals[key] = totals.get(key, 0) + int(value)
        run.duration_seconds = (run.duration_seconds or 0.0) + elapsed
        if len(rows) == run.partitions:
            run.status = "completed"
            run.finished_at = utcnow()
            totals["accounts"] = int(session.scalar(select(func.count(Account.id))) or 0)
        run.counts = totals
        result = CycleResult(run.id, as_of, done, skipped, elapsed, dict(totals))
    return result


def list_runs(session: Session, limit: int = 50, offset: int = 0) -> list[CycleRun]:
    return list(
        session.scalars(
            select(CycleRun).order_by(CycleRun.as_of.desc()).limit(limit).offset(offset)
        )
    )


def last_completed_run(session: Session) -> CycleRun | None:
    """The run of the latest business date that finished for every account."""
    return session.scalar(
        select(CycleRun)
        .where(CycleRun.status == "completed")
        .order_by(CycleRun.as_of.desc())
        .limit(1)
    )


def count_runs(session: Session) -> int:
    return int(session.scalar(select(func.count(CycleRun.id))) or 0)


def get_run(session: Session, as_of: dt.date) -> CycleRun:
    run = session.scalar(select(CycleRun).where(CycleRun.as_of == as_of))
    if run is None:
        raise NotFound(f"the cycle has not run for {as_of.isoformat()}")
    return run
