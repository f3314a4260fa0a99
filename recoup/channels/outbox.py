"""The outbox (发送队列) and its dispatch: every message to send is a row of `outbox_message`,
written in the same transaction as the decision that causes it, and sent by workers.

Delivery is at least once, made exactly once by the provider: a worker claims a batch (status
`sending`, with a lease), renders and checks each message, sends it with its idempotency key,
and records the outcome. A worker killed after the provider accepted a message but before the
outcome was written loses its claim when the lease ends; another worker sends the message again
with the same key, and the provider drops the duplicate (the SMS gateway by `Idempotency-Key`;
email by the Message-ID derived from the key, which mail systems deduplicate on).

Each message is checked again at send time: its action may have been cancelled (the account
was paid, or left its segment), and the compliance guard is asked again (a new flag, an opt-out,
the contact window, the frequency caps). Provider errors are retried with exponential back-off
and end as `failed` after `outbox_max_attempts`; nothing is ever dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, TextClause, bindparam, select, text, update
from sqlalchemy.orm import Session

from recoup.channels import service as templates
from recoup.channels.adapters import (
    Adapter,
    OutgoingMessage,
    SendError,
    SendResult,
    adapter_for,
)
from recoup.channels.models import Interaction, OutboxMessage
from recoup.compliance import rules as compliance_rules
from recoup.compliance import service as compliance
from recoup.core.db import UtcDateTime, utcnow
from recoup.core.errors import Blocked, Invalid, NotFound
from recoup.core.settings import Settings, get_settings
from recoup.ledger.models import Account, ContactPoint, Debtor, Portfolio

# Strategy actions the outbox sends itself; call tasks, visits and the rest go to people.
MESSAGE_ACTIONS = ("sms", "email", "letter")
SENT_BY_PROVIDER = ("sms", "email")
POINT_KIND = {"sms": "phone", "email": "email", "letter": "address"}
FINAL = ("sent", "delivered", "failed", "bounced", "blocked", "cancelled")
WINDOW_RULE = "window.hours"


def _sql(sql: str) -> TextClause:
    """A statement whose :now is a zone-aware instant, bound in the storage form of the
    timestamp columns (SQLite compares them as text)."""
    return text(sql).bindparams(bindparam("now", type_=UtcDateTime()))


def retry_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, …): base * 2^(attempt-1),
    at most `cap`, scaled by `jitter` (a factor near 1, chosen by the caller) so that workers
    do not retry in step."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return min(cap, base * 2 ** min(attempt - 1, 32)) * jitter


# --------------------------------------------------------------------------- enqueueing


def enqueue_planned(conn: Connection, as_of: dt.date, lo: int, hi: int, now: dt.datetime) -> int:
    """In the daily cycle's transaction, after planning and the guard: one outbox row for each
    message action (sms, email, letter) planned for `as_of` in accounts lo <= id < hi and not
    blocked, due at the action's scheduled time. Idempotent: the key is the action's id."""
    pg = conn.dialect.name == "postgresql"
    key = "'action:' || CAST(pa.id AS TEXT)" if pg else "'action:' || pa.id"
    actions = ", ".join(f"'{a}'" for a in MESSAGE_ACTIONS)
    result = conn.execute(
        _sql(f"""
            INSERT INTO outbox_message (idempotency_key, planned_action_id, account_id,
              debtor_id, portfolio_id, channel, template, status, attempts, next_attempt_at,
              created_at, updated_at)
            SELECT {key}, pa.id, pa.account_id, pa.debtor_id, pa.portfolio_id, pa.action_type,
                   pa.template, 'pending', 0, pa.scheduled_at, :now, :now
            FROM planned_action pa
            WHERE pa.cycle_date = :d AND pa.account_id >= :lo AND pa.account_id < :hi
              AND pa.status = 'planned' AND pa.action_type IN ({actions})
              AND pa.template IS NOT NULL
            ON CONFLICT (idempotency_key) DO NOTHING"""),
        {"d": as_of, "lo": lo, "hi": hi, "now": now},
    )
    return int(result.rowcount or 0)


def enqueue(
    session: Session,
    *,
    account_id: int,
    channel: str,
    template: str,
    at: dt.datetime | None = None,
    key: str | None = None,
    planned_action_id: int | None = None,
) -> OutboxMessage:
    """A message decided outside the cycle (by a person, or by another use case), in the
    caller's transaction. `key` makes a repeated request one message."""
    if channel not in MESSAGE_ACTIONS:
        raise Invalid("channel", channel, f"one of {', '.join(MESSAGE_ACTIONS)}")
    templates.get_template(session, template, "zh")  # raises NotFound for an unknown template
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id} / 没有账户 {account_id}")
    if at is not None and at.tzinfo is None:
        raise Invalid("at", at.isoformat(), "give a time with its zone / 请给出带时区的时间")
    key = key or f"manual:{uuid.uuid4().hex}"
    existing = session.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))
    if existing is not None:
        return existing
    now = utcnow()
    message = OutboxMessage(
        idempotency_key=key,
        planned_action_id=planned_action_id,
        account_id=account.id,
        debtor_id=account.debtor_id,
        portfolio_id=account.portfolio_id,
        channel=channel,
        template=template,
        status="pending",
        attempts=0,
        next_attempt_at=at or now,
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    session.flush()
    return message


# --------------------------------------------------------------------------- claiming


def claim(
    conn: Connection,
    worker: str,
    now: dt.datetime,
    limit: int,
    lease_seconds: int,
    channels: tuple[str, ...] = SENT_BY_PROVIDER,
) -> list[int]:
    """Take up to `limit` messages due by `now` (pending, or sending under an expired lease)
    for `worker`, inside the caller's transaction; returns their ids. On PostgreSQL workers
    skip each other's rows (SKIP LOCKED); SQLite serialises writers."""
    pg = conn.dialect.name == "postgresql"
    lock = " FOR UPDATE SKIP LOCKED" if pg else ""
    chans = ", ".join(f"'{c}'" for c in channels)
    ids = [
        int(r[0])
        for r in conn.execute(
            _sql(f"""
                SELECT id FROM outbox_message
                WHERE channel IN ({chans})
                  AND ((status = 'pending' AND next_attempt_at <= :now)
                       OR (status = 'sending' AND locked_until < :now))
                ORDER BY next_attempt_at, id
                LIMIT :n{lock}"""),
            {"now": now, "n": limit},
        )
    ]
    if ids:
        conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(
                status="sending",
                locked_by=worker,
                locked_until=now + dt.timedelta(seconds=lease_seconds),
                attempts=OutboxMessage.attempts + 1,
                updated_at=now,
            )
        )
    return ids


# --------------------------------------------------------------------------- dispatch


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    blocked: int = 0
    cancelled: int = 0
    deferred: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, other: DispatchResult) -> None:
        for key in ("claimed", "sent", "retried", "failed", "blocked", "cancelled", "deferred"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        for key, n in other.errors.items():
            self.errors[key] = self.errors.get(key, 0) + n


@dataclass
class _Ready:
    """A message rendered and addressed, ready for its provider."""

    id: int
    outgoing: OutgoingMessage
    attempts: int


def unsubscribe_token(secret: str, message_id: int) -> str:
    """The signed token of an email's unsubscribe link: the message id and an HMAC of it."""
    mac = hmac.new(secret.encode(), f"unsubscribe:{message_id}".encode(), hashlib.sha256)
    return f"{message_id}.{mac.hexdigest()[:32]}"


def read_unsubscribe_token(secret: str, token: str) -> int | None:
    """The message id of a valid token, None for a forged or malformed one."""
    head, _, _mac = token.partition(".")
    if not head.isdigit() or len(head) > 18:
        return None
    if not hmac.compare_digest(unsubscribe_token(secret, int(head)), token):
        return None
    return int(head)


class Dispatcher:
    """Sends what is due, one batch at a time. Adapters are built once (an SMTP connection and
    an HTTP client are kept across batches); tests pass their own."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings | None = None,
        *,
        worker: str = "worker",
        adapters: Mapping[str, Adapter] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings or get_settings()
        self.worker = worker
        self._adapters: dict[str, Adapter] = dict(adapters or {})
        self.clock = clock
        self.rng = rng or random.Random()

    def adapter(self, channel: str) -> Adapter:
        if channel not in self._adapters:
            self._adapters[channel] = adapter_for(channel, self.settings)
        return self._adapters[channel]

    def close(self) -> None:
        for adapter in self._adapters.values():
            adapter.close()

    # -- one batch -----------------------------------------------------------------------

    def dispatch_once(self, limit: int | None = None) -> DispatchResult:
        """Claim, check, render, send and record one batch; the counts of what happened."""
        now = self.clock()
        with self.engine.connect() as conn, conn.begin():
            ids = claim(
                conn,
                self.worker,
                now,
                limit or self.settings.outbox_batch_size,
                self.settings.outbox_lease_seconds,
            )
        result = DispatchResult(claimed=len(ids))
        if not ids:
            return result
        ready = self._prepare(ids, now, result)
        outcomes: list[tuple[_Ready, SendResult | SendError]] = []
        for item in ready:
            try:
                outcomes.append((item, self.adapter(item.outgoing.channel).send(item.outgoing)))
            except SendError as exc:
                outcomes.append((item, exc))
        self._record(outcomes, result)
        return result

    def _prepare(self, ids: list[int], now: dt.datetime, result: DispatchResult) -> list[_Ready]:
        """In one transaction: cancel what is no longer wanted, ask the guard, address and
        render the rest (a retry sends the content of its first attempt again)."""
        ready: list[_Ready] = []
        with Session(self.engine) as session, session.begin():
            conn = session.connection()
            cancelled = conn.execute(
                text(f"""
                    SELECT m.id,
                      CASE WHEN pa.status = 'cancelled' THEN 'action cancelled: '
                                || COALESCE(pa.reason, '')
                           WHEN a.status IN ('settled', 'written_off') THEN 'account '
                                || a.status
                      END AS why
                    FROM outbox_message m JOIN account a ON a.id = m.account_id
                    LEFT JOIN planned_action pa ON pa.id = m.planned_action_id
                    WHERE m.id IN ({", ".join(map(str, ids))})
                      AND m.locked_by = :w
                      AND (pa.status = 'cancelled' OR a.status IN ('settled', 'written_off'))"""),
                {"w": self.worker},
            ).all()
            gone = {int(r[0]) for r in cancelled}
            for mid, why in cancelled:
                self._finish(session, int(mid), "cancelled", now, last_error=why)
            result.cancelled += len(gone)
            live = [i for i in ids if i not in gone]
            blocked = compliance.guard_messages(conn, live, now, self.settings.default_timezone)
            refused: set[int] = set()
            if not blocked.is_empty():
                for row in blocked.iter_rows(named=True):
                    refused.add(int(row["id"]))
                    if row["rule_id"] == WINDOW_RULE and self._defer(session, row, now):
                        result.deferred += 1
                        continue
                    self._finish(
                        session,
                        int(row["id"]),
                        "blocked",
                        now,
                        rule_id=row["rule_id"],
                        last_error=f"{row['reason_en']} / {row['reason_zh']}",
                        action_status="blocked",
                    )
            result.blocked += len(refused) - result.deferred
            messages = session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.id.in_([i for i in live if i not in refused]),
                    OutboxMessage.locked_by == self.worker,
                    OutboxMessage.status == "sending",
                )
            ).all()
            points = self._points(session, [m.debtor_id for m in messages])
            for m in messages:
                item = self._ready(session, m, points, now, result)
                if item is not None:
                    ready.append(item)
        return ready

    def _defer(self, session: Session, row: dict[str, Any], now: dt.datetime) -> bool:
        """A message refused only because it is outside the contact window waits for the
        window's next opening in the debtor's zone (not counted as an attempt)."""
        zone, jurisdiction = session.execute(
            select(Debtor.timezone, Portfolio.jurisdiction)
            .join(Account, Account.debtor_id == Debtor.id)
            .join(Portfolio, Portfolio.id == Account.portfolio_id)
            .where(Account.id == row["account_id"])
        ).one()
        ruleset = compliance.ruleset_for(session, int(row["portfolio_id"]), jurisdiction)
        opening = compliance_rules.next_allowed_time(
            now, [zone or self.settings.default_timezone], ruleset
        )
        if opening is None:
            return False
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row["id"], OutboxMessage.locked_by == self.worker)
            .values(
                status="pending",
                next_attempt_at=opening,
                attempts=OutboxMessage.attempts - 1,
                last_error=f"{row['reason_en']} / {row['reason_zh']}",
                locked_by=None,
                locked_until=None,
                updated_at=now,
            )
        )
        return True

    def _points(self, session: Session, debtor_ids: list[int]) -> dict[tuple[int, str], Any]:
        """Each debtor's own usable contact point of each kind: verified first, then newest."""
        rows = session.execute(
            select(ContactPoint.debtor_id, ContactPoint.kind, ContactPoint.id, ContactPoint.value)
            .where(
                ContactPoint.debtor_id.in_(set(debtor_ids)),
                ContactPoint.owner == "self",
                ContactPoint.is_active.is_(True),
                ContactPoint.do_not_contact.is_(False),
            )
            .order_by(ContactPoint.is_verified.desc(), ContactPoint.id.desc())
        ).all()
        best: dict[tuple[int, str], Any] = {}
        for debtor_id, kind, point_id, value in rows:
            best.setdefault((debtor_id, kind), (point_id, value))
        return best

    def _ready(
        self,
        session: Session,
        m: OutboxMessage,
        points: dict[tuple[int, str], Any],
        now: dt.datetime,
        result: DispatchResult,
    ) -> _Ready | None:
        point = points.get((m.debtor_id, POINT_KIND[m.channel]))
        if point is None:
            self._finish(
                session,
                m.id,
                "failed",
                now,
                last_error="no usable contact point / 没有可用的联系方式",
                action_status="failed",
            )
            result.failed += 1
            return None
        m.contact_point_id, m.recipient = point
        if m.body is None:  # first attempt: render; later attempts resend the same content
            try:
                local = now.astimezone(_zone(self.settings.business_timezone)).date()
                rendered = templates.render(session, m.template, m.account_id, local, m.channel)
            except Blocked as exc:
                self._finish(
                    session,
                    m.id,
                    "blocked",
                    now,
                    rule_id=exc.rule,
                    last_error=exc.why,
                    action_status="blocked",
                )
                result.blocked += 1
                return None
            except (Invalid, NotFound) as exc:
                self._finish(
                    session, m.id, "failed", now, last_error=str(exc), action_status="failed"
                )
                result.failed += 1
                return None
            m.subject, m.body = rendered.subject, rendered.body
            m.content_sha256 = rendered.sha256
            m.language = rendered.language
            m.template_version = rendered.template_version
        unsubscribe = None
        if m.channel == "email":
            token = unsubscribe_token(self.settings.secret_key, m.id)
            unsubscribe = f"{self.settings.public_base_url.rstrip('/')}/unsubscribe/{token}"
        assert m.body is not None
        return _Ready(
            m.id,
            OutgoingMessage(
                idempotency_key=m.idempotency_key,
                channel=m.channel,
                to=m.recipient,
                body=m.body,
                subject=m.subject,
                language=m.language or "zh",
                unsubscribe_url=unsubscribe,
            ),
            m.attempts,
        )

    def _finish(
        self,
        session: Session,
        message_id: int,
        status: str,
        now: dt.datetime,
        *,
        rule_id: str | None = None,
        last_error: str | None = None,
        action_status: str | None = None,
    ) -> None:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.locked_by == self.worker)
            .values(
                status=status,
                rule_id=rule_id,
                last_error=last_error,
                locked_by=None,
                locked_until=None,
                updated_at=now,
            )
        )
        if action_status is not None:
            session.execute(
                _sql(
                    "UPDATE planned_action SET status = :s, rule_id = COALESCE(:r, rule_id), "
                    "reason = COALESCE(:why, reason), updated_at = :now "
                    "WHERE id = (SELECT planned_action_id FROM outbox_message WHERE id = :m)"
                ),
                {"s": action_status, "r": rule_id, "why": last_error, "now": now, "m": message_id},
            )

    def _record(
        self, outcomes: list[tuple[_Ready, SendResult | SendError]], result: DispatchResult
    ) -> None:
        """In one transaction: each outcome on its message (only while this worker still holds
        it), an interaction and a contact event for each message sent, the action done."""
        if not outcomes:
            return
        now = self.clock()
        s = self.settings
        with Session(self.engine) as session, session.begin():
            held = {
                int(i)
                for i in session.scalars(
                    select(OutboxMessage.id).where(
                        OutboxMessage.id.in_([item.id for item, _ in outcomes]),
                        OutboxMessage.locked_by == self.worker,
                        OutboxMessage.status == "sending",
                    )
                )
            }
            sent_rows: list[dict[str, Any]] = []
            for item, outcome in outcomes:
                if item.id not in held:
                    continue  # the lease ran out and another worker took it over
                if isinstance(outcome, SendResult):
                    sent_rows.append(
                        {"id": item.id, "provider_id": outcome.provider_id, "st": outcome.status}
                    )
                    continue
                key = f"{type(outcome).__name__}: {outcome.reason}"[:200]
                result.errors[key] = result.errors.get(key, 0) + 1
                if outcome.retryable and item.attempts < s.outbox_max_attempts:
                    delay = retry_delay(
                        item.attempts,
                        s.outbox_retry_base_seconds,
                        s.outbox_retry_max_seconds,
                        self.rng.uniform(0.8, 1.2),
                    )
                    if outcome.retry_after:
                        delay = max(delay, float(outcome.retry_after))
                    session.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id == item.id)
                        .values(
                            status="pending",
                            next_attempt_at=now + dt.timedelta(seconds=delay),
                            last_error=outcome.reason,
                            locked_by=None,
                            locked_until=None,
                            updated_at=now,
                        )
                    )
                    result.retried += 1
                else:
                    self._finish(
                        session,
                        item.id,
                        "failed",
                        now,
                        last_error=outcome.reason,
                        action_status="failed",
                    )
                    result.failed += 1
            if sent_rows:
                self._sent(session, sent_rows, now)
                result.sent += len(sent_rows)

    def _sent(self, session: Session, rows: list[dict[str, Any]], now: dt.datetime) -> None:
        conn = session.connection()
        table = OutboxMessage.__table__  # Core: executemany with typed binds
        conn.execute(
            update(table)  # type: ignore[arg-type]
            .where(table.c.id == bindparam("mid"))
            .values(
                status=bindparam("st"),
                provider_id=bindparam("pid"),
                sent_at=now,
                delivered_at=bindparam("dat"),
                last_error=None,
                locked_by=None,
                locked_until=None,
                updated_at=now,
            ),
            [
                {
                    "mid": r["id"],
                    "st": r["st"],
                    "pid": r["provider_id"],
                    "dat": now if r["st"] == "delivered" else None,
                }
                for r in rows
            ],
        )
        ids = [r["id"] for r in rows]
        messages = session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).all()
        conn.execute(
            _sql(
                "UPDATE planned_action SET status = 'done', updated_at = :now WHERE id IN "
                f"(SELECT planned_action_id FROM outbox_message WHERE id IN "
                f"({', '.join(map(str, ids))}))"
            ),
            {"now": now},
        )
        session.add_all(
            Interaction(
                account_id=m.account_id,
                debtor_id=m.debtor_id,
                channel=m.channel,
                direction="out",
                at=now,
                party="self",
                contact_point_id=m.contact_point_id,
                address=m.recipient,
                template=m.template,
                subject=m.subject,
                content=m.body,
                content_sha256=m.content_sha256,
                provider_id=m.provider_id,
                delivery_status=m.status,
                outbox_message_id=m.id,
                created_by="system",
                created_at=now,
                updated_at=now,
            )
            for m in messages
        )
        compliance.record_contacts(
            session,
            [
                {
                    "account_id": m.account_id,
                    "debtor_id": m.debtor_id,
                    "contact_point_id": m.contact_point_id,
                    "channel": m.channel,
                    "at": now,
                }
                for m in messages
            ],
            automated=True,
            source="outbox",
        )


def _zone(name: str) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(name)


# --------------------------------------------------------------------------- receipts, opt-outs


def apply_receipt(
    session: Session, provider_id: str, status: str, at: dt.datetime, error: str | None
) -> OutboxMessage:
    """A provider's delivery receipt: delivered, failed or bounced (and the interaction's
    delivery status with it). A receipt for an unknown message is refused."""
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.provider_id == provider_id))
    if message is None:
        raise NotFound(f"no message with provider id {provider_id!r}")
    if status == "delivered":
        message.status = "delivered"
        message.delivered_at = at
    elif status in ("failed", "bounced"):
        message.status = status
        message.last_error = error
    message.updated_at = utcnow()
    session.execute(
        update(Interaction)
        .where(Interaction.outbox_message_id == message.id)
        .values(delivery_status=message.status, updated_at=utcnow())
    )
    session.flush()
    return message


def opt_out_points(
    session: Session, *, kind: str, value: str, by: str, reason: str
) -> list[ContactPoint]:
    """An opt-out (an SMS STOP reply, an email unsubscribe): every active contact point of that
    kind and value becomes do-not-contact, with the change kept in the debtor's history."""
    from recoup.ledger import service as ledger

    points = session.scalars(
        select(ContactPoint).where(
            ContactPoint.kind == kind,
            ContactPoint.value == value,
            ContactPoint.do_not_contact.is_(False),
        )
    ).all()
    for point in points:
        ledger.update_contact_point(session, point.id, {"do_not_contact": True}, by=by)
    if points:
        session.add_all(
            Interaction(
                account_id=None,
                debtor_id=point.debtor_id,
                channel="sms" if kind == "phone" else "email",
                direction="in",
                at=utcnow(),
                contact_point_id=point.id,
                address=value,
                content=reason,
                created_by=by,
            )
            for point in points
        )
    session.flush()
    return list(points)


def unsubscribe(session: Session, secret: str, token: str) -> list[ContactPoint]:
    """The email unsubscribe link: the address the message went to is opted out."""
    message_id = read_unsubscribe_token(secret, token)
    message = session.get(OutboxMessage, message_id) if message_id is not None else None
    if message is None or not message.recipient:
        raise Invalid("token", token, "not a valid unsubscribe link / 退订链接无效")
    return opt_out_points(
        session,
        kind="email",
        value=message.recipient,
        by="debtor:unsubscribe",
        reason="unsubscribe link / 退订链接",
    )


def list_messages(
    session: Session,
    *,
    status: str | None = None,
    account_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit).offset(offset)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    if account_id is not None:
        query = query.where(OutboxMessage.account_id == account_id)
    return list(session.scalars(query))


def timeline(session: Session, account_id: int, limit: int = 100) -> list[Interaction]:
    return list(
        session.scalars(
            select(Interaction)
            .where(Interaction.account_id == account_id)
            .order_by(Interaction.at.desc(), Interaction.id.desc())
            .limit(limit)
        )
    )


def counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        text("SELECT status, COUNT(*) FROM outbox_message GROUP BY status")
    ).all()
    return {str(s): int(n) for s, n in rows}
