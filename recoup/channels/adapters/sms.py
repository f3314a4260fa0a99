"""SMS through an HTTP gateway, and the pure functions of the gateway's webhooks.

Wire format (what a gateway, or `recoup.channels.sinks.SmsGatewaySink`, implements):

Send: `POST <sms_gateway_url>` with a JSON body (UTF-8)
`{"to", "text", "sender", "idempotency_key", "callback_url"?}` and the headers

- `Idempotency-Key`: the message's key; the gateway answers a repeated key with the first
  answer and sends nothing again;
- `X-Recoup-Timestamp`: Unix time in whole seconds when the request was signed;
- `X-Recoup-Signature`: `sha256=` + hex HMAC-SHA256, keyed with the shared secret, of the
  ASCII timestamp, a full stop and the raw body: `f"{timestamp}.".encode() + body`.
  Signing the timestamp with the body lets the receiver refuse a replayed request: it checks
  the signature and that the timestamp is within 5 minutes of its clock (`verify_signature`).

The gateway answers 2xx with `{"id": ...}` (or `"message_id"`), the id of its receipts.
429, 5xx, 408 and network failures are transient (retry later, honouring `Retry-After`);
any other answer is permanent, with the gateway's message as the reason.

Webhooks (the gateway calls Recoup, signed the same way): a delivery receipt
`{"id", "status": "delivered"|"failed"|"bounced"|"sent", "at", "error"?, "idempotency_key"?}`
(`parse_delivery_receipt`) and an inbound SMS `{"from", "text", "at", "to"?, "id"?}`
(`parse_inbound_sms`); `at` is ISO 8601 with an offset, or Unix seconds. An inbound SMS that
is an opt-out keyword (`is_opt_out`) stops SMS to that number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from recoup.channels.adapters.base import (
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
    check_channel,
)
from recoup.core.errors import FieldError, Invalid

if TYPE_CHECKING:
    from recoup.core.settings import Settings

SIGNATURE_HEADER = "X-Recoup-Signature"
TIMESTAMP_HEADER = "X-Recoup-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_SKEW_SECONDS = 300
RECEIPT_STATUSES = ("delivered", "failed", "bounced", "sent")
# Replies that carriers and the seeds' Chinese practice treat as "stop sending me SMS" when they
# are the whole message: STOP & co. (CTIA), 退订 / TD / T / N (国内短信 "回T退订"), 退訂 (繁體).
OPT_OUT_KEYWORDS = frozenset(
    {"stop", "unsubscribe", "cancel", "end", "quit", "退订", "退訂", "td", "t", "n"}
)
_PHONE = re.compile(r"\+?[0-9]{5,15}")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")


# -- signatures --------------------------------------------------------------------------------


def _key_bytes(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The `X-Recoup-Signature` value: `sha256=` + hex HMAC-SHA256 of `b"<timestamp>." + body`."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(_key_bytes(secret), signed, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str | int | None,
    body: bytes,
    header: str | None,
    now: float | dt.datetime,
    max_skew_seconds: float = MAX_SKEW_SECONDS,
) -> bool:
    """Whether `header` is the signature of `body` at `timestamp` (Unix seconds), and the
    timestamp is within `max_skew_seconds` of `now` (Unix seconds or an aware datetime).
    The signature is compared in constant time."""
    if header is None or timestamp is None:
        return False
    text = str(timestamp).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return False
    now_seconds = now.timestamp() if isinstance(now, dt.datetime) else float(now)
    if abs(now_seconds - int(text)) > max_skew_seconds:
        return False
    expected = sign(secret, text, body).encode("ascii")
    return hmac.compare_digest(expected, header.strip().encode("utf-8"))


# -- webhooks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryReceipt:
    """The gateway's word on a message it accepted."""

    provider_id: str
    status: str  # delivered | failed | bounced | sent
    at: dt.datetime  # aware, UTC
    error: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class InboundSms:
    """An SMS a debtor sent to us."""

    from_number: str
    text: str
    at: dt.datetime  # aware, UTC
    to: str | None = None
    provider_id: str | None = None


def _instant(payload: Mapping[str, Any], name: str, errors: list[FieldError]) -> dt.datetime:
    value = payload.get(name)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value, dt.UTC)
        except (OverflowError, OSError, ValueError):
            errors.append(FieldError(name, value, "not a Unix time in seconds"))
            return epoch
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            errors.append(FieldError(name, value, "not an ISO 8601 date and time"))
            return epoch
        if parsed.tzinfo is None:
            errors.append(FieldError(name, value, "needs a UTC offset, e.g. 2026-06-15T08:00Z"))
            return epoch
        return parsed.astimezone(dt.UTC)
    why = "required" if value is None else "must be ISO 8601 text or Unix seconds"
    errors.append(FieldError(name, value, why))
    return epoch


def _optional_text(payload: Mapping[str, Any], name: str, errors: list[FieldError]) -> str | None:
    value = payload.get(name)
    if value is None or isinstance(value, str):
        return value
    errors.append(FieldError(name, value, "must be text"))
    return None


def _object(payload: object) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise Invalid("payload", type(payload).__name__, "must be a JSON object")
    return payload


def parse_delivery_receipt(payload: Mapping[str, Any]) -> DeliveryReceipt:
    """A delivery receipt from the gateway's JSON; `Invalid` names every bad field."""
    payload = _object(payload)
    errors: list[FieldError] = []
    id_field = "id" if "id" in payload or "message_id" not in payload else "message_id"
    provider_id = payload.get(id_field)
    if (
        not isinstance(provider_id, str | int)
        or isinstance(provider_id, bool)
        or not (str(provider_id).strip())
    ):
        why = "required" if provider_id is None else "must be a non-empty string"
        errors.append(FieldError(id_field, provider_id, f"{why}: the gateway's message id"))
    status = payload.get("status")
    if not isinstance(status, str) or status.strip().lower() not in RECEIPT_STATUSES:
        errors.append(FieldError("status", status, f"must be one of {', '.join(RECEIPT_STATUSES)}"))
    at = _instant(payload, "at", errors)
    error = _optional_text(payload, "error", errors)
    key = _optional_text(payload, "idempotency_key", errors)
    if errors:
        raise Invalid(errors=errors)
    assert isinstance(status, str)
    return DeliveryReceipt(
        provider_id=str(provider_id).strip(),
        status=status.strip().lower(),
        at=at,
        error=error,
        idempotency_key=key,
    )


def parse_inbound_sms(payload: Mapping[str, Any]) -> InboundSms:
    """An inbound SMS from the gateway's JSON; `Invalid` names every bad field."""
    payload = _object(payload)
    errors: list[FieldError] = []
    sender = payload.get("from")
    from_number = ""
    if not isinstance(sender, str):
        errors.append(FieldError("from", sender, "required: the sender's phone number"))
    else:
        try:
            from_number = normalise_phone(sender)
        except PermanentSendError:
            errors.append(FieldError("from", sender, "not a phone number"))
    text = payload.get("text")
    if not isinstance(text, str):
        errors.append(FieldError("text", text, "required: the message text"))
    at = _instant(payload, "at", errors)
    to = _optional_text(payload, "to", errors)
    provider_id = _optional_text(payload, "id", errors)
    if errors:
        raise Invalid(errors=errors)
    assert isinstance(text, str)
    return InboundSms(from_number=from_number, text=text, at=at, to=to, provider_id=provider_id)


def _is_edge(ch: str) -> bool:
    # Spaces, punctuation (".", "!", "。", "【】") and invisible format characters (U+200B, BOM).
    return ch.isspace() or unicodedata.category(ch)[0] in "PZ" or unicodedata.category(ch) == "Cf"


def is_opt_out(text: str) -> bool:
    """Whether an inbound SMS is an opt-out: the whole text, trimmed of spaces and punctuation,
    is one of `OPT_OUT_KEYWORDS`, ignoring case and width (ＳＴＯＰ, ｔｄ: NFKC)."""
    normal = unicodedata.normalize("NFKC", text).casefold()
    start, end = 0, len(normal)
    while start < end and _is_edge(normal[start]):
        start += 1
    while end > start and _is_edge(normal[end - 1]):
        end -= 1
    return normal[start:end] in OPT_OUT_KEYWORDS


def normalise_phone(number: str) -> str:
    """`number` without spaces, hyphens, dots and brackets (full-width digits made ASCII):
    an optional `+` and 5 to 15 digits (E.164). Raises `PermanentSendError` otherwise."""
    compact = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", number))
    if not _PHONE.fullmatch(compact):
        raise PermanentSendError(f"invalid phone number {number!r}")
    return compact


# -- the adapter -------------------------------------------------------------------------------


def _gateway_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        for name in ("error", "message", "detail"):
            value = data.get(name)
            if isinstance(value, Mapping):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value[:300]
    text = " ".join(response.text.split())[:300]
    return text or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


class SmsHttpAdapter:
    """Sends SMS through an HTTP gateway over a keep-alive connection (httpx)."""

    channel = "sms"

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        sender: str | None = None,
        timeout: float = 10.0,
        callback_url: str | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._secret = _key_bytes(secret)
        self.sender = sender
        self.callback_url = callback_url
        self._clock = clock
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"Content-Type": "application/json", "User-Agent": "recoup-sms/1"},
            transport=transport,
        )
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsHttpAdapter:
        """The adapter described by the `sms_*` settings; `Invalid` names what is missing."""
        errors = []
        needed = 'required when sms_adapter is "http"'
        url = settings.sms_gateway_url
        if not url:
            errors.append(FieldError("sms_gateway_url", url, needed))
        elif not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            errors.append(FieldError("sms_gateway_url", url, "must be an http:// or https:// URL"))
        if (
            settings.sms_gateway_secret is None
            or not settings.sms_gateway_secret.get_secret_value()
        ):
            errors.append(FieldError("sms_gateway_secret", None, f"{needed} (signs requests)"))
        callback = settings.sms_callback_url
        if callback is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", callback):
            errors.append(
                FieldError("sms_callback_url", callback, "must be an http:// or https:// URL")
            )
        if errors:
            raise Invalid(errors=errors)
        assert url is not None and settings.sms_gateway_secret is not None
        return cls(
            url,
            settings.sms_gateway_secret.get_secret_value(),
            sender=settings.sms_sender,
            timeout=settings.sms_timeout_seconds,
            callback_url=callback,
        )

    def __enter__(self) -> SmsHttpAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request_body(self, message: OutgoingMessage) -> bytes:
        """The JSON body sent for `message` (compact, UTF-8)."""
        if not message.body.strip():
            raise PermanentSendError("the SMS text is empty")
        payload: dict[str, Any] = {
            "to": normalise_phone(message.to),
            "text": message.body,
            "sender": self.sender,
            "idempotency_key": message.idempotency_key,
        }
        if self.callback_url:
            payload["callback_url"] = self.callback_url
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one SMS. Raises `TransientSendError` or `PermanentSendError`."""
        check_channel(self, message)
        body = self.request_body(message)
        timestamp = str(int(self._clock()))
        headers = {
            IDEMPOTENCY_HEADER: message.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        with self._lock:
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                raise TransientSendError(f"SMS gateway timed out: {exc!r}") from exc
            except httpx.TransportError as exc:
                raise TransientSendError(f"cannot reach the SMS gateway: {exc!r}") from exc
        code = response.status_code
        if 200 <= code < 300:
            try:
                data = response.json()
            except ValueError:
                data = None
            reply = data if isinstance(data, Mapping) else {}
            provider_id = reply.get("id") or reply.get("message_id")
            # A gateway that answers without an id knows the message by its idempotency key.
            return SendResult(
                provider_id=str(provider_id) if provider_id else message.idempotency_key,
                status="delivered" if reply.get("status") == "delivered" else "sent",
            )
        reason = f"SMS gateway answered {code}: {_gateway_message(response)}"
        if code in (408, 429) or code >= 500:
            raise TransientSendError(reason, code=code, retry_after=_retry_after(response))
        raise PermanentSendError(reason, code=code)

    def close(self) -> None:
        """Close the keep-alive connections."""
        self._client.close()
