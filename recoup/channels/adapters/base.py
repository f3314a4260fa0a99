"""What every provider adapter takes and gives back, and the factory that picks one by settings.

An adapter sends one `OutgoingMessage` and returns a `SendResult`, or raises a `SendError` that
says whether sending the same message again later may succeed (`TransientSendError`: timeouts,
refused connections, 4xx SMTP replies, HTTP 429/5xx) or never will (`PermanentSendError`: a
rejected recipient, an invalid address, a 5xx SMTP reply, another HTTP 4xx). The outbox retries
the first kind and records the second.

Every message carries an idempotency key, which reaches the provider (SMTP headers
`X-Idempotency-Key` and `Message-ID`; the SMS gateway's `Idempotency-Key`), so that a message
sent again after a worker crash can be recognised as the same one.

An adapter holds a connection and is meant for one worker; `send` is serialised by a lock, so
sharing one between threads is safe but gains nothing. `close` releases the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from recoup.core.errors import Invalid

if TYPE_CHECKING:
    from recoup.core.settings import Settings

CHANNELS = ("email", "sms")
# "sent": accepted by the provider, a delivery receipt may follow; "delivered": final (the
# console and file adapters deliver on the spot).
SEND_STATUSES = ("sent", "delivered")
# Printable ASCII without spaces: it travels in SMTP and HTTP headers and in file names.
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


@dataclass(frozen=True)
class Attachment:
    """A file attached to an email (e.g. a PDF letter)."""

    filename: str
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to one recipient, rendered and checked, ready for a provider."""

    idempotency_key: str
    channel: str  # "email" | "sms"
    to: str  # email address or phone number
    body: str  # plain text
    subject: str | None = None
    html: str | None = None
    language: str = "zh"
    unsubscribe_url: str | None = None  # email: List-Unsubscribe (RFC 2369, RFC 8058)
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise Invalid("channel", self.channel, "must be email or sms")
        if not _KEY.fullmatch(self.idempotency_key):
            raise Invalid(
                "idempotency_key",
                self.idempotency_key,
                "must be 1 to 200 printable ASCII characters without spaces",
            )


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message: its id for it, and "sent" or "delivered"."""

    provider_id: str
    status: str


class SendError(Exception):
    """Sending failed. `retryable` says whether the same message may succeed later; `reason`
    is the provider's words (or ours) for a person; `code` the SMTP reply code or HTTP status
    when there was one; `retry_after` the seconds the provider asked to wait, if it did."""

    retryable: bool = False

    def __init__(
        self, reason: str, *, code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.retry_after = retry_after


class TransientSendError(SendError):
    """May succeed later: a timeout, a refused connection, a busy or overloaded provider."""

    retryable = True


class PermanentSendError(SendError):
    """Will not succeed as it is: a rejected recipient, an invalid address, bad credentials."""

    retryable = False


@runtime_checkable
class Adapter(Protocol):
    """A provider of one channel."""

    channel: str

    def send(self, message: OutgoingMessage) -> SendResult: ...

    def close(self) -> None: ...


def check_channel(adapter: Adapter, message: OutgoingMessage) -> None:
    """Refuse a message of another channel (a routing mistake; sending it again cannot help)."""
    if message.channel != adapter.channel:
        raise PermanentSendError(
            f"a {message.channel} message was given to the {adapter.channel} adapter "
            f"{type(adapter).__name__}"
        )


def adapter_for(channel: str, settings: Settings) -> Adapter:
    """The adapter of `channel` chosen by settings (`email_adapter`, `sms_adapter`).

    Raises `Invalid` naming every setting that is missing or wrong for that adapter.
    """
    # Imported here: the concrete adapters import this module.
    from recoup.channels.adapters.local import DEFAULT_FROM, ConsoleAdapter, FileAdapter
    from recoup.channels.adapters.sms import SmsHttpAdapter
    from recoup.channels.adapters.smtp import SmtpAdapter

    if channel == "email":
        if settings.email_adapter == "smtp":
            return SmtpAdapter.from_settings(settings)
        if settings.email_adapter == "file":
            return FileAdapter(
                settings.outbox_dir, "email", from_addr=settings.smtp_from or DEFAULT_FROM
            )
        return ConsoleAdapter("email", from_addr=settings.smtp_from or DEFAULT_FROM)
    if channel == "sms":
        if settings.sms_adapter == "http":
            return SmsHttpAdapter.from_settings(settings)
        if settings.sms_adapter == "file":
            return FileAdapter(settings.outbox_dir, "sms", sender=settings.sms_sender)
        return ConsoleAdapter("sms", sender=settings.sms_sender)
    raise Invalid("channel", channel, "no provider adapter for this channel; use email or sms")
