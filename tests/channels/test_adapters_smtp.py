"""The SMTP adapter against a real SMTP server (SmtpSink): TLS, AUTH, headers, Chinese text,
attachments, error mapping, the kept connection and reconnection."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from recoup.channels.adapters import (
    Attachment,
    OutgoingMessage,
    PermanentSendError,
    SmtpAdapter,
    TransientSendError,
    build_email,
    message_id,
)
from recoup.channels.adapters.smtp import check_address, email_bytes
from recoup.channels.sinks import SmtpSink
from recoup.core.errors import Invalid

USER, PASSWORD = "recoup", "s3cret-pw"
FROM = "东方银行催收中心 <collections@bank.example>"


def email(key: str = "outbox-1", **kw: object) -> OutgoingMessage:
    base: dict[str, object] = {
        "idempotency_key": key,
        "channel": "email",
        "to": "li.si@example.com",
        "body": "李四您好：\n您的账户已逾期45天，应还金额¥50,000.00。\n请于2026年9月1日前还款。",
        "subject": "逾期还款提醒（第1次）",
    }
    base.update(kw)
    return OutgoingMessage(**base)  # type: ignore[arg-type]


def text_of(part: object) -> str:
    content = part.get_content()  # type: ignore[attr-defined]
    return str(content).replace("\r\n", "\n")


@pytest.fixture
def tls_sink() -> Iterator[SmtpSink]:
    with SmtpSink(tls="starttls", username=USER, password=PASSWORD) as sink:
        yield sink


@pytest.fixture
def adapter(tls_sink: SmtpSink) -> Iterator[SmtpAdapter]:
    with SmtpAdapter(
        "127.0.0.1",
        tls_sink.port,
        from_addr=FROM,
        security="starttls",
        username=USER,
        password=PASSWORD,
        ca_file=tls_sink.ca_file,
        timeout=10,
    ) as a:
        yield a


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_starttls_auth_delivers_everything_intact(tls_sink: SmtpSink, adapter: SmtpAdapter):
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 40
    message = email(
        html="<p>李四您好：您的账户已<b>逾期45天</b>。</p>",
        unsubscribe_url="https://recoup.example/u/abc123",
        attachments=(Attachment("催收通知书.pdf", "application/pdf", pdf),),
    )
    result = adapter.send(message)

    assert result.status == "sent"
    [record] = tls_sink.messages
    assert result.provider_id == record.queue_id  # from "250 … queued as <id>"
    assert record.tls and record.login == USER
    assert record.mail_from == "collections@bank.example"
    assert record.rcpt_tos == ("li.si@example.com",)
    msg = record.message
    assert msg["Subject"] == "逾期还款提醒（第1次）"
    assert msg["From"].addresses[0].display_name == "东方银行催收中心"
    assert msg["To"] == "li.si@example.com"
    assert msg["Message-ID"] == "<outbox-1@recoup>"
    assert msg["X-Idempotency-Key"] == "outbox-1"
    assert msg["Date"].datetime is not None
    assert msg["List-Unsubscribe"] == "<https://recoup.example/u/abc123>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert text_of(plain) == message.body
    assert plain["Content-Language"] == "zh"
    assert "逾期45天" in text_of(html)
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "催收通知书.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf
    # Nothing but 7-bit ASCII on the wire, in lines of at most 998 characters (RFC 5322).
    assert record.data.isascii()
    assert max(len(line) for line in record.data.splitlines()) <= 998


def test_without_a_queue_id_the_message_id_is_the_provider_id():
    with (
        SmtpSink(queue_ids=False) as sink,
        SmtpAdapter("127.0.0.1", sink.port, from_addr=FROM, security="none") as adapter,
    ):
        assert adapter.send(email("outbox:9")).provider_id == "<outbox=3A9@recoup>"


def test_one_connection_carries_many_messages(tls_sink: SmtpSink, adapter: SmtpAdapter):
    results = [adapter.send(email(f"k{i}")) for i in range(5)]
    assert [m.idempotency_key for m in tls_sink.messages] == [f"k{i}" for i in range(5)]
    assert len({r.provider_id for r in results}) == 5
    assert tls_sink.connections == 1


def test_implicit_tls():
    with (
        SmtpSink(tls="implicit", username=USER, password=PASSWORD) as sink,
        SmtpAdapter(
            "127.0.0.1",
            sink.port,
            from_addr=FROM,
            security="tls",
            username=USER,
            password=PASSWORD,
            ca_file=sink.ca_file,
        ) as adapter,
    ):
        adapter.send(email())
        [record] = sink.messages
        assert record.tls and record.login == USER
        assert record.message["Subject"] == "逾期还款提醒（第1次）"


def test_plain_relay_without_tls_or_auth():
    with (
        SmtpSink() as sink,
        SmtpAdapter("127.0.0.1", sink.port, from_addr=FROM, security="none") as adapter,
    ):
        adapter.send(email(body="Hello, this is a reminder.", subject="Reminder"))
        [record] = sink.messages
        assert not record.tls and record.login is None
        assert text_of(record.message.get_body(("plain",))).strip() == "Hello, this is a reminder."


def test_untrusted_certificate_is_permanent_unless_verification_is_off(tls_sink: SmtpSink):
    # The sink's certificate is signed by a throw-away CA that the system does not trust.
    strict = SmtpAdapter(
        "127.0.0.1", tls_sink.port, from_addr=FROM, username=USER, password=PASSWORD
    )
    with strict, pytest.raises(PermanentSendError, match="certificate"):
        strict.send(email())
    lax = SmtpAdapter(
        "127.0.0.1", tls_sink.port, from_addr=FROM, username=USER, password=PASSWORD, verify=False
    )
    with lax:
        lax.send(email())
    assert len(tls_sink.messages) == 1


def test_wrong_password_is_permanent(tls_sink: SmtpSink):
    adapter = SmtpAdapter(
        "127.0.0.1",
        tls_sink.port,
        from_addr=FROM,
        username=USER,
        password="wrong",
        ca_file=tls_sink.ca_file,
    )
    with adapter, pytest.raises(PermanentSendError) as err:
        adapter.send(email())
    assert err.value.code == 535 and not err.value.retryable
    assert tls_sink.messages == []


def test_unauthenticated_mail_is_refused_by_the_sink(tls_sink: SmtpSink):
    adapter = SmtpAdapter("127.0.0.1", tls_sink.port, from_addr=FROM, ca_file=tls_sink.ca_file)
    with adapter, pytest.raises(PermanentSendError) as err:
        adapter.send(email())
    assert err.value.code == 530
    assert tls_sink.messages == []


def test_451_is_transient_and_the_connection_stays_usable(tls_sink: SmtpSink, adapter: SmtpAdapter):
    tls_sink.reject_next(1, 451)
    with pytest.raises(TransientSendError) as err:
        adapter.send(email("k1"))
    assert err.value.code == 451 and err.value.retryable
    assert "451" in err.value.reason
    adapter.send(email("k1"))  # the retry of the same message
    assert [m.idempotency_key for m in tls_sink.messages] == ["k1"]
    assert tls_sink.connections == 1


def test_550_recipient_rejected_is_permanent(tls_sink: SmtpSink, adapter: SmtpAdapter):
    tls_sink.reject_next(1, 550, "5.1.1 <nobody@example.com>: Recipient unknown", stage="rcpt")
    with pytest.raises(PermanentSendError) as err:
        adapter.send(email("k1", to="nobody@example.com"))
    assert err.value.code == 550 and "Recipient unknown" in err.value.reason
    adapter.send(email("k2"))  # RSET: the next message goes through on the same connection
    assert [m.idempotency_key for m in tls_sink.messages] == ["k2"]
    assert tls_sink.connections == 1


def test_550_after_data_is_permanent(tls_sink: SmtpSink, adapter: SmtpAdapter):
    tls_sink.reject_next(1, 554, "5.7.1 Message rejected as spam")
    with pytest.raises(PermanentSendError, match="spam"):
        adapter.send(email())
    assert tls_sink.messages == []


def test_server_down_is_transient():
    adapter = SmtpAdapter("127.0.0.1", free_port(), from_addr=FROM, security="none", timeout=5)
    with adapter, pytest.raises(TransientSendError, match="cannot connect"):
        adapter.send(email())


def test_silent_server_times_out_transiently():
    # A listening socket that never answers: the TCP handshake succeeds, the greeting never comes.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        adapter = SmtpAdapter("127.0.0.1", port, from_addr=FROM, security="none", timeout=0.3)
        with adapter, pytest.raises(TransientSendError, match="timed out"):
            adapter.send(email())


def test_reconnects_once_after_the_server_dropped_the_connection(
    tls_sink: SmtpSink, adapter: SmtpAdapter
):
    adapter.send(email("k1"))
    assert tls_sink.disconnect_all() == 1  # an idle timeout or a restart of the server
    adapter.send(email("k2"))
    assert [m.idempotency_key for m in tls_sink.messages] == ["k1", "k2"]
    assert tls_sink.connections == 2


def test_a_server_gone_for_good_is_transient_after_one_reconnection():
    sink = SmtpSink().start()
    adapter = SmtpAdapter("127.0.0.1", sink.port, from_addr=FROM, security="none", timeout=5)
    with adapter:
        adapter.send(email("k1"))
        sink.stop()
        with pytest.raises(TransientSendError):
            adapter.send(email("k2"))
        # And it recovers when the server is back on the same port.
        with SmtpSink(port=sink.port) as back:
            adapter.send(email("k3"))
            assert [m.idempotency_key for m in back.messages] == ["k3"]


@pytest.mark.parametrize(
    "address",
    ["not-an-address", "li.si@", "@example.com", "li si@example.com", "a@b@example.com",
     "li.si@exa_mple.com", "张三@example.com", "li.si@example.com\r\nBcc: x@evil.example"],
)  # fmt: skip
def test_invalid_address_is_permanent_and_sends_nothing(tls_sink: SmtpSink, address: str):
    adapter = SmtpAdapter("127.0.0.1", tls_sink.port, from_addr=FROM, ca_file=tls_sink.ca_file)
    with adapter, pytest.raises(PermanentSendError, match="address"):
        adapter.send(email(to=address))
    assert tls_sink.connections == 0


def test_international_domain_is_sent_in_idna_form():
    assert check_address("li.si@例子.中国") == "li.si@xn--fsqu00a.xn--fiqs8s"
    assert check_address(" Li.Si@Example.COM ") == "Li.Si@example.com"


def test_message_id_is_safe_and_keeps_keys_apart():
    assert message_id("outbox-42_a") == "<outbox-42_a@recoup>"
    assert message_id("outbox:42/a.b") == "<outbox=3A42=2Fa=2Eb@recoup>"
    keys = ["a:b", "a=3Ab", "a.b", "a=2Eb", "a_b", "a-b"]
    assert len({message_id(k) for k in keys}) == len(keys)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"subject": "逾期\r\nBcc: victim@example.com"}, "subject"),
        ({"unsubscribe_url": "javascript:alert(1)"}, "unsubscribe"),
        ({"unsubscribe_url": "https://x.example/u>, <mailto:x@y"}, "unsubscribe"),
        ({"attachments": (Attachment("a.pdf", "application pdf", b"x"),)}, "content type"),
        ({"attachments": (Attachment("a\r\n.pdf", "application/pdf", b"x"),)}, "file name"),
    ],
)
def test_header_injection_and_bad_parts_are_permanent(change: dict[str, Any], words: str):
    with pytest.raises(PermanentSendError, match=words):
        build_email(email(**change), FROM)


def test_http_unsubscribe_url_gets_no_one_click_header():
    # RFC 8058 one-click is for HTTPS only; plain http keeps the RFC 2369 header alone.
    msg = build_email(email(unsubscribe_url="http://localhost:8000/u/1"), FROM)
    assert msg["List-Unsubscribe"] == "<http://localhost:8000/u/1>"
    assert msg["List-Unsubscribe-Post"] is None


def test_ascii_text_is_quoted_printable_and_long_lines_are_wrapped():
    body = "Dear customer, " + "your account is overdue. " * 20
    data = email_bytes(build_email(email(body=body, subject="Reminder"), FROM))
    assert b"Content-Transfer-Encoding: quoted-printable" in data
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


def test_bad_from_address_is_a_settings_error():
    with pytest.raises(Invalid, match="smtp_from"):
        SmtpAdapter("127.0.0.1", 25, from_addr="not an address", security="none")


def test_sms_message_is_refused_by_the_email_adapter(adapter: SmtpAdapter):
    sms = OutgoingMessage("k", "sms", "13800138000", "您好")
    with pytest.raises(PermanentSendError, match="sms message"):
        adapter.send(sms)
