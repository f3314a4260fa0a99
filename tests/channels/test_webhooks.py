"""The SMS gateway's webhooks and the unsubscribe page, on both databases: requests signed as
the gateway signs them (`adapters.sms.sign`, which the test gateway uses too) are accepted, and
anything unsigned, wrongly signed or stale is refused with the reason; receipts update their
message; a TD / STOP reply opts the number out and the next message is blocked at send time;
other replies land on the timeline; an email's unsubscribe link opts the address out."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from recoup.channels import inbound, outbox
from recoup.channels.adapters import SmsHttpAdapter
from recoup.channels.adapters.sms import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from recoup.channels.models import Interaction, OutboxMessage
from recoup.channels.sinks import SmsGatewaySink
from recoup.core.settings import Settings, get_settings
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from recoup.ledger.models import ContactPoint
from recoup.strategy import service as strategy
from tests import factories
from tests.api.conftest import PREFIX, Api, field_names

SECRET = "gateway-secret"
DUE = dt.date(2026, 7, 1)
# 2026-06-24 11:00 in Shanghai: the D-7 reminder is due and the contact window open.
MORNING = dt.datetime(2026, 6, 24, 3, 0, tzinfo=dt.UTC)
RECEIPTS = "/channels/sms/receipts"
INBOUND = "/channels/sms/inbound"


def book(engine: Engine, phone: str = "+8613800138000", email: str | None = None) -> int:
    """An invoice due on DUE to a debtor with that phone (and email), default strategy."""
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        d = factories.debtor(s, name="王小明", address="上海市浦东新区1号")
        ledger.add_contact_point(s, d.id, "phone", phone)
        if email:
            ledger.add_contact_point(s, d.id, "email", email)
        acc = factories.invoice(
            s, pf, debtor=d, principal=500_000, due_date=DUE, start_date=dt.date(2026, 6, 1)
        )
        strategy.load_default(s)
        strategy.activate(s, pf.code, [strategy.ArmSpec("default", None, 1, "champion")], "t")
        return acc.id


def dispatcher(engine: Engine, sink: SmsGatewaySink, now: dt.datetime) -> outbox.Dispatcher:
    return outbox.Dispatcher(
        engine,
        Settings(),
        adapters={"sms": SmsHttpAdapter(sink.url, SECRET, timeout=2.0)},
        clock=lambda: now,
    )


def signed(
    api: Api,
    path: str,
    payload: Any,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST `payload` (JSON, or raw bytes) signed as the gateway signs it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    sent = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, stamp, body),
        **(headers or {}),
    }
    return api.client.post(PREFIX + path, content=body, headers=sent)


@pytest.fixture
def gateway(client: TestClient) -> Iterator[None]:
    """The app with the gateway's shared secret configured."""
    app = cast(FastAPI, client.app)
    app.dependency_overrides[get_settings] = lambda: Settings(sms_gateway_secret=SECRET)
    yield
    app.dependency_overrides.clear()


@pytest.fixture
def sms_sink() -> Iterator[SmsGatewaySink]:
    with SmsGatewaySink(secret=SECRET) as sink:
        yield sink


def _sent_sms(engine: Engine, sink: SmsGatewaySink, phone: str = "+8613800138000") -> Any:
    account = book(engine, phone)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    assert dispatcher(engine, sink, MORNING).dispatch_once().sent == 1
    with Session(engine) as s:
        message = s.scalars(select(OutboxMessage)).one()
    return account, message


def test_a_signed_receipt_marks_the_message_delivered(
    api: Api, engine: Engine, gateway: None, sms_sink: SmsGatewaySink
) -> None:
    _, m = _sent_sms(engine, sms_sink)
    assert m.status == "sent" and m.provider_id
    receipt = {"id": m.provider_id, "status": "delivered", "at": "2026-06-24T11:00:05+08:00"}
    r = api.ok(signed(api, RECEIPTS, receipt))
    assert r == {"message_id": m.id, "status": "delivered"}
    # The gateway sends receipts at least once: a repeat is accepted and changes nothing.
    assert api.ok(signed(api, RECEIPTS, receipt)) == r
    with Session(engine) as s:
        got = s.get_one(OutboxMessage, m.id)
        assert got.delivered_at == dt.datetime(2026, 6, 24, 3, 0, 5, tzinfo=dt.UTC)
        [i] = s.scalars(select(Interaction)).all()
        assert i.delivery_status == "delivered"

    unknown = signed(api, RECEIPTS, {**receipt, "id": "sms-99999999"})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert "sms-99999999" in unknown.json()["detail"]


def test_a_receipt_that_overtakes_the_send_is_refused_until_recorded(
    api: Api, engine: Engine, gateway: None
) -> None:
    book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    with engine.connect() as conn, conn.begin():
        [mid] = outbox.claim(conn, "w", MORNING, 10, 60)  # being sent, outcome not yet written
    with Session(engine) as s:
        key = s.get_one(OutboxMessage, mid).idempotency_key
    early = {"id": "sms-1", "status": "delivered", "at": 1782270005, "idempotency_key": key}
    r = signed(api, RECEIPTS, early)
    assert r.status_code == 409 and "again" in r.json()["detail"]


def test_unsigned_wrongly_signed_and_stale_requests_are_refused(
    api: Api, client: TestClient, engine: Engine, gateway: None
) -> None:
    book(engine)
    body = {"from": "+8613800138000", "text": "TD", "at": "2026-07-02T10:00:00+08:00"}
    now = int(time.time())
    for path in (RECEIPTS, INBOUND):
        raw = json.dumps(body).encode()
        cases = {
            "missing signature": client.post(
                PREFIX + path, content=raw, headers={TIMESTAMP_HEADER: str(now)}
            ),
            "missing timestamp": client.post(
                PREFIX + path, content=raw, headers={SIGNATURE_HEADER: sign(SECRET, now, raw)}
            ),
            "wrong secret": signed(api, path, body, secret="not-the-secret"),
            "stale": signed(api, path, body, timestamp=now - 600),
            "from the future": signed(api, path, body, timestamp=now + 600),
            "not seconds": signed(api, path, body, headers={TIMESTAMP_HEADER: "yesterday"}),
            "body changed after signing": client.post(
                PREFIX + path,
                content=raw.replace(b"TD", b"OK"),
                headers={TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(SECRET, now, raw)},
            ),
        }
        reasons = {}
        for case, r in cases.items():
            assert r.status_code == 401, (path, case, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            reasons[case] = r.json()["detail"]
        assert SIGNATURE_HEADER in reasons["missing signature"]
        assert TIMESTAMP_HEADER in reasons["missing timestamp"]
        assert "does not match" in reasons["wrong secret"]
        assert "does not match" in reasons["body changed after signing"]
        assert "stale" in reasons["stale"] and "stale" in reasons["from the future"]
        assert "Unix time" in reasons["not seconds"]
    # The refused STOPs opted nobody out.
    with Session(engine) as s:
        assert not s.scalars(select(ContactPoint)).one().do_not_contact


def test_without_a_gateway_secret_the_webhooks_are_off(api: Api) -> None:
    r = signed(api, RECEIPTS, {"id": "x", "status": "delivered", "at": 0})
    assert r.status_code == 503 and "sms_gateway_secret" in r.json()["detail"]


def test_a_malformed_receipt_is_422_naming_the_field(api: Api, gateway: None) -> None:
    r = signed(api, RECEIPTS, {"id": "", "status": "read", "at": "2026-06-24T11:00:00"})
    assert r.status_code == 422
    assert field_names(r) == ["id", "status", "at"]
    assert "UTC offset" in r.json()["errors"][2]["why"]
    r = signed(api, RECEIPTS, b'{"id": "sms-1", "status": ')
    assert r.status_code == 422 and field_names(r) == ["body"]
    r = signed(api, RECEIPTS, [1, 2])
    assert r.status_code == 422 and field_names(r) == ["payload"]
    r = signed(api, INBOUND, {"from": "not a number", "at": 1782270005})
    assert r.status_code == 422 and field_names(r) == ["from", "text"]
    # What the database could not store is refused before anything is looked up.
    r = signed(api, RECEIPTS, {"id": "x" * 201, "status": "delivered", "at": float("nan")})
    assert r.status_code == 422 and field_names(r) == ["id"]
    r = signed(api, RECEIPTS, {"id": "sms-1", "status": "delivered", "at": float("nan")})
    assert r.status_code == 422 and r.json()["errors"][0]["value"] == "nan"
    r = signed(api, INBOUND, {"from": "+8613800138000", "text": "T\x00D", "at": 0})
    assert r.status_code == 422 and field_names(r) == ["text"]


def test_a_stop_reply_opts_the_number_out_and_the_next_message_is_blocked(
    api: Api, engine: Engine, gateway: None, sms_sink: SmsGatewaySink
) -> None:
    # The number is stored as typed; the gateway gives it in international form.
    account, first = _sent_sms(engine, sms_sink, phone="138 0013 8000")
    reply = {"from": "+86 138-0013-8000", "text": " 退订。", "at": "2026-06-24T11:05:00+08:00"}
    r = api.ok(signed(api, INBOUND, reply))
    assert r == {"opt_out": True, "opted_out": 1, "recorded": 0}
    with Session(engine) as s:
        point = s.scalars(select(ContactPoint).where(ContactPoint.kind == "phone")).one()
        assert point.do_not_contact
        [reply_in] = s.scalars(select(Interaction).where(Interaction.direction == "in")).all()
        assert (reply_in.created_by, reply_in.content) == ("debtor:sms", " 退订。")
    # A repeated webhook changes nothing more.
    assert api.ok(signed(api, INBOUND, reply))["opted_out"] == 0

    # The next SMS, whoever queued it, is refused at send time and never reaches the gateway.
    later = dt.datetime(2026, 6, 30, 3, 0, tzinfo=dt.UTC)
    sent = api.ok(
        api.post(
            f"/accounts/{account}/messages",
            {"channel": "sms", "template": "reminder_overdue", "at": later.isoformat()},
        ),
        201,
    )
    result = dispatcher(engine, sms_sink, later).dispatch_once()
    assert (result.blocked, result.sent) == (1, 0)
    assert sms_sink.stats().accepted == 1  # only the first message
    blocked = api.ok(api.get(f"/outbox/{sent['id']}"))
    assert blocked["status"] == "blocked" and blocked["rule_id"]
    assert first.id != sent["id"]


def test_other_replies_are_kept_on_the_debtors_timeline(
    api: Api, engine: Engine, gateway: None, sms_sink: SmsGatewaySink
) -> None:
    account, _ = _sent_sms(engine, sms_sink)
    reply = {
        "from": "13800138000",
        "text": "我下周一还款",
        "at": "2026-06-24T12:00:00+08:00",
        "id": "in-1",
    }
    assert api.ok(signed(api, INBOUND, reply)) == {"opt_out": False, "opted_out": 0, "recorded": 1}
    assert api.ok(signed(api, INBOUND, reply))["recorded"] == 0  # the same reply again
    timeline = api.ok(api.get(f"/accounts/{account}/timeline"))
    assert [(i["direction"], i["channel"]) for i in timeline] == [("in", "sms"), ("out", "sms")]
    newest = timeline[0]
    assert newest["content"] == "我下周一还款" and newest["provider_id"] == "in-1"
    assert newest["address"] == "13800138000" and newest["at"].startswith("2026-06-24T04:00")
    with Session(engine) as s:
        assert not s.scalars(select(ContactPoint)).one().do_not_contact
    # A reply from a number nobody has is accepted and recorded nowhere.
    stranger = {**reply, "from": "+8613900000000", "id": "in-2"}
    assert api.ok(signed(api, INBOUND, stranger))["recorded"] == 0


def _emailed(engine: Engine) -> int:
    """An email message to the debtor's address, as the dispatcher leaves it once sent."""
    account = book(engine, email="xiaoming@example.com")
    with Session(engine) as s, s.begin():
        m = outbox.enqueue(s, account_id=account, channel="email", template="reminder_overdue")
        m.recipient, m.status = "xiaoming@example.com", "sent"
        return m.id


def test_the_unsubscribe_link_asks_then_opts_the_address_out(
    client: TestClient, engine: Engine
) -> None:
    token = outbox.unsubscribe_token(get_settings().secret_key, _emailed(engine))

    def opted_out() -> bool:
        with Session(engine) as s:
            point = s.scalars(select(ContactPoint).where(ContactPoint.kind == "email")).one()
            return point.do_not_contact

    # Following the link (a person, or a mail scanner) changes nothing: it asks.
    page = client.get(f"/unsubscribe/{token}", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "不再向该邮箱发送邮件？" in page.text and 'id="confirm-unsubscribe"' in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert not opted_out()
    # The button posts to the same address.
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None and action.group(1) == f"/unsubscribe/{token}"
    done = client.post(action.group(1), headers={"Accept-Language": "zh-CN"})
    assert done.status_code == 200 and "您已退订" in done.text
    assert "不再向该邮箱地址发送电子邮件" in done.text
    assert opted_out()
    # Followed again (or in English): it says so, nothing more recorded.
    again = client.get(f"/unsubscribe/{token}?lang=en")
    assert again.status_code == 200 and "You have been unsubscribed" in again.text
    assert 'id="confirm-unsubscribe"' not in again.text
    client.post(f"/unsubscribe/{token}")
    with Session(engine) as s:
        [opt_out] = s.scalars(select(Interaction).where(Interaction.direction == "in")).all()
        assert opt_out.created_by == "debtor:unsubscribe"
        # on the account's timeline
        message = s.scalars(select(OutboxMessage)).one()
        assert opt_out.account_id == message.account_id
        assert opt_out in outbox.timeline(s, message.account_id)


def test_one_click_unsubscribe_answers_200(client: TestClient, engine: Engine) -> None:
    token = outbox.unsubscribe_token(get_settings().secret_key, _emailed(engine))
    r = client.post(
        f"/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    with Session(engine) as s:
        assert (
            s.scalars(select(ContactPoint).where(ContactPoint.kind == "email")).one().do_not_contact
        )


@pytest.mark.parametrize("token", ["1.0123456789abcdef0123456789abcdef", "1.%C3%A9", "abc", "%00"])
def test_an_invalid_unsubscribe_link_gets_a_friendly_page(
    client: TestClient, engine: Engine, token: str
) -> None:
    for response in (
        client.get(f"/unsubscribe/{token}", headers={"Accept-Language": "en"}),
        client.post(f"/unsubscribe/{token}", headers={"Accept-Language": "en"}),
    ):
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")
        assert "This unsubscribe link is not valid" in response.text
        assert "Copy the whole link" in response.text


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("+8613800138000", "138 0013 8000", True),  # with and without the country code
        ("008613800138000", "+86 138-0013-8000", True),  # 00 is the international prefix
        ("+442071234567", "020 7123 4567", True),  # a national trunk 0
        ("+8613800138000", "+8613800138001", False),
        ("+8613800138000", "+8613900138000", False),
        ("13800138000", "+1 13800138000 99", False),
        ("12345", "+8612345", False),  # too short to tell a country code from a number
        ("not a number", "not a number", False),
    ],
)
def test_phone_numbers_are_compared_as_lines_not_as_text(a: str, b: str, same: bool) -> None:
    assert inbound.same_number(a, b) is same
    assert inbound.same_number(b, a) is same
