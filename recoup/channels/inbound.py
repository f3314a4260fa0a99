"""What comes in from outside: the SMS gateway's webhooks (delivery receipts, and the replies
debtors send) and the unsubscribe links of emails.

The webhooks are signed as `adapters.sms` describes (HMAC-SHA256 of the timestamp and the raw
body with `sms_gateway_secret`, within 5 minutes of our clock); `check_signature` says why a
request is refused. A reply that is an opt-out keyword (TD, 退订, STOP …) makes every contact
point with that number do-not-contact; any other reply is kept on the timeline of each debtor
the number belongs to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from recoup.channels import outbox
from recoup.channels.adapters import sms
from recoup.channels.models import Interaction, OutboxMessage
from recoup.core.db import utcnow
from recoup.core.errors import (
    Conflict,
    FieldError,
    Invalid,
    NotFound,
    Unauthorized,
    Unavailable,
)
from recoup.ledger.models import ContactPoint

# Phone numbers are stored as typed (digits, +, spaces, hyphens, brackets).
_SEPARATORS = (" ", "-", "(", ")", ".", "+")
# Numbers compare on their last digits first (in SQL), then exactly (in Python).
_SUFFIX = 7
_TOKEN = re.compile(r"a?[0-9]{1,18}\.[0-9a-f]{32}")


# --------------------------------------------------------------------------- signatures


def check_signature(
    secret: SecretStr | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: dt.datetime,
    max_skew_seconds: int = sms.MAX_SKEW_SECONDS,
) -> None:
    """Refuse a webhook request that is not signed by the gateway, saying why: `Unavailable`
    when no secret is configured (nothing can be checked, so nothing is accepted),
    `Unauthorized` for a missing, malformed, stale or wrong signature."""
    key = secret.get_secret_value() if secret is not None else ""
    if not key:
        raise Unavailable(
            "SMS webhooks are off until sms_gateway_secret is set / 未配置短信网关密钥，不接收回调"
        )
    if not signature:
        raise Unauthorized(f"the {sms.SIGNATURE_HEADER} header is missing / 缺少签名")
    if not timestamp:
        raise Unauthorized(f"the {sms.TIMESTAMP_HEADER} header is missing / 缺少时间戳")
    stamp = timestamp.strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise Unauthorized(
            f"{sms.TIMESTAMP_HEADER} must be Unix time in whole seconds / 时间戳应为Unix秒数"
        )
    skew = abs(now.timestamp() - int(stamp))
    if skew > max_skew_seconds:
        raise Unauthorized(
            f"{sms.TIMESTAMP_HEADER} is {int(skew)} s away from the server's clock (at most "
            f"{max_skew_seconds} s): a stale or replayed request / 时间戳已过期"
        )
    if not sms.verify_signature(key, stamp, body, signature, now, max_skew_seconds):
        raise Unauthorized(f"{sms.SIGNATURE_HEADER} does not match the body / 签名与请求内容不符")


def read_json(body: bytes) -> Any:
    """The JSON of a webhook body; `Invalid` (field `body`) when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 JSON"
        raise Invalid("body", None, f"not JSON: {why} / 不是有效的JSON") from exc


# --------------------------------------------------------------------------- receipts


# The longest text each webhook field may hold (its column), None: any length.
RECEIPT_FIELDS: dict[str, int | None] = {
    "id": 200,
    "message_id": 200,
    "status": 16,
    "at": 64,
    "error": None,
    "idempotency_key": 100,
}
INBOUND_FIELDS: dict[str, int | None] = {"from": 64, "text": 10_000, "at": 64, "to": 64, "id": 200}


def _storable(payload: Any, fields: dict[str, int | None]) -> None:
    """Refuse text the database cannot store (NUL, a lone surrogate) or that is longer than its
    column, naming each field; the parsers check the rest."""
    if not isinstance(payload, Mapping):
        return
    errors: list[FieldError] = []
    for name, limit in fields.items():
        value = payload.get(name)
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            errors.append(FieldError(name, value, "not valid Unicode text"))
            continue
        if "\x00" in value:
            errors.append(FieldError(name, value, "must not contain the NUL character"))
        elif limit is not None and len(value) > limit:
            errors.append(FieldError(name, value[:100], f"at most {limit} characters"))
    if errors:
        raise Invalid(errors=errors)


def receive_receipt(session: Session, payload: Any) -> OutboxMessage:
    """A delivery receipt applied to its message (a repeat changes nothing more). A receipt
    that overtakes the worker's record of the send (the gateway answered, and the receipt came
    before the worker wrote the gateway's id down) is refused as a conflict, to be sent again;
    one for a message we never sent is `NotFound`."""
    _storable(payload, RECEIPT_FIELDS)
    receipt = sms.parse_delivery_receipt(payload)
    try:
        return outbox.apply_receipt(
            session, receipt.provider_id, receipt.status, receipt.at, receipt.error
        )
    except NotFound:
        if receipt.idempotency_key is not None:
            status = session.scalar(
                select(OutboxMessage.status).where(
                    OutboxMessage.idempotency_key == receipt.idempotency_key
                )
            )
            if status == "sending":
                raise Conflict(
                    f"the message {receipt.idempotency_key!r} is still being sent: send the "
                    "receipt again shortly / 消息仍在发送中，请稍后重发回执"
                ) from None
        raise


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class InboundResult:
    opt_out: bool
    opted_out: int = 0
    recorded: int = 0


def _canonical(number: str) -> str | None:
    """A phone number's digits without the international (+, 00) or trunk (0) prefix."""
    text = unicodedata.normalize("NFKC", number).strip()
    for ch in _SEPARATORS[:-1]:
        text = text.replace(ch, "")
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    elif text.startswith("0"):
        text = text[1:]
    return text if text.isascii() and text.isdigit() else None


def same_number(a: str, b: str) -> bool:
    """Whether two phone numbers as typed are the same line: the same digits, or the same
    national number with and without its country code (+86 138… and 138…)."""
    ca, cb = _canonical(a), _canonical(b)
    if not ca or not cb:
        return False
    if ca == cb:
        return True
    short, long = sorted((ca, cb), key=len)
    return len(short) >= _SUFFIX and long.endswith(short) and len(long) - len(short) <= 3


def _digits(column: InstrumentedAttribute[str]) -> ColumnElement[str]:
    """The column's text without separators, in SQL."""
    expr: ColumnElement[str] = func.replace(column, _SEPARATORS[0], "")
    for ch in _SEPARATORS[1:]:
        expr = func.replace(expr, ch, "")
    return expr


def phone_points(session: Session, number: str) -> list[ContactPoint]:
    """Every phone contact point of any debtor that is `number`, whatever its format."""
    canonical = _canonical(number)
    if not canonical or len(canonical) < 5:
        return []
    candidates = session.scalars(
        select(ContactPoint)
        .where(
            ContactPoint.kind == "phone",
            _digits(ContactPoint.value).like("%" + canonical[-_SUFFIX:]),
        )
        .order_by(ContactPoint.id)
    ).all()
    return [p for p in candidates if same_number(p.value, number)]


def receive_sms(session: Session, payload: Any) -> InboundResult:
    """A debtor's SMS. An opt-out keyword stops SMS to that number (every contact point with
    it becomes do-not-contact, kept in the debtor's history); any other text is recorded as an
    inbound interaction of each debtor the number belongs to. A repeated webhook (same gateway
    id, or same number, time and text) records nothing more."""
    _storable(payload, INBOUND_FIELDS)
    message = sms.parse_inbound_sms(payload)
    points = phone_points(session, message.from_number)
    if sms.is_opt_out(message.text):
        changed = 0
        for value in dict.fromkeys(p.value for p in points):
            changed += len(
                outbox.opt_out_points(
                    session, kind="phone", value=value, by="debtor:sms", reason=message.text
                )
            )
        return InboundResult(opt_out=True, opted_out=changed)
    digest = hashlib.sha256(message.text.encode("utf-8")).hexdigest()
    recorded = 0
    seen: set[int] = set()
    for point in points:
        if point.debtor_id in seen:
            continue
        seen.add(point.debtor_id)
        same = [
            Interaction.debtor_id == point.debtor_id,
            Interaction.channel == "sms",
            Interaction.direction == "in",
        ]
        if message.provider_id:
            same.append(Interaction.provider_id == message.provider_id)
        else:
            same += [
                Interaction.at == message.at,
                Interaction.address == message.from_number,
                Interaction.content_sha256 == digest,
            ]
        if session.scalar(select(Interaction.id).where(*same).limit(1)) is not None:
            continue
        now = utcnow()
        session.add(
            Interaction(
                account_id=outbox.account_of_point(session, point),
                debtor_id=point.debtor_id,
                channel="sms",
                direction="in",
                at=message.at,
                party=point.owner,
                contact_point_id=point.id,
                address=message.from_number,
                content=message.text,
                content_sha256=digest,
                provider_id=message.provider_id,
                created_by="debtor:sms",
                created_at=now,
                updated_at=now,
            )
        )
        recorded += 1
    session.flush()
    return InboundResult(opt_out=False, recorded=recorded)


# --------------------------------------------------------------------------- unsubscribe


def unsubscribe_state(session: Session, secret: str, token: str) -> str:
    """What the page of an unsubscribe link shows before anything is done: 'invalid' (not one
    of our links), 'done' (every address it stands for is already opted out) or 'confirm'."""
    if not _TOKEN.fullmatch(token):
        return "invalid"
    values = outbox.unsubscribe_addresses(session, secret, token)
    if not values:
        return "invalid"
    pending = session.scalar(
        select(func.count(ContactPoint.id)).where(
            ContactPoint.kind == "email",
            ContactPoint.value.in_(values),
            ContactPoint.do_not_contact.is_(False),
        )
    )
    return "confirm" if pending else "done"


def unsubscribe(session: Session, secret: str, token: str) -> list[ContactPoint]:
    """An email's unsubscribe link followed: the address it went to is opted out (again: a
    no-op). `Invalid` (field `token`) for a link that is not one of ours."""
    if not _TOKEN.fullmatch(token):
        raise Invalid("token", token[:100], "not a valid unsubscribe link / 退订链接无效")
    return outbox.unsubscribe(session, secret, token)
