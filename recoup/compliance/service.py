"""The compliance guard as a service: one place that answers allowed or blocked, with the rule
and the reason, for planned actions (at planning, vectorised), for outgoing messages (at send
time) and for manual contacts (one contact, scalar). Every refusal is kept in
`compliance_block`; contact attempts and conversations are recorded in `contact_event`, which
the frequency rules count across channels and across the creditor's agencies."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.orm import Session

from recoup.channels.catalog import templates_mentioning_suit, templates_with_opt_out
from recoup.channels.models import MessageTemplate
from recoup.compliance import rules, wording
from recoup.compliance.models import ComplianceBlock, ComplianceSetting, ContactEvent
from recoup.core.bulk import fetch, write_frame
from recoup.core.db import utcnow
from recoup.core.errors import Invalid, NotFound
from recoup.ledger.models import Account, ContactPoint, Debtor, DebtorFlag, Portfolio
from recoup.strategy import rules as strategy_rules

# The kind of contact point each channel needs (visits and letters: an address).
POINT_KIND = {
    "sms": "phone",
    "call": "phone",
    "voice": "phone",
    "email": "email",
    "letter": "address",
    "visit": "address",
}
# Planned action type -> the channel the guard checks, from the strategy's action table.
# Internal actions (agency placement, legal review, write-off) are checked as a letter: the
# stop flags apply to them, the contact rules do not.
ACTION_CHANNEL = {
    action: channel for action, (channel, _) in strategy_rules.ACTIONS.items() if channel
}
NO_POINT = rules.Verdict(
    False,
    "contact.no_contact_point",
    "no usable contact point of the debtor for this channel",
    "债务人没有可用于该渠道的联系方式",
)


def ruleset_for(conn: Connection | Session, portfolio_id: int, jurisdiction: str) -> rules.RuleSet:
    overrides = conn.execute(
        select(ComplianceSetting.overrides).where(ComplianceSetting.portfolio_id == portfolio_id)
    ).scalar()
    return rules.load_ruleset(jurisdiction, overrides or None)


def set_overrides(
    session: Session, portfolio_code: str, overrides: dict[str, Any], by: str, note: str | None
) -> rules.RuleSet:
    """A compliance officer changes the numbers of a portfolio's rule set (validated first)."""
    portfolio = session.scalar(select(Portfolio).where(Portfolio.code == portfolio_code))
    if portfolio is None:
        raise NotFound(f"no portfolio {portfolio_code!r}")
    ruleset = rules.load_ruleset(portfolio.jurisdiction, overrides or None)
    row = session.scalar(
        select(ComplianceSetting).where(ComplianceSetting.portfolio_id == portfolio.id)
    )
    if row is None:
        row = ComplianceSetting(portfolio_id=portfolio.id, overrides={}, updated_by=by)
        session.add(row)
    row.overrides = dict(overrides)
    row.note = note
    row.updated_by = by
    row.updated_at = utcnow()
    session.flush()
    return ruleset


FACTS = {
    "id": pl.Int64,
    "account_id": pl.Int64,
    "debtor_id": pl.Int64,
    "portfolio_id": pl.Int64,
    "action_type": pl.String,
    "template": pl.String,
    "scheduled_at": pl.String,
    "zone": pl.String,
    "has_address": pl.Int64,
    "flags": pl.String,
    "n_points": pl.Int64,
    "n_usable": pl.Int64,
    "call_attempts_7d": pl.Int64,
    "last_conversation_at": pl.String,
    "voice_connected_today": pl.Int64,
    "first_communication_at": pl.String,
    "validation_notices": pl.Int64,
    "night_consent": pl.Int64,
    "time_barred": pl.Int64,
}
# Actions that bring or threaten a lawsuit whatever their wording: refused on a time-barred debt
# (12 CFR 1006.26(b): "must not bring or threaten to bring a legal action"). Other actions
# threaten suit when their template speaks of it (`templates_mentioning_suit`).
SUIT_ACTIONS = frozenset({"lawyer_letter", "legal_review"})


class _Sql:
    """Literals and expressions of the facts query, which `fetch` runs without parameters."""

    def __init__(self, pg: bool) -> None:
        self.pg = pg

    def date(self, d: dt.date) -> str:
        return f"CAST('{d.isoformat()}' AS DATE)" if self.pg else f"'{d.isoformat()}'"

    def instant(self, t: dt.datetime) -> str:
        utc = t.astimezone(dt.UTC)
        if self.pg:
            return f"CAST('{utc.isoformat()}' AS TIMESTAMPTZ)"
        return f"'{utc:%Y-%m-%d %H:%M:%S.%f}'"  # SQLAlchemy's storage form on SQLite

    def text_of(self, expr: str) -> str:
        """A timestamp as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text on both databases."""
        if self.pg:
            return f"to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        return expr

    def agg(self, expr: str) -> str:
        return f"string_agg({expr}, ',')" if self.pg else f"group_concat({expr}, ',')"

    def true(self) -> str:
        return "TRUE" if self.pg else "1"


def _facts_sql(q: _Sql, as_of: dt.date, source: str, where: str) -> str:
    """The guard's facts of the contacts in `source` (a table or subquery, named `pa`, with
    id, account_id, debtor_id, portfolio_id, action_type, template and scheduled_at) that
    `where` selects, counted up to the day after `as_of`."""
    until = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
    week_ago, day_ago = until - dt.timedelta(days=8), until - dt.timedelta(days=2)
    active = "f.debtor_id = pa.debtor_id AND f.cleared_at IS NULL"
    usable = f"cp.is_active = {q.true()} AND cp.do_not_contact <> {q.true()}"
    kind = " ".join(
        f"WHEN '{action}' THEN '{POINT_KIND[channel]}'"
        for action, channel in ACTION_CHANNEL.items()
    )
    points = (
        "FROM contact_point cp WHERE cp.debtor_id = pa.debtor_id AND cp.owner = 'self' "
        f"AND cp.kind = (CASE pa.action_type {kind} END)"
    )
    calls = "e.channel IN ('call', 'voice')"
    return f"""
        SELECT pa.id, pa.account_id, pa.debtor_id, pa.portfolio_id, pa.action_type, pa.template,
               {q.text_of("pa.scheduled_at")}, dr.timezone,
               CASE WHEN dr.address IS NOT NULL AND dr.address <> '' THEN 1 ELSE 0 END,
               (SELECT {q.agg("f.flag")} FROM debtor_flag f WHERE {active}),
               (SELECT COUNT(*) {points}),
               (SELECT COUNT(*) {points} AND {usable}),
               (SELECT COUNT(*) FROM contact_event e WHERE e.account_id = pa.account_id
                  AND {calls} AND e.at > {q.instant(week_ago)} AND e.at <= {q.instant(until)}),
               (SELECT {q.text_of("MAX(e.at)")} FROM contact_event e
                  WHERE e.account_id = pa.account_id AND e.conversation = {q.true()}),
               (SELECT COUNT(*) FROM contact_event e WHERE e.debtor_id = pa.debtor_id
                  AND e.channel = 'voice' AND e.connected = {q.true()}
                  AND e.at > {q.instant(day_ago)} AND e.at <= {q.instant(until)}),
               (SELECT {q.text_of("MIN(e.at)")} FROM contact_event e
                  WHERE e.account_id = pa.account_id),
               (SELECT COUNT(*) FROM contact_event e WHERE e.account_id = pa.account_id
                  AND e.source = 'validation_notice'),
               CASE WHEN dr.night_contact_consent THEN 1 ELSE 0 END,
               CASE WHEN ac.time_barred_on <= {q.date(as_of)} THEN 1 ELSE 0 END
        FROM {source} pa JOIN debtor dr ON dr.id = pa.debtor_id
          JOIN account ac ON ac.id = pa.account_id
        WHERE {where}"""


def _as_utc(col: str) -> pl.Expr:
    return (
        pl.col(col)
        .str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
        .dt.replace_time_zone("UTC")
    )


def guard_planned_actions(
    conn: Connection,
    as_of: dt.date,
    lo: int,
    hi: int,
    now: dt.datetime,
    default_zone: str,
) -> int:
    """Check the actions planned for `as_of` in accounts lo <= id < hi; block the refused ones
    (status 'blocked', rule and reason kept, and a `compliance_block` row). Vectorised: one
    query for the facts, `rules.check_frame` per rule set, bulk writes. Returns the number
    blocked."""
    q = _Sql(conn.dialect.name == "postgresql")
    where = (
        f"pa.cycle_date = {q.date(as_of)} AND pa.status = 'planned' "
        f"AND pa.account_id >= {int(lo)} AND pa.account_id < {int(hi)}"
    )
    facts = fetch(conn, _facts_sql(q, as_of, "planned_action", where), FACTS)
    if facts.is_empty():
        return 0
    blocked = _verdicts(conn, facts.with_columns(pl.col("zone").fill_null(default_zone)))
    if blocked.is_empty():
        return 0
    suffix = " ON COMMIT DROP" if conn.dialect.name == "postgresql" else ""
    conn.execute(text("DROP TABLE IF EXISTS guard_blocked"))
    conn.execute(
        text(
            "CREATE TEMP TABLE guard_blocked (id BIGINT PRIMARY KEY, rule_id VARCHAR(64), "
            f"reason TEXT){suffix}"
        )
    )
    write_frame(
        conn, "guard_blocked", blocked.select("id", "rule_id", pl.col("reason_en").alias("reason"))
    )
    conn.execute(
        text(
            "UPDATE planned_action SET status = 'blocked', rule_id = b.rule_id, "
            "reason = b.reason, updated_at = :now FROM guard_blocked b "
            "WHERE planned_action.id = b.id"
        ),
        {"now": now},
    )
    conn.execute(text("DROP TABLE guard_blocked"))
    _write_blocks(conn, blocked, "planned_action", now)
    return blocked.height


def guard_messages(
    conn: Connection, ids: list[int], now: dt.datetime, default_zone: str
) -> pl.DataFrame:
    """The send-time check of outbox messages (vectorised like the planning check, with the
    time of sending instead of the planned time): the refused ones as a frame of id,
    account_id, debtor_id, portfolio_id, channel, rule_id, reason_en and reason_zh, each also
    kept in `compliance_block` (subject 'message')."""
    if not ids:
        return pl.DataFrame()
    q = _Sql(conn.dialect.name == "postgresql")
    source = (
        "(SELECT m.id, m.account_id, m.debtor_id, m.portfolio_id, m.channel AS action_type, "
        f"m.template, {q.instant(now)} AS scheduled_at FROM outbox_message m)"
    )
    where = f"pa.id IN ({', '.join(str(int(i)) for i in ids)})"
    facts = fetch(conn, _facts_sql(q, now.date(), source, where), FACTS)
    if facts.is_empty():
        return pl.DataFrame()
    blocked = _verdicts(conn, facts.with_columns(pl.col("zone").fill_null(default_zone)))
    if not blocked.is_empty():
        _write_blocks(conn, blocked, "message", now)
    return blocked


def templates_speaking_of_suit(conn: Connection | Session) -> frozenset[str]:
    """Templates whose text in force, in some language, speaks of suing or courts: the shipped
    ones not replaced by a stored version, and the stored versions in force (one small query:
    the active rows of message_template)."""
    rows = conn.execute(
        select(
            MessageTemplate.name,
            MessageTemplate.language,
            MessageTemplate.subject,
            MessageTemplate.body,
        ).where(MessageTemplate.is_active.is_(True))
    ).all()
    replaced = {(name, lang) for name, lang, _, _ in rows}
    stored = {
        name for name, _, subject, body in rows if wording.mentions_suit(f"{subject}\n{body}")
    }
    shipped = {name for name, lang in templates_mentioning_suit() if (name, lang) not in replaced}
    return frozenset(stored | shipped)


def _contact_frame(
    facts: pl.DataFrame, ruleset: rules.RuleSet, suit_templates: frozenset[str]
) -> pl.DataFrame:
    with_opt_out = sorted(templates_with_opt_out())
    return facts.select(
        pl.col("action_type").replace_strict(ACTION_CHANNEL, default="letter").alias("channel"),
        _as_utc("scheduled_at").alias("at"),
        pl.concat_list("zone").alias("zones"),
        pl.lit("self").alias("party"),
        pl.lit("collect").alias("purpose"),
        pl.col("flags")
        .fill_null("")
        .str.split(",")
        .list.eval(pl.element().filter(pl.element() != ""))
        .alias("flags"),
        ((pl.col("n_points") > 0) & (pl.col("n_usable") == 0)).alias("do_not_contact"),
        (pl.col("night_consent") > 0).alias("night_consent"),
        pl.lit(False).alias("debtor_unreachable"),
        pl.col("call_attempts_7d").cast(pl.Int64).alias("call_attempts_debt_7d"),
        _as_utc("last_conversation_at").alias("last_conversation_at"),
        pl.col("voice_connected_today").cast(pl.Int64).alias("connected_voice_debtor_today"),
        pl.lit(0, pl.Int64).alias("unanswered_attempts_number_today"),
        # A visit is planned as a visit by the minimum team the rule set asks for.
        pl.lit(max(1, ruleset.min_visit_collectors or 1), pl.Int64).alias("collectors"),
        _as_utc("first_communication_at").alias("first_communication_at"),
        (pl.col("validation_notices") > 0).alias("validation_notice_sent"),
        (pl.col("time_barred") > 0).alias("is_time_barred"),
        (
            pl.col("action_type").is_in(sorted(SUIT_ACTIONS))
            | pl.col("template").is_in(sorted(suit_templates)).fill_null(False)
        ).alias("threatens_suit"),
        (
            ~pl.col("action_type").is_in(["sms", "email"]) | pl.col("template").is_in(with_opt_out)
        ).alias("has_opt_out"),
        pl.lit(False).alias("tells_debt_to_third_party"),
    )


def _verdicts(conn: Connection, facts: pl.DataFrame) -> pl.DataFrame:
    """The refused contacts among `facts`, with rule and reason (both languages)."""
    portfolios = dict(
        conn.execute(
            select(Portfolio.id, Portfolio.jurisdiction).where(
                Portfolio.id.in_(facts["portfolio_id"].unique().to_list())
            )
        ).all()
    )
    rulesets = {int(pid): ruleset_for(conn, int(pid), j) for pid, j in portfolios.items()}
    # Portfolios with the same rule set are checked together.
    keys = {pid: r.model_dump_json() for pid, r in rulesets.items()}
    facts = facts.with_columns(
        pl.col("portfolio_id").replace_strict(keys, return_dtype=pl.String).alias("_ruleset")
    )
    suit_templates = templates_speaking_of_suit(conn)
    verdicts = []
    for (key,), part in facts.group_by("_ruleset", maintain_order=True):
        ruleset = next(r for pid, r in rulesets.items() if keys[pid] == key)
        checked = rules.check_frame(_contact_frame(part, ruleset, suit_templates), ruleset)
        channel = part["action_type"].replace_strict(ACTION_CHANNEL, default="none")
        kind_needed = channel.replace_strict(POINT_KIND, default=None, return_dtype=pl.String)
        no_point = (
            kind_needed.is_not_null()
            & (part["n_points"] == 0)
            & ~((kind_needed == "address") & (part["has_address"] == 1))
        )
        verdicts.append(
            part.select("id", "account_id", "debtor_id", "portfolio_id", "action_type")
            .with_columns(
                channel=channel,
                jurisdiction=pl.lit(ruleset.jurisdiction),
                rule_id=pl.when(checked["allowed"] & no_point)
                .then(pl.lit(NO_POINT.rule_id))
                .otherwise(checked["rule_id"]),
                reason_en=pl.when(checked["allowed"] & no_point)
                .then(pl.lit(NO_POINT.reason_en))
                .otherwise(checked["reason_en"]),
                reason_zh=pl.when(checked["allowed"] & no_point)
                .then(pl.lit(NO_POINT.reason_zh))
                .otherwise(checked["reason_zh"]),
            )
            .filter(pl.col("rule_id").is_not_null())
        )
    return pl.concat(verdicts)


def _write_blocks(conn: Connection, blocked: pl.DataFrame, subject: str, now: dt.datetime) -> None:
    write_frame(
        conn,
        "compliance_block",
        blocked.select(
            pl.lit(now).dt.cast_time_unit("us").alias("checked_at"),
            pl.lit(subject).alias("subject"),
            pl.col("id").alias("subject_id"),
            "account_id",
            "debtor_id",
            "portfolio_id",
            "channel",
            "jurisdiction",
            "rule_id",
            "reason_en",
            "reason_zh",
            pl.format('{{"action_type": "{}"}}', "action_type").alias("context"),
        ),
    )


# --- one contact (manual contacts, messages at send time) -----------------------------------


@dataclass(frozen=True)
class ContactCheck:
    account_id: int
    channel: str
    at: dt.datetime
    contact_point_id: int | None = None
    purpose: str = "collect"
    text: str | None = None
    automated: bool = False
    collectors: int = 1
    threatens_suit: bool = False
    has_opt_out: bool = True


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _count(session: Session, *conds: Any) -> int:
    return int(session.scalar(select(func.count(ContactEvent.id)).where(*conds)) or 0)


def _debtor_unreachable(
    session: Session, debtor_id: int, at: dt.datetime, ruleset: rules.RuleSet
) -> bool:
    """The debtor counts as unreachable (so that a contact person may be asked where to find
    them, NIFA 2018 / CBA 2026: 联系人仅在无法联系债务人时) when none of the debtor's own
    phones can be used, or when the last `unreachable_days` days saw at least
    `unreachable_attempts` calls to the debtor and not one of them answered (the rule set's
    numbers, per portfolio)."""
    usable_phones = _count_points(session, debtor_id)
    if usable_phones == 0:
        return True
    since = at - dt.timedelta(days=ruleset.unreachable_days)
    to_debtor = (
        ContactEvent.debtor_id == debtor_id,
        ContactEvent.party == "self",
        ContactEvent.at > since,
        ContactEvent.at <= at,
    )
    calls = _count(session, *to_debtor, ContactEvent.channel.in_(("call", "voice")))
    answered = _count(session, *to_debtor, ContactEvent.connected.is_(True))
    return calls >= ruleset.unreachable_attempts and answered == 0


def _count_points(session: Session, debtor_id: int) -> int:
    return int(
        session.scalar(
            select(func.count(ContactPoint.id)).where(
                ContactPoint.debtor_id == debtor_id,
                ContactPoint.owner == "self",
                ContactPoint.kind == "phone",
                ContactPoint.is_active.is_(True),
                ContactPoint.do_not_contact.is_(False),
            )
        )
        or 0
    )


def contact_facts(session: Session, c: ContactCheck) -> tuple[rules.Contact, Account, str]:
    """The scalar guard's facts for one proposed contact, read from the database."""
    if c.at.tzinfo is None:
        raise Invalid(
            "at", c.at.isoformat(), "give a time with its zone, e.g. 2026-11-23T10:00+08:00"
        )
    if c.channel not in rules.CHANNELS:
        raise Invalid("channel", c.channel, f"one of {', '.join(rules.CHANNELS)}")
    account = session.get(Account, c.account_id)
    if account is None:
        raise NotFound(f"no account {c.account_id}")
    debtor = session.get_one(Debtor, account.debtor_id)
    portfolio = session.get_one(Portfolio, account.portfolio_id)
    point = None
    if c.contact_point_id is not None:
        point = session.get(ContactPoint, c.contact_point_id)
        if point is None or point.debtor_id != debtor.id:
            raise Invalid(
                "contact_point_id", c.contact_point_id, "not a contact point of this debtor"
            )
    flags = frozenset(
        session.scalars(
            select(DebtorFlag.flag).where(
                DebtorFlag.debtor_id == debtor.id, DebtorFlag.cleared_at.is_(None)
            )
        )
    )
    day_start = c.at - dt.timedelta(days=1)
    calls = ContactEvent.channel.in_(("call", "voice"))
    last_talk = session.scalar(
        select(func.max(ContactEvent.at)).where(
            ContactEvent.account_id == account.id, ContactEvent.conversation.is_(True)
        )
    )
    first = session.scalar(
        select(func.min(ContactEvent.at)).where(ContactEvent.account_id == account.id)
    )
    party = point.owner if point is not None else "self"
    contact = rules.Contact(
        channel=c.channel,
        at=c.at,
        zones=(debtor.timezone,),
        party=party,
        purpose=c.purpose,
        flags=flags,
        do_not_contact=bool(point is not None and (point.do_not_contact or not point.is_active)),
        night_consent=debtor.night_contact_consent,
        debtor_unreachable=party != "self"
        and _debtor_unreachable(
            session,
            debtor.id,
            c.at,
            ruleset_for(session, account.portfolio_id, portfolio.jurisdiction),
        ),
        call_attempts_debt_7d=_count(
            session,
            ContactEvent.account_id == account.id,
            calls,
            ContactEvent.at > c.at - dt.timedelta(days=7),
            ContactEvent.at <= c.at,
        ),
        last_conversation_at=last_talk,
        connected_voice_debtor_today=_count(
            session,
            ContactEvent.debtor_id == debtor.id,
            ContactEvent.channel == "voice",
            ContactEvent.connected.is_(True),
            ContactEvent.at > day_start,
            ContactEvent.at <= c.at,
        ),
        unanswered_attempts_number_today=(
            0
            if point is None
            else _count(
                session,
                ContactEvent.contact_point_id == point.id,
                calls,
                ContactEvent.connected.is_(False),
                ContactEvent.at > day_start,
                ContactEvent.at <= c.at,
            )
        ),
        collectors=c.collectors,
        first_communication_at=first,
        validation_notice_sent=_count(
            session,
            ContactEvent.account_id == account.id,
            ContactEvent.source == "validation_notice",
        )
        > 0,
        is_time_barred=(
            account.time_barred_on is not None
            and account.time_barred_on <= c.at.astimezone(_zone(debtor.timezone)).date()
        ),
        # What is said or sent threatens suit if the caller says so or its text speaks of it.
        threatens_suit=c.threatens_suit or bool(c.text and wording.mentions_suit(c.text)),
        has_opt_out=c.has_opt_out,
        tells_debt_to_third_party=False,
    )
    return contact, account, portfolio.jurisdiction


def check_contact(session: Session, c: ContactCheck, record: bool = True) -> rules.Verdict:
    """Allowed or blocked, for one proposed contact; a refusal is kept with its rule."""
    contact, account, jurisdiction = contact_facts(session, c)
    ruleset = ruleset_for(session, account.portfolio_id, jurisdiction)
    verdict = rules.check(contact, ruleset)
    if verdict.allowed and c.text:
        finding = wording.first_finding(c.text)
        if finding is not None:
            verdict = rules.Verdict(
                False,
                finding.rule_id,
                f"{finding.reason_en} ({finding.matched!r})",
                f"{finding.reason_zh}（{finding.matched}）",
            )
    if not verdict.allowed and record:
        session.add(
            ComplianceBlock(
                checked_at=utcnow(),
                subject="manual_contact",
                account_id=account.id,
                debtor_id=account.debtor_id,
                portfolio_id=account.portfolio_id,
                channel=c.channel,
                jurisdiction=ruleset.jurisdiction,
                rule_id=verdict.rule_id or "",
                reason_en=verdict.reason_en,
                reason_zh=verdict.reason_zh,
                context={"at": c.at.isoformat(), "contact_point_id": c.contact_point_id},
            )
        )
        session.flush()
    return verdict


def record_contacts(
    session: Session,
    rows: list[dict[str, Any]],
    *,
    automated: bool,
    source: str,
    connected: bool = False,
) -> None:
    """Record many attempts at once (messages sent by the outbox): each row gives account_id,
    debtor_id, contact_point_id, channel and at."""
    if not rows:
        return
    session.execute(
        insert(ContactEvent),
        [
            {
                "party": "self",
                "automated": automated,
                "connected": connected,
                "conversation": False,
                "agency": None,
                "source": source,
                "created_at": utcnow(),
                **row,
            }
            for row in rows
        ],
    )


def record_contact(
    session: Session,
    *,
    account_id: int,
    channel: str,
    at: dt.datetime,
    contact_point_id: int | None = None,
    party: str = "self",
    automated: bool = False,
    connected: bool = False,
    conversation: bool = False,
    agency: str | None = None,
    source: str = "manual",
) -> ContactEvent:
    """Record an attempt or a conversation (counted by the frequency rules)."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id}")
    if channel not in rules.CHANNELS:
        raise Invalid("channel", channel, f"one of {', '.join(rules.CHANNELS)}")
    event = ContactEvent(
        account_id=account_id,
        debtor_id=account.debtor_id,
        contact_point_id=contact_point_id,
        channel=channel,
        party=party,
        at=at,
        automated=automated,
        connected=connected or conversation,
        conversation=conversation,
        agency=agency,
        source=source,
    )
    session.add(event)
    session.flush()
    return event


def list_blocks(
    session: Session,
    *,
    rule_id: str | None = None,
    account_id: int | None = None,
    since: dt.datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ComplianceBlock], int]:
    conds = []
    if rule_id:
        conds.append(ComplianceBlock.rule_id == rule_id)
    if account_id is not None:
        conds.append(ComplianceBlock.account_id == account_id)
    if since is not None:
        conds.append(ComplianceBlock.checked_at >= since)
    total = int(session.scalar(select(func.count(ComplianceBlock.id)).where(*conds)) or 0)
    rows = session.scalars(
        select(ComplianceBlock)
        .where(*conds)
        .order_by(ComplianceBlock.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def count_blocks_by_rule(
    session: Session, since: dt.datetime | None = None
) -> list[tuple[str, int]]:
    conds = [] if since is None else [ComplianceBlock.checked_at >= since]
    rows = session.execute(
        select(ComplianceBlock.rule_id, func.count(ComplianceBlock.id))
        .where(*conds)
        .group_by(ComplianceBlock.rule_id)
        .order_by(func.count(ComplianceBlock.id).desc(), ComplianceBlock.rule_id)
    ).all()
    return [(r, int(n)) for r, n in rows]
