"""What people do with the outbox by hand: read a message, count a listing, send a message, send
a failed or bounced message again, read an account's timeline.

These sit beside `outbox` (which the workers use) and belong with it; they only read and
write `outbox_message` the way `outbox` does."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recoup.channels import outbox
from recoup.channels import service as templates
from recoup.channels.models import Interaction, OutboxMessage
from recoup.core.db import utcnow
from recoup.core.errors import Conflict, Invalid, NotFound
from recoup.ledger.models import Account

STATUSES = ("pending", "sending", "sent", "delivered", "failed", "bounced", "blocked", "cancelled")
RETRYABLE = ("failed", "bounced")


def get_message(session: Session, message_id: int) -> OutboxMessage:
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound(f"no outbox message {message_id} / 没有发送队列消息 {message_id}")
    return message


def count_messages(
    session: Session, *, status: str | None = None, account_id: int | None = None
) -> int:
    """How many messages `outbox.list_messages` pages through with the same filters."""
    query = select(func.count(OutboxMessage.id))
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    if account_id is not None:
        query = query.where(OutboxMessage.account_id == account_id)
    return int(session.scalar(query) or 0)


def stats(session: Session) -> dict[str, int]:
    """Messages by status, every status present (0 when none)."""
    counts = outbox.counts_by_status(session)
    return {status: counts.get(status, 0) for status in (*STATUSES, *sorted(counts))}


def retry(session: Session, message_id: int, now: dt.datetime | None = None) -> OutboxMessage:
    """Send a failed or bounced message again, now; the message that will be sent.

    A message the provider never accepted (no provider id: it failed at our end, or every
    attempt met an error) goes back to pending with the same idempotency key, so that an
    attempt which did reach the provider (a timeout after acceptance) is dropped by it as a
    duplicate rather than sent twice. A message the provider accepted and then reported as
    failed or bounced is a sent message with its own record; sending it again is a new message
    (key `retry:<id>`, asking again for the same key gives the same message), checked, addressed
    and rendered afresh at send time like any other."""
    now = now or utcnow()
    message = get_message(session, message_id)
    if message.status not in RETRYABLE:
        raise Conflict(
            f"message {message_id} is {message.status}: only a failed or bounced message can be "
            f"sent again / 只有发送失败或被退回的消息可以重发（当前状态：{message.status}）"
        )
    if message.provider_id is not None:
        return outbox.enqueue(
            session,
            account_id=message.account_id,
            channel=message.channel,
            template=message.template,
            at=now,
            key=f"retry:{message.id}",
            planned_action_id=message.planned_action_id,
        )
    message.status = "pending"
    message.next_attempt_at = now
    message.attempts = 0
    message.rule_id = None
    message.locked_by = None
    message.locked_until = None
    message.updated_at = now
    session.flush()
    return message


def send(
    session: Session,
    account_id: int,
    channel: str,
    template: str,
    *,
    at: dt.datetime | None = None,
    key: str | None = None,
) -> OutboxMessage:
    """A message asked for by hand (a person, or a client of the API): queued for `at` (default
    now) and checked by the guard when it is sent, like any other. The account must exist and
    the template be written for the channel (otherwise it could only fail at send time). A
    client's `key` makes a repeated request one message; the same key for another channel or
    template is a conflict."""
    if session.get(Account, account_id) is None:
        raise NotFound(f"no account {account_id} / 没有账户 {account_id}")
    written_for = templates.get_template(session, template, "zh").channels
    if channel not in written_for:
        raise Invalid(
            "template",
            template,
            f"not written for {channel} (its channels: {', '.join(written_for)}) / "
            f"该模板不适用于{channel}渠道",
        )
    full_key = f"api:{account_id}:{key}" if key else None
    if full_key is not None:
        existing = session.scalar(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == full_key)
        )
        if existing is not None and (existing.channel, existing.template) != (channel, template):
            raise Conflict(
                f"key {key!r} was used for message {existing.id} ({existing.channel}, "
                f"{existing.template}) / 该幂等键已用于另一条消息"
            )
    return outbox.enqueue(
        session, account_id=account_id, channel=channel, template=template, at=at, key=full_key
    )


def account_timeline(session: Session, account_id: int, limit: int = 100) -> list[Interaction]:
    """The account's interactions, newest first."""
    if session.get(Account, account_id) is None:
        raise NotFound(f"no account {account_id} / 没有账户 {account_id}")
    return outbox.timeline(session, account_id, limit)
