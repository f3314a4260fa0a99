"""Use cases of the collector's workspace.

Scope: a collector or an agency user sees only the accounts assigned to them or to their team
(分案); every other role that may read the workspace sees every account.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from sqlalchemy import (
    ColumnElement,
    Connection,
    Date,
    Float,
    String,
    bindparam,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from recoup.access.models import AppUser, Team
from recoup.access.service import Principal, audit, audit_many, jsonable
from recoup.core import bulk
from recoup.core.db import UtcDateTime, utcnow
from recoup.core.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from recoup.core.settings import get_settings
from recoup.ledger.models import Account, Debtor, Portfolio
from recoup.ledger.service import get_account
from recoup.promises.models import Promise
from recoup.strategy.models import PlannedAction
from recoup.workspace import rules
from recoup.workspace.models import Assignment, AssignmentHistory, AssignmentRule, WorkTask

TASK_KINDS = ("callback", "broken_promise", "broken_arrangement", "follow_up")


def scope_clause(principal: Principal, account_id_col: Any) -> ColumnElement[bool]:
    """A WHERE condition limiting `account_id_col` to what the principal may see."""
    if not principal.is_scoped:
        return true()
    # A collector sees their own accounts and their team's; an agency user the agency's.
    mine = Assignment.user_id == principal.user_id
    if principal.team_id is not None:
        mine = or_(mine, Assignment.team_id == principal.team_id)
    return exists().where(Assignment.account_id == account_id_col, mine)


def can_see_account(session: Session, principal: Principal, account_id: int) -> bool:
    if not principal.is_scoped:
        return True
    return (
        session.scalar(
            select(Account.id).where(Account.id == account_id, scope_clause(principal, Account.id))
        )
        is not None
    )


def check_account_access(session: Session, principal: Principal, account_id: int) -> None:
    """NotFound for an account that does not exist, Forbidden for one assigned elsewhere."""
    get_account(session, account_id)
    if not can_see_account(session, principal, account_id):
        raise Forbidden(
            f"account {account_id} is not assigned to you or your team / 该账户未分配给您或您的小组"
        )


def create_task(
    session: Session,
    account_id: int,
    kind: str,
    due_at: dt.datetime,
    *,
    by: str,
    user_id: int | None = None,
    note: str | None = None,
    promise_id: int | None = None,
    arrangement_id: int | None = None,
    interaction_id: int | None = None,
) -> WorkTask:
    """A follow-up task for a person; without `user_id` it goes to the account's collector."""
    if kind not in TASK_KINDS:
        raise Invalid("kind", kind, f"one of {', '.join(TASK_KINDS)}")
    if due_at.tzinfo is None:
        raise Invalid("due_at", due_at.isoformat(), "give a time with its zone")
    if user_id is None:
        user_id = session.scalar(
            select(Assignment.user_id).where(Assignment.account_id == account_id)
        )
    task = WorkTask(
        account_id=account_id,
        kind=kind,
        due_at=due_at,
        user_id=user_id,
        note=note,
        promise_id=promise_id,
        arrangement_id=arrangement_id,
        interaction_id=interaction_id,
        created_by=by,
    )
    session.add(task)
    session.flush()
    return task


def close_task(
    session: Session, task_id: int, principal: Principal, status: str = "done"
) -> WorkTask:
    task = session.get(WorkTask, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    check_account_access(session, principal, task.account_id)
    if status not in ("done", "cancelled"):
        raise Invalid("status", status, "done or cancelled")
    if task.status == "open":
        task.status = status
        task.done_at = utcnow()
    return task


# --------------------------------------------------------------------------- assignment rules

RULE_FIELDS = (
    "name",
    "priority",
    "stages",
    "buckets",
    "portfolio_ids",
    "regions",
    "languages",
    "min_overdue",
    "skill",
    "match_language",
    "match_region",
    "team_id",
    "is_active",
)


def _check_rule(session: Session, values: dict[str, Any]) -> None:
    settings = get_settings()
    errors: list[FieldError] = []
    stages = set(settings.stage_thresholds)
    for s in values.get("stages") or []:
        if s not in stages:
            errors.append(FieldError("stages", s, f"one of {', '.join(stages)} / 未知的催收阶段"))
    buckets = settings.bucket_names
    for b in values.get("buckets") or []:
        if b not in buckets:
            errors.append(FieldError("buckets", b, f"one of {', '.join(buckets)} / 未知的账龄段"))
    pf_ids = list(values.get("portfolio_ids") or [])
    if pf_ids:
        found = set(session.scalars(select(Portfolio.id).where(Portfolio.id.in_(pf_ids))))
        errors += [
            FieldError("portfolio_ids", p, "no such portfolio / 资产包不存在")
            for p in pf_ids
            if p not in found
        ]
    team_id = values.get("team_id")
    if team_id is not None and session.get(Team, team_id) is None:
        errors.append(FieldError("team_id", team_id, "no such team / 小组不存在"))
    if values.get("min_overdue") is not None and values["min_overdue"] < 0:
        errors.append(FieldError("min_overdue", values["min_overdue"], "0 or more / 不能为负"))
    if errors:
        raise Invalid(errors=errors)


def list_rules(session: Session) -> Sequence[AssignmentRule]:
    return session.scalars(
        select(AssignmentRule).order_by(AssignmentRule.priority, AssignmentRule.id)
    ).all()


def get_rule(session: Session, rule_id: int) -> AssignmentRule:
    rule = session.get(AssignmentRule, rule_id)
    if rule is None:
        raise NotFound(f"no assignment rule {rule_id} / 分案规则不存在")
    return rule


def create_rule(session: Session, principal: Principal, **values: Any) -> AssignmentRule:
    """A new assignment rule; fields as AssignmentRule (RULE_FIELDS)."""
    unknown = set(values) - set(RULE_FIELDS)
    if unknown:
        raise Invalid(sorted(unknown)[0], None, "not a field of an assignment rule")
    if not values.get("name"):
        raise Invalid("name", values.get("name"), "required / 必填")
    _check_rule(session, values)
    if session.scalar(select(AssignmentRule.id).where(AssignmentRule.name == values["name"])):
        raise Conflict(f"an assignment rule named {values['name']!r} exists / 规则名称已存在")
    rule = AssignmentRule(**values)
    session.add(rule)
    session.flush()
    audit(session, principal, "create", "assignment_rule", rule.id, detail=jsonable(values))
    return rule


def update_rule(
    session: Session, principal: Principal, rule_id: int, **changes: Any
) -> AssignmentRule:
    rule = get_rule(session, rule_id)
    unknown = set(changes) - set(RULE_FIELDS)
    if unknown:
        raise Invalid(sorted(unknown)[0], None, "not a field of an assignment rule")
    for key in (
        "name",
        "priority",
        "stages",
        "buckets",
        "portfolio_ids",
        "regions",
        "languages",
        "match_language",
        "match_region",
        "is_active",
    ):
        if key in changes and changes[key] is None:
            raise Invalid(key, None, "cannot be empty / 不能为空")
    _check_rule(session, changes)
    if "name" in changes and changes["name"] != rule.name:
        taken = session.scalar(
            select(AssignmentRule.id).where(
                AssignmentRule.name == changes["name"], AssignmentRule.id != rule_id
            )
        )
        if taken:
            raise Conflict(f"an assignment rule named {changes['name']!r} exists / 规则名称已存在")
    before = {k: getattr(rule, k) for k in changes}
    for key, value in changes.items():
        setattr(rule, key, value)
    session.flush()
    audit(
        session,
        principal,
        "update",
        "assignment_rule",
        rule.id,
        detail={"before": jsonable(before), "after": jsonable(changes)},
    )
    return rule


def _spec(rule: Any) -> rules.RuleSpec:
    """A rule (ORM object or row) as values."""
    return rules.RuleSpec(
        id=rule.id,
        priority=rule.priority,
        stages=tuple(rule.stages or ()),
        buckets=tuple(rule.buckets or ()),
        portfolio_ids=tuple(rule.portfolio_ids or ()),
        regions=tuple(rule.regions or ()),
        languages=tuple(rule.languages or ()),
        min_overdue=rule.min_overdue,
        skill=rule.skill,
        match_language=bool(rule.match_language),
        match_region=bool(rule.match_region),
        team_id=rule.team_id,
    )


# --------------------------------------------------------------------------- run_assignment

_CANDIDATES = """
SELECT a.id AS account_id, a.stage, a.bucket, a.portfolio_id, a.overdue_amount,
       d.region, d.language,
       CASE WHEN s.account_id IS NULL THEN 0 ELSE 1 END AS had,
       s.user_id AS old_user_id, s.team_id AS old_team_id, s.stage AS old_stage
FROM account a
JOIN debtor d ON d.id = a.debtor_id
LEFT JOIN assignment s ON s.account_id = a.id
WHERE a.status IN ({worked})
  AND (s.account_id IS NULL OR s.stage <> a.stage
       OR (s.user_id IS NULL AND s.rule_id IS NOT NULL))
"""
_CANDIDATE_SCHEMA: dict[str, Any] = {
    "account_id": pl.Int64,
    "stage": pl.String,
    "bucket": pl.String,
    "portfolio_id": pl.Int64,
    "overdue_amount": pl.Int64,
    "region": pl.String,
    "language": pl.String,
    "had": pl.Int64,
    "old_user_id": pl.Int64,
    "old_team_id": pl.Int64,
    "old_stage": pl.String,
}


def _quoted(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _rule_mask(rule: rules.RuleSpec) -> pl.Expr:
    """Vectorised form of rules.rule_matches."""
    mask = pl.lit(True)
    if rule.stages:
        mask &= pl.col("stage").is_in(list(rule.stages))
    if rule.buckets:
        mask &= pl.col("bucket").is_in(list(rule.buckets))
    if rule.portfolio_ids:
        mask &= pl.col("portfolio_id").is_in(list(rule.portfolio_ids))
    if rule.regions:
        mask &= pl.col("region").is_in(list(rule.regions)).fill_null(False)
    if rule.languages:
        mask &= pl.col("language").is_in(list(rule.languages)).fill_null(False)
    if rule.min_overdue is not None:
        mask &= pl.col("overdue_amount") >= rule.min_overdue
    return mask


def assign_after_cycle(session: Session, by: str = "worker") -> dict[str, int] | None:
    """The case assignment that follows the daily cycle, for the latest completed run not yet
    followed by one (None when there is none): run with that run's date and marked on it
    (`assigned_at`) in the same transaction, so that a worker stopped between the cycle and
    the assignment does it at its next round, and only once."""
    from recoup.cycle.models import CycleRun

    run = session.scalar(
        select(CycleRun)
        .where(CycleRun.status == "completed")
        .order_by(CycleRun.as_of.desc())
        .limit(1)
    )
    if run is None or run.assigned_at is not None:
        return None
    counts = run_assignment(session, run.as_of, by=by)
    # Earlier runs left unassigned are covered by this one.
    session.execute(
        update(CycleRun)
        .where(CycleRun.assigned_at.is_(None), CycleRun.as_of <= run.as_of)
        .values(assigned_at=utcnow())
    )
    return counts


# Two runs of the assignment at once (the worker after the cycle, a manager's button) would
# both count the collectors' loads before either writes: one waits for the other instead.
_ASSIGNMENT_LOCK = int.from_bytes(hashlib.sha256(b"recoup:assignment").digest()[:8], "big") >> 1


def _lock_assignment(conn: Connection) -> None:
    """Hold the assignment's lock until the caller's transaction ends. PostgreSQL: a
    transaction advisory lock. SQLite: the database's write lock, taken by a write that
    changes nothing, before anything is read."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ASSIGNMENT_LOCK})
    else:
        conn.execute(text("UPDATE assignment_rule SET priority = priority WHERE 1 = 0"))


def run_assignment(db: Session | Connection, as_of: dt.date, by: str = "system") -> dict[str, int]:
    """Assign the worked accounts (分案), set-based, in the caller's transaction.

    Settled and written-off accounts are unassigned. Worked accounts (delinquent, in an
    arrangement) without an assignment, or assigned at another stage than their current one,
    or left with a team only by a rule, take the first matching active rule by priority; among
    the users of the rule's team who may take them they are dealt best first (overdue amount)
    to the least loaded, never above a user's max_load. Without such a user the account goes
    to the rule's team only. Accounts whose stage did not change keep their collector. One
    assignment_history row is written per change."""
    conn = db.connection() if isinstance(db, Session) else db
    _lock_assignment(conn)
    now = utcnow()
    note = f"as of {as_of.isoformat()}"  # the business date whose stages were used
    counts = {"unassigned": 0, "assigned": 0, "stage_changed": 0, "team_only": 0, "unmatched": 0}

    # (a) closed accounts leave their collector
    closed = select(Account.id).where(Account.status.in_(rules.CLOSED_STATUSES))
    conn.execute(
        insert(AssignmentHistory).from_select(
            ["account_id", "previous_user_id", "team_id", "stage", "reason", "note", "at", "by"],
            select(
                Assignment.account_id,
                Assignment.user_id,
                Assignment.team_id,
                Assignment.stage,
                literal("unassign"),
                literal(note),
                literal(now, UtcDateTime()),
                literal(by),
            ).where(Assignment.account_id.in_(closed)),
        )
    )
    counts["unassigned"] = conn.execute(
        delete(Assignment).where(Assignment.account_id.in_(closed))
    ).rowcount

    # (b) the accounts to place and the rule of each
    cand = bulk.fetch(
        conn,
        _CANDIDATES.format(worked=_quoted(rules.WORKED_STATUSES)),
        _CANDIDATE_SCHEMA,
    )
    if cand.height == 0:
        return counts
    rule_rows = conn.execute(
        select(AssignmentRule.__table__)
        .where(AssignmentRule.is_active == true())
        .order_by(AssignmentRule.priority, AssignmentRule.id)
    ).all()
    specs = [_spec(r) for r in rule_rows]
    rule_of = pl.lit(None, dtype=pl.Int64)
    for spec in reversed(specs):  # the first match wins: build the chain from the last rule
        rule_of = pl.when(_rule_mask(spec)).then(pl.lit(spec.id, dtype=pl.Int64)).otherwise(rule_of)
    cand = cand.with_columns(rule_of.alias("rule_id")).sort(
        ["overdue_amount", "account_id"], descending=[True, False]
    )

    # (c) deal each rule's accounts among its users, least loaded first
    users = _collectors(conn)
    load: dict[int, int] = {
        int(u or 0): int(n)
        for u, n in conn.execute(
            select(Assignment.user_id, func.count())
            .where(Assignment.user_id.is_not(None))
            .group_by(Assignment.user_id)
        ).all()
    }
    # Accounts a rule places again leave their user's load (those no rule matches stay put).
    moving = (
        cand.filter((pl.col("had") == 1) & pl.col("rule_id").is_not_null())["old_user_id"]
        .drop_nulls()
        .value_counts()
    )
    for u, n in moving.iter_rows():
        load[int(u)] = load.get(int(u), 0) - int(n)
    new_user = np.full(cand.height, -1, dtype=np.int64)
    new_team = np.full(cand.height, -1, dtype=np.int64)
    rule_col = cand["rule_id"].fill_null(-1).to_numpy()
    for spec in specs:
        idx = np.flatnonzero(rule_col == spec.id)
        if len(idx) == 0:
            continue
        anywhere = replace(spec, match_language=False, match_region=False)
        base = [u for u in users if rules.can_take(anywhere, u, None, None)]
        keys = [
            k for k, on in (("language", spec.match_language), ("region", spec.match_region)) if on
        ]
        sub = cand[idx].with_columns(pl.Series("pos", idx))
        groups = (
            [(tuple(k), g) for k, g in sub.group_by(keys, maintain_order=True)]
            if keys
            else [((), sub)]
        )
        for key, group in groups:  # one group per language / region asked to match
            values = dict(zip(keys, key, strict=True))
            eligible = [
                u
                for u in base
                if rules.can_take(spec, u, values.get("language"), values.get("region"))
            ]
            pos = group["pos"].to_numpy()
            chosen = rules.deal(
                [load.get(u.id, 0) for u in eligible], [u.max_load for u in eligible], len(pos)
            )
            ok = chosen >= 0
            if eligible:
                user_ids = np.array([u.id for u in eligible], dtype=np.int64)
                team_ids = np.array(
                    [-1 if u.team_id is None else u.team_id for u in eligible], dtype=np.int64
                )
                new_user[pos[ok]] = user_ids[chosen[ok]]
                new_team[pos[ok]] = team_ids[chosen[ok]]
                for j, n in enumerate(np.bincount(chosen[ok], minlength=len(eligible))):
                    load[eligible[j].id] = load.get(eligible[j].id, 0) + int(n)
            if spec.team_id is not None:
                new_team[pos[~ok]] = spec.team_id
    cand = cand.with_columns(
        pl.Series("user_id", new_user).replace(-1, None),
        pl.Series("team_id", new_team).replace(-1, None),
    )
    counts["unmatched"] = cand.filter(pl.col("rule_id").is_null()).height
    placed = cand.filter(pl.col("user_id").is_not_null() | pl.col("team_id").is_not_null())
    # A team-only account that still finds nobody is not a change.
    placed = placed.filter(
        (pl.col("had") == 0)
        | (pl.col("old_stage") != pl.col("stage"))
        | pl.col("user_id").ne_missing(pl.col("old_user_id"))
        | pl.col("team_id").ne_missing(pl.col("old_team_id"))
    )
    if placed.height == 0:
        return counts
    counts["assigned"] = placed.height
    counts["stage_changed"] = placed.filter(
        (pl.col("had") == 1) & (pl.col("old_stage") != pl.col("stage"))
    ).height
    counts["team_only"] = placed.filter(pl.col("user_id").is_null()).height

    # (d) write the assignments and their history
    ids = placed.filter(pl.col("had") == 1)["account_id"].to_list()
    for start in range(0, len(ids), 5000):
        conn.execute(delete(Assignment).where(Assignment.account_id.in_(ids[start : start + 5000])))
    stamp = pl.lit(now).dt.convert_time_zone("UTC")
    bulk.write_frame(
        conn,
        "assignment",
        placed.select(
            "account_id",
            "user_id",
            "team_id",
            "stage",
            "rule_id",
            stamp.alias("assigned_at"),
            pl.lit(by).alias("assigned_by"),
        ),
    )
    bulk.write_frame(
        conn,
        "assignment_history",
        placed.select(
            "account_id",
            "user_id",
            "team_id",
            pl.col("old_user_id").alias("previous_user_id"),
            "stage",
            pl.when((pl.col("had") == 1) & (pl.col("old_stage") != pl.col("stage")))
            .then(pl.lit("stage_change"))
            .otherwise(pl.lit("rule"))
            .alias("reason"),
            "rule_id",
            pl.lit(note).alias("note"),
            stamp.alias("at"),
            pl.lit(by).alias("by"),
        ),
    )
    return counts


def _collectors(conn: Connection) -> list[rules.CollectorFacts]:
    rows = conn.execute(
        select(
            AppUser.id,
            AppUser.team_id,
            AppUser.skills,
            AppUser.languages,
            AppUser.regions,
            AppUser.max_load,
            AppUser.role,
            Team.kind,
        )
        .outerjoin(Team, Team.id == AppUser.team_id)
        .where(AppUser.is_active == true(), AppUser.role.in_(("collector", "agency")))
        .order_by(AppUser.id)
    ).all()
    return [
        rules.CollectorFacts(
            id=r[0],
            team_id=r[1],
            skills=tuple(r[2] or ()),
            languages=tuple(r[3] or ()),
            regions=tuple(r[4] or ()),
            max_load=r[5],
            role=r[6],
            team_kind=r[7] or "internal",
        )
        for r in rows
    ]


# --------------------------------------------------------------------------- manual assignment


def reassign(
    session: Session,
    principal: Principal,
    account_ids: Sequence[int],
    *,
    user_id: int | None = None,
    team_id: int | None = None,
    note: str | None = None,
) -> int:
    """Give accounts to a user (and the user's team) or to a team only, by hand. The account
    then stays there while its stage does not change. Returns the number of accounts moved."""
    if not principal.can("assignment:manage"):
        raise Forbidden("you may not assign accounts / 您无权分案")
    if user_id is None and team_id is None:
        raise Invalid("user_id", None, "give a user or a team / 请指定催收员或小组")
    ids = sorted(set(account_ids))
    if not ids:
        raise Invalid("account_ids", [], "at least one account / 至少一个账户")
    if user_id is not None:
        user = session.get(AppUser, user_id)
        if user is None or not user.is_active or user.role not in ("collector", "agency"):
            raise Invalid("user_id", user_id, "an active collector or agency user / 须为在岗催收员")
        if team_id is not None and team_id != user.team_id:
            raise Invalid("team_id", team_id, "not the user's team / 非该催收员所在小组")
        team_id = user.team_id
    elif team_id is not None and session.get(Team, team_id) is None:
        raise Invalid("team_id", team_id, "no such team / 小组不存在")
    found = dict(
        session.execute(select(Account.id, Account.stage).where(Account.id.in_(ids))).all()
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no account {', '.join(map(str, missing[:20]))} / 账户不存在")
    previous = dict(
        session.execute(
            select(Assignment.account_id, Assignment.user_id).where(Assignment.account_id.in_(ids))
        ).all()
    )
    session.execute(delete(Assignment).where(Assignment.account_id.in_(ids)))
    now = utcnow()
    by = principal.username
    session.execute(
        insert(Assignment),
        [
            {
                "account_id": i,
                "user_id": user_id,
                "team_id": team_id,
                "stage": found[i],
                "rule_id": None,
                "assigned_at": now,
                "assigned_by": by,
            }
            for i in ids
        ],
    )
    session.execute(
        insert(AssignmentHistory),
        [
            {
                "account_id": i,
                "user_id": user_id,
                "team_id": team_id,
                "previous_user_id": previous.get(i),
                "stage": found[i],
                "reason": "manual",
                "note": note,
                "at": now,
                "by": by,
            }
            for i in ids
        ],
    )
    audit_many(
        session,
        principal,
        "reassign",
        "assignment",
        [
            {
                "entity_id": i,
                "account_id": i,
                "detail": {
                    "user_id": user_id,
                    "team_id": team_id,
                    "previous_user_id": previous.get(i),
                    "note": note,
                },
            }
            for i in ids
        ],
    )
    session.flush()
    return len(ids)


def assignment_history(session: Session, account_id: int) -> Sequence[AssignmentHistory]:
    return session.scalars(
        select(AssignmentHistory)
        .where(AssignmentHistory.account_id == account_id)
        .order_by(AssignmentHistory.at, AssignmentHistory.id)
    ).all()


def current_assignment(session: Session, account_id: int) -> Assignment | None:
    return session.get(Assignment, account_id)


# --------------------------------------------------------------------------- the worklist


@dataclass(frozen=True)
class WorkItem:
    account_id: int
    external_ref: str
    debtor_name: str
    dpd: int
    bucket: str
    stage: str
    overdue_amount: int
    currency: str
    risk_band: str | None
    reason: str  # the kind that leads (least effort, then rules.WORK_KINDS)
    reasons: list[str]
    due_at: dt.datetime | None
    score: float


def _day_bounds(now: dt.datetime) -> tuple[dt.date, dt.datetime, dt.datetime]:
    """Today in the business zone, and its start and end as UTC instants."""
    zone = ZoneInfo(get_settings().business_timezone)
    local = now.astimezone(zone)
    start = dt.datetime.combine(local.date(), dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return local.date(), start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _queue_of(
    session: Session, principal: Principal, user_id: int | None, team_id: int | None
) -> tuple[int | None, int | None, bool]:
    """Whose queue: (user, team whose team-only accounts are included, team as a whole)."""
    if principal.is_scoped:
        if (user_id is not None and user_id != principal.user_id) or (
            team_id is not None and team_id != principal.team_id
        ):
            raise Forbidden("you may see only your own worklist / 您只能查看自己的工作列表")
        if team_id is not None:
            return None, team_id, True
        return principal.user_id, principal.team_id, False
    if user_id is not None:
        user = session.get(AppUser, user_id)
        if user is None:
            raise NotFound(f"no user {user_id} / 用户不存在")
        return user.id, user.team_id, False
    if team_id is not None:
        return None, team_id, True
    return principal.user_id, principal.team_id, False


def _mine(has_user: bool, has_team: bool, whole_team: bool) -> Any:
    """The account ids of the queue (parameters :u and :t), as a CTE driven by
    ix_assignment_user / ix_assignment_team."""
    parts = []
    if whole_team:
        parts.append(select(Assignment.account_id).where(Assignment.team_id == bindparam("t")))
    else:
        if has_user:
            parts.append(select(Assignment.account_id).where(Assignment.user_id == bindparam("u")))
        if has_team:
            parts.append(
                select(Assignment.account_id).where(
                    Assignment.team_id == bindparam("t"), Assignment.user_id.is_(None)
                )
            )
    if not parts:
        return select(Assignment.account_id).where(false()).cte("mine")
    return (parts[0] if len(parts) == 1 else union_all(*parts)).cte("mine")


def _work(mine: Any, kinds: tuple[str, ...] | None) -> Any:
    """One row per piece of work due: (account_id, kind, due_at), for the accounts of `mine`
    (or, when mine is None, those of the expanding parameter :ids). Parameters :now, :today,
    :today_start and :end."""
    wanted = set(kinds) if kinds else set(rules.WORK_KINDS)
    parts = []
    human = [k for k in rules.HUMAN_ACTIONS if k in wanted]
    pa = PlannedAction.__table__
    pr = Promise.__table__
    wt = WorkTask.__table__

    def scoped(col: Any) -> Any:
        if mine is None:
            return col.in_(bindparam("ids", expanding=True))
        return true()  # joined from mine (see source)

    def source(table: Any) -> Any:
        # Driven by the queue's accounts: one index probe per account into each (small,
        # partial) index of pending work.
        if mine is None:
            return table
        return mine.join(table, table.c.account_id == mine.c.account_id)

    def const(value: str) -> Any:
        # Written into the SQL, not bound: a partial index is usable only when the query's
        # condition visibly implies the index's (PostgreSQL generic plans, SQLite).
        return literal_column("'" + value.replace("'", "''") + "'")

    if human:
        parts.append(
            select(
                pa.c.account_id,
                pa.c.action_type.label("kind"),
                pa.c.scheduled_at.label("due_at"),
            )
            .select_from(source(pa))
            .where(
                scoped(pa.c.account_id),
                pa.c.status == const("planned"),
                pa.c.action_type.in_([const(k) for k in rules.HUMAN_ACTIONS]),
                *([pa.c.action_type == const(human[0])] if len(human) == 1 else []),
                pa.c.scheduled_at <= bindparam("now", type_=UtcDateTime()),
            )
        )
    if "promise_due" in wanted:
        parts.append(
            select(
                pr.c.account_id,
                literal("promise_due", String()).label("kind"),
                bindparam("today_start", type_=UtcDateTime()).label("due_at"),
            )
            .select_from(source(pr))
            .where(
                scoped(pr.c.account_id),
                pr.c.status == const("open"),
                pr.c.due_date == bindparam("today", type_=Date()),
            )
        )
    task_kinds = [k for k in TASK_KINDS if k in wanted]
    if task_kinds:
        parts.append(
            select(wt.c.account_id, wt.c.kind, wt.c.due_at)
            .select_from(source(wt))
            .where(
                scoped(wt.c.account_id),
                wt.c.status == const("open"),
                wt.c.kind.in_([const(k) for k in task_kinds]),
                wt.c.due_at < bindparam("end", type_=UtcDateTime()),
            )
        )
    if not parts:
        return None
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("work")


Factors = tuple[tuple[str, float], ...]


@lru_cache(maxsize=256)
def _worklist_query(
    queue: tuple[bool, bool, bool],
    kinds: tuple[str, ...] | None,
    filters: tuple[bool, bool, bool, bool],
    efforts: Factors,
    probs: Factors,
    weights: Factors,
) -> Any:
    """The worklist's statement for one shape of request, built once (values are bound)."""
    mine = _mine(*queue)
    work = _work(mine, kinds)
    if work is None:
        return None
    effort_of = dict(efforts)
    effort = case(*[(work.c.kind == k, effort_of.get(k, 1.0)) for k in rules.WORK_KINDS], else_=1.0)
    per_account = (
        select(
            work.c.account_id,
            func.min(effort).label("effort"),
            func.min(work.c.due_at).label("due_at"),
        )
        .group_by(work.c.account_id)
        .subquery("per_account")
    )
    prob = case(
        *[(Account.risk_band == band, p) for band, p in probs if band != "default"],
        else_=dict(probs).get("default", 0.25),
    )
    weight = case(*[(Account.stage == s, w) for s, w in weights], else_=1.0)
    score = (cast(Account.overdue_amount, Float) * prob * weight / per_account.c.effort).label(
        "score"
    )
    q = select(
        Account.id,
        Account.external_ref,
        Account.debtor_id,
        Account.dpd,
        Account.bucket,
        Account.stage,
        Account.overdue_amount,
        Account.currency,
        Account.risk_band,
        per_account.c.due_at,
        score,
        func.count().over().label("total"),
    ).join(per_account, per_account.c.account_id == Account.id)
    has_stage, has_bucket, has_min, has_search = filters
    if has_stage:
        q = q.where(Account.stage == bindparam("stage"))
    if has_bucket:
        q = q.where(Account.bucket == bindparam("bucket"))
    if has_min:
        q = q.where(Account.overdue_amount >= bindparam("min_overdue"))
    if has_search:
        q = q.join(Debtor, Debtor.id == Account.debtor_id).where(
            or_(
                Account.external_ref.ilike(bindparam("pattern"), escape="\\"),
                Debtor.name.ilike(bindparam("pattern"), escape="\\"),
            )
        )
    return q.order_by(score.desc(), Account.dpd.desc(), Account.id)


@lru_cache(maxsize=64)
def _reasons_query(kinds: tuple[str, ...] | None) -> Any:
    detail = _work(None, kinds)
    return None if detail is None else select(detail.c.account_id, detail.c.kind)


def worklist(
    session: Session,
    principal: Principal,
    now: dt.datetime,
    *,
    user_id: int | None = None,
    team_id: int | None = None,
    kinds: Sequence[str] | None = None,
    stage: str | None = None,
    bucket: str | None = None,
    min_overdue: int | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[WorkItem]]:
    """The queue of a collector (or, for a manager, of `user_id` or the team `team_id`): one
    item per account with work due by the end of today (call tasks and visits planned by the
    strategy, promises due today, broken promises, callbacks and other tasks), ordered by
    expected value (rules.expected_value, computed here in SQL), then DPD, then account id.
    A manager without `user_id` or `team_id` sees their own queue."""
    if now.tzinfo is None:
        raise Invalid("now", now.isoformat(), "give a time with its zone")
    for k in kinds or ():
        if k not in rules.WORK_KINDS:
            raise Invalid("kinds", k, f"one of {', '.join(rules.WORK_KINDS)} / 未知的工作类型")
    settings = get_settings()
    who, team, whole_team = _queue_of(session, principal, user_id, team_id)
    today, today_start, end = _day_bounds(now)
    kinds_key = tuple(sorted(set(kinds))) if kinds else None
    efforts = settings.worklist_effort
    base = _worklist_query(
        (who is not None, team is not None, whole_team),
        kinds_key,
        (stage is not None, bucket is not None, min_overdue is not None, bool(search)),
        tuple(sorted(efforts.items())),
        tuple(sorted(settings.worklist_probability.items())),
        tuple(sorted(settings.worklist_stage_weight.items())),
    )
    if base is None:
        return 0, []
    params: dict[str, Any] = {
        "u": who,
        "t": team,
        "now": now,
        "today": today,
        "today_start": today_start,
        "end": end,
        "stage": stage,
        "bucket": bucket,
        "min_overdue": min_overdue,
    }
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["pattern"] = f"%{escaped}%"
    params = {k: v for k, v in params.items() if v is not None}
    rows = session.execute(base.limit(limit).offset(offset), params).all()
    if not rows:
        total = 0
        if offset:  # past the end: count without the page
            counted = select(func.count()).select_from(base.subquery())
            total = session.execute(counted, params).scalar() or 0
        return total, []
    names = dict(
        session.execute(
            select(Debtor.id, Debtor.name).where(Debtor.id.in_({r.debtor_id for r in rows}))
        ).all()
    )
    reasons: dict[int, set[str]] = {}
    detail = _reasons_query(kinds_key)
    if detail is not None:
        found_rows = session.execute(
            detail,
            {
                "ids": [r.id for r in rows],
                "now": now,
                "today": today,
                "today_start": today_start,
                "end": end,
            },
        ).all()
        for acc, kind in found_rows:
            reasons.setdefault(acc, set()).add(kind)
    items = []
    for r in rows:
        found = sorted(
            reasons.get(r.id, ()),
            key=lambda k: (efforts.get(k, 1.0), rules.WORK_KINDS.index(k)),
        )
        items.append(
            WorkItem(
                account_id=r.id,
                external_ref=r.external_ref,
                debtor_name=names.get(r.debtor_id, ""),
                dpd=r.dpd,
                bucket=r.bucket,
                stage=r.stage,
                overdue_amount=r.overdue_amount,
                currency=r.currency,
                risk_band=r.risk_band,
                reason=found[0] if found else "",
                reasons=found,
                due_at=r.due_at,
                score=float(r.score or 0.0),
            )
        )
    return int(rows[0].total), items


def next_account(
    session: Session,
    principal: Principal,
    now: dt.datetime,
    *,
    skip: Sequence[int] = (),
    **filters: Any,
) -> WorkItem | None:
    """The top of the worklist, leaving out the accounts in `skip` (already worked or passed
    over in this sitting): the next account in one keystroke."""
    skipped = set(skip)
    _, items = worklist(session, principal, now, limit=len(skipped) + 1, offset=0, **filters)
    for item in items:
        if item.account_id not in skipped:
            return item
    return None


def open_tasks(
    session: Session,
    principal: Principal,
    *,
    user_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, Sequence[WorkTask]]:
    """Open tasks of the caller (or, for an unscoped role, of `user_id`), soonest first."""
    if principal.is_scoped and user_id not in (None, principal.user_id):
        raise Forbidden("you may see only your own tasks / 您只能查看自己的任务")
    who = principal.user_id if user_id is None else user_id
    cond = [WorkTask.status == "open", WorkTask.user_id == who]
    total = session.scalar(select(func.count()).select_from(WorkTask).where(*cond)) or 0
    tasks = session.scalars(
        select(WorkTask)
        .where(*cond)
        .order_by(WorkTask.due_at, WorkTask.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return total, tasks
