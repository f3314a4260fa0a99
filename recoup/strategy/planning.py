"""Planning inside the daily cycle: the strategy's steps due for each account, written as rows
of `planned_action`, set-based.

For each portfolio with a strategy in force, each arm's version is compiled once per run into
SQL: a CASE expression that gives an account its segment (the first whose conditions hold) and
a small table of the version's steps. Per partition, in the cycle's transaction, after the
accounts were aged:

1. `pacc`: the partition's open accounts of those portfolios with something overdue (read
   from the cycle's work table `cyc`, still there) or an instalment falling due within the
   longest reminder lead (`pdue`, read by due date), with their arm and segment;
2. the steps whose planned date falls in (since, D] are inserted, idempotently (unique by
   account, step and planned date), scheduled at the step's local time on D in the debtor's
   zone, inside the rule set's contact window;
3. pending actions of accounts that were paid or left their segment are cancelled;
4. the compliance guard checks the new actions (vectorised) and blocks, with rule and reason;
5. steps with a stage transition move their account's stage forward (never back).

`since` is the previous run's date (at most `plan_catch_up_days` back), so a skipped date is
caught up and a re-run date plans nothing new. The one-account form of the same decisions is
`strategy.rules.steps_due`; tests check the two agree.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, select, text

from recoup.compliance import service as compliance
from recoup.core.money import exponent
from recoup.ledger.models import Portfolio, Product
from recoup.strategy import rules
from recoup.strategy.models import StrategyAssignment, StrategyVersion


def lit(value: str) -> str:
    """A SQL string literal (values come from validated files, but tags and codes are free)."""
    return "'" + value.replace("'", "''") + "'"


def _in(col: str, values: list[str]) -> str:
    if not values:
        return "1 = 0"
    return f"{col} IN ({', '.join(lit(v) for v in values)})"


@dataclass
class ArmPlan:
    portfolio_id: int
    arm: str
    version_id: int
    slot_lo: int
    slot_hi: int
    segment_sql: str
    steps: list[dict[str, Any]]


@dataclass
class Plan:
    arms: list[ArmPlan] = field(default_factory=list)
    experiments: dict[int, str] = field(default_factory=dict)  # portfolio id -> experiment
    max_lead: int = 0
    since: dt.date | None = None

    @property
    def empty(self) -> bool:
        return not self.arms


def _amount(col: str, rng: rules.AmountRange | None, scale: int) -> list[str]:
    out = []
    if rng is not None and rng.min is not None:
        out.append(f"{col} >= {int((rng.min * scale).to_integral_value())}")
    if rng is not None and rng.max is not None:
        out.append(f"{col} <= {int((rng.max * scale).to_integral_value())}")
    return out


BALANCE = (
    "(a.principal_balance + a.interest_balance + a.fee_balance + a.penalty_balance"
    " + a.late_fee_balance)"
)


def condition_sql(
    when: rules.When, portfolio_code: str, products: dict[str, int], scale: int
) -> str:
    """SQL over `account a` (and its debtor) for a segment's conditions."""
    parts: list[str] = []
    if when.bucket is not None:
        parts.append(_in("a.bucket", when.bucket))
    if when.dpd is not None and when.dpd.min is not None:
        parts.append(f"a.dpd >= {int(when.dpd.min)}")
    if when.dpd is not None and when.dpd.max is not None:
        parts.append(f"a.dpd <= {int(when.dpd.max)}")
    parts += _amount("a.overdue_amount", when.overdue_amount, scale)
    parts += _amount(BALANCE, when.balance, scale)
    if when.risk_band is not None:
        parts.append(_in("a.risk_band", when.risk_band))
    if when.product is not None:
        ids = [str(products[c]) for c in when.product if c in products]
        parts.append(f"a.product_id IN ({', '.join(ids)})" if ids else "1 = 0")
    if when.portfolio is not None:
        parts.append("1 = 1" if portfolio_code in when.portfolio else "1 = 0")
    if when.region is not None:
        parts.append(
            "EXISTS (SELECT 1 FROM debtor dr WHERE dr.id = a.debtor_id AND "
            f"{_in('dr.region', when.region)})"
        )
    if when.kind is not None:
        parts.append(_in("a.kind", list(when.kind)))
    if when.stage is not None:
        parts.append(_in("a.stage", list(when.stage)))
    if when.promise is not None:
        parts.append(_in("a.promise_state", list(when.promise)))
    if when.flags is not None:
        active = "f.debtor_id = a.debtor_id AND f.cleared_at IS NULL AND "
        if when.flags.any_of:
            parts.append(
                f"EXISTS (SELECT 1 FROM debtor_flag f WHERE {active}"
                f"{_in('f.flag', list(when.flags.any_of))})"
            )
        if when.flags.none_of:
            parts.append(
                f"NOT EXISTS (SELECT 1 FROM debtor_flag f WHERE {active}"
                f"{_in('f.flag', list(when.flags.none_of))})"
            )
    if when.tags is not None:
        if when.tags.any_of:
            parts.append(
                "EXISTS (SELECT 1 FROM account_tag t WHERE t.account_id = a.id AND "
                f"{_in('t.tag', when.tags.any_of)})"
            )
        if when.tags.none_of:
            parts.append(
                "NOT EXISTS (SELECT 1 FROM account_tag t WHERE t.account_id = a.id AND "
                f"{_in('t.tag', when.tags.none_of)})"
            )
    return " AND ".join(parts) if parts else "1 = 1"


def segment_case(
    doc: rules.StrategyDocument, portfolio_code: str, products: dict[str, int], scale: int
) -> str:
    whens = " ".join(
        f"WHEN {condition_sql(s.when, portfolio_code, products, scale)} THEN {lit(s.id)}"
        for s in doc.segments
    )
    return f"(CASE {whens} ELSE NULL END)"


def _secs(t: dt.time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def step_rows(
    doc: rules.StrategyDocument, portfolio_id: int, version_id: int, scale: int, window: Any
) -> list[dict[str, Any]]:
    """The version's steps as rows of the `psteps` work table. The local time is kept inside
    the rule set's contact window (from its start to half an hour before its end)."""
    lo = _secs(window.window_start)
    hi = max(lo, _secs(window.window_end) - 1800)
    rows = []
    for seg, step in doc.steps():
        anchor = "pre" if step.due is not None and step.due < 0 else "due"
        if step.stage_day is not None:
            anchor = "stage"
        rows.append(
            {
                "portfolio_id": portfolio_id,
                "version_id": version_id,
                "segment": seg.id,
                "step": doc.step_key(seg, step),
                "action": step.action,
                "template": step.template,
                "anchor": anchor,
                "offs": step.due if step.due is not None else step.stage_day,
                "local_secs": min(max(_secs(step.local_time), lo), hi),
                "priority": step.priority,
                "skip_promise": 1 if step.skip_if_promise else 0,
                "skip_paid": 1 if step.skip_if_paid else 0,
                "min_amount": (
                    None
                    if step.min_amount is None
                    else int((step.min_amount * Decimal(scale)).to_integral_value())
                ),
                "transition": step.transition,
            }
        )
    return rows


def compile_plan(conn: Connection, as_of: dt.date, catch_up_days: int) -> Plan:
    """Everything planning needs for a run, read once: the strategies in force, compiled."""
    plan = Plan()
    assignments = conn.execute(select(StrategyAssignment)).all()
    if not assignments:
        return plan
    products: dict[int, dict[str, int]] = {}
    for pid, code, portfolio_id in conn.execute(
        select(Product.id, Product.code, Product.portfolio_id)
    ):
        products.setdefault(portfolio_id, {})[code] = pid
    portfolios = {p.id: p for p in conn.execute(select(Portfolio)).all()}
    for a in assignments:
        portfolio = portfolios[a.portfolio_id]
        scale = 10 ** exponent(portfolio.currency)
        window = compliance.ruleset_for(conn, a.portfolio_id, portfolio.jurisdiction)
        arms = [rules.Arm(x["arm"], int(x["version_id"]), int(x["weight"])) for x in a.arms]
        plan.experiments[a.portfolio_id] = a.experiment
        for arm, lo, hi in rules.arm_ranges(arms):
            if lo >= hi:
                continue
            version = conn.execute(
                select(StrategyVersion.document).where(StrategyVersion.id == arm.version_id)
            ).scalar_one()
            doc = rules.StrategyDocument.model_validate(version)
            plan.arms.append(
                ArmPlan(
                    a.portfolio_id,
                    arm.name,
                    arm.version_id,
                    lo if len(arms) > 1 else 0,
                    hi if len(arms) > 1 else rules.SLOTS,
                    segment_case(doc, portfolio.code, products.get(a.portfolio_id, {}), scale),
                    step_rows(doc, a.portfolio_id, arm.version_id, scale, window),
                )
            )
            for _, step in doc.steps():
                if step.due is not None and step.due < 0:
                    plan.max_lead = max(plan.max_lead, -step.due)
    previous = conn.execute(
        text("SELECT MAX(as_of) FROM cycle_run WHERE as_of < :d AND status = 'completed'"),
        {"d": as_of},
    ).scalar()
    if isinstance(previous, str):
        previous = dt.date.fromisoformat(previous)
    earliest = as_of - dt.timedelta(days=catch_up_days)
    plan.since = max(previous, earliest) if previous else as_of - dt.timedelta(days=1)
    return plan


@lru_cache(maxsize=64)
def zone_offsets(day: dt.date) -> tuple[tuple[str, int], ...]:
    """UTC offset in seconds of every IANA zone at local noon of `day` (DST-aware). Contact
    windows lie well after the night-time DST changes, so noon's offset holds for them."""
    out = []
    for name in sorted(zoneinfo.available_timezones()):
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # pragma: no cover
            continue
        noon = dt.datetime.combine(day, dt.time(12), tzinfo=zone)
        offset = noon.utcoffset()
        out.append((name, int(offset.total_seconds()) if offset is not None else 0))
    return tuple(out)


class _Sql:
    def __init__(self, pg: bool) -> None:
        self.pg = pg

    def days(self, later: str, earlier: str) -> str:
        if self.pg:
            return f"(CAST({later} AS DATE) - {earlier})"
        return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"

    def minus_days(self, n: str) -> str:
        """The run date :d minus n days, as a date."""
        if self.pg:
            return f"(CAST(:d AS DATE) - ({n}))"
        return f"date(:d, '-' || ({n}) || ' days')"

    def at_local(self, secs: str) -> str:
        """The instant :d 00:00 UTC plus `secs` seconds, in the column's storage form."""
        if self.pg:
            return f"((CAST(:d AS TIMESTAMP) + make_interval(secs => {secs})) AT TIME ZONE 'UTC')"
        return f"(strftime('%Y-%m-%d %H:%M:%S', :d, ({secs}) || ' seconds') || '.000000')"

    def slot(self, salt: int) -> str:
        return f"(((a.id * {rules.HASH_MULT} + {salt}) % {rules.HASH_MOD}) % {rules.SLOTS})"

    def temp(self, name: str, body: str) -> str:
        if self.pg:
            return f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {body}"
        return f"CREATE TEMP TABLE {name} AS {body}"


def prepare(conn: Connection, plan: Plan, as_of: dt.date) -> None:
    """Once per run, on the run's connection (kept until `finish`): the work tables of the
    steps and of the zones' UTC offsets on the run date."""
    if plan.empty:
        return
    conn.execute(text("DROP TABLE IF EXISTS psteps"))
    conn.execute(text("DROP TABLE IF EXISTS tzoff"))
    conn.execute(
        text(
            "CREATE TEMP TABLE psteps (portfolio_id INTEGER, version_id INTEGER, "
            "segment VARCHAR(64), step VARCHAR(64), action VARCHAR(32), template VARCHAR(64), "
            "anchor VARCHAR(8), offs INTEGER, local_secs INTEGER, priority INTEGER, "
            "skip_promise INTEGER, skip_paid INTEGER, min_amount BIGINT, "
            "transition VARCHAR(16))"
        )
    )
    conn.execute(
        text(
            "INSERT INTO psteps VALUES (:portfolio_id, :version_id, :segment, :step, :action, "
            ":template, :anchor, :offs, :local_secs, :priority, :skip_promise, :skip_paid, "
            ":min_amount, :transition)"
        ),
        [row for arm in plan.arms for row in arm.steps],
    )
    # Actions join their steps by segment; the stage transitions look steps up by key.
    conn.execute(text("CREATE INDEX ix_psteps ON psteps (portfolio_id, version_id, segment)"))
    conn.execute(text("CREATE INDEX ix_psteps_step ON psteps (version_id, step)"))
    conn.execute(text("CREATE TEMP TABLE tzoff (zone VARCHAR(64) PRIMARY KEY, off_secs INTEGER)"))
    conn.execute(
        text("INSERT INTO tzoff VALUES (:zone, :off)"),
        [{"zone": z, "off": o} for z, o in zone_offsets(as_of)],
    )


def finish(conn: Connection) -> None:
    for name in ("psteps", "tzoff"):
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def plan_partition(
    conn: Connection, plan: Plan, as_of: dt.date, lo: int, hi: int, default_zone: str, now: Any
) -> dict[str, int]:
    """Plan, cancel, guard and transition for accounts lo <= id < hi. Returns counts."""
    if plan.empty:
        return {}
    assert plan.since is not None
    pg = conn.dialect.name == "postgresql"
    q = _Sql(pg)
    unpaid = "NOT i.is_paid" if pg else "i.is_paid = 0"
    params: dict[str, Any] = {
        "d": as_of,
        "lo": lo,
        "hi": hi,
        "lead": as_of + dt.timedelta(days=plan.max_lead),
        "span": (as_of - plan.since).days,
        "now": now,
        "default_zone": default_zone,
    }
    # The unpaid instalments falling due from today to the longest reminder lead, read by due
    # date ("today" too: on its due date an account is not yet overdue, and its reminders stay
    # pending).
    by_due = "" if pg else " INDEXED BY ix_instalment_unpaid_due"
    for name in ("pdue", "pacc"):
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    conn.execute(
        text(
            q.temp(
                "pdue",
                f"""SELECT i.account_id AS id, i.due_date FROM instalment i{by_due}
                    WHERE {unpaid} AND i.due_date >= :d AND i.due_date <= :lead
                      AND i.account_id >= :lo AND i.account_id < :hi""",
            )
        ),
        params,
    )
    # One pass over the accounts to plan — the cycle's overdue ones (its work table `cyc`,
    # still there) and those with an instalment in `pdue`: each portfolio's arms pick the
    # version and the segment (CASE over portfolio, then over the arm's slot range).
    version_case, arm_case, segment_case_ = [], [], []
    for arm in plan.arms:
        salt = rules.experiment_salt(plan.experiments[arm.portfolio_id])
        cond = f"a.portfolio_id = {arm.portfolio_id}"
        if not (arm.slot_lo == 0 and arm.slot_hi == rules.SLOTS):
            cond += f" AND {q.slot(salt)} >= {arm.slot_lo} AND {q.slot(salt)} < {arm.slot_hi}"
        version_case.append(f"WHEN {cond} THEN {arm.version_id}")
        arm_case.append(f"WHEN {cond} THEN {lit(arm.arm)}")
        segment_case_.append(f"WHEN {cond} THEN {arm.segment_sql}")
    portfolios = ", ".join(str(p) for p in plan.experiments)
    body = f"""SELECT a.id, a.debtor_id, a.portfolio_id,
                   CASE {" ".join(version_case)} END AS version_id,
                   CASE {" ".join(arm_case)} END AS arm,
                   CASE {" ".join(segment_case_)} END AS segment,
                   a.dpd, a.stage, a.stage_since, a.overdue_amount, a.promise_state
            FROM account a
            WHERE a.id IN (SELECT c.id FROM cyc c WHERE c.dpd > 0
                           UNION SELECT u.id FROM pdue u)
              AND a.id >= :lo AND a.id < :hi AND a.portfolio_id IN ({portfolios})
              AND a.status NOT IN ('settled', 'written_off', 'in_arrangement')"""
    conn.execute(text(q.temp("pacc", body)), params)
    conn.execute(text("CREATE INDEX ix_pacc_id ON pacc (id)"))
    for name in ("pacc", "pdue"):
        conn.execute(text(f"ANALYZE {name}" if pg else f"ANALYZE temp.{name}"))

    # The debtor's UTC offset on the run date, read only for the actions written.
    zone_off = (
        "COALESCE((SELECT z.off_secs FROM debtor dr JOIN tzoff z ON z.zone = dr.timezone "
        "WHERE dr.id = p.debtor_id), "
        "(SELECT z.off_secs FROM tzoff z WHERE z.zone = :default_zone), 0)"
    )
    cols = (
        "account_id, debtor_id, portfolio_id, strategy_version_id, arm, segment, step, "
        "action_type, template, stage, planned_date, scheduled_at, priority, amount, status, "
        "cycle_date, created_at, updated_at"
    )
    common = (
        "s.skip_promise = 0 OR p.promise_state <> 'pending') "
        "AND (s.min_amount IS NULL OR p.overdue_amount > s.min_amount"
    )
    join = (
        "FROM pacc p JOIN psteps s ON s.portfolio_id = p.portfolio_id "
        "AND s.version_id = p.version_id AND s.segment = p.segment"
    )
    conflict = " ON CONFLICT (account_id, step, planned_date) DO NOTHING"

    def insert(planned: str, where: str, extra_from: str = "") -> str:
        return f"""
            INSERT INTO planned_action ({cols})
            SELECT p.id, p.debtor_id, p.portfolio_id, p.version_id, p.arm, p.segment, s.step,
                   s.action, s.template, p.stage, {planned},
                   {q.at_local(f"s.local_secs - {zone_off}")}, s.priority, p.overdue_amount,
                   'planned', :d, :now, :now
            {join}{extra_from}
            WHERE ({common}) AND {where}{conflict}"""

    age_due = "(p.dpd - s.offs)"
    age_stage = f"({q.days(':d', 'p.stage_since')} - s.offs)"
    inserted = 0
    # After the due date (days past the oldest unpaid due date, = DPD, reach the offset) and
    # after entry into a stage, in one pass over the accounts and their segment's steps.
    age = f"(CASE s.anchor WHEN 'due' THEN {age_due} ELSE {age_stage} END)"
    for sql in (
        insert(
            q.minus_days(age),
            f"s.anchor IN ('due', 'stage') AND {age} >= 0 AND {age} < :span "
            "AND ((s.anchor = 'due' AND p.dpd > 0) OR (s.anchor = 'stage' "
            "AND p.stage_since IS NOT NULL AND (s.skip_paid = 0 OR p.dpd > 0)))",
        ),
        # Before the due date: one reminder per unpaid instalment still to fall due.
        insert(
            q.minus_days(f"-({q.days('i.due_date', ':d')}) - s.offs"),
            f"s.anchor = 'pre' AND -({q.days('i.due_date', ':d')} + s.offs) >= 0 "
            f"AND -({q.days('i.due_date', ':d')} + s.offs) < :span",
            extra_from=" JOIN pdue i ON i.id = p.id AND i.due_date > :d",
        ),
    ):
        inserted += int(conn.execute(text(sql), params).rowcount or 0)

    pending = (
        "planned_action.status = 'planned' AND planned_action.account_id >= :lo "
        "AND planned_action.account_id < :hi AND planned_action.cycle_date < :d "
        f"AND planned_action.portfolio_id IN ({', '.join(str(p) for p in plan.experiments)})"
    )
    # SQLite would otherwise walk every earlier action by cycle date.
    indexed = "" if pg else " INDEXED BY ix_planned_action_status_account"
    # Pending actions of accounts no longer in the same segment (or with nothing due any
    # more: paid) are cancelled, with the reason.
    cancelled = conn.execute(
        text(f"""
            UPDATE planned_action{indexed} SET status = 'cancelled', updated_at = :now,
              reason = CASE WHEN NOT EXISTS (SELECT 1 FROM pacc p
                                             WHERE p.id = planned_action.account_id)
                             AND (SELECT a.dpd FROM account a
                                  WHERE a.id = planned_action.account_id) <= 0
                            THEN 'paid' ELSE 'segment_changed' END
            WHERE {pending} AND NOT EXISTS (
              SELECT 1 FROM pacc p WHERE p.id = planned_action.account_id
                AND p.segment = planned_action.segment)"""),
        params,
    ).rowcount

    blocked = compliance.guard_planned_actions(conn, as_of, lo, hi, now, default_zone)

    used = {row["transition"] for arm in plan.arms for row in arm.steps if row["transition"]}
    if used:
        # Steps with a transition move their account's stage forward, never back.
        rank = " ".join(f"WHEN {lit(st)} THEN {rules.stage_rank(st)}" for st in rules.STAGES)
        back = " ".join(f"WHEN {rules.stage_rank(st)} THEN {lit(st)}" for st in rules.STAGES)
        conn.execute(
            text(f"""
                UPDATE account SET stage = (CASE t.r {back} END), stage_since = :d
                FROM (SELECT pa.account_id AS id, MAX(CASE s.transition {rank} END) AS r
                      FROM planned_action pa
                      JOIN psteps s ON s.step = pa.step AND s.version_id = pa.strategy_version_id
                        AND s.portfolio_id = pa.portfolio_id
                      WHERE pa.cycle_date = :d AND pa.status = 'planned'
                        AND pa.account_id >= :lo AND pa.account_id < :hi
                        AND s.transition IS NOT NULL
                      GROUP BY pa.account_id) t
                WHERE account.id = t.id AND account.id >= :lo AND account.id < :hi
                  AND (CASE account.stage {rank} ELSE 0 END) < t.r"""),
            params,
        )
    for name in ("pacc", "pdue"):
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    return {
        "actions_planned": inserted - blocked,
        "actions_blocked": blocked,
        "actions_cancelled": int(cancelled or 0),
    }
