"""The outbox API on both databases: listing with validated filters and pages, one message,
counts by status, sending a failed or bounced message again, a message sent by hand (checked
by the guard when it is sent, like any other), and an account's timeline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from recoup.channels import outbox
from recoup.channels.models import OutboxMessage
from recoup.channels.sinks import SmsGatewaySink
from recoup.core.db import utcnow
from recoup.cycle.service import run_cycle
from tests.api.conftest import Api, field_names
from tests.channels.test_webhooks import MORNING, SECRET, book, dispatcher

STATUSES = ["pending", "sending", "sent", "delivered", "failed", "bounced", "blocked", "cancelled"]


@pytest.fixture
def sms_sink() -> Iterator[SmsGatewaySink]:
    with SmsGatewaySink(secret=SECRET) as sink:
        yield sink


def _tomorrow_morning() -> dt.datetime:
    """11:00 in Shanghai tomorrow: after anything queued now, inside the contact window."""
    return dt.datetime.combine(utcnow().date() + dt.timedelta(days=1), dt.time(3), dt.UTC)


def _two_queued(engine: Engine) -> tuple[int, int]:
    first, second = book(engine), book(engine)
    # One partition: the messages are created in account order (on PostgreSQL partitions run
    # at the same time, and which commits first is not fixed).
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    return first, second


def test_list_filters_and_pages(api: Api, engine: Engine) -> None:
    first, second = _two_queued(engine)
    page = api.ok(api.get("/outbox"))
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    assert [m["account_id"] for m in page["items"]] == [second, first]  # newest first
    m = page["items"][1]
    assert (m["channel"], m["template"], m["status"], m["attempts"]) == (
        "sms",
        "reminder_before_due",
        "pending",
        0,
    )
    assert m["next_attempt_at"] == "2026-06-24T02:00:00Z"
    assert m["idempotency_key"] == f"action:{m['planned_action_id']}"
    mine = api.ok(api.get("/outbox", params={"account_id": first}))
    assert [x["id"] for x in mine["items"]] == [m["id"]] and mine["total"] == 1
    assert api.ok(api.get("/outbox", params={"status": "sent"})) == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    second_page = api.ok(api.get("/outbox", params={"limit": 1, "offset": 1}))
    assert [x["id"] for x in second_page["items"]] == [m["id"]] and second_page["total"] == 2
    for params, field in (
        ({"status": "lost"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"account_id": "L1"}, "account_id"),
    ):
        r = api.get("/outbox", params=params)
        assert r.status_code == 422 and field_names(r) == [field], params


def test_one_message_and_the_counts(api: Api, engine: Engine) -> None:
    _two_queued(engine)
    [m, _] = api.ok(api.get("/outbox"))["items"]
    assert api.ok(api.get(f"/outbox/{m['id']}")) == m
    missing = api.get("/outbox/999999")
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]
    stats = api.ok(api.get("/outbox/stats"))
    assert list(stats["by_status"]) == STATUSES
    assert stats["by_status"]["pending"] == 2 and stats["total"] == 2
    assert sum(stats["by_status"].values()) == 2


def test_a_failed_message_goes_back_to_pending_with_its_key(
    api: Api, engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    sms_sink.fail_next(1, status=400, message="number suspended")
    assert dispatcher(engine, sms_sink, MORNING).dispatch_once().failed == 1
    [failed] = api.ok(api.get("/outbox", params={"status": "failed"}))["items"]
    assert "number suspended" in failed["last_error"]

    before = utcnow()
    again = api.ok(api.post(f"/outbox/{failed['id']}/retry"))
    assert again["id"] == failed["id"] and again["status"] == "pending"
    assert again["idempotency_key"] == failed["idempotency_key"] and again["attempts"] == 0
    assert dt.datetime.fromisoformat(again["next_attempt_at"]) >= before - dt.timedelta(seconds=1)
    # Sent by the next dispatch, with the same key (a provider that had it would drop it).
    later = _tomorrow_morning()
    assert dispatcher(engine, sms_sink, later).dispatch_once().sent == 1
    [got] = sms_sink.messages
    assert got.idempotency_key == failed["idempotency_key"]
    assert api.ok(api.get(f"/outbox/{failed['id']}"))["status"] == "sent"
    # Only a failed or bounced message can be sent again.
    refused = api.post(f"/outbox/{failed['id']}/retry")
    assert refused.status_code == 409 and "sent" in refused.json()["detail"]
    assert api.post("/outbox/999999/retry").status_code == 404


def test_a_bounced_message_is_sent_again_as_a_new_message(
    api: Api, engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    assert dispatcher(engine, sms_sink, MORNING).dispatch_once().sent == 1
    with Session(engine) as s, s.begin():
        m = s.scalars(select(OutboxMessage)).one()
        assert m.provider_id is not None
        outbox.apply_receipt(s, m.provider_id, "bounced", MORNING, "absent subscriber")
        old_id, action = m.id, m.planned_action_id
    new = api.ok(api.post(f"/outbox/{old_id}/retry"))
    assert new["id"] != old_id and new["status"] == "pending"
    assert new["idempotency_key"] == f"retry:{old_id}" and new["planned_action_id"] == action
    assert new["body"] is None  # rendered afresh when it is sent
    assert api.ok(api.post(f"/outbox/{old_id}/retry"))["id"] == new["id"]  # asked twice: one
    assert api.ok(api.get(f"/outbox/{old_id}"))["status"] == "bounced"  # kept as it was
    assert dispatcher(engine, sms_sink, _tomorrow_morning()).dispatch_once().sent == 1
    assert [r.idempotency_key for r in sms_sink.messages][1] == f"retry:{old_id}"


def test_a_message_sent_by_hand(api: Api, engine: Engine) -> None:
    account = book(engine)
    path = f"/accounts/{account}/messages"
    at = "2026-07-05T10:00:00+08:00"
    m = api.ok(api.post(path, {"channel": "sms", "template": "reminder_overdue", "at": at}), 201)
    assert (m["account_id"], m["channel"], m["template"], m["status"]) == (
        account,
        "sms",
        "reminder_overdue",
        "pending",
    )
    assert m["planned_action_id"] is None and m["next_attempt_at"] == "2026-07-05T02:00:00Z"
    assert m["idempotency_key"].startswith("manual:")

    keyed = {"channel": "email", "template": "formal_notice", "key": "ticket-77"}
    one = api.ok(api.post(path, keyed), 201)
    assert api.ok(api.post(path, keyed), 201)["id"] == one["id"]  # the same request: one message
    clash = api.post(path, {**keyed, "template": "reminder_overdue"})
    assert clash.status_code == 409 and "ticket-77" in clash.json()["detail"]
    assert api.ok(api.get("/outbox/stats"))["total"] == 2

    for body, field in (
        ({"channel": "sms", "template": "formal_notice"}, "template"),  # not written for SMS
        ({"channel": "fax", "template": "reminder_overdue"}, "channel"),
        ({"channel": "sms", "template": "Reminder!"}, "template"),
        ({"channel": "sms", "template": "reminder_overdue", "at": "2026-07-05T10:00"}, "at"),
        ({"channel": "sms", "template": "reminder_overdue", "by": "x"}, "by"),
    ):
        r = api.post(path, body)
        assert r.status_code == 422 and field_names(r) == [field], (body, r.text)
    assert api.post(path, {"channel": "sms", "template": "no_such_template"}).status_code == 404
    r = api.post("/accounts/999999/messages", {"channel": "sms", "template": "reminder_overdue"})
    assert r.status_code == 404 and "999999" in r.json()["detail"]


def test_the_timeline_is_newest_first(api: Api, engine: Engine, sms_sink: SmsGatewaySink) -> None:
    account = book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    assert dispatcher(engine, sms_sink, MORNING).dispatch_once().sent == 1
    run_cycle(engine, dt.date(2026, 6, 30), partitions=1)
    day_before = dt.datetime(2026, 6, 30, 3, 0, tzinfo=dt.UTC)
    assert dispatcher(engine, sms_sink, day_before).dispatch_once().sent == 1
    timeline = api.ok(api.get(f"/accounts/{account}/timeline"))
    assert [(i["template"], i["at"]) for i in timeline] == [
        ("reminder_due_tomorrow", "2026-06-30T03:00:00Z"),
        ("reminder_before_due", "2026-06-24T03:00:00Z"),
    ]
    first = timeline[1]
    assert (first["channel"], first["direction"], first["delivery_status"]) == (
        "sms",
        "out",
        "sent",
    )
    assert first["content"] == sms_sink.messages[0].text and len(first["content_sha256"]) == 64
    assert len(api.ok(api.get(f"/accounts/{account}/timeline", params={"limit": 1}))) == 1
    r = api.get(f"/accounts/{account}/timeline", params={"limit": 0})
    assert r.status_code == 422 and field_names(r) == ["limit"]
    assert api.get("/accounts/999999/timeline").status_code == 404
