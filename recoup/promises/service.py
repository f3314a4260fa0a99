"""Use cases of promises to pay (承诺还款, PTP): take one, cancel one, list them, check them
in the daily cycle, and the kept rate per collector and team.

An account has at most one open promise: a new one replaces (cancels) the open one in the same
transaction. The account's `promise_state` (none | pending | kept | broken) follows the state
of its latest promise that was not cancelled; the strategy's segments read it.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, Date, TextClause, bindparam, case, func, select, text
from sqlalchemy.orm import Session

from recoup.access.service import Principal, audit, list_teams, list_users
from recoup.core.db import UtcDateTime
from recoup.core.errors import Conflict, FieldError, Invalid, NotFound
from recoup.core.settings import Settings, get_settings
from recoup.ledger.service import Page, cached_balances, get_account
from recoup.promises import rules
from recoup.promises.models import Promise
from recoup.workspace.service import check_account_access, scope_clause

# Counts the daily cycle records for each partition (recoup.cycle.service).
CHECK_KEYS = ("promises_kept", "promises_partly_kept", "promises_broken")


# --------------------------------------------------------------------------- taking promises


def create_promise(
    session: Session,
    principal: Principal,
    account_id: int,
    amount: int,
    due_date: dt.date,
    channel: str | None = None,
    *,
    today: dt.date,
    interaction_id: int | None = None,
    note: str | None = None,
    currency: str | None = None,
) -> Promise:
    """Take a promise to pay `amount` (minor units of the account's currency; `currency`, when
    given, must be that one) by `due_date`. Replaces the account's open promise, if any.
    Refused with every reason at once (Invalid), before anything is written."""
    settings = get_settings()
    check_account_access(session, principal, account_id)
    account = get_account(session, account_id)
    # Serialise promises of one account (PostgreSQL): two at once would both stay open.
    session.refresh(account, with_for_update=True)
    errors = rules.promise_problems(
        amount,
        due_date,
        channel,
        today=today,
        owed=rules.owed_total(cached_balances(account)),
        max_days=settings.promise_max_days,
    )
    if currency is not None and currency.upper() != account.currency:
        errors.append(
            FieldError(
                "currency",
                currency,
                f"the account is in {account.currency} / 币种须与账户一致（{account.currency}）",
            )
        )
    if errors:
        raise Invalid(errors=errors)
    replaced = list(
        session.scalars(
            select(Promise).where(Promise.account_id == account_id, Promise.status == "open")
        )
    )
    for old in replaced:
        old.status = "cancelled"
    promise = Promise(
        account_id=account_id,
        interaction_id=interaction_id,
        amount=amount,
        currency=account.currency,
        created_on=today,
        due_date=due_date,
        channel=channel,
        status="open",
        paid_amount=0,
        user_id=principal.user_id or None,
        team_id=principal.team_id,
        created_by=principal.username,
        note=note,
    )
    session.add(promise)
    session.flush()
    for old in replaced:
        audit(
            session,
            principal,
            "cancel",
            "promise",
            old.id,
            account_id=account_id,
            detail={"reason": "replaced", "replaced_by": promise.id},
        )
    account.promise_state = "pending"
    audit(
        session,
        principal,
        "create",
        "promise",
        promise.id,
        account_id=account_id,
        detail={
            "amount": amount,
            "currency": account.currency,
            "due_date": due_date.isoformat(),
            "channel": channel,
        },
    )
    return promise


def get_promise(session: Session, principal: Principal, promise_id: int) -> Promise:
    promise = session.get(Promise, promise_id)
    if promise is None:
        raise NotFound(f"no promise {promise_id} / 承诺不存在")
    check_account_access(session, principal, promise.account_id)
    return promise


def cancel_promise(session: Session, principal: Principal, promise_id: int, reason: str) -> Promise:
    """Cancel an open promise (e.g. taken by mistake). The reason goes to the audit log and the
    promise's note."""
    promise = get_promise(session, principal, promise_id)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("reason", reason, "say why the promise is cancelled / 请填写取消原因")
    if promise.status != "open":
        raise Conflict(
            f"promise {promise_id} is {promise.status}: only an open promise can be cancelled "
            "/ 只能取消未结的承诺"
        )
    promise.status = "cancelled"
    line = f"cancelled by {principal.username}: {reason}"
    promise.note = f"{promise.note}\n{line}" if promise.note else line
    session.flush()
    account = get_account(session, promise.account_id)
    account.promise_state = _latest_state(session, promise.account_id)
    audit(
        session,
        principal,
        "cancel",
        "promise",
        promise.id,
        account_id=promise.account_id,
        detail={"reason": reason},
    )
    return promise


def _latest_state(session: Session, account_id: int) -> str:
    status = session.scalar(
        select(Promise.status)
        .where(Promise.account_id == account_id, Promise.status != "cancelled")
        .order_by(Promise.id.desc())
        .limit(1)
    )
    return "none" if status is None else rules.STATE_OF_STATUS[status]


def list_promises(
    session: Session,
    principal: Principal,
    account_id: int | None = None,
    status: str | None = None,
    due_from: dt.date | None = None,
    due_to: dt.date | None = None,
    *,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """The promises the principal may see, newest first."""
    if status is not None and status not in rules.STATUSES:
        raise Invalid("status", status, f"one of {', '.join(rules.STATUSES)} / 状态无效")
    if account_id is not None:
        check_account_access(session, principal, account_id)
    where: list[Any] = [scope_clause(principal, Promise.account_id)]
    if account_id is not None:
        where.append(Promise.account_id == account_id)
    if status is not None:
        where.append(Promise.status == status)
    if due_from is not None:
        where.append(Promise.due_date >= due_from)
    if due_to is not None:
        where.append(Promise.due_date <= due_to)
    total = session.scalar(select(func.count(Promise.id)).where(*where))
    rows = session.scalars(
        select(Promise).where(*where).order_by(Promise.id.desc()).limit(limit).offset(offset)
    )
    return Page(list(rows), int(total or 0), limit, offset)


# --------------------------------------------------------------------------- the daily check


def _sql(sql: str) -> TextClause:
    """Dates and instants bound in the storage form of their columns (SQLite compares text)."""
    types: dict[str, Any] = {
        "d": Date(),
        "cutoff": Date(),
        "now": UtcDateTime(),
        "due_at": UtcDateTime(),
    }
    return text(sql).bindparams(
        *(bindparam(name, type_=t) for name, t in types.items() if re.search(rf":{name}\b", sql))
    )


def check_sql(dialect: str) -> list[tuple[str, str]]:
    """The statements of the check of one partition [lo, hi), in order, as (name, sql)."""
    pg = dialect == "postgresql"
    paid = (
        "(SELECT COALESCE(SUM(y.amount), 0) FROM payment y WHERE y.account_id = p.account_id "
        "AND y.status = 'posted' AND y.value_date >= p.created_on AND y.value_date <= :d)"
    )
    if pg:  # SUM(bigint) is NUMERIC on PostgreSQL
        paid = f"CAST({paid} AS BIGINT)"
    # Every open promise of the partition with what was paid since it was made, and what it
    # becomes (rules.verdict): kept as soon as paid in full, broken or partly kept only after
    # its due date plus the grace days (due_date < :cutoff, cutoff = as_of - grace days).
    work = f"""
        SELECT x.id, x.account_id, x.paid,
               CASE WHEN x.paid >= x.amount THEN 'kept'
                    WHEN x.due_date < :cutoff THEN
                      (CASE WHEN x.paid > 0 THEN 'partly_kept' ELSE 'broken' END)
                    ELSE 'open' END AS new_status
        FROM (SELECT p.id, p.account_id, p.amount, p.due_date, {paid} AS paid
              FROM promise p
              WHERE p.status = 'open' AND p.account_id >= :lo AND p.account_id < :hi) x"""
    create = (
        f"CREATE TEMP TABLE ptp ON COMMIT DROP AS {work}"
        if pg
        else f"CREATE TEMP TABLE ptp AS {work}"
    )
    state = (
        "(CASE t.new_status WHEN 'open' THEN 'pending' WHEN 'kept' THEN 'kept' ELSE 'broken' END)"
    )
    return [
        ("drop", "DROP TABLE IF EXISTS ptp"),
        ("work", create),
        (
            "promise",
            """
            UPDATE promise SET status = t.new_status, paid_amount = t.paid, checked_on = :d
            FROM ptp t
            WHERE promise.id = t.id
              AND (promise.status <> t.new_status OR promise.paid_amount <> t.paid
                   OR promise.checked_on IS NULL OR promise.checked_on <> :d)""",
        ),
        (
            # The account follows its latest promise that was not cancelled: the open one, as a
            # new promise cancels the open one before it.
            "account",
            f"""
            UPDATE account SET promise_state = {state}
            FROM ptp t
            WHERE account.id = t.account_id AND account.id >= :lo AND account.id < :hi
              AND t.id = (SELECT MAX(q.id) FROM promise q
                          WHERE q.account_id = t.account_id AND q.status <> 'cancelled')
              AND account.promise_state <> {state}""",
        ),
        (
            # The account's collector follows a broken promise up the next morning.
            # One task per promise (uq_work_task_promise), however often the cycle runs.
            "task",
            """
            INSERT INTO work_task (account_id, kind, due_at, user_id, status, promise_id, note,
                                   created_by, created_at)
            SELECT t.account_id, 'broken_promise', :due_at, s.user_id, 'open', t.id,
                   CASE t.new_status
                     WHEN 'broken' THEN 'Promise to pay broken / 承诺还款未兑现'
                     ELSE 'Promise to pay partly kept / 承诺还款部分兑现' END,
                   'cycle', :now
            FROM ptp t LEFT JOIN assignment s ON s.account_id = t.account_id
            WHERE t.new_status IN ('broken', 'partly_kept')
              AND NOT EXISTS (SELECT 1 FROM work_task w
                              WHERE w.kind = 'broken_promise' AND w.promise_id = t.id)""",
        ),
    ]


def follow_up_at(as_of: dt.date, settings: Settings) -> dt.datetime:
    """When the follow-up of a promise found broken on `as_of` is due: the next day at
    `promise_follow_up_time` in the business time zone, as UTC."""
    local = dt.datetime.combine(
        as_of + dt.timedelta(days=1),
        settings.promise_follow_up_time,
        tzinfo=zoneinfo.ZoneInfo(settings.business_timezone),
    )
    return local.astimezone(dt.UTC)


def check_promises(
    conn: Connection,
    as_of: dt.date,
    lo: int,
    hi: int,
    now: dt.datetime,
    *,
    settings: Settings | None = None,
) -> dict[str, int]:
    """Check the open promises of the accounts with lo <= id < hi (the cycle's partition)
    against the payments posted up to `as_of`, in the caller's transaction. Set-based; running
    it again for the same date changes nothing. Returns the counts of promises newly kept,
    partly kept and broken."""
    settings = settings or get_settings()
    params: dict[str, Any] = {
        "d": as_of,
        "cutoff": as_of - dt.timedelta(days=settings.promise_grace_days),
        "lo": lo,
        "hi": hi,
        "now": now,
        "due_at": follow_up_at(as_of, settings),
    }
    counts = dict.fromkeys(CHECK_KEYS, 0)
    for name, sql in check_sql(conn.dialect.name):
        conn.execute(_sql(sql), params)
        if name == "work":
            for status, n in conn.execute(
                text("SELECT new_status, COUNT(*) FROM ptp GROUP BY new_status")
            ):
                if status != "open":
                    counts[f"promises_{status}"] = int(n)
    conn.execute(text("DROP TABLE IF EXISTS ptp"))
    return counts


# --------------------------------------------------------------------------- kept rate


@dataclass
class PromiseStats:
    """Promises due in a period, of one collector or team, in one currency."""

    user_id: int | None
    team_id: int | None
    name: str
    currency: str
    made: int
    kept: int
    partly_kept: int
    broken: int
    open: int
    kept_rate: Decimal | None  # kept / (kept + partly_kept + broken); None if none resolved
    promised_amount: int
    paid_amount: int


UNASSIGNED = "(none) / 无"


def promise_stats(
    session: Session,
    group_by: Literal["user", "team"],
    date_from: dt.date,
    date_to: dt.date,
) -> list[PromiseStats]:
    """Kept rate of the promises due from `date_from` through `date_to` (cancelled ones left
    out), per collector or team who took them. Money of different currencies never adds up, so
    there is a row per currency."""
    errors = []
    if group_by not in ("user", "team"):
        errors.append(FieldError("group_by", group_by, "user or team / 须为 user 或 team"))
    if date_to < date_from:
        errors.append(
            FieldError("date_to", date_to.isoformat(), "before date_from / 结束日期早于开始日期")
        )
    if errors:
        raise Invalid(errors=errors)
    key = Promise.user_id if group_by == "user" else Promise.team_id

    def n(status: str) -> Any:
        return func.sum(case((Promise.status == status, 1), else_=0))

    rows = session.execute(
        select(
            key,
            Promise.currency,
            func.count(Promise.id),
            n("kept"),
            n("partly_kept"),
            n("broken"),
            n("open"),
            func.sum(Promise.amount),
            func.sum(Promise.paid_amount),
        )
        .where(
            Promise.status != "cancelled",
            Promise.due_date >= date_from,
            Promise.due_date <= date_to,
        )
        .group_by(key, Promise.currency)
    ).all()
    if group_by == "user":
        names = {u.id: u.display_name for u in list_users(session)}
    else:
        names = {t.id: t.name for t in list_teams(session)}
    out = []
    for ident, currency, made, kept, partly, broken, open_, promised, paid in rows:
        kept, partly, broken = int(kept or 0), int(partly or 0), int(broken or 0)
        out.append(
            PromiseStats(
                user_id=ident if group_by == "user" else None,
                team_id=ident if group_by == "team" else None,
                name=names.get(ident, UNASSIGNED) if ident is not None else UNASSIGNED,
                currency=currency,
                made=int(made),
                kept=kept,
                partly_kept=partly,
                broken=broken,
                open=int(open_ or 0),
                kept_rate=rules.kept_rate(kept, partly, broken),
                promised_amount=int(promised or 0),
                paid_amount=int(paid or 0),
            )
        )
    out.sort(key=lambda r: (r.name, r.currency))
    return out
