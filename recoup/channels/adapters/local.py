"""Adapters for development: print each message (console) or write it to a directory (file).

Both "deliver" on the spot, so they answer `status="delivered"`.

The file adapter writes `<key>.eml` (the same MIME message the SMTP adapter would send) or
`<key>.json` (the SMS gateway's request body plus the language) into its directory, named by
the idempotency key (encoded as in `smtp.encode_key`). The file is written under a temporary
name, synced and renamed, so a reader never sees half a message; sending the same key again
replaces the same file, so a retried message is still one file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from recoup.channels.adapters.base import (
    CHANNELS,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
    check_channel,
)
from recoup.channels.adapters.sms import normalise_phone
from recoup.channels.adapters.smtp import (
    build_email,
    check_address,
    check_from,
    email_bytes,
    encode_key,
)
from recoup.core.errors import Invalid

DEFAULT_FROM = "Recoup <recoup@localhost>"
_MAX_NAME = 150


def file_stem(idempotency_key: str) -> str:
    """The file name (without suffix) of a message: its encoded key, or for a key whose
    encoding is too long for a file name, a readable prefix and a SHA-256 digest."""
    encoded = encode_key(idempotency_key)
    if len(encoded) <= _MAX_NAME:
        return encoded
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
    return f"{encoded[:80]}-{digest}"


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_channel_name(channel: str) -> None:
    if channel not in CHANNELS:
        raise Invalid("channel", channel, "must be email or sms")


def _check_from(from_addr: str) -> None:
    try:
        check_from(from_addr)
    except PermanentSendError:
        raise Invalid("smtp_from", from_addr, "not an email address") from None


class ConsoleAdapter:
    """Prints each message as a readable block to a stream (standard output by default)."""

    def __init__(
        self,
        channel: str,
        stream: IO[str] | None = None,
        *,
        from_addr: str = DEFAULT_FROM,
        sender: str | None = None,
    ) -> None:
        _check_channel_name(channel)
        _check_from(from_addr)
        self.channel = channel
        self.from_addr = from_addr
        self.sender = sender
        # file=None: Rich writes to whatever sys.stdout is at the time of printing.
        self._console = Console(file=stream, highlight=False, emoji=False, soft_wrap=True)
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        check_channel(self, message)
        # The same checks as the real adapters, so a bad address shows up in development too.
        to = check_address(message.to) if self.channel == "email" else normalise_phone(message.to)
        head = Text()
        fields = [("to", to)]
        if self.channel == "email":
            fields.insert(0, ("from", self.from_addr))
            fields.append(("subject", message.subject or ""))
        elif self.sender:
            fields.insert(0, ("sender", self.sender))
        fields += [("language", message.language), ("key", message.idempotency_key)]
        if message.unsubscribe_url:
            fields.append(("unsubscribe", message.unsubscribe_url))
        for attachment in message.attachments:
            fields.append(
                (
                    "attachment",
                    f"{attachment.filename} ({attachment.content_type}, "
                    f"{len(attachment.data)} bytes)",
                )
            )
        for name, value in fields:
            head.append(f"{name:>11}: ", style="bold")
            head.append(f"{value}\n")
        parts: list[Text] = [head, Text(message.body)]
        if message.html is not None:
            parts.append(Text(f"\n[HTML alternative, {len(message.html)} characters]", "dim"))
        with self._lock:
            self._console.print(
                Panel(Group(*parts), title=f"{self.channel} → {to}", title_align="left")
            )
        return SendResult(provider_id=f"console:{message.idempotency_key}", status="delivered")

    def close(self) -> None:
        """Nothing to release."""


class FileAdapter:
    """Writes each message to `<directory>/<key>.eml` (email) or `<key>.json` (sms)."""

    def __init__(
        self,
        directory: Path | str,
        channel: str,
        *,
        from_addr: str = DEFAULT_FROM,
        sender: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_channel_name(channel)
        _check_from(from_addr)
        self.directory = Path(directory)
        self.channel = channel
        self.from_addr = from_addr
        self.sender = sender
        self._clock = clock

    def path_for(self, idempotency_key: str) -> Path:
        """Where the message with this key is written."""
        suffix = ".eml" if self.channel == "email" else ".json"
        return self.directory / f"{file_stem(idempotency_key)}{suffix}"

    def send(self, message: OutgoingMessage) -> SendResult:
        check_channel(self, message)
        if self.channel == "email":
            data = email_bytes(build_email(message, self.from_addr, now=self._clock()))
        else:
            record = {
                "to": normalise_phone(message.to),
                "text": message.body,
                "sender": self.sender,
                "idempotency_key": message.idempotency_key,
                "language": message.language,
            }
            data = json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
        path = self.path_for(message.idempotency_key)
        try:
            write_atomically(path, data)
        except OSError as exc:  # a full disk or a missing permission may be fixed and retried
            raise TransientSendError(f"cannot write {path}: {exc}") from exc
        return SendResult(provider_id=str(path), status="delivered")

    def close(self) -> None:
        """Nothing to release."""
