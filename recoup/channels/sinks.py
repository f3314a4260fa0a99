"""Local sinks: real servers standing in for the SMS gateway and the SMTP relay, for
development, tests and benchmarks.

`SmsGatewaySink` is an HTTP/1.1 keep-alive server speaking the gateway protocol of
`recoup.channels.adapters.sms`: it checks the HMAC signature, answers a repeated idempotency key
with the first answer (counting the message once), records messages, can be told to fail or
delay the next requests, and can post signed delivery receipts to the callback URL.

`SmtpSink` is an SMTP server (aiosmtpd, a development dependency) with optional STARTTLS or
implicit TLS (a throw-away CA and server certificate made with the `openssl` command) and
optional AUTH PLAIN/LOGIN. It records every message, duplicates included, so a test can find
a message sent twice, and can be told to refuse the next messages with a 4xx or 5xx reply.

Both run in a thread of the calling process (context managers; port 0 picks a free port) or as
a separate process, writing one JSON line per received message to `--record` and printing one
JSON line with their address on standard output when ready:

    python -m recoup.channels.sinks sms --port 8025 --secret s3cret --record sms.jsonl
    python -m recoup.channels.sinks smtp --port 2525 --tls starttls --username u --password p \
        --record mail.jsonl

The SMS sink also takes commands over HTTP, for tests in another process: `GET /_sink/stats`,
`GET /_sink/messages`, `POST /_sink/fail {"count", "status", "message"?}` and
`POST /_sink/delay {"seconds", "count"}`.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import dataclasses
import datetime as dt
import email
import email.policy
import functools
import hmac
import json
import logging
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO, Any, Literal, cast

import httpx

from recoup.channels.adapters.sms import (
    IDEMPOTENCY_HEADER,
    MAX_SKEW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify_signature,
)

# -- shared ------------------------------------------------------------------------------------


class _JsonLines:
    """An append-only JSON-lines file, one line per record, written as records arrive."""

    def __init__(self, path: Path | str | None) -> None:
        self._file: IO[str] | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def write(self, record: Mapping[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds")


# -- SMS gateway -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsRecord:
    """One SMS the gateway sink accepted."""

    id: str
    idempotency_key: str
    to: str
    text: str
    sender: str | None
    callback_url: str | None
    received_at: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SmsSinkStats:
    """What the SMS sink saw: every request, new messages accepted, repeated keys answered
    with the first answer, failures it was told to produce, requests it refused (signature,
    body)."""

    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    failed: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class _Failure:
    status: int
    message: str
    retry_after: int | None


class _SmsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sink: SmsGatewaySink) -> None:
        self.sink = sink
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _SmsHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every kept-alive connection, so a stopped sink really is gone for its clients."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timed out) while the sink was told to delay is expected.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _SmsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # Headers and body are two writes; without this, Nagle and delayed ACKs cost 40 ms each.
    disable_nagle_algorithm = True
    server: _SmsServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sink records messages, not access logs."""

    def _reply(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply(*self.server.sink._control("GET", self.path, b""))

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self.close_connection = True
            self._reply(411, {"error": "Content-Length required"})
            return
        body = self.rfile.read(int(length))
        sink = self.server.sink
        if self.path.startswith("/_sink/"):
            self._reply(*sink._control("POST", self.path, body))
        else:
            self._reply(*sink._receive(self.headers, body))


class SmsGatewaySink:
    """An SMS gateway on this machine: `with SmsGatewaySink(secret="s") as sink: sink.url`.

    It accepts messages POSTed to any path but `/_sink/…` (`url` names `/messages`).
    `secret=None` accepts unsigned requests. With `receipts=True`, every accepted message gets
    a signed delivery receipt (`receipt_status`) posted to its `callback_url`, or to the sink's
    `callback_url` when the message names none.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        secret: str | bytes | None = None,
        max_skew_seconds: float = MAX_SKEW_SECONDS,
        record_path: Path | str | None = None,
        receipts: bool = False,
        receipt_status: str = "delivered",
        callback_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self.secret = secret
        self.max_skew_seconds = max_skew_seconds
        self.receipts = receipts
        self.receipt_status = receipt_status
        self.callback_url = callback_url
        self._clock = clock
        self._record_path = record_path
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._records: list[SmsRecord] = []
        self._by_key: dict[str, SmsRecord] = {}
        self._counts = dict.fromkeys(
            ("requests", "accepted", "duplicates", "failed", "rejected"), 0
        )
        self._failures: list[_Failure] = []
        self._delays: list[float] = []
        self._stopping = threading.Event()
        self._server: _SmsServer | None = None
        self._thread: threading.Thread | None = None
        self._log = _JsonLines(None)
        self._receipt_queue: queue.Queue[SmsRecord | None] = queue.Queue()
        self._receipt_thread: threading.Thread | None = None
        self.receipt_results: list[tuple[str, int]] = []
        self.receipt_errors: list[str] = []

    # -- life cycle --

    def start(self) -> SmsGatewaySink:
        """Listen (on a free port if `port` is 0) and serve from a background thread."""
        self._stopping.clear()
        self._log = _JsonLines(self._record_path)
        self._server = _SmsServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sms-sink-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if self.receipts:
            self._receipt_thread = threading.Thread(
                target=self._post_receipts, name="sms-sink-receipts", daemon=True
            )
            self._receipt_thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and end open connections; queued receipts are still posted."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._receipt_thread is not None:
            self._receipt_queue.put(None)
            self._receipt_thread.join(timeout=30)
            self._receipt_thread = None
        self._log.close()

    def __enter__(self) -> SmsGatewaySink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The URL to send messages to (the `sms_gateway_url` setting)."""
        return f"http://{self.host}:{self.port}/messages"

    # -- what the sink saw --

    @property
    def messages(self) -> list[SmsRecord]:
        """Accepted messages, each key once, in order of arrival."""
        with self._lock:
            return list(self._records)

    def stats(self) -> SmsSinkStats:
        with self._lock:
            return SmsSinkStats(**self._counts)

    def wait_for(self, accepted: int, timeout: float = 10.0) -> bool:
        """Wait until at least `accepted` messages were accepted; whether they were."""
        with self._changed:
            return self._changed.wait_for(lambda: self._counts["accepted"] >= accepted, timeout)

    # -- what the sink is told --

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        message: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `count` message requests with `status` (and `{"error": message}`)."""
        failure = _Failure(status, message or f"failing as told ({status})", retry_after)
        with self._lock:
            self._failures.extend([failure] * count)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Wait `seconds` before handling each of the next `count` message requests (a client
        with a shorter timeout gives up; the message is still accepted, as by a slow gateway)."""
        with self._lock:
            self._delays.extend([seconds] * count)

    # -- request handling (called from the handler threads) --

    def _receive(self, headers: Message, body: bytes) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self._counts["requests"] += 1
            delay = self._delays.pop(0) if self._delays else 0.0
        if delay:
            self._stopping.wait(delay)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            if failure is not None:
                self._counts["failed"] += 1
        if failure is not None:
            extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            return failure.status, {"error": failure.message}, extra
        problem = self._check(headers, body)
        if isinstance(problem, tuple):
            with self._lock:
                self._counts["rejected"] += 1
            return problem[0], {"error": problem[1]}, {}
        data = problem
        key = data["idempotency_key"]
        with self._changed:
            first = self._by_key.get(key)
            if first is not None:
                self._counts["duplicates"] += 1
                self._log.write({**first.as_dict(), "duplicate": True})
                return 200, {"id": first.id, "status": "accepted", "duplicate": True}, {}
            record = SmsRecord(
                id=f"sms-{len(self._records) + 1:08d}",
                idempotency_key=key,
                to=data["to"],
                text=data["text"],
                sender=data.get("sender"),
                callback_url=data.get("callback_url"),
                received_at=self._clock(),
            )
            self._records.append(record)
            self._by_key[key] = record
            self._counts["accepted"] += 1
            self._log.write({**record.as_dict(), "duplicate": False})
            self._changed.notify_all()
        if self.receipts:
            self._receipt_queue.put(record)
        return 200, {"id": record.id, "status": "accepted"}, {}

    def _check(self, headers: Message, body: bytes) -> dict[str, Any] | tuple[int, str]:
        """The request's JSON, or the status and error of a request refused."""
        if self.secret is not None and not verify_signature(
            self.secret,
            headers.get(TIMESTAMP_HEADER),
            body,
            headers.get(SIGNATURE_HEADER),
            now=self._clock(),
            max_skew_seconds=self.max_skew_seconds,
        ):
            return 401, "missing, wrong or expired signature"
        try:
            data = json.loads(body)
        except ValueError:
            return 400, "the body is not JSON"
        if not isinstance(data, dict):
            return 400, "the body is not a JSON object"
        for name in ("to", "text", "idempotency_key"):
            if not isinstance(data.get(name), str) or not data[name]:
                return 400, f"missing or empty field {name!r}"
        for name in ("sender", "callback_url"):
            if data.get(name) is not None and not isinstance(data[name], str):
                return 400, f"field {name!r} must be text"
        header_key = headers.get(IDEMPOTENCY_HEADER)
        if header_key is not None and header_key != data["idempotency_key"]:
            return 400, "the Idempotency-Key header and the body's idempotency_key differ"
        return data

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        if method == "GET" and path == "/_sink/stats":
            return 200, dataclasses.asdict(self.stats()), {}
        if method == "GET" and path == "/_sink/messages":
            return 200, [r.as_dict() for r in self.messages], {}
        if method == "POST" and path in ("/_sink/fail", "/_sink/delay"):
            try:
                command = json.loads(body or b"{}")
                if path == "/_sink/fail":
                    self.fail_next(
                        int(command.get("count", 1)),
                        int(command.get("status", 503)),
                        command.get("message"),
                    )
                else:
                    self.delay_next(float(command["seconds"]), int(command.get("count", 1)))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                return 400, {"error": f"bad command: {exc!r}"}, {}
            return 200, {"ok": True}, {}
        return 404, {"error": f"no such endpoint: {method} {path}"}, {}

    def _post_receipts(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while (record := self._receipt_queue.get()) is not None:
                url = record.callback_url or self.callback_url
                if not url:
                    continue
                receipt = {
                    "id": record.id,
                    "status": self.receipt_status,
                    "at": _iso(self._clock()),
                    "idempotency_key": record.idempotency_key,
                }
                body = json.dumps(receipt, ensure_ascii=False).encode("utf-8")
                timestamp = str(int(self._clock()))
                headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
                if self.secret is not None:
                    headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
                try:
                    response = client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.receipt_errors.append(f"{url}: {exc!r}")
                else:
                    with self._lock:
                        self.receipt_results.append((url, response.status_code))


# -- SMTP --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestCertificate:
    """A throw-away CA (trust `ca_file`) and a server certificate it signed for localhost,
    127.0.0.1 and ::1."""

    __test__ = False  # not a pytest test class

    ca_file: Path
    cert_file: Path
    key_file: Path


_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = Recoup test CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_test_certificate(directory: Path | str) -> TestCertificate:
    """Make a CA and a server certificate (EC P-256, valid 7 days) in `directory` with the
    `openssl` command (the `cryptography` package is not a dependency)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG, encoding="ascii")
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -config openssl.cnf"
    serial = int(time.time() * 1000)
    steps = [
        f"req -x509 {ec} -days 7 -keyout ca.key -out ca.pem",
        f"req {ec} -subj /CN=localhost -keyout server.key -out server.csr",
        f"x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial {serial} -days 7"
        " -extfile openssl.cnf -extensions server -out server.pem",
    ]
    for step in steps:
        done = subprocess.run(
            ["openssl", *step.split()], cwd=folder, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"openssl {step} failed: {done.stderr.strip()}")
    return TestCertificate(folder / "ca.pem", folder / "server.pem", folder / "server.key")


@functools.lru_cache(maxsize=1)
def shared_test_certificate() -> TestCertificate:
    """One test certificate per process (made on first use, removed at exit)."""
    folder = tempfile.mkdtemp(prefix="recoup-sink-tls-")
    atexit.register(shutil.rmtree, folder, True)
    return make_test_certificate(folder)


@dataclass(frozen=True)
class SmtpRecord:
    """One message the SMTP sink received (every one, duplicates included)."""

    queue_id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    received_at: float
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        """The message parsed (modern policy: decoded headers, `get_content()`)."""
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def idempotency_key(self) -> str | None:
        value = self.message["X-Idempotency-Key"]
        return str(value) if value is not None else None

    def as_dict(self) -> dict[str, Any]:
        """A summary for the JSON-lines record (headers, not the body)."""
        # Headers only, legacy parser: a tenth of the cost of the modern one.
        head = BytesHeaderParser(policy=email.policy.compat32).parsebytes(self.data)
        subject = head["Subject"]
        return {
            "queue_id": self.queue_id,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "message_id": str(head["Message-ID"] or ""),
            "idempotency_key": str(head["X-Idempotency-Key"] or ""),
            "subject": str(make_header(decode_header(subject))) if subject else "",
            "size": len(self.data),
            "tls": self.tls,
            "login": self.login,
            "received_at": self.received_at,
        }


TlsMode = Literal["none", "starttls", "implicit"]


class _WithoutLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4 warns that `Session.login_data` is deprecated each time its own AUTH code
    sets it; nothing here uses it, so the warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_WithoutLoginDataWarning())
_DEFAULT_REPLIES = {4: "4.3.0 Temporary failure, try again later", 5: "5.1.1 Mailbox unavailable"}


class _SmtpHandler:
    """aiosmtpd hooks (run on the sink's event loop thread)."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.sink.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refusal = self.sink._take_refusal("rcpt")
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        refusal = self.sink._take_refusal("data")
        if refusal is not None:
            return refusal
        transport = server.transport
        tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("sslcontext") is not None
        )
        auth = session.auth_data
        login = auth.login.decode("utf-8", "replace") if hasattr(auth, "login") else None
        record = self.sink._record(
            envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content, tls, login
        )
        return f"250 2.0.0 Ok: queued as {record.queue_id}" if self.sink.queue_ids else "250 OK"


class SmtpSink:
    """An SMTP server on this machine: `with SmtpSink(tls="starttls") as sink: sink.port`.

    `tls="starttls"` offers and requires STARTTLS, `"implicit"` speaks TLS from the first byte;
    clients trust `sink.ca_file`. With `username` and `password`, mail is refused until the
    client authenticates (AUTH PLAIN or LOGIN, over TLS when TLS is on).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: TlsMode = "none",
        username: str | None = None,
        password: str | None = None,
        record_path: Path | str | None = None,
        certificate: TestCertificate | None = None,
        queue_ids: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if tls not in ("none", "starttls", "implicit"):
            raise ValueError(f"tls must be none, starttls or implicit, not {tls!r}")
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self._certificate = certificate
        # Postfix-like "250 2.0.0 Ok: queued as <id>"; False: a bare "250 OK", as some servers.
        self.queue_ids = queue_ids
        self._record_path = record_path
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._records: list[SmtpRecord] = []
        self._refusals: list[tuple[str, str]] = []
        self._controller: Any = None
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        # Client connections accepted since start: a persistent client opens one.
        self.connections = 0
        self._log = _JsonLines(None)

    # -- life cycle --

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller  # a development dependency
        from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

        sink = self
        connections: weakref.WeakSet[SMTP] = weakref.WeakSet()

        class _Controller(Controller):
            def factory(self) -> SMTP:
                smtp = super().factory()
                connections.add(smtp)
                with sink._lock:
                    sink.connections += 1
                return smtp

            def _trigger_server(self) -> None:
                # Port 0: learn the port the system chose before the readiness probe.
                assert self.server is not None
                self.port = cast(Any, self.server).sockets[0].getsockname()[1]
                super()._trigger_server()

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and sink.username is not None
                and sink.password is not None
                and _same(data.login, sink.username)
                and _same(data.password, sink.password)
            )
            return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

        context = None
        if self.tls != "none":
            cert = self._certificate or shared_test_certificate()
            self._certificate = cert
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert.cert_file, cert.key_file)
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "localhost",
            "ready_timeout": 30.0,
            # STARTTLS: AUTH only after it. Implicit TLS: aiosmtpd does not know the
            # connection is encrypted, so it must not ask for STARTTLS first.
            "auth_require_tls": self.tls == "starttls",
            "data_size_limit": 50 * 1024 * 1024,
        }
        if self.username is not None:
            kwargs["authenticator"] = authenticate
        if self.tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif self.tls == "implicit":
            kwargs["ssl_context"] = context
        self._log = _JsonLines(self._record_path)
        controller = _Controller(_SmtpHandler(self), **kwargs)
        controller.start()
        with self._lock:
            self.connections = 0  # not counting the controller's readiness probe
        controller.loop.call_soon_threadsafe(connections.clear)
        self.port = controller.port
        self._controller = controller
        self._connections = connections
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        self._log.close()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate a client must trust (None without TLS)."""
        return self._certificate.ca_file if self._certificate and self.tls != "none" else None

    # -- what the sink saw --

    @property
    def messages(self) -> list[SmtpRecord]:
        """Every message received, in order (a message sent twice is here twice)."""
        with self._lock:
            return list(self._records)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least `count` messages arrived; whether they did."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._records) >= count, timeout)

    # -- what the sink is told --

    def reject_next(
        self,
        count: int = 1,
        code: int = 451,
        message: str | None = None,
        stage: Literal["rcpt", "data"] = "data",
    ) -> None:
        """Refuse the next `count` messages with `code` at RCPT or at the end of DATA."""
        if not 400 <= code < 600 or stage not in ("rcpt", "data"):
            raise ValueError("code must be 4xx or 5xx and stage rcpt or data")
        reply = f"{code} {message or _DEFAULT_REPLIES[code // 100]}"
        with self._lock:
            self._refusals.extend([(stage, reply)] * count)

    def disconnect_all(self, timeout: float = 10.0) -> int:
        """Close every open client connection (as a server restart or idle timeout would);
        how many there were."""
        controller = self._controller
        if controller is None:
            return 0

        async def close_all() -> int:
            closed = 0
            for smtp in list(self._connections):
                if smtp.transport is not None and not smtp.transport.is_closing():
                    smtp.transport.close()
                    closed += 1
            return closed

        return asyncio.run_coroutine_threadsafe(close_all(), controller.loop).result(timeout)

    # -- called from the handler --

    def _take_refusal(self, stage: str) -> str | None:
        with self._lock:
            if self._refusals and self._refusals[0][0] == stage:
                return self._refusals.pop(0)[1]
        return None

    def _record(
        self, mail_from: str, rcpt_tos: tuple[str, ...], data: bytes, tls: bool, login: str | None
    ) -> SmtpRecord:
        with self._changed:
            record = SmtpRecord(
                queue_id=f"{len(self._records) + 1:010X}",
                mail_from=mail_from,
                rcpt_tos=rcpt_tos,
                data=data,
                received_at=self._clock(),
                tls=tls,
                login=login,
            )
            self._records.append(record)
            self._changed.notify_all()
        if self._record_path is not None:
            line = record.as_dict()
            with self._lock:
                self._log.write(line)
        return record


def _same(given: bytes, expected: str) -> bool:
    return hmac.compare_digest(given, expected.encode("utf-8"))


# -- separate process --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """`python -m recoup.channels.sinks sms|smtp ...`: run a sink until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m recoup.channels.sinks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    sms = kinds.add_parser("sms", help="an SMS gateway (HTTP)")
    smtp = kinds.add_parser("smtp", help="an SMTP server")
    for sub, port in ((sms, 8025), (smtp, 2525)):
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=port, help=f"0 picks a free one ({port})")
        sub.add_argument("--record", type=Path, help="append one JSON line per message here")
    sms.add_argument("--secret", help="HMAC secret; without it, unsigned requests are accepted")
    sms.add_argument("--receipts", action="store_true", help="post delivery receipts")
    sms.add_argument("--callback-url", help="where receipts go when a message names no URL")
    smtp.add_argument("--tls", choices=("none", "starttls", "implicit"), default="none")
    smtp.add_argument("--username")
    smtp.add_argument("--password")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sink: SmsGatewaySink | SmtpSink
    if args.kind == "sms":
        sink = SmsGatewaySink(
            args.host,
            args.port,
            secret=args.secret,
            record_path=args.record,
            receipts=args.receipts,
            callback_url=args.callback_url,
        )
    else:
        sink = SmtpSink(
            args.host,
            args.port,
            tls=args.tls,
            username=args.username,
            password=args.password,
            record_path=args.record,
        )
    with sink:
        ready: dict[str, Any] = {"kind": args.kind, "host": sink.host, "port": sink.port}
        if isinstance(sink, SmsGatewaySink):
            ready["url"] = sink.url
        elif sink.ca_file is not None:
            ready["ca_file"] = str(sink.ca_file)
        print(json.dumps(ready), flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
