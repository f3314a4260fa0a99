"""The outbox on a real database (SQLite and PostgreSQL), sending to real local servers: an SMS
gateway (HTTP, signed) and an SMTP server. Messages written by the daily cycle's planning,
claimed, checked again by the guard at send time, rendered, sent, retried with back-off, and
recorded as interactions; opt-outs honoured."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from recoup.channels import outbox
from recoup.channels import service as templates
from recoup.channels.adapters import SmsHttpAdapter, SmtpAdapter
from recoup.channels.models import Interaction, OutboxMessage
from recoup.channels.sinks import SmsGatewaySink, SmtpSink
from recoup.compliance.models import ComplianceBlock, ContactEvent
from recoup.core.settings import Settings, get_settings
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from recoup.ledger.models import Account, ContactPoint
from recoup.strategy import service as strategy
from recoup.strategy.models import PlannedAction
from tests import factories

DUE = dt.date(2026, 7, 1)
SECRET = "gateway-secret"
# 2026-06-24 11:00 in Shanghai: inside the contact window, after the reminder's 09:00.
MORNING = dt.datetime(2026, 6, 24, 3, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def sms_sink() -> Iterator[SmsGatewaySink]:
    with SmsGatewaySink(secret=SECRET) as sink:
        yield sink


def _book(engine: Engine) -> int:
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        d = factories.debtor(s, name="王小明", address="上海市浦东新区1号")
        ledger.add_contact_point(s, d.id, "phone", "+8613800138000")
        ledger.add_contact_point(s, d.id, "email", "xiaoming@example.com")
        acc = factories.invoice(
            s, pf, debtor=d, principal=500_000, due_date=DUE, start_date=dt.date(2026, 6, 1)
        )
        strategy.load_default(s)
        strategy.activate(s, pf.code, [strategy.ArmSpec("default", None, 1, "champion")], "t")
        return acc.id


def _dispatcher(
    engine: Engine, sink: SmsGatewaySink, clock: Clock, worker: str = "w1", **kw: object
) -> outbox.Dispatcher:
    settings = Settings(
        outbox_retry_base_seconds=60,
        outbox_retry_max_seconds=600,
        **kw,  # type: ignore[arg-type]
    )
    return outbox.Dispatcher(
        engine,
        settings,
        worker=worker,
        adapters={"sms": SmsHttpAdapter(sink.url, SECRET, timeout=2.0)},
        clock=clock,
    )


def _messages(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_the_cycle_queues_and_the_dispatcher_sends(
    engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    acc = _book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=2)
    [m] = _messages(engine)
    assert (m.channel, m.template, m.status) == ("sms", "reminder_before_due", "pending")
    assert m.idempotency_key == f"action:{m.planned_action_id}"
    # Re-running the date queues nothing more.
    run_cycle(engine, dt.date(2026, 6, 24), partitions=2)
    assert len(_messages(engine)) == 1

    clock = Clock(m.next_attempt_at - dt.timedelta(minutes=1))
    d = _dispatcher(engine, sms_sink, clock)
    assert d.dispatch_once().claimed == 0  # not before its scheduled time
    clock.now = MORNING
    res = d.dispatch_once()
    assert (res.claimed, res.sent) == (1, 1)
    [got] = sms_sink.messages
    assert got.to == "+8613800138000" and got.idempotency_key == m.idempotency_key
    assert "王小明" in got.text and "¥5,000.00" in got.text
    [m] = _messages(engine)
    assert m.status == "sent" and m.provider_id == got.id and m.attempts == 1
    with Session(engine) as s:
        [i] = s.scalars(select(Interaction).where(Interaction.account_id == acc)).all()
        assert (i.channel, i.direction, i.content, i.provider_id) == (
            "sms",
            "out",
            got.text,
            got.id,
        )
        assert i.content_sha256 == m.content_sha256 and len(i.content_sha256 or "") == 64
        assert s.get_one(PlannedAction, m.planned_action_id).status == "done"
        [e] = s.scalars(select(ContactEvent).where(ContactEvent.account_id == acc)).all()
        assert (e.channel, e.automated, e.source) == ("sms", True, "outbox")
    assert d.dispatch_once().claimed == 0  # nothing sent twice


def test_provider_errors_are_retried_with_back_off_then_failed(
    engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    _book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    clock = Clock(MORNING)
    d = _dispatcher(engine, sms_sink, clock, outbox_max_attempts=3)
    sms_sink.fail_next(2, status=503)
    res = d.dispatch_once()
    assert (res.retried, res.sent) == (1, 0)
    [m] = _messages(engine)
    assert m.status == "pending" and m.attempts == 1 and "503" in (m.last_error or "")
    delay = (m.next_attempt_at - MORNING).total_seconds()
    assert 48 <= delay <= 72  # 60 s +-20 %
    assert d.dispatch_once().claimed == 0  # waits for its time
    clock.now = m.next_attempt_at
    assert d.dispatch_once().retried == 1
    [m] = _messages(engine)
    assert 96 <= (m.next_attempt_at - clock.now).total_seconds() <= 144  # doubled
    clock.now = m.next_attempt_at
    assert d.dispatch_once().sent == 1
    [m] = _messages(engine)
    assert m.status == "sent" and m.attempts == 3
    assert sms_sink.stats().accepted == 1

    # Errors to the last attempt: failed, kept with the reason.
    run_cycle(engine, dt.date(2026, 6, 30), partitions=1)
    clock.now = dt.datetime(2026, 6, 30, 3, 0, tzinfo=dt.UTC)
    sms_sink.fail_next(10, status=503)
    for _ in range(3):
        d.dispatch_once()
        pending = [x for x in _messages(engine) if x.status == "pending"]
        if pending:
            clock.now = pending[0].next_attempt_at
    last = _messages(engine)[-1]
    assert last.status == "failed" and last.attempts == 3
    with Session(engine) as s:
        assert s.get_one(PlannedAction, last.planned_action_id).status == "failed"


def test_a_rejected_message_fails_at_once(engine: Engine, sms_sink: SmsGatewaySink) -> None:
    _book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    sms_sink.fail_next(1, status=400, message="invalid number")
    res = _dispatcher(engine, sms_sink, Clock(MORNING)).dispatch_once()
    assert res.failed == 1
    [m] = _messages(engine)
    assert m.status == "failed" and "invalid number" in (m.last_error or "")


def test_the_guard_is_asked_again_at_send_time(engine: Engine, sms_sink: SmsGatewaySink) -> None:
    acc = _book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    with Session(engine) as s, s.begin():
        debtor_id = s.get_one(OutboxMessage, _messages(engine)[0].id).debtor_id
        ledger.set_flag(s, debtor_id, "dispute", "debtor disputes the amount", by="t")
    res = _dispatcher(engine, sms_sink, Clock(MORNING)).dispatch_once()
    assert res.blocked == 1 and sms_sink.stats().requests == 0
    [m] = _messages(engine)
    assert m.status == "blocked" and m.rule_id is not None
    with Session(engine) as s:
        [b] = s.scalars(select(ComplianceBlock).where(ComplianceBlock.subject == "message")).all()
        assert (b.subject_id, b.account_id, b.rule_id) == (m.id, acc, m.rule_id)
        assert s.get_one(PlannedAction, m.planned_action_id).status == "blocked"


def test_outside_the_window_it_waits_for_the_next_opening(
    engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    _book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    clock = Clock(dt.datetime(2026, 6, 24, 15, 0, tzinfo=dt.UTC))  # 23:00 in Shanghai
    d = _dispatcher(engine, sms_sink, clock)
    res = d.dispatch_once()
    assert (res.deferred, res.blocked, res.sent) == (1, 0, 0) and sms_sink.stats().requests == 0
    [m] = _messages(engine)
    # 08:00 the next morning in Shanghai, the CN rule set's opening.
    assert m.status == "pending" and m.attempts == 0
    assert m.next_attempt_at == dt.datetime(2026, 6, 25, 0, 0, tzinfo=dt.UTC)
    clock.now = m.next_attempt_at
    assert d.dispatch_once().sent == 1


def test_a_cancelled_action_is_not_sent(engine: Engine, sms_sink: SmsGatewaySink) -> None:
    _book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    with Session(engine) as s, s.begin():
        s.execute(update(PlannedAction).values(status="cancelled", reason="paid"))
    res = _dispatcher(engine, sms_sink, Clock(MORNING)).dispatch_once()
    assert res.cancelled == 1 and sms_sink.stats().requests == 0
    assert _messages(engine)[0].status == "cancelled"


def test_a_stop_reply_opts_the_number_out(engine: Engine, sms_sink: SmsGatewaySink) -> None:
    acc = _book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    with Session(engine) as s, s.begin():
        [p] = outbox.opt_out_points(
            s, kind="phone", value="+8613800138000", by="debtor:sms", reason="TD"
        )
        assert p.do_not_contact
    with Session(engine) as s:  # the opt-out shows on the account's timeline
        assert [(i.direction, i.content) for i in outbox.timeline(s, acc)] == [("in", "TD")]
    res = _dispatcher(engine, sms_sink, Clock(MORNING)).dispatch_once()
    assert res.blocked == 1 and sms_sink.stats().requests == 0
    assert _messages(engine)[0].rule_id is not None


def test_a_dead_workers_claim_expires_and_the_provider_drops_the_resend(
    engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    _book(engine)
    run_cycle(engine, dt.date(2026, 6, 24), partitions=1)
    clock = Clock(MORNING)
    a = _dispatcher(engine, sms_sink, clock, worker="a", outbox_lease_seconds=30)
    # Worker a claims, renders and sends, then "dies" before recording the outcome.
    with engine.connect() as conn, conn.begin():
        ids = outbox.claim(conn, "a", clock.now, 10, 30)
    result = outbox.DispatchResult()
    [ready] = a._prepare(ids, clock.now, result)
    first = a.adapter("sms").send(ready.outgoing)
    b = _dispatcher(engine, sms_sink, clock, worker="b", outbox_lease_seconds=30)
    assert b.dispatch_once().claimed == 0  # a's lease holds
    clock.now += dt.timedelta(seconds=31)
    res = b.dispatch_once()
    assert res.sent == 1
    stats = sms_sink.stats()
    assert (stats.accepted, stats.duplicates) == (1, 1)
    [m] = _messages(engine)
    assert m.status == "sent" and m.provider_id == first.provider_id and m.attempts == 2
    with Session(engine) as s:
        assert s.scalar(select(func.count(Interaction.id))) == 1


def test_email_goes_out_over_smtp_with_an_unsubscribe_link(engine: Engine) -> None:
    acc = _book(engine)
    with Session(engine) as s, s.begin():
        m = outbox.enqueue(
            s,
            account_id=acc,
            channel="email",
            template="reminder_overdue",
            at=dt.datetime(2026, 7, 5, 3, 0, tzinfo=dt.UTC),
        )
        key = m.idempotency_key
    with SmtpSink() as smtp:
        settings = Settings(public_base_url="https://collect.example")
        d = outbox.Dispatcher(
            engine,
            settings,
            adapters={
                "email": SmtpAdapter(
                    "127.0.0.1", smtp.port, from_addr="ar@example.com", security="none"
                )
            },
            clock=Clock(dt.datetime(2026, 7, 5, 3, 0, tzinfo=dt.UTC)),
        )
        assert d.dispatch_once().sent == 1
        assert smtp.wait_for(1)
        [mail] = smtp.messages
        msg = mail.message
        assert msg["X-Idempotency-Key"].strip() == key
        link = msg["List-Unsubscribe"].strip().strip("<>")
        assert link.startswith("https://collect.example/unsubscribe/")
        d.close()
    with Session(engine) as s, s.begin():
        token = link.rsplit("/", 1)[1]
        [p] = outbox.unsubscribe(s, settings.secret_key, token)
        assert p.kind == "email" and p.do_not_contact
        with pytest.raises(Exception, match="token"):
            outbox.unsubscribe(s, settings.secret_key, token[:-1] + "0")
    with Session(engine) as s:
        point = s.scalars(select(ContactPoint).where(ContactPoint.kind == "email")).one()
        assert point.do_not_contact


def test_an_emails_text_links_to_the_signed_unsubscribe_page(engine: Engine) -> None:
    acc = _book(engine)
    with Session(engine) as s:
        rendered = templates.render(s, "reminder_overdue", acc, DUE, "email")
    [link] = re.findall(r"https?://\S+/unsubscribe/(a\d+\.[0-9a-f]{32})", rendered.body)
    assert "opt_out" not in rendered.placeholders
    secret = get_settings().secret_key
    with Session(engine) as s, s.begin():
        [p] = outbox.unsubscribe(s, secret, link)
        assert p.kind == "email" and p.do_not_contact
        with pytest.raises(Exception, match="token"):
            outbox.unsubscribe(s, secret, "a999." + link.split(".")[1])


def test_forged_or_malformed_unsubscribe_tokens_are_refused() -> None:
    token = outbox.unsubscribe_token("k", 42)
    assert outbox.read_unsubscribe_token("k", token) == 42
    for bad in ("", "42", "42.", token[:-1] + "x", "1.é", "４２." + token[3:], "x.y"):
        assert outbox.read_unsubscribe_token("k", bad) is None
    assert outbox.read_unsubscribe_token("other", token) is None


def test_retry_delay() -> None:
    assert outbox.retry_delay(1, 30, 3600, 1.0) == 30
    assert outbox.retry_delay(4, 30, 3600, 1.0) == 240
    assert outbox.retry_delay(20, 30, 3600, 1.0) == 3600
    assert outbox.retry_delay(2, 30, 3600, 1.2) == pytest.approx(72)
    with pytest.raises(ValueError):
        outbox.retry_delay(0, 30, 3600, 1.0)


def test_a_reminder_of_an_overdue_amount_is_not_sent_once_it_is_paid(
    engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        d = factories.debtor(s, name="王小明")
        ledger.add_contact_point(s, d.id, "phone", "+8613800138000")
        # a 12-month loan: its first instalment falls due on DUE
        acc = factories.loan(s, pf, debtor=d, start_date=dt.date(2026, 6, 1), term=12).id
        strategy.load_default(s)
        strategy.activate(s, pf.code, [strategy.ArmSpec("default", None, 1, "champion")], "t")
    run_cycle(engine, dt.date(2026, 7, 2), partitions=1)  # D+1: the overdue reminder
    [m] = [m for m in _messages(engine) if m.status == "pending"]
    with Session(engine) as s, s.begin():
        pa = s.get_one(PlannedAction, m.planned_action_id)
        assert pa.step == "m1_early.reminder" and pa.amount > 0
        account = s.get_one(Account, acc)
        ledger.post_payment(
            s,
            account_id=acc,
            external_ref="PAID-AT-9",
            amount=account.overdue_amount,
            value_date=dt.date(2026, 7, 2),
        )
    clock = Clock(dt.datetime(2026, 7, 2, 3, 0, tzinfo=dt.UTC))  # 11:00 in Shanghai
    res = _dispatcher(engine, sms_sink, clock).dispatch_once()
    assert (res.cancelled, res.sent) == (1, 0) and sms_sink.stats().requests == 0
    [m] = [x for x in _messages(engine) if x.id == m.id]
    assert m.status == "cancelled" and "paid up" in (m.last_error or "")
    with Session(engine) as s:
        assert s.get_one(Account, acc).status == "current"  # cured, not settled


# 23:00 in Shanghai, 00:00 in Tokyo, 20:30 in Kolkata (inside the window)
NIGHT = dt.datetime(2026, 7, 2, 15, 0, tzinfo=dt.UTC)


def test_a_batch_refused_at_night_waits_for_each_zone_s_opening(
    engine: Engine, sms_sink: SmsGatewaySink
) -> None:
    """Deferral is done for the whole batch at once: each message waits for 08:00 in its own
    debtor's zone, and one refused for another rule in the same batch is blocked."""
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)
        accounts = {}
        for zone in ("Asia/Shanghai", "Asia/Tokyo", "Asia/Kolkata"):
            d = factories.debtor(s, timezone=zone)
            ledger.add_contact_point(s, d.id, "phone", f"+86138{len(accounts):08d}")
            accounts[zone] = factories.invoice(s, pf, debtor=d, due_date=DUE).id
        disputed = factories.debtor(s)
        ledger.add_contact_point(s, disputed.id, "phone", "+8613900000000")
        ledger.set_flag(s, disputed.id, "dispute", "disputes the amount", by="t")
        accounts["disputed"] = factories.invoice(s, pf, debtor=disputed, due_date=DUE).id
        for name, account_id in accounts.items():
            outbox.enqueue(
                s,
                account_id=account_id,
                channel="sms",
                template="reminder_overdue",
                key=name,
                at=NIGHT,
            )
    clock = Clock(NIGHT)
    res = _dispatcher(engine, sms_sink, clock).dispatch_once()
    assert (res.deferred, res.blocked, res.sent) == (2, 1, 1)
    with Session(engine) as s:
        rows = {m.idempotency_key: m for m in s.scalars(select(OutboxMessage))}
    assert rows["Asia/Shanghai"].next_attempt_at == dt.datetime(2026, 7, 3, 0, 0, tzinfo=dt.UTC)
    assert rows["Asia/Tokyo"].next_attempt_at == dt.datetime(2026, 7, 2, 23, 0, tzinfo=dt.UTC)
    assert all(
        rows[z].status == "pending" and rows[z].attempts == 0
        for z in ("Asia/Shanghai", "Asia/Tokyo")
    )
    assert (rows["disputed"].status, rows["disputed"].rule_id) == ("blocked", "stop.dispute")
    assert rows["Asia/Kolkata"].status == "sent"
