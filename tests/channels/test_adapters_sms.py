"""The SMS gateway adapter against a real HTTP server (SmsGatewaySink), and the pure functions
of the gateway's webhooks: signatures, delivery receipts, inbound SMS, opt-out keywords."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from recoup.channels.adapters import (
    DeliveryReceipt,
    OutgoingMessage,
    PermanentSendError,
    SmsHttpAdapter,
    TransientSendError,
    is_opt_out,
    parse_delivery_receipt,
    parse_inbound_sms,
    sign,
    verify_signature,
)
from recoup.channels.sinks import SmsGatewaySink
from recoup.core.errors import Invalid

SECRET = "gateway-shared-secret"
UTC = dt.UTC


def sms(key: str = "outbox-1", **kw: object) -> OutgoingMessage:
    base: dict[str, object] = {
        "idempotency_key": key,
        "channel": "sms",
        "to": "+86 138-0013-8000",
        "body": "【东方银行】李四您好，您的信用卡已逾期45天，请尽快还款。回T退订",
    }
    base.update(kw)
    return OutgoingMessage(**base)  # type: ignore[arg-type]


@pytest.fixture
def sink() -> Iterator[SmsGatewaySink]:
    with SmsGatewaySink(secret=SECRET) as s:
        yield s


@pytest.fixture
def adapter(sink: SmsGatewaySink) -> Iterator[SmsHttpAdapter]:
    with SmsHttpAdapter(sink.url, SECRET, sender="东方银行", timeout=10) as a:
        yield a


# -- sending -----------------------------------------------------------------------------------


def test_signed_request_is_verified_and_recorded(sink: SmsGatewaySink, adapter: SmsHttpAdapter):
    result = adapter.send(sms())
    [record] = sink.messages
    assert result.status == "sent"
    assert result.provider_id == record.id
    assert record.to == "+8613800138000"  # separators removed
    assert record.text == sms().body  # Chinese intact
    assert record.sender == "东方银行"
    assert record.idempotency_key == "outbox-1"
    assert record.callback_url is None
    assert sink.stats().rejected == 0


def test_wrong_secret_is_refused_by_the_gateway(sink: SmsGatewaySink):
    adapter = SmsHttpAdapter(sink.url, "another-secret")
    with adapter, pytest.raises(PermanentSendError) as err:
        adapter.send(sms())
    assert err.value.code == 401 and "signature" in err.value.reason
    assert sink.messages == [] and sink.stats().rejected == 1


def test_stale_timestamp_is_refused_by_the_gateway(sink: SmsGatewaySink):
    # A request signed ten minutes ago (a replay) fails the gateway's 5-minute window.
    adapter = SmsHttpAdapter(sink.url, SECRET, clock=lambda: dt.datetime.now(UTC).timestamp() - 600)
    with adapter, pytest.raises(PermanentSendError) as err:
        adapter.send(sms())
    assert err.value.code == 401


def test_same_key_twice_is_one_message(sink: SmsGatewaySink, adapter: SmsHttpAdapter):
    first = adapter.send(sms("k1"))
    again = adapter.send(sms("k1"))
    other = adapter.send(sms("k2"))
    assert again.provider_id == first.provider_id != other.provider_id
    assert [m.idempotency_key for m in sink.messages] == ["k1", "k2"]
    stats = sink.stats()
    assert (stats.requests, stats.accepted, stats.duplicates) == (3, 2, 1)


@pytest.mark.parametrize("status", [503, 500, 429])
def test_overload_and_server_errors_are_transient(
    sink: SmsGatewaySink, adapter: SmsHttpAdapter, status: int
):
    sink.fail_next(1, status, "busy, try later", retry_after=7)
    with pytest.raises(TransientSendError) as err:
        adapter.send(sms())
    assert err.value.code == status and err.value.retryable
    assert err.value.retry_after == 7
    assert "busy, try later" in err.value.reason
    assert sink.messages == []
    adapter.send(sms())  # the retry goes through on the same client
    assert len(sink.messages) == 1


@pytest.mark.parametrize("status", [400, 403, 422])
def test_other_client_errors_are_permanent_with_the_gateways_words(
    sink: SmsGatewaySink, adapter: SmsHttpAdapter, status: int
):
    sink.fail_next(1, status, "number is on the carrier's blocklist")
    with pytest.raises(PermanentSendError) as err:
        adapter.send(sms())
    assert err.value.code == status and not err.value.retryable
    assert "number is on the carrier's blocklist" in err.value.reason


def test_timeout_is_transient_and_the_retry_is_deduplicated(sink: SmsGatewaySink):
    sink.delay_next(0.6)  # a slow gateway: it still accepts the message, after we gave up
    slow = SmsHttpAdapter(sink.url, SECRET, timeout=0.2)
    with slow, pytest.raises(TransientSendError, match="timed out"):
        slow.send(sms("k1"))
    assert sink.wait_for(1, timeout=30)
    with SmsHttpAdapter(sink.url, SECRET) as adapter:
        result = adapter.send(sms("k1"))  # the outbox's retry: same key
    assert result.provider_id == sink.messages[0].id
    assert sink.stats().accepted == 1 and sink.stats().duplicates == 1


def test_gateway_down_is_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = SmsHttpAdapter(f"http://127.0.0.1:{port}/messages", SECRET, timeout=5)
    with adapter, pytest.raises(TransientSendError, match="cannot reach"):
        adapter.send(sms())


def test_stopped_gateway_ends_kept_connections():
    sink = SmsGatewaySink(secret=SECRET).start()
    with SmsHttpAdapter(sink.url, SECRET, timeout=5) as adapter:
        adapter.send(sms("k1"))
        sink.stop()
        with pytest.raises(TransientSendError):
            adapter.send(sms("k2"))


@pytest.mark.parametrize("number", ["12", "+86 138 0013 80001234567", "138-abc-8000", ""])
def test_invalid_phone_number_is_permanent_and_sends_nothing(
    sink: SmsGatewaySink, adapter: SmsHttpAdapter, number: str
):
    with pytest.raises(PermanentSendError, match="phone number"):
        adapter.send(sms(to=number))
    assert sink.stats().requests == 0


def test_full_width_digits_are_normalised(sink: SmsGatewaySink, adapter: SmsHttpAdapter):
    adapter.send(sms(to="１３８００１３８０００"))
    assert sink.messages[0].to == "13800138000"


def test_request_carries_the_documented_headers_and_body():
    seen: dict[str, Any] = {}

    class Capture(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None: ...

        def do_POST(self) -> None:
            seen["headers"] = dict(self.headers)
            seen["body"] = self.rfile.read(int(self.headers["Content-Length"]))
            reply = b'{"message_id": "gw-7"}'
            self.send_response(202)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/send"
        adapter = SmsHttpAdapter(
            url, SECRET, sender="Recoup", clock=lambda: 1_790_000_000.7, callback_url="https://r/cb"
        )
        with adapter:
            result = adapter.send(sms())
    finally:
        server.shutdown()
        server.server_close()
    assert result.provider_id == "gw-7"
    headers, body = seen["headers"], seen["body"]
    assert json.loads(body) == {
        "to": "+8613800138000",
        "text": sms().body,
        "sender": "Recoup",
        "idempotency_key": "outbox-1",
        "callback_url": "https://r/cb",
    }
    assert headers["Idempotency-Key"] == "outbox-1"
    assert headers["X-Recoup-Timestamp"] == "1790000000"
    expected = hmac.new(SECRET.encode(), b"1790000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Recoup-Signature"] == f"sha256={expected}"


def test_delivery_receipts_reach_the_callback_signed():
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = threading.Event()

    class Callback(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None: ...

        def do_POST(self) -> None:
            received.append(
                (dict(self.headers), self.rfile.read(int(self.headers["Content-Length"])))
            )
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            arrived.set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    callback = f"http://127.0.0.1:{server.server_address[1]}/webhooks/sms"
    try:
        with (
            SmsGatewaySink(secret=SECRET, receipts=True) as sink,
            SmsHttpAdapter(sink.url, SECRET, callback_url=callback) as adapter,
        ):
            result = adapter.send(sms())
            assert arrived.wait(30)
    finally:
        server.shutdown()
        server.server_close()
    [(headers, body)] = received
    now = dt.datetime.now(UTC)
    assert verify_signature(
        SECRET, headers["X-Recoup-Timestamp"], body, headers["X-Recoup-Signature"], now
    )
    receipt = parse_delivery_receipt(json.loads(body))
    assert receipt.provider_id == result.provider_id
    assert receipt.status == "delivered"
    assert receipt.idempotency_key == "outbox-1"
    assert abs((now - receipt.at).total_seconds()) < 60


def test_email_message_is_refused_by_the_sms_adapter(adapter: SmsHttpAdapter):
    with pytest.raises(PermanentSendError, match="email message"):
        adapter.send(OutgoingMessage("k", "email", "a@example.com", "hi"))


# -- signatures --------------------------------------------------------------------------------

BODY = b'{"id":"sms-1","status":"delivered","at":"2026-08-15T08:00:00Z"}'
T0 = 1_790_000_000


def test_signature_scheme_is_hmac_sha256_of_timestamp_dot_body():
    digest = hmac.new(b"k", f"{T0}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("k", T0, BODY) == sign(b"k", str(T0), BODY) == f"sha256={digest}"


def test_good_signature_verifies():
    header = sign(SECRET, T0, BODY)
    assert verify_signature(SECRET, str(T0), BODY, header, now=T0 + 5)
    assert verify_signature(SECRET, T0, BODY, f"  {header} ", now=T0 - 299)
    aware = dt.datetime.fromtimestamp(T0 + 120, UTC)
    assert verify_signature(SECRET, str(T0), BODY, header, now=aware)


GOOD = sign(SECRET, T0, BODY)


@pytest.mark.parametrize(
    ("timestamp", "body", "header", "now"),
    [
        (str(T0), BODY.replace(b"delivered", b"failed"), GOOD, T0),  # body tampered
        (str(T0 + 1), BODY, GOOD, T0),  # timestamp tampered
        (str(T0), BODY, sign("wrong secret", T0, BODY), T0),  # another secret
        (str(T0), BODY, GOOD, T0 + 301),  # too old: a replay
        (str(T0), BODY, GOOD, T0 - 301),  # from the future
        (str(T0), BODY, "", T0),
        (str(T0), BODY, GOOD.removeprefix("sha256="), T0),  # no scheme
        (str(T0), BODY, GOOD.upper(), T0),
        (str(T0), BODY, None, T0),
        ("", BODY, GOOD, T0),
        ("1.79e9", BODY, GOOD, T0),
        ("-5", BODY, GOOD, T0),
        (None, BODY, GOOD, T0),
    ],
)
def test_bad_signatures_fail(timestamp: str | None, body: bytes, header: str | None, now: int):
    assert not verify_signature(SECRET, timestamp, body, header, now=now)


def test_skew_window_is_configurable():
    header = sign(SECRET, T0, BODY)
    assert not verify_signature(SECRET, str(T0), BODY, header, now=T0 + 31, max_skew_seconds=30)
    assert verify_signature(SECRET, str(T0), BODY, header, now=T0 + 30, max_skew_seconds=30)


# -- webhooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"id": "sms-1", "status": "delivered", "at": "2026-08-15T08:00:00Z"},
            DeliveryReceipt("sms-1", "delivered", dt.datetime(2026, 8, 15, 8, tzinfo=UTC)),
        ),
        (
            {"message_id": "gw-9", "status": "FAILED", "at": "2026-08-15T16:00:00+08:00",
             "error": "absent subscriber", "idempotency_key": "outbox-1"},
            DeliveryReceipt("gw-9", "failed", dt.datetime(2026, 8, 15, 8, tzinfo=UTC),
                            "absent subscriber", "outbox-1"),
        ),
        (
            {"id": 12345, "status": "bounced", "at": 1_786_780_800},
            DeliveryReceipt("12345", "bounced", dt.datetime(2026, 8, 15, 8, tzinfo=UTC)),
        ),
        (
            {"id": "x", "status": " sent ", "at": 1_786_780_800.5, "extra": "ignored"},
            DeliveryReceipt("x", "sent", dt.datetime(2026, 8, 15, 8, 0, 0, 500000, tzinfo=UTC)),
        ),
    ],
)  # fmt: skip
def test_delivery_receipts_parse(payload: dict[str, Any], expected: DeliveryReceipt):
    assert parse_delivery_receipt(payload) == expected


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, ["id", "status", "at"]),
        ({"id": "", "status": "delivered", "at": "2026-08-15T08:00:00Z"}, ["id"]),
        ({"id": True, "status": "delivered", "at": "2026-08-15T08:00:00Z"}, ["id"]),
        ({"id": "a", "status": "read", "at": "2026-08-15T08:00:00Z"}, ["status"]),
        ({"id": "a", "status": "delivered", "at": "2026-08-15T08:00:00"}, ["at"]),
        ({"id": "a", "status": "delivered", "at": "yesterday"}, ["at"]),
        ({"id": "a", "status": "delivered", "at": [2026]}, ["at"]),
        ({"id": "a", "status": "delivered", "at": 1e20}, ["at"]),
        ({"id": "a", "status": "failed", "at": 0, "error": {"code": 1}}, ["error"]),
        ({"message_id": None, "status": 3, "at": None}, ["message_id", "status", "at"]),
    ],
)
def test_bad_delivery_receipts_name_every_bad_field(payload: dict[str, Any], fields: list[str]):
    with pytest.raises(Invalid) as err:
        parse_delivery_receipt(payload)
    assert [e.field for e in err.value.errors] == fields
    assert all(e.why for e in err.value.errors)


def test_receipt_must_be_an_object():
    with pytest.raises(Invalid, match="JSON object") as err:
        parse_delivery_receipt(["sms-1", "delivered"])  # type: ignore[arg-type]
    assert err.value.errors[0].field == "payload"


def test_inbound_sms_parses():
    got = parse_inbound_sms(
        {"from": "+86 138 0013 8000", "text": "退订", "at": "2026-08-15T10:00:00+08:00",
         "to": "106900001234", "id": "in-1"}
    )  # fmt: skip
    assert got.from_number == "+8613800138000"
    assert got.text == "退订" and got.to == "106900001234" and got.provider_id == "in-1"
    assert got.at == dt.datetime(2026, 8, 15, 2, tzinfo=UTC)
    assert is_opt_out(got.text)


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, ["from", "text", "at"]),
        ({"from": "call me", "text": "hi", "at": 0}, ["from"]),
        ({"from": "13800138000", "text": None, "at": 0}, ["text"]),
        ({"from": "13800138000", "text": "hi", "at": 0, "to": 106900}, ["to"]),
    ],
)
def test_bad_inbound_sms_names_every_bad_field(payload: dict[str, Any], fields: list[str]):
    with pytest.raises(Invalid) as err:
        parse_inbound_sms(payload)
    assert [e.field for e in err.value.errors] == fields


# -- opt-out keywords --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop", "Stop", " stop ", "STOP.", "stop!", "UNSUBSCRIBE", "Unsubscribe",
     "CANCEL", "cancel", "END", "end", "QUIT", "quit", "退订", " 退订 ", "退订。", "【退订】",
     "退訂", "TD", "td", "Td", "T", "t", "N", "n", "ＳＴＯＰ", "ｓｔｏｐ", "ＴＤ", "ｔｄ", "Ｔ",
     "Ｎ", "　退订　", "\u200bSTOP\u200b", "\ufeffT", "T\n", "“退订”", "stop！", "ＳＴＯＰ．"],
)  # fmt: skip
def test_opt_out_keywords_are_recognised(text: str):
    assert is_opt_out(text)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "stop calling me at work", "please stop", "STOPP", "stopped", "TDD", "tt",
     "NO", "no", "Not now", "Yes", "Y", "1", "退订吗", "我要退订", "不要退订", "退", "订",
     "取消", "S T O P", "S.T.O.P", "T D", "end of month I pay", "quitting", "cancellation",
     "好的", "收到", "N/A", "T-shirt", "ok"],
)  # fmt: skip
def test_other_replies_are_not_opt_outs(text: str):
    assert not is_opt_out(text)
