"""The development adapters (console, file), the message value and `adapter_for`."""

from __future__ import annotations

import email
import email.policy
import io
import json
from pathlib import Path

import pytest

from recoup.channels.adapters import (
    Adapter,
    Attachment,
    ConsoleAdapter,
    FileAdapter,
    OutgoingMessage,
    PermanentSendError,
    SmsHttpAdapter,
    SmtpAdapter,
    adapter_for,
)
from recoup.core.errors import Invalid
from recoup.core.settings import Settings


def email_message(
    key: str = "outbox-1", body: str = "李四您好：您的账户已逾期45天。"
) -> OutgoingMessage:
    return OutgoingMessage(
        key, "email", "li.si@example.com", body, subject="逾期提醒", language="zh"
    )


def sms_message(key: str = "outbox-2", body: str = "【东方银行】您好，回T退订") -> OutgoingMessage:
    return OutgoingMessage(key, "sms", "13800138000", body)


# -- file --------------------------------------------------------------------------------------


def test_file_adapter_writes_one_eml_per_key_and_overwrites_on_resend(tmp_path: Path):
    adapter = FileAdapter(tmp_path, "email", from_addr="Recoup <r@bank.example>")
    first = adapter.send(email_message(body="第一次"))
    second = adapter.send(email_message(body="第二次"))  # the same key sent again
    assert first.provider_id == second.provider_id
    assert first.status == "delivered"
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["outbox-1.eml"]  # one file, no temporary left behind
    msg = email.message_from_bytes(
        (tmp_path / "outbox-1.eml").read_bytes(), policy=email.policy.default
    )
    assert msg["Subject"] == "逾期提醒"
    assert msg["Message-ID"] == "<outbox-1@recoup>"
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content() == "第二次"


def test_file_adapter_writes_sms_as_json(tmp_path: Path):
    adapter = FileAdapter(tmp_path / "outbox", "sms", sender="东方银行")
    result = adapter.send(sms_message("batch:7/1"))
    path = tmp_path / "outbox" / "batch=3A7=2F1.json"
    assert result.provider_id == str(path)
    assert json.loads(path.read_text("utf-8")) == {
        "to": "13800138000",
        "text": "【东方银行】您好，回T退订",
        "sender": "东方银行",
        "idempotency_key": "batch:7/1",
        "language": "zh",
    }


def test_file_names_keep_distinct_keys_apart(tmp_path: Path):
    adapter = FileAdapter(tmp_path, "sms")
    keys = ["a:b", "a=3Ab", "a.b", "a_b", "A_b", "x" * 200, "x" * 199 + "y"]
    for key in keys:
        adapter.send(sms_message(key))
    assert len(list(tmp_path.iterdir())) == len(keys)
    assert all(len(p.name) < 255 for p in tmp_path.iterdir())


def test_file_adapter_checks_addresses_like_the_real_ones(tmp_path: Path):
    with pytest.raises(PermanentSendError, match="address"):
        FileAdapter(tmp_path, "email").send(OutgoingMessage("k", "email", "nobody", "x"))
    with pytest.raises(PermanentSendError, match="phone"):
        FileAdapter(tmp_path, "sms").send(OutgoingMessage("k", "sms", "call me", "x"))
    assert list(tmp_path.iterdir()) == []


def test_file_adapter_refuses_the_other_channel(tmp_path: Path):
    with pytest.raises(PermanentSendError, match="sms message"):
        FileAdapter(tmp_path, "email").send(sms_message())


def test_bad_from_address_is_refused_when_built(tmp_path: Path):
    with pytest.raises(Invalid) as err:
        FileAdapter(tmp_path, "email", from_addr="Recoup")
    assert err.value.errors[0].field == "smtp_from"
    with pytest.raises(Invalid):
        adapter_for("email", settings(smtp_from="Recoup <no at sign>"))


# -- console -----------------------------------------------------------------------------------


def test_console_adapter_prints_a_readable_block():
    out = io.StringIO()
    adapter = ConsoleAdapter("email", out, from_addr="Recoup <r@bank.example>")
    message = OutgoingMessage(
        "outbox-1",
        "email",
        "li.si@example.com",
        "李四您好：[bold]不是标记[/bold]",
        subject="逾期提醒",
        unsubscribe_url="https://recoup.example/u/1",
        attachments=(Attachment("通知.pdf", "application/pdf", b"%PDF"),),
    )
    result = adapter.send(message)
    text = out.getvalue()
    assert result.status == "delivered"
    for expected in (
        "li.si@example.com",
        "逾期提醒",
        "outbox-1",
        "通知.pdf",
        "https://recoup.example/u/1",
    ):
        assert expected in text
    assert "[bold]不是标记[/bold]" in text  # the body is printed as it is, not as Rich markup


def test_console_adapter_prints_sms():
    out = io.StringIO()
    ConsoleAdapter("sms", out, sender="东方银行").send(sms_message())
    assert "13800138000" in out.getvalue() and "回T退订" in out.getvalue()


# -- the message value -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "has space", "tab\tkey", "line\nbreak", "中文", "k" * 201])
def test_idempotency_key_must_be_printable_ascii(key: str):
    with pytest.raises(Invalid) as err:
        OutgoingMessage(key, "sms", "13800138000", "x")
    assert err.value.errors[0].field == "idempotency_key"


def test_channel_must_be_known():
    with pytest.raises(Invalid) as err:
        OutgoingMessage("k", "fax", "x", "x")
    assert err.value.errors[0].field == "channel"


# -- adapter_for -------------------------------------------------------------------------------


def settings(**kw: object) -> Settings:
    return Settings(**kw)  # type: ignore[arg-type]


def test_defaults_are_console_adapters():
    for channel in ("email", "sms"):
        adapter = adapter_for(channel, settings())
        assert isinstance(adapter, ConsoleAdapter) and adapter.channel == channel
        assert isinstance(adapter, Adapter)


def test_file_adapters_write_to_the_outbox_dir(tmp_path: Path):
    s = settings(email_adapter="file", sms_adapter="file", outbox_dir=tmp_path)
    mail, text = adapter_for("email", s), adapter_for("sms", s)
    assert isinstance(mail, FileAdapter) and isinstance(text, FileAdapter)
    mail.send(email_message())
    text.send(sms_message())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox-1.eml", "outbox-2.json"]


def test_smtp_settings_build_an_smtp_adapter():
    s = settings(
        email_adapter="smtp",
        smtp_host="smtp.bank.example",
        smtp_from="Recoup <r@bank.example>",
        smtp_username="u",
        smtp_password="p",
        smtp_security="tls",
    )
    adapter = adapter_for("email", s)
    assert isinstance(adapter, SmtpAdapter)
    assert (adapter.host, adapter.port, adapter.security) == ("smtp.bank.example", 465, "tls")


def test_smtp_without_host_or_from_names_the_settings():
    with pytest.raises(Invalid) as err:
        adapter_for("email", settings(email_adapter="smtp"))
    assert [e.field for e in err.value.errors] == ["smtp_host", "smtp_from"]
    assert 'email_adapter is "smtp"' in str(err.value)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"smtp_from": "not an address"}, "smtp_from"),
        ({"smtp_username": "u"}, "smtp_password"),
        ({"smtp_username": "u", "smtp_password": "p", "smtp_security": "none"}, "smtp_security"),
        ({"smtp_ca_file": "/nonexistent/ca.pem"}, "smtp_ca_file"),
    ],
)
def test_bad_smtp_settings_name_the_setting(extra: dict[str, object], field: str):
    base: dict[str, object] = {
        "email_adapter": "smtp",
        "smtp_host": "smtp.bank.example",
        "smtp_from": "r@bank.example",
    }
    with pytest.raises(Invalid) as err:
        adapter_for("email", settings(**{**base, **extra}))
    assert [e.field for e in err.value.errors] == [field]


def test_auth_without_tls_is_allowed_to_a_local_relay():
    s = settings(
        email_adapter="smtp",
        smtp_host="127.0.0.1",
        smtp_from="r@bank.example",
        smtp_username="u",
        smtp_password="p",
        smtp_security="none",
    )
    assert isinstance(adapter_for("email", s), SmtpAdapter)


def test_sms_gateway_settings():
    s = settings(
        sms_adapter="http",
        sms_gateway_url="https://sms.example/v1/messages",
        sms_gateway_secret="s",
        sms_sender="东方银行",
    )
    adapter = adapter_for("sms", s)
    assert isinstance(adapter, SmsHttpAdapter)
    assert adapter.sender == "东方银行"
    adapter.close()


def test_sms_gateway_without_url_or_secret_names_the_settings():
    with pytest.raises(Invalid) as err:
        adapter_for("sms", settings(sms_adapter="http"))
    assert [e.field for e in err.value.errors] == ["sms_gateway_url", "sms_gateway_secret"]
    with pytest.raises(Invalid) as err:
        adapter_for(
            "sms",
            settings(
                sms_adapter="http",
                sms_gateway_url="ftp://sms.example",
                sms_gateway_secret="s",
                sms_callback_url="not a url",
            ),
        )
    assert [e.field for e in err.value.errors] == ["sms_gateway_url", "sms_callback_url"]


def test_unknown_channel():
    with pytest.raises(Invalid) as err:
        adapter_for("fax", settings())
    assert err.value.errors[0].field == "channel"
