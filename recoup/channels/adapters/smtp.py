"""Email over SMTP (smtplib): one persistent connection per adapter, reused across sends.

Security is `starttls` (port 587: plain connection upgraded with STARTTLS, which must be
offered), `tls` (port 465: TLS from the first byte) or `none` (port 25, for a local relay).
Certificates are checked against the system's CAs, or against `ca_file` when given;
`verify=False` skips the checks (development only).

Each send is one SMTP transaction (MAIL, RCPT, DATA) on the open connection. When the server has
dropped an idle connection, the adapter reconnects once and sends again. A server that drops the
connection after receiving the data but before replying may then get the message twice; the
`Message-ID` and `X-Idempotency-Key` it carries are the same both times, so a receiving system
can tell. Timeouts are not retried on the spot: the outbox retries them later.

Replies map to errors by their class (RFC 5321 4.2.1): 4xx is transient, 5xx permanent.
"""

from __future__ import annotations

import email.charset
import email.encoders
import email.policy
import email.utils
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recoup.channels.adapters.base import (
    OutgoingMessage,
    PermanentSendError,
    SendError,
    SendResult,
    TransientSendError,
    check_channel,
)
from recoup.core.errors import FieldError, Invalid

if TYPE_CHECKING:
    from recoup.core.settings import Settings

SECURITY_MODES = ("starttls", "tls", "none")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
MESSAGE_ID_DOMAIN = "recoup"

# Characters outside an RFC 5322 quoted string or a domain; anything else may be in a local part.
_LOCAL = re.compile(r'[^\s@<>()\[\]\\,;:"]{1,64}')
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# "250 2.0.0 Ok: queued as 4F2A51C0D5" (Postfix), "250 OK id=1abc-2def" (Exim).
_QUEUE_ID = re.compile(r"(?:queued as|\bid=)\s*([A-Za-z0-9._-]+)", re.IGNORECASE)
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,127}")  # RFC 6838 type and subtype names


def encode_key(key: str) -> str:
    """`key` with every character but letters, digits, `-` and `_` written as `=XX` (hex of its
    UTF-8 bytes): safe in a Message-ID and a file name, and different keys stay different."""
    out = []
    for ch in key:
        if ch.isascii() and (ch.isalnum() or ch in "-_"):
            out.append(ch)
        else:
            out.extend(f"={b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def message_id(idempotency_key: str) -> str:
    """The Message-ID of the message with this key: `<key@recoup>`, the key encoded."""
    return f"<{encode_key(idempotency_key)}@{MESSAGE_ID_DOMAIN}>"


def check_address(address: str) -> str:
    """A plain address (`local@domain`) as SMTP wants it, its domain in IDNA form (例子.中国 →
    xn--fsqu00a.xn--fiqs8s). Raises `PermanentSendError` if it is not an address, or if its
    local part is not ASCII (internationalised mailboxes, SMTPUTF8, are not supported)."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not _LOCAL.fullmatch(local) or local.startswith(".") or local.endswith("."):
        raise PermanentSendError(f"invalid email address {address!r}")
    if not local.isascii():
        raise PermanentSendError(
            f"email address {address!r}: non-ASCII mailbox names (SMTPUTF8) are not supported"
        )
    try:
        ascii_domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise PermanentSendError(f"invalid email address {address!r}") from None
    ascii_domain = ascii_domain.lower()
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise PermanentSendError(f"invalid email address {address!r}")
    return f"{local}@{ascii_domain}"


def check_from(from_addr: str) -> tuple[str, str]:
    """The From header value (a non-ASCII display name encoded, RFC 2047) and the envelope
    sender of `from_addr` ("Name <addr>" or "addr"). Raises `PermanentSendError`."""
    if "\n" in from_addr or "\r" in from_addr or len(from_addr) > 300:
        raise PermanentSendError(f"invalid From address {from_addr!r}")
    name, addr = email.utils.parseaddr(from_addr)
    envelope = check_address(addr or "-")
    return email.utils.formataddr((name, envelope), charset="utf-8"), envelope


# Bodies: ASCII as quoted-printable (readable, safe with long lines), anything else (Chinese)
# as base64, the smaller of the two for it. Both are 7-bit: no server needs 8BITMIME.
_UTF8_QP = email.charset.Charset("utf-8")
_UTF8_QP.body_encoding = email.charset.QP
_UTF8_BASE64 = email.charset.Charset("utf-8")
_UTF8_BASE64.body_encoding = email.charset.BASE64


class _WirePolicy(email.policy.Compat32):
    """compat32 with CRLF line ends and a fast path for the headers we write: ASCII, already
    encoded (RFC 2047) and no line longer than 78 characters, they are written as they are;
    anything else is folded by compat32 as usual (same output, a tenth of the time)."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if isinstance(value, str) and value.isascii():
            lines = value.split("\n")
            limit = self.max_line_length or 998
            if len(name) + 2 + len(lines[0]) <= limit and all(len(x) <= limit for x in lines):
                return f"{name}: {self.linesep.join(lines)}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_WIRE = _WirePolicy(linesep="\r\n")


def _text_part(text: str, subtype: str, language: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    if text.isascii():
        part.set_payload(text, _UTF8_QP)
    else:
        # Base64 hides the line ends from the generator: encode them in canonical form (CRLF).
        canonical = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
        part.set_payload(canonical, _UTF8_BASE64)
    part["Content-Language"] = language
    return part


def build_email(message: OutgoingMessage, from_addr: str, now: float | None = None) -> Message:
    """The MIME message of an outgoing email: text/plain (UTF-8), an HTML alternative if
    given (both with Content-Language), attachments, and the headers From, To, Subject, Date,
    Message-ID, X-Idempotency-Key and (with `unsubscribe_url`) List-Unsubscribe.

    Raises `PermanentSendError` for an invalid address, URL or attachment type.
    """
    # The legacy (compat32) API: about eight times faster than EmailMessage with the modern
    # policy, whose header parsing alone would hold a worker under 500 messages/s. It checks
    # nothing, so every header value is checked here (no line breaks: no header injection).
    to = check_address(message.to)
    from_header, _ = check_from(from_addr)
    msg: Message = _text_part(message.body, "plain", message.language)
    if message.html is not None:
        msg = MIMEMultipart(
            "alternative", _subparts=[msg, _text_part(message.html, "html", message.language)]
        )
    if message.attachments:
        parts: list[Message] = [msg]
        for attachment in message.attachments:
            maintype, slash, subtype = attachment.content_type.partition("/")
            if not (slash and _TOKEN.fullmatch(maintype) and _TOKEN.fullmatch(subtype)):
                raise PermanentSendError(
                    f"invalid content type {attachment.content_type!r} of {attachment.filename!r}"
                )
            filename = attachment.filename
            # 255 bytes, as on a file system; it also keeps the header line under 998 (RFC 5322).
            if not 0 < len(filename.encode()) <= 255 or any(c in filename for c in "\r\n\0/"):
                raise PermanentSendError(f"invalid attachment file name {filename!r}")
            part = MIMEBase(maintype, subtype)
            part.set_payload(attachment.data)
            email.encoders.encode_base64(part)
            part.add_header(
                "Content-Disposition",
                "attachment",
                filename=filename if filename.isascii() else ("utf-8", "", filename),
            )
            parts.append(part)
        msg = MIMEMultipart("mixed", _subparts=parts)
    msg["From"] = from_header
    msg["To"] = to
    if message.subject is not None:
        if "\n" in message.subject or "\r" in message.subject:
            raise PermanentSendError("the subject contains a line break")
        subject = message.subject
        if not subject.isascii():  # RFC 2047 encoded words, folded
            subject = Header(subject, "utf-8", header_name="Subject").encode()
        msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(now, usegmt=True)
    msg["Message-ID"] = message_id(message.idempotency_key)
    msg["X-Idempotency-Key"] = message.idempotency_key
    if message.unsubscribe_url is not None:
        url = message.unsubscribe_url
        if not re.fullmatch(r"https?://[\x21-\x7e]{1,900}", url) or any(c in url for c in "<>,"):
            raise PermanentSendError(f"invalid unsubscribe URL {url!r}")
        msg["List-Unsubscribe"] = f"<{url}>"
        # RFC 8058 one-click unsubscription is defined for HTTPS URIs only.
        if url.startswith("https://"):
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return msg


def email_bytes(message: Message) -> bytes:
    """The message as sent: CRLF line ends, 7-bit."""
    return message.as_bytes(policy=_WIRE)


def make_ssl_context(ca_file: Path | str | None = None, verify: bool = True) -> ssl.SSLContext:
    """A client TLS context: the system's CAs, or only `ca_file`'s; `verify=False` turns off
    certificate and host name checks (development only)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


def error_for_reply(code: int, reply: bytes | str, what: str) -> SendError:
    """The error of an SMTP reply: 4xx transient, anything else (5xx) permanent."""
    reason = f"{what}: {code} {_reply_text(reply)}"
    if 400 <= code < 500:
        return TransientSendError(reason, code=code)
    return PermanentSendError(reason, code=code)


class _Disconnected(Exception):
    """The server closed the connection (not a timeout): reconnecting may help."""


class SmtpAdapter:
    """Sends email through one SMTP server over one persistent connection."""

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        from_addr: str,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ca_file: Path | str | None = None,
        verify: bool = True,
        local_hostname: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if security not in SECURITY_MODES:
            raise Invalid("smtp_security", security, "must be starttls, tls or none")
        self.host = host
        self.port = port or DEFAULT_PORTS[security]
        self.from_addr = from_addr
        self.security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self._context = make_ssl_context(ca_file, verify) if security != "none" else None
        self._local_hostname = local_hostname
        self._clock = clock
        try:
            _, self._envelope_from = check_from(from_addr)
        except PermanentSendError:
            raise Invalid("smtp_from", from_addr, "not an email address") from None
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpAdapter:
        """The adapter described by the `smtp_*` settings; `Invalid` names what is missing."""
        errors = []
        needed = 'required when email_adapter is "smtp"'
        if not settings.smtp_host:
            errors.append(FieldError("smtp_host", settings.smtp_host, needed))
        if not settings.smtp_from:
            errors.append(FieldError("smtp_from", settings.smtp_from, needed))
        else:
            try:
                check_from(settings.smtp_from)
            except PermanentSendError:
                errors.append(FieldError("smtp_from", settings.smtp_from, "not an email address"))
        if settings.smtp_username and settings.smtp_password is None:
            errors.append(FieldError("smtp_password", None, "required when smtp_username is set"))
        if (
            settings.smtp_username
            and settings.smtp_security == "none"
            and settings.smtp_host not in _LOOPBACK
        ):
            errors.append(
                FieldError(
                    "smtp_security",
                    "none",
                    "AUTH would send the password in clear; use starttls or tls",
                )
            )
        if settings.smtp_ca_file is not None and not settings.smtp_ca_file.is_file():
            errors.append(FieldError("smtp_ca_file", str(settings.smtp_ca_file), "no such file"))
        if errors:
            raise Invalid(errors=errors)
        assert settings.smtp_host is not None and settings.smtp_from is not None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            from_addr=settings.smtp_from,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            timeout=settings.smtp_timeout_seconds,
            ca_file=settings.smtp_ca_file,
            verify=settings.smtp_verify,
        )

    def __enter__(self) -> SmtpAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one email. Raises `TransientSendError` or `PermanentSendError`."""
        check_channel(self, message)
        msg = build_email(message, self.from_addr, now=self._clock())
        data = email_bytes(msg)
        with self._lock:
            reused = self._conn is not None
            try:
                return self._transaction(msg, data)
            except _Disconnected as exc:
                self._drop()
                if not reused:
                    raise TransientSendError(f"connection lost: {exc}") from exc
            # The server closed the connection we kept (idle timeout, restart): once more.
            try:
                return self._transaction(msg, data)
            except _Disconnected as exc:
                self._drop()
                raise TransientSendError(f"connection lost: {exc}") from exc

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.quit()
                except (smtplib.SMTPException, OSError):
                    conn.close()

    # -- internals ---------------------------------------------------------------------------

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> smtplib.SMTP:
        if self._local_hostname is None:
            # smtplib would look this up on every connection, and it can be a slow DNS query.
            self._local_hostname = socket.getfqdn()
        conn: smtplib.SMTP
        if self.security == "tls":
            conn = smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self._local_hostname,
                timeout=self.timeout,
                context=self._context,
            )
        else:
            conn = smtplib.SMTP(
                self.host, self.port, local_hostname=self._local_hostname, timeout=self.timeout
            )
        try:
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=self._context)
                conn.ehlo()
            if self.username:
                conn.login(self.username, self._password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def _transaction(self, msg: Message, data: bytes) -> SendResult:
        """One MAIL/RCPT/DATA on the kept connection (opened first if needed)."""
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            code, reply = conn.mail(self._envelope_from)
            if code != 250:
                self._reset()
                raise error_for_reply(code, reply, "sender refused")
            code, reply = conn.rcpt(msg["To"])
            if code not in (250, 251):
                self._reset()
                raise error_for_reply(code, reply, "recipient refused")
            code, reply = conn.data(data)
            if code != 250:
                raise error_for_reply(code, reply, "message refused")
        except SendError:
            raise
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):
                self._drop()
                raise TransientSendError(f"timed out after {self.timeout:g} s") from exc
            raise _Disconnected(str(exc)) from exc
        except smtplib.SMTPResponseException as exc:
            # Greeting, EHLO, STARTTLS, AUTH or DATA refused (auth failure: 535, permanent).
            self._drop()
            raise error_for_reply(exc.smtp_code, exc.smtp_error, type(exc).__name__) from exc
        except smtplib.SMTPException as exc:
            # STARTTLS or AUTH not offered, no common AUTH mechanism: the set-up is wrong.
            self._drop()
            raise PermanentSendError(f"SMTP: {exc}") from exc
        except ssl.SSLCertVerificationError as exc:
            self._drop()
            raise PermanentSendError(f"TLS certificate of {self.host} not trusted: {exc}") from exc
        except TimeoutError as exc:
            self._drop()
            raise TransientSendError(f"timed out after {self.timeout:g} s") from exc
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
            if self._conn is None:  # while connecting
                raise TransientSendError(
                    f"cannot connect to {self.host}:{self.port}: {exc}"
                ) from exc
            raise _Disconnected(str(exc)) from exc
        except OSError as exc:  # refused, unreachable, name not resolved, TLS failure
            self._drop()
            raise TransientSendError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        match = _QUEUE_ID.search(_reply_text(reply))
        return SendResult(
            provider_id=match.group(1) if match else str(msg["Message-ID"]), status="sent"
        )

    def _reset(self) -> None:
        """RSET after a refused MAIL or RCPT so the connection can carry the next message."""
        assert self._conn is not None
        try:
            code, _ = self._conn.rset()
        except (smtplib.SMTPException, OSError):
            code = 0
        if code != 250:
            self._drop()
