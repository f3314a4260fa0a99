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
import random
import threading
import uuid
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlalchemy import (
    Connection,
    Engine,
    TextClause,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from recoup.channels import rules
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
    for `worker`, inside the caller's transaction; returns their ids. One statement, which
    writes from its start: on PostgreSQL workers skip each other's rows (SKIP LOCKED); SQLite
    serialises writers (a read first, then a write, could fail when another writer commits in
    between)."""
    pg = conn.dialect.name == "postgresql"
    lock = " FOR UPDATE SKIP LOCKED" if pg else ""
    chans = ", ".join(f"'{c}'" for c in channels)
    statement = text(f"""
        UPDATE outbox_message
        SET status = 'sending', locked_by = :w, locked_until = :until,
            attempts = attempts + 1, updated_at = :now
        WHERE id IN (
          SELECT id FROM outbox_message
          WHERE channel IN ({chans})
            AND ((status = 'pending' AND next_attempt_at <= :now)
                 OR (status = 'sending' AND locked_until < :now))
          ORDER BY next_attempt_at, id
          LIMIT :n{lock})
        RETURNING id""").bindparams(
        bindparam("now", type_=UtcDateTime()), bindparam("until", type_=UtcDateTime())
    )
    until = now + dt.timedelta(seconds=lease_seconds)
    params = {"w": worker, "now": now, "until": until, "n": limit}
    return sorted(int(i) for i in conn.execute(statement, params).scalars())


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
    account_id: int = 0
    debtor_id: int = 0
    contact_point_id: int | None = None
    template: str = ""
    content_sha256: str | None = None


_Outcome = tuple[_Ready, SendResult | SendError]


def unsubscribe_token(secret: str, message_id: int) -> str:
    """The signed token of an email's unsubscribe link: the message id and an HMAC of it."""
    return rules.unsubscribe_token(secret, "m", message_id)


def read_unsubscribe_token(secret: str, token: str) -> int | None:
    """The message id of a valid message token, None for a forged or malformed one."""
    found = rules.read_unsubscribe_token(secret, token)
    return found[1] if found is not None and found[0] == "m" else None


def finish_message(
    session: Session,
    worker: str,
    message_id: int,
    status: str,
    now: dt.datetime,
    *,
    rule_id: str | None = None,
    last_error: str | None = None,
    action_status: str | None = None,
) -> None:
    """End a claimed message without sending it (cancelled, blocked, failed), while `worker`
    still holds it; with `action_status`, its planned action too."""
    finish_messages(
        session, worker, [Ending(message_id, status, last_error, rule_id, action_status)], now
    )


def no_longer_wanted(conn: Connection, ids: list[int], worker: str) -> list[tuple[int, str]]:
    """Among the messages `worker` holds, those to cancel at send time, with the reason: the
    action was cancelled, the account is settled or written off, or the message was about an
    overdue amount (planned while the account was overdue) and the account has been paid up
    since, so that nobody who has just paid is reminded of a debt. The dispatcher and the
    letter printer both ask this."""
    if not ids:
        return []
    paid_up = "(pa.amount > 0 AND a.overdue_amount <= 0 AND a.dpd = 0)"
    rows = conn.execute(
        text(f"""
            SELECT m.id,
              CASE WHEN pa.status = 'cancelled' THEN 'action cancelled: '
                        || COALESCE(pa.reason, '')
                   WHEN a.status IN ('settled', 'written_off') THEN 'account ' || a.status
                   WHEN {paid_up} THEN 'paid up since it was planned / 计划后已还清逾期款项'
              END AS why
            FROM outbox_message m JOIN account a ON a.id = m.account_id
            LEFT JOIN planned_action pa ON pa.id = m.planned_action_id
            WHERE m.id IN ({", ".join(str(int(i)) for i in ids)})
              AND m.locked_by = :w
              AND (pa.status = 'cancelled' OR a.status IN ('settled', 'written_off')
                   OR {paid_up})"""),
        {"w": worker},
    ).all()
    return [(int(mid), str(why)) for mid, why in rows]


@dataclass(frozen=True)
class Ending:
    """How a claimed message ends without being sent (see `finish_messages`)."""

    message_id: int
    status: str
    last_error: str | None = None
    rule_id: str | None = None
    action_status: str | None = None


def _requeue(
    session: Session, worker: str, rows: list[dict[str, Any]], now: dt.datetime, *, counted: bool
) -> None:
    """Claimed messages back to pending, each at its own time (`rows`: mid, at, err), in one
    executemany while `worker` holds them; an attempt not `counted` (a message that waits for
    the contact window) is given back."""
    if not rows:
        return
    t = OutboxMessage.__table__
    values: dict[str, Any] = {
        "status": "pending",
        "next_attempt_at": bindparam("at"),
        "last_error": bindparam("err"),
        "locked_by": None,
        "locked_until": None,
        "updated_at": now,
    }
    if not counted:
        values["attempts"] = t.c.attempts - 1
    session.execute(
        update(t)  # type: ignore[arg-type]
        .where(t.c.id == bindparam("mid"), t.c.locked_by == worker)
        .values(**values),
        rows,
    )


def finish_messages(
    session: Session, worker: str, endings: Sequence[Ending], now: dt.datetime
) -> None:
    """`finish_message` for many messages in two statements (executemany), not two per
    message: the messages, then the planned actions of those that name an action status."""
    if not endings:
        return
    t = OutboxMessage.__table__
    session.execute(
        update(t)  # type: ignore[arg-type]
        .where(t.c.id == bindparam("mid"), t.c.locked_by == worker)
        .values(
            status=bindparam("st"),
            rule_id=bindparam("rule"),
            last_error=bindparam("err"),
            locked_by=None,
            locked_until=None,
            updated_at=now,
        ),
        [
            {"mid": e.message_id, "st": e.status, "rule": e.rule_id, "err": e.last_error}
            for e in endings
        ],
    )
    actions = [
        {"s": e.action_status, "r": e.rule_id, "why": e.last_error, "now": now, "m": e.message_id}
        for e in endings
        if e.action_status is not None
    ]
    if actions:
        session.execute(
            _sql(
                "UPDATE planned_action SET status = :s, rule_id = COALESCE(:r, rule_id), "
                "reason = COALESCE(:why, reason), updated_at = :now "
                "WHERE id = (SELECT planned_action_id FROM outbox_message WHERE id = :m)"
            ),
            actions,
        )


class Dispatcher:
    """Sends what is due, one batch at a time. Adapters are built once (an SMTP connection and
    an HTTP client are kept across batches); tests pass their own.

    With `send_threads` above 1 a batch is sent by that many threads at once, each with
    adapters of its own (an SMTP connection is not shared between threads; adapters passed in
    are shared, their sends serialised by their lock). The database work of a batch is done
    in a few set-based statements whatever its size: the claim, the cancellation check, the
    guard, addressing and rendering (`service.render_batch`), and the outcomes, interactions
    and contact events."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings | None = None,
        *,
        worker: str = "worker",
        adapters: Mapping[str, Adapter] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        rng: random.Random | None = None,
        send_threads: int = 1,
    ) -> None:
        if send_threads < 1:
            raise Invalid("send_threads", send_threads, "must be at least 1 / 至少为1")
        self.engine = engine
        self.settings = settings or get_settings()
        self.worker = worker
        self._given: dict[str, Adapter] = dict(adapters or {})
        self._adapters: dict[str, Adapter] = dict(self._given)
        self.clock = clock
        self.rng = rng or random.Random()
        self.send_threads = send_threads
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._made: list[Adapter] = []  # built by the pool's threads, closed with the rest
        self._made_lock = threading.Lock()
        self._home = threading.get_ident()

    def adapter(self, channel: str) -> Adapter:
        if channel not in self._adapters:
            self._adapters[channel] = adapter_for(channel, self.settings)
        return self._adapters[channel]

    def _thread_adapter(self, channel: str) -> Adapter:
        """The adapter of the calling thread: one given by the caller, else the thread's own
        (the dispatcher's own in the thread that built it)."""
        if channel in self._given or threading.get_ident() == self._home:
            return self.adapter(channel)
        own: dict[str, Adapter] | None = getattr(self._local, "adapters", None)
        if own is None:
            own = self._local.adapters = {}
        if channel not in own:
            own[channel] = adapter_for(channel, self.settings)
            with self._made_lock:
                self._made.append(own[channel])
        return own[channel]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._made_lock:
            made, self._made = self._made, []
        for adapter in [*self._adapters.values(), *made]:
            adapter.close()
        self._adapters = dict(self._given)

    # -- one batch -----------------------------------------------------------------------

    def dispatch_once(self, limit: int | None = None) -> DispatchResult:
        """Claim, check, render, send and record one batch; the counts of what happened."""
        now = self.clock()
        lease = self.settings.outbox_lease_seconds
        with self.engine.connect() as conn, conn.begin():
            ids = claim(conn, self.worker, now, limit or self.settings.outbox_batch_size, lease)
        result = DispatchResult(claimed=len(ids))
        if not ids:
            return result
        ready = self._prepare(ids, now, result)
        outcomes = self._send_all(ready, now + dt.timedelta(seconds=lease))
        self._record(outcomes, result)
        return result

    def run(
        self,
        stop: threading.Event | None = None,
        on_batch: Callable[[DispatchResult], None] | None = None,
    ) -> DispatchResult:
        """Batch after batch until one comes back empty or `stop` is set, each batch sent
        while the next is claimed and prepared (the provider's round trips overlap the
        database work). `stop` is checked before each claim: what was claimed is always sent
        and recorded, also when preparing the next batch fails."""
        total = DispatchResult()
        lease = self.settings.outbox_lease_seconds
        pool = self._executor()
        sending: tuple[DispatchResult, list[Future[_Outcome | None]]] | None = None
        try:
            while True:
                upcoming: tuple[DispatchResult, list[_Ready], dt.datetime] | None = None
                if stop is None or not stop.is_set():
                    now = self.clock()
                    with self.engine.connect() as conn, conn.begin():
                        ids = claim(conn, self.worker, now, self.settings.outbox_batch_size, lease)
                    if ids:
                        result = DispatchResult(claimed=len(ids))
                        upcoming = (
                            result,
                            self._prepare(ids, now, result),
                            now + dt.timedelta(seconds=lease),
                        )
                if sending is not None:
                    self._finish_sending(sending, total, on_batch)
                    sending = None
                if upcoming is None:
                    return total
                result, ready, lease_ends = upcoming
                sending = (result, [pool.submit(self._send, item, lease_ends) for item in ready])
        finally:
            if sending is not None:
                self._finish_sending(sending, total, on_batch)

    def _finish_sending(
        self,
        sending: tuple[DispatchResult, list[Future[_Outcome | None]]],
        total: DispatchResult,
        on_batch: Callable[[DispatchResult], None] | None,
    ) -> None:
        result, futures = sending
        self._record([o for o in (f.result() for f in futures) if o is not None], result)
        total.add(result)
        if on_batch is not None:
            on_batch(result)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.send_threads, thread_name_prefix=f"send-{self.worker}"
            )
        return self._pool

    def _send(self, item: _Ready, lease_ends: dt.datetime) -> _Outcome | None:
        """Send one message; None, without sending, once the lease has ended (another worker
        may have claimed the message)."""
        if self.clock() >= lease_ends:
            return None
        try:
            return item, self._thread_adapter(item.outgoing.channel).send(item.outgoing)
        except SendError as exc:
            return item, exc

    def _send_all(self, ready: list[_Ready], lease_ends: dt.datetime) -> list[_Outcome]:
        """Send a batch, in `send_threads` threads."""
        if self.send_threads > 1 and len(ready) > 1:
            done = list(self._executor().map(self._send, ready, [lease_ends] * len(ready)))
        else:
            done = [self._send(item, lease_ends) for item in ready]
        return [x for x in done if x is not None]

    def _prepare(self, ids: list[int], now: dt.datetime, result: DispatchResult) -> list[_Ready]:
        """In one transaction: cancel what is no longer wanted, ask the guard, address and
        render the rest (a retry sends the content of its first attempt again)."""
        with Session(self.engine) as session, session.begin():
            conn = session.connection()
            cancelled = no_longer_wanted(conn, ids, self.worker)
            gone = {int(r[0]) for r in cancelled}
            endings = [Ending(int(mid), "cancelled", why) for mid, why in cancelled]
            result.cancelled += len(gone)
            live = [i for i in ids if i not in gone]
            blocked = compliance.guard_messages(conn, live, now, self.settings.default_timezone)
            refused: set[int] = set()
            deferred: set[int] = set()
            if not blocked.is_empty():
                refused = {int(i) for i in blocked["id"]}
                deferred = self._defer(
                    session, blocked.filter(pl.col("rule_id") == WINDOW_RULE), now
                )
                endings += [
                    Ending(
                        int(row["id"]),
                        "blocked",
                        f"{row['reason_en']} / {row['reason_zh']}",
                        row["rule_id"],
                        "blocked",
                    )
                    for row in blocked.iter_rows(named=True)
                    if int(row["id"]) not in deferred
                ]
            finish_messages(session, self.worker, endings, now)
            deferred_n = len(deferred)
            result.deferred += deferred_n
            result.blocked += len(refused) - deferred_n
            return self._address_and_render(
                session, [i for i in live if i not in refused], now, result
            )

    def _address_and_render(
        self, session: Session, ids: list[int], now: dt.datetime, result: DispatchResult
    ) -> list[_Ready]:
        """Each message addressed to its debtor's best contact point and, on its first
        attempt, rendered (the whole batch at once); the content is kept on the message."""
        if not ids:
            return []
        t = OutboxMessage.__table__.c
        messages = session.execute(
            select(
                t.id,
                t.account_id,
                t.debtor_id,
                t.channel,
                t.template,
                t.idempotency_key,
                t.attempts,
                t.subject,
                t.body,
                t.language,
                t.content_sha256,
            ).where(t.id.in_(ids), t.locked_by == self.worker, t.status == "sending")
        ).all()
        points = self._points(session, [m.debtor_id for m in messages])
        addressed = []
        endings: list[Ending] = []
        for m in messages:
            point = points.get((m.debtor_id, POINT_KIND[m.channel]))
            if point is None:
                endings.append(
                    Ending(
                        m.id,
                        "failed",
                        "no usable contact point / 没有可用的联系方式",
                        None,
                        "failed",
                    )
                )
                result.failed += 1
            else:
                addressed.append((m, point))
        first = [(m, p) for m, p in addressed if m.body is None]
        local = now.astimezone(_zone(self.settings.business_timezone)).date()
        renders = templates.render_batch(
            session,
            [templates.RenderRequest(m.template, m.account_id, m.channel) for m, _ in first],
            local,
        )
        rendered: dict[int, templates.Rendered] = {}
        for (m, _), outcome in zip(first, renders, strict=True):
            if isinstance(outcome, templates.Rendered):
                rendered[m.id] = outcome
            elif isinstance(outcome, Blocked):
                endings.append(Ending(m.id, "blocked", outcome.why, outcome.rule, "blocked"))
                result.blocked += 1
            else:
                endings.append(Ending(m.id, "failed", str(outcome), None, "failed"))
                result.failed += 1
        finish_messages(session, self.worker, endings, now)
        ready: list[_Ready] = []
        new_content: list[dict[str, Any]] = []
        readdressed: list[dict[str, Any]] = []
        for m, (point_id, recipient) in addressed:
            r = rendered.get(m.id)
            if m.body is None and r is None:
                continue  # blocked or failed above
            if r is not None:
                subject, body, sha, language = r.subject, r.body, r.sha256, r.language
                new_content.append(
                    {
                        "mid": m.id,
                        "cp": point_id,
                        "to": recipient,
                        "subject": subject,
                        "body": body,
                        "sha": sha,
                        "lang": language,
                        "version": r.template_version,
                    }
                )
            else:
                subject, body, sha, language = m.subject, m.body, m.content_sha256, m.language
                readdressed.append({"mid": m.id, "cp": point_id, "to": recipient})
            unsubscribe = None
            if m.channel == "email":
                token = unsubscribe_token(self.settings.secret_key, m.id)
                unsubscribe = f"{self.settings.public_base_url.rstrip('/')}/unsubscribe/{token}"
            ready.append(
                _Ready(
                    m.id,
                    OutgoingMessage(
                        idempotency_key=m.idempotency_key,
                        channel=m.channel,
                        to=recipient,
                        body=body,
                        subject=subject,
                        language=language or "zh",
                        unsubscribe_url=unsubscribe,
                    ),
                    m.attempts,
                    account_id=m.account_id,
                    debtor_id=m.debtor_id,
                    contact_point_id=point_id,
                    template=m.template,
                    content_sha256=sha,
                )
            )
        conn = session.connection()
        table = OutboxMessage.__table__
        if new_content:
            conn.execute(
                update(table)  # type: ignore[arg-type]
                .where(table.c.id == bindparam("mid"))
                .values(
                    contact_point_id=bindparam("cp"),
                    recipient=bindparam("to"),
                    subject=bindparam("subject"),
                    body=bindparam("body"),
                    content_sha256=bindparam("sha"),
                    language=bindparam("lang"),
                    template_version=bindparam("version"),
                ),
                new_content,
            )
        if readdressed:
            conn.execute(
                update(table)  # type: ignore[arg-type]
                .where(table.c.id == bindparam("mid"))
                .values(contact_point_id=bindparam("cp"), recipient=bindparam("to")),
                readdressed,
            )
        return ready

    def _defer(self, session: Session, refused: pl.DataFrame, now: dt.datetime) -> set[int]:
        """The messages refused only because they are outside the contact window wait for the
        window's next opening in the debtor's zone (not counted as an attempt); their ids.
        One query for the zones, one opening per zone and portfolio, one executemany."""
        if refused.is_empty():
            return set()
        accounts = {int(a) for a in refused["account_id"]}
        facts = {
            int(aid): (zone or self.settings.default_timezone, int(pid), jurisdiction)
            for aid, zone, pid, jurisdiction in session.execute(
                select(Account.id, Debtor.timezone, Portfolio.id, Portfolio.jurisdiction)
                .join(Debtor, Debtor.id == Account.debtor_id)
                .join(Portfolio, Portfolio.id == Account.portfolio_id)
                .where(Account.id.in_(accounts))
            )
        }
        rulesets: dict[int, Any] = {}
        openings: dict[tuple[str, int], dt.datetime | None] = {}
        params: list[dict[str, Any]] = []
        deferred: set[int] = set()
        for row in refused.iter_rows(named=True):
            zone, pid, jurisdiction = facts[int(row["account_id"])]
            if (zone, pid) not in openings:
                if pid not in rulesets:
                    rulesets[pid] = compliance.ruleset_for(session, pid, jurisdiction)
                openings[zone, pid] = compliance_rules.next_allowed_time(now, [zone], rulesets[pid])
            opening = openings[zone, pid]
            if opening is not None:
                deferred.add(int(row["id"]))
                params.append(
                    {
                        "mid": int(row["id"]),
                        "at": opening,
                        "err": f"{row['reason_en']} / {row['reason_zh']}",
                    }
                )
        _requeue(session, self.worker, params, now, counted=False)
        return deferred

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

    def _record(self, outcomes: list[_Outcome], result: DispatchResult) -> None:
        """In one transaction: each outcome on its message (only while this worker still holds
        it), an interaction and a contact event for each message sent, the action done."""
        if not outcomes:
            return
        now = self.clock()
        s = self.settings
        with Session(self.engine) as session, session.begin():
            held = self._hold(session, [item.id for item, _ in outcomes], now)
            sent: list[tuple[_Ready, SendResult]] = []
            retries: list[dict[str, Any]] = []
            endings: list[Ending] = []
            for item, outcome in outcomes:
                if item.id not in held:
                    continue  # the lease ran out and another worker took it over
                if isinstance(outcome, SendResult):
                    sent.append((item, outcome))
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
                    retries.append(
                        {
                            "mid": item.id,
                            "at": now + dt.timedelta(seconds=delay),
                            "err": outcome.reason,
                        }
                    )
                    result.retried += 1
                else:
                    endings.append(Ending(item.id, "failed", outcome.reason, None, "failed"))
                    result.failed += 1
            _requeue(session, self.worker, retries, now, counted=True)
            finish_messages(session, self.worker, endings, now)
            if sent:
                self._sent(session, sent, now)
                result.sent += len(sent)

    def _hold(self, session: Session, ids: list[int], now: dt.datetime) -> set[int]:
        """The messages among `ids` this worker still holds, locked until the transaction
        ends: a worker that claims them after this cannot record over this one's outcome,
        and this one records nothing over a claim made before."""
        table = OutboxMessage.__table__
        return {
            int(i)
            for i in session.execute(
                update(table)  # type: ignore[arg-type]
                .where(
                    table.c.id.in_(ids),
                    table.c.locked_by == self.worker,
                    table.c.status == "sending",
                )
                .values(updated_at=now)
                .returning(table.c.id)
            ).scalars()
        }

    def _sent(
        self, session: Session, sent: list[tuple[_Ready, SendResult]], now: dt.datetime
    ) -> None:
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
                    "mid": item.id,
                    "st": r.status,
                    "pid": r.provider_id,
                    "dat": now if r.status == "delivered" else None,
                }
                for item, r in sent
            ],
        )
        conn.execute(
            _sql(
                "UPDATE planned_action SET status = 'done', updated_at = :now WHERE id IN "
                f"(SELECT planned_action_id FROM outbox_message WHERE id IN "
                f"({', '.join(str(item.id) for item, _ in sent)}))"
            ),
            {"now": now},
        )
        conn.execute(
            insert(Interaction.__table__),  # type: ignore[arg-type]
            [
                {
                    "account_id": item.account_id,
                    "debtor_id": item.debtor_id,
                    "channel": item.outgoing.channel,
                    "direction": "out",
                    "at": now,
                    "party": "self",
                    "contact_point_id": item.contact_point_id,
                    "address": item.outgoing.to,
                    "template": item.template,
                    "subject": item.outgoing.subject,
                    "content": item.outgoing.body,
                    "content_sha256": item.content_sha256,
                    "provider_id": r.provider_id,
                    "delivery_status": r.status,
                    "outbox_message_id": item.id,
                    "created_by": "system",
                    "created_at": now,
                    "updated_at": now,
                }
                for item, r in sent
            ],
        )
        compliance.record_contacts(
            session,
            [
                {
                    "account_id": item.account_id,
                    "debtor_id": item.debtor_id,
                    "contact_point_id": item.contact_point_id,
                    "channel": item.outgoing.channel,
                    "at": now,
                }
                for item, _ in sent
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


def account_of_point(session: Session, point: ContactPoint) -> int | None:
    """The account a debtor's reply or opt-out from a contact point is about: that of the last
    message sent to it, else the debtor's only account; None when it cannot be told."""
    last = session.scalar(
        select(OutboxMessage.account_id)
        .where(OutboxMessage.contact_point_id == point.id, OutboxMessage.sent_at.is_not(None))
        .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
        .limit(1)
    )
    if last is not None:
        return int(last)
    accounts = session.scalars(
        select(Account.id).where(Account.debtor_id == point.debtor_id).limit(2)
    ).all()
    return int(accounts[0]) if len(accounts) == 1 else None


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
                # On the account the opt-out is about, so that its timeline shows it.
                account_id=account_of_point(session, point),
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


def unsubscribe_addresses(session: Session, secret: str, token: str) -> list[str]:
    """The email addresses an unsubscribe link stands for: a message's (the `List-Unsubscribe`
    header) the address it went to; an account's (the link in an email's text) every email
    address of its debtor. Empty for a link that is not one of ours."""
    found = rules.read_unsubscribe_token(secret, token)
    values: list[str] = []
    if found is not None and found[0] == "m":
        message = session.get(OutboxMessage, found[1])
        if message is not None and message.recipient:
            values = [message.recipient]
    elif found is not None:
        account = session.get(Account, found[1])
        if account is not None:
            values = list(
                session.scalars(
                    select(ContactPoint.value).where(
                        ContactPoint.debtor_id == account.debtor_id,
                        ContactPoint.kind == "email",
                    )
                )
            )
    return values


def unsubscribe(session: Session, secret: str, token: str) -> list[ContactPoint]:
    """An unsubscribe link confirmed: the addresses it stands for (`unsubscribe_addresses`)
    are opted out (again: a no-op)."""
    values = unsubscribe_addresses(session, secret, token)
    if not values:
        raise Invalid("token", token[:100], "not a valid unsubscribe link / 退订链接无效")
    points: list[ContactPoint] = []
    for value in dict.fromkeys(values):
        points += opt_out_points(
            session,
            kind="email",
            value=value,
            by="debtor:unsubscribe",
            reason="unsubscribe link / 退订链接",
        )
    return points


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
