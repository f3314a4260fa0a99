"""Use cases of arrangements (还款计划) and waivers (减免), with approvals.

An arrangement is proposed by a user; within the proposer's own approval limit it is approved
and activated at once, above it it waits in the approval queue for a manager whose limit covers
it, above every limit it is refused. Activation posts the waivers to the ledger and puts the
account `in_arrangement` (its own schedule stays: a broken arrangement returns the account to
it and to its strategy). The daily cycle checks active arrangements set-based
(`check_arrangements`): payments since activation fill the instalments in due-date order; an
instalment unpaid after the grace days breaks the arrangement; everything paid completes it.

Every function takes an open `Session` and leaves committing to the caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, select, text
from sqlalchemy.orm import Session

from recoup.access import rules as access_rules
from recoup.access.service import Principal, audit
from recoup.arrangements import rules
from recoup.arrangements.models import Arrangement, ArrangementInstalment
from recoup.core.db import UtcDateTime, utcnow
from recoup.core.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from recoup.core.settings import Settings, get_settings
from recoup.ledger import service as ledger
from recoup.ledger.models import Account
from recoup.workspace.service import check_account_access, scope_clause

# Balance keys of the basis, compared to detect a stale proposal.
_BASIS_KEYS = (*rules.WAIVABLE, "overdue_amount")


def _balances(account: Account) -> dict[str, int]:
    return {
        "late_fee": account.late_fee_balance,
        "penalty": account.penalty_balance,
        "interest": account.interest_balance,
        "fee": account.fee_balance,
        "principal": account.principal_balance,
        "overdue_amount": account.overdue_amount,
    }


def _waivers_of(arr: Arrangement) -> dict[str, int]:
    return {c: int(getattr(arr, f"waive_{c}")) for c in rules.WAIVABLE}


def approver_roles(settings: Settings) -> list[str]:
    """Roles that may approve an arrangement (permission arrangement:approve) and have limits."""
    return [r for r in settings.approval_limits if access_rules.allows(r, "arrangement:approve")]


def instalments_of(session: Session, arrangement_id: int) -> list[ArrangementInstalment]:
    return list(
        session.scalars(
            select(ArrangementInstalment)
            .where(ArrangementInstalment.arrangement_id == arrangement_id)
            .order_by(ArrangementInstalment.seq)
        )
    )


def _locked_account(session: Session, account_id: int) -> Account:
    account = session.scalar(select(Account).where(Account.id == account_id).with_for_update())
    if account is None:
        raise NotFound(f"account {account_id} does not exist / 账户不存在")
    return account


def propose(
    session: Session,
    principal: Principal,
    account_id: int,
    kind: str,
    waivers: Mapping[str, int],
    instalments: Sequence[rules.PlannedInstalment],
    total_amount: int,
    reason: str | None,
    today: dt.date,
    settings: Settings | None = None,
) -> Arrangement:
    """Propose an arrangement. Within the proposer's limit it is active at once (a pure waiver
    completed); above it, queued for approval; above every limit, refused (Invalid). Invalid
    input is refused before anything is written."""
    settings = settings or get_settings()
    check_account_access(session, principal, account_id)
    errors = rules.validate_instalments(
        kind, instalments, total_amount, today, settings.arrangement_max_instalments
    )
    waivers = {c: int(a) for c, a in waivers.items() if a}
    if kind == "settlement" and waivers:
        errors.append(
            FieldError(
                "waivers",
                waivers,
                "a settlement's discount is its waiver; give only the agreed total / "
                "和解的折让即为减免，请只填写约定总额",
            )
        )
    if kind == "waiver" and not any(a > 0 for a in waivers.values()):
        errors.append(FieldError("waivers", waivers, "nothing to waive / 未填写减免金额"))
    if errors:
        raise Invalid(errors=errors)

    account = _locked_account(session, account_id)
    if account.status not in ("current", "delinquent"):
        raise Conflict(
            f"account {account_id} is {account.status}: no arrangement can be made / "
            f"账户状态为 {account.status}，不能办理还款计划或减免"
        )
    open_one = session.scalar(
        select(Arrangement.id).where(
            Arrangement.account_id == account_id, Arrangement.status.in_(rules.OPEN_STATUSES)
        )
    )
    if open_one is not None:
        raise Conflict(
            f"account {account_id} already has arrangement {open_one} open; cancel it first / "
            f"该账户已有进行中的还款计划 {open_one}"
        )
    # Interest and fees falling due by today become owed first, as a payment would see them.
    ledger.recognise_dues(session, account, today)
    balances = _balances(account)
    errors = rules.validate_waivers(waivers, balances)
    if kind == "settlement":
        owed = rules.owed_total(balances)
        if total_amount >= owed:
            errors.append(
                FieldError(
                    "total_amount",
                    total_amount,
                    f"a settlement is for less than the {owed} owed / "
                    f"和解金额须低于欠款总额 {owed}",
                )
            )
        waivers = rules.settlement_waivers(balances, total_amount)
    expected = rules.expected_total(kind, balances, account.overdue_amount, waivers)
    if expected is not None and total_amount != expected:
        what = "owed" if kind == "instalment_plan" else "overdue"
        errors.append(
            FieldError(
                "total_amount",
                total_amount,
                f"must be the {expected} {what} less the waivers / "
                f"须等于欠款减去减免后的 {expected}",
            )
        )
    if errors:
        raise Invalid(errors=errors)

    route, over, why_en, why_zh = rules.decide_route(
        principal.role, waivers, balances, settings.approval_limits, approver_roles(settings)
    )
    if route == "refuse":
        raise Invalid(f"waivers.{over}", waivers.get(over or "", 0), f"{why_en} / {why_zh}")

    arr = Arrangement(
        account_id=account_id,
        kind=kind,
        status="proposed",
        currency=account.currency,
        total_amount=total_amount,
        basis={k: int(v) for k, v in balances.items()},
        reason=reason,
        proposed_by=principal.username,
        proposed_by_id=principal.user_id or None,
        proposed_at=utcnow(),
        **{f"waive_{c}": waivers.get(c, 0) for c in rules.WAIVABLE},
    )
    session.add(arr)
    session.flush()
    session.add_all(
        ArrangementInstalment(
            arrangement_id=arr.id, seq=k, due_date=i.due_date, amount=i.amount, paid_amount=0
        )
        for k, i in enumerate(instalments, start=1)
    )
    session.flush()
    detail: dict[str, Any] = {
        "kind": kind,
        "total_amount": total_amount,
        "waivers": {c: a for c, a in waivers.items() if a},
        "route": route,
    }
    if route == "queue":
        detail["why"] = why_en
    audit(
        session, principal, "propose", "arrangement", arr.id, account_id=account_id, detail=detail
    )
    if route == "approve":
        _decide(arr, principal, "within the proposer's limit / 在提议人权限内")
        _activate(session, arr, account, today)
    return arr


def _decide(arr: Arrangement, principal: Principal, note: str | None) -> None:
    arr.decided_by = principal.username
    arr.decided_at = utcnow()
    arr.decision_note = note


def _activate(session: Session, arr: Arrangement, account: Account, today: dt.date) -> None:
    waivers = _waivers_of(arr)
    if arr.kind != "settlement" and any(waivers.values()):
        ledger.post_waiver(session, account.id, waivers, today)
    # A new dict, so the JSON column is seen as changed.
    arr.basis = {**arr.basis, "activated_on": today.isoformat()}
    if arr.kind == "waiver":
        arr.status, arr.ended_on = "completed", today
    else:
        arr.status = "active"
        account.status, account.status_since = "in_arrangement", today
    session.flush()


def get(session: Session, principal: Principal, arrangement_id: int) -> Arrangement:
    arr = session.get(Arrangement, arrangement_id)
    if arr is None:
        raise NotFound(f"arrangement {arrangement_id} does not exist / 还款计划不存在")
    check_account_access(session, principal, arr.account_id)
    return arr


def list_for_account(session: Session, principal: Principal, account_id: int) -> list[Arrangement]:
    """The account's arrangements, newest first."""
    check_account_access(session, principal, account_id)
    return list(
        session.scalars(
            select(Arrangement)
            .where(Arrangement.account_id == account_id)
            .order_by(Arrangement.proposed_at.desc(), Arrangement.id.desc())
        )
    )


def queue(session: Session, principal: Principal, *, limit: int = 100) -> list[Arrangement]:
    """Proposals waiting for approval, oldest first."""
    if not principal.can("arrangement:approve"):
        raise Forbidden("you may not approve arrangements / 无审批权限")
    return list(
        session.scalars(
            select(Arrangement)
            .where(
                Arrangement.status == "proposed", scope_clause(principal, Arrangement.account_id)
            )
            .order_by(Arrangement.proposed_at, Arrangement.id)
            .limit(limit)
        )
    )


def _open_proposal(session: Session, principal: Principal, arrangement_id: int) -> Arrangement:
    arr = session.scalar(
        select(Arrangement).where(Arrangement.id == arrangement_id).with_for_update()
    )
    if arr is None:
        raise NotFound(f"arrangement {arrangement_id} does not exist / 还款计划不存在")
    check_account_access(session, principal, arr.account_id)
    if arr.status != "proposed":
        raise Conflict(
            f"arrangement {arrangement_id} is {arr.status}, not waiting for approval / "
            f"还款计划状态为 {arr.status}，不在待审批中"
        )
    return arr


def approve(
    session: Session,
    principal: Principal,
    arrangement_id: int,
    note: str | None,
    today: dt.date,
    settings: Settings | None = None,
) -> Arrangement:
    """Approve a queued proposal and activate it. The approver's limit must cover its waivers,
    and the account's balances must still be those it was proposed on."""
    settings = settings or get_settings()
    if not principal.can("arrangement:approve"):
        raise Forbidden("you may not approve arrangements / 无审批权限")
    arr = _open_proposal(session, principal, arrangement_id)
    basis = {k: int(arr.basis.get(k, 0)) for k in _BASIS_KEYS}
    account = _locked_account(session, arr.account_id)
    ledger.recognise_dues(session, account, today)
    now = _balances(account)
    waivers = _waivers_of(arr)
    accrued: dict[str, int] = {}
    if arr.kind != "waiver":
        # Penalty interest and late fees accrued while the proposal waited (overnight, over a
        # weekend) are forgiven with it, so that the agreed amounts stand; the approver's limit
        # must cover them too. A payment, a waiver or a new instalment due since makes the
        # proposal stale (below).
        accrued = {c: now[c] - basis[c] for c in rules.ACCRUING if now[c] > basis[c]}
        if accrued:
            waivers = {c: v + accrued.get(c, 0) for c, v in waivers.items()}
            basis = {**basis, **{c: now[c] for c in accrued}}
    ok, why_en, why_zh = rules.within_limit(
        principal.role, waivers, basis, settings.approval_limits
    )
    if not ok:
        raise Forbidden(f"{why_en} / {why_zh}")
    if arr.kind == "waiver":
        # A waiver of amounts still owed stays valid while the account accrues or is paid
        # down, so long as each waived component still holds what is waived.
        short = [c for c, v in _waivers_of(arr).items() if v and now[c] < v]
        if short:
            raise Conflict(
                f"the account now owes less than the waiver forgives ({', '.join(short)}); "
                "reject it and propose again / 账户余额已低于减免金额，请驳回后重新提议"
            )
    else:
        changed = [c for c in rules.WAIVABLE if now[c] != basis[c]]
        # An extension defers what was overdue: an instalment fallen due since changes that.
        if arr.kind == "extension" and now["overdue_amount"] != basis["overdue_amount"] + sum(
            accrued.values()
        ):
            changed.append("overdue_amount")
        if changed:
            raise Conflict(
                f"the account's balances changed since the proposal ({', '.join(changed)}); "
                "reject it and propose again / 提议后账户余额已变化，请驳回后重新提议"
            )
        if accrued:
            # Kept on the arrangement: what it forgives, and what of that accrued after it was
            # proposed (a new dict, so that the JSON column is seen as changed).
            for c, v in waivers.items():
                setattr(arr, f"waive_{c}", v)
            arr.basis = {**arr.basis, "accrued_since_proposal": accrued}
    if account.status not in ("current", "delinquent"):
        raise Conflict(
            f"account {account.id} is {account.status} / 账户状态为 {account.status}，不能生效"
        )
    first = session.scalar(
        select(ArrangementInstalment.due_date)
        .where(ArrangementInstalment.arrangement_id == arr.id)
        .order_by(ArrangementInstalment.seq)
        .limit(1)
    )
    if first is not None and first < today:
        raise Conflict(
            f"the first instalment was due {first.isoformat()}, before today; propose again / "
            "首期到期日已过，请重新提议"
        )
    _decide(arr, principal, note)
    audit(
        session,
        principal,
        "approve",
        "arrangement",
        arr.id,
        account_id=arr.account_id,
        detail={"note": note} if note else {},
    )
    _activate(session, arr, account, today)
    return arr


def reject(
    session: Session, principal: Principal, arrangement_id: int, note: str | None
) -> Arrangement:
    if not principal.can("arrangement:approve"):
        raise Forbidden("you may not approve arrangements / 无审批权限")
    arr = _open_proposal(session, principal, arrangement_id)
    arr.status = "rejected"
    _decide(arr, principal, note)
    audit(
        session,
        principal,
        "reject",
        "arrangement",
        arr.id,
        account_id=arr.account_id,
        detail={"note": note} if note else {},
    )
    session.flush()
    return arr


def cancel(
    session: Session,
    principal: Principal,
    arrangement_id: int,
    note: str | None,
    today: dt.date,
) -> Arrangement:
    """Withdraw a proposal, or end an active arrangement early (waivers already posted stay);
    the account returns to its schedule and strategy."""
    arr = session.scalar(
        select(Arrangement).where(Arrangement.id == arrangement_id).with_for_update()
    )
    if arr is None:
        raise NotFound(f"arrangement {arrangement_id} does not exist / 还款计划不存在")
    check_account_access(session, principal, arr.account_id)
    if arr.status not in ("proposed", "active"):
        raise Conflict(
            f"arrangement {arrangement_id} is {arr.status} and cannot be cancelled / "
            f"还款计划状态为 {arr.status}，不能取消"
        )
    was_active = arr.status == "active"
    arr.status = "cancelled"
    arr.ended_on = today
    if arr.decided_at is None:
        _decide(arr, principal, note)
    else:
        arr.decision_note = (arr.decision_note or "") + (f"\ncancelled: {note}" if note else "")
    if was_active:
        account = _locked_account(session, arr.account_id)
        if account.status == "in_arrangement":
            account.status = "delinquent" if account.dpd > 0 else "current"
            account.status_since = today
    audit(
        session,
        principal,
        "cancel",
        "arrangement",
        arr.id,
        account_id=arr.account_id,
        detail={"was": "active" if was_active else "proposed", **({"note": note} if note else {})},
    )
    session.flush()
    return arr


# --------------------------------------------------------------------------- daily check


def _activated_on(pg: bool) -> str:
    if pg:
        return "CAST(r.basis ->> 'activated_on' AS DATE)"
    return "json_extract(r.basis, '$.activated_on')"


def _temp(pg: bool, name: str, select_sql: str) -> str:
    if pg:
        return f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {select_sql}"
    return f"CREATE TEMP TABLE {name} AS {select_sql}"


def check_arrangements(
    conn: Connection,
    as_of: dt.date,
    lo: int,
    hi: int,
    now: dt.datetime,
    settings: Settings | None = None,
) -> dict[str, int]:
    """The daily check of active arrangements of accounts lo <= id < hi, set-based, in the
    caller's transaction (run by the cycle after aging, before planning). Idempotent."""
    settings = settings or get_settings()
    pg = conn.dialect.name == "postgresql"
    big = "BIGINT" if pg else "INTEGER"
    cutoff = as_of - dt.timedelta(days=settings.arrangement_grace_days)
    zone = ZoneInfo(settings.business_timezone)
    due_at = dt.datetime.combine(
        as_of + dt.timedelta(days=1), settings.arrangement_follow_up_time, tzinfo=zone
    ).astimezone(dt.UTC)
    params: dict[str, Any] = {"d": as_of, "lo": lo, "hi": hi, "cutoff": cutoff}
    run = conn.execute
    for name in ("arrbroken", "arrinst", "arrpaid"):
        run(text(f"DROP TABLE IF EXISTS {name}"))
    # What each active arrangement has received: posted payments since its activation.
    run(
        text(
            _temp(
                pg,
                "arrpaid",
                f"""SELECT r.id, r.account_id, r.kind, r.total_amount,
                      CAST(COALESCE((SELECT SUM(p.amount) FROM payment p
                               WHERE p.account_id = r.account_id AND p.status = 'posted'
                                 AND p.value_date >= {_activated_on(pg)}
                                 AND p.value_date <= :d), 0) AS {big}) AS paid
                    FROM arrangement r
                    WHERE r.status = 'active' AND r.account_id >= :lo AND r.account_id < :hi""",
            )
        ),
        params,
    )
    # Filled in due-date (= seq) order: each instalment takes what the earlier ones left.
    run(
        text(
            _temp(
                pg,
                "arrinst",
                f"""SELECT s.id, s.arrangement_id, s.due_date, s.amount,
                      CASE WHEN s.left_over >= s.amount THEN s.amount
                           WHEN s.left_over <= 0 THEN 0 ELSE s.left_over END AS paid
                    FROM (SELECT ai.id, ai.arrangement_id, ai.due_date, ai.amount,
                            ap.paid - CAST(COALESCE((SELECT SUM(x.amount)
                                FROM arrangement_instalment x
                                WHERE x.arrangement_id = ai.arrangement_id AND x.seq < ai.seq), 0)
                              AS {big}) AS left_over
                          FROM arrangement_instalment ai JOIN arrpaid ap
                            ON ap.id = ai.arrangement_id) s""",
            )
        )
    )
    counts: dict[str, int] = {}
    counts["arrangement_instalments_updated"] = int(
        run(
            text(
                """UPDATE arrangement_instalment SET paid_amount = t.paid FROM arrinst t
                   WHERE arrangement_instalment.id = t.id
                     AND arrangement_instalment.paid_amount <> t.paid"""
            )
        ).rowcount
        or 0
    )

    # Completed: everything paid. A settlement then forgives the rest, through the ledger, for
    # the few settlements completing today (read in one query).
    settling = run(
        text("SELECT account_id FROM arrpaid WHERE kind = 'settlement' AND paid >= total_amount")
    ).all()
    if settling:
        with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
            for (account_id,) in settling:
                ledger.waive_remaining(session, account_id, as_of)
            session.commit()
    done = "SELECT id FROM arrpaid WHERE paid >= total_amount"
    settled = (
        "account.principal_balance = 0 AND account.interest_balance = 0 "
        "AND account.fee_balance = 0 AND account.penalty_balance = 0 "
        "AND account.late_fee_balance = 0 AND NOT EXISTS (SELECT 1 FROM instalment i "
        f"WHERE i.account_id = account.id AND {'NOT i.is_paid' if pg else 'i.is_paid = 0'})"
    )
    run(
        text(
            f"""UPDATE account SET
                  status = CASE WHEN {settled} THEN 'settled'
                                WHEN account.dpd > 0 THEN 'delinquent' ELSE 'current' END,
                  status_since = :d
                WHERE account.id IN (SELECT account_id FROM arrpaid WHERE paid >= total_amount)
                  AND account.status = 'in_arrangement'"""
        ),
        params,
    )
    counts["arrangements_completed"] = int(
        run(
            text(
                f"UPDATE arrangement SET status = 'completed', ended_on = :d WHERE id IN ({done})"
            ),
            params,
        ).rowcount
        or 0
    )

    # Broken: an instalment not paid in full by its due date plus the grace days.
    run(
        text(
            _temp(
                pg,
                "arrbroken",
                """SELECT ap.id, ap.account_id FROM arrpaid ap
                   WHERE ap.paid < ap.total_amount AND EXISTS (
                     SELECT 1 FROM arrinst t WHERE t.arrangement_id = ap.id
                       AND t.due_date < :cutoff AND t.paid < t.amount)""",
            )
        ),
        params,
    )
    run(
        text(
            """INSERT INTO work_task (account_id, kind, due_at, user_id, status, arrangement_id,
                                     note, created_by, created_at)
               SELECT b.account_id, 'broken_arrangement', :due_at,
                      (SELECT g.user_id FROM assignment g WHERE g.account_id = b.account_id),
                      'open', b.id, 'arrangement broken / 还款计划违约', 'system', :now
               FROM arrbroken b
               WHERE NOT EXISTS (SELECT 1 FROM work_task w
                                 WHERE w.kind = 'broken_arrangement' AND w.arrangement_id = b.id)"""
        ).bindparams(
            bindparam("due_at", type_=UtcDateTime()), bindparam("now", type_=UtcDateTime())
        ),
        {"due_at": due_at, "now": now},
    )
    # Back to its strategy: the cycle's aging and planning take it up again as delinquent.
    run(
        text(
            """UPDATE account SET status = 'delinquent', status_since = :d
               WHERE account.id IN (SELECT account_id FROM arrbroken)
                 AND account.status = 'in_arrangement'"""
        ),
        params,
    )
    counts["arrangements_broken"] = int(
        run(
            text(
                "UPDATE arrangement SET status = 'broken', ended_on = :d "
                "WHERE id IN (SELECT id FROM arrbroken)"
            ),
            params,
        ).rowcount
        or 0
    )
    for name in ("arrbroken", "arrinst", "arrpaid"):
        run(text(f"DROP TABLE IF EXISTS {name}"))
    return counts
