"""The guard as a service on a real database (SQLite and PostgreSQL): one proposed contact
checked against the debtor's flags, contact points, recorded contacts and the wording, with
every refusal kept and counted by rule."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.compliance import service
from recoup.core.errors import Invalid
from recoup.ledger import service as ledger
from recoup.ledger.models import Account
from tests import factories

NY = dt.timezone(dt.timedelta(hours=-5))  # New York in November (EST)


def _us_account(engine: Engine) -> tuple[int, int]:
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s, currency="USD", jurisdiction="US", cap_preset="none")
        d = factories.debtor(s, name="Jane Roe", timezone="America/New_York")
        phone = ledger.add_contact_point(s, d.id, "phone", "+12125550100")
        acc = factories.invoice(s, pf, debtor=d, due_date=dt.date(2026, 10, 1))
        return acc.id, phone.id


def test_manual_contacts_are_checked_and_refusals_kept(engine: Engine) -> None:
    account_id, phone_id = _us_account(engine)
    morning = dt.datetime(2026, 11, 23, 10, 0, tzinfo=NY)
    with Session(engine) as s, s.begin():
        call = service.ContactCheck(account_id, "call", morning, phone_id)
        assert service.check_contact(s, call).allowed
        # 21:30 in New York is after 9 p.m.
        late = service.ContactCheck(account_id, "call", morning.replace(hour=21, minute=30))
        verdict = service.check_contact(s, late)
        assert (verdict.allowed, verdict.rule_id) == (False, "window.hours")
        assert verdict.reason_zh
        # the validation notice went out with the first communication (Reg F 1006.34)
        service.record_contact(
            s, account_id=account_id, channel="letter", at=morning, source="validation_notice"
        )
        # a telephone conversation about the debt: no call for 7 days after it
        service.record_contact(
            s,
            account_id=account_id,
            channel="call",
            at=morning,
            contact_point_id=phone_id,
            conversation=True,
        )
        next_day = service.ContactCheck(account_id, "call", morning + dt.timedelta(days=1))
        assert service.check_contact(s, next_day).rule_id == "us.quiet_after_conversation"
        week_on = service.ContactCheck(account_id, "call", morning + dt.timedelta(days=7))
        assert service.check_contact(s, week_on).allowed
        # wording: a threat in the text is refused even inside the window
        threat = service.ContactCheck(
            account_id,
            "sms",
            morning + dt.timedelta(days=8),
            text="Pay now or we will have you arrested",
        )
        assert (service.check_contact(s, threat).rule_id or "").startswith("wording.")
    with Session(engine) as s:
        counts = dict(service.count_blocks_by_rule(s))
        assert counts["window.hours"] == 1
        assert counts["us.quiet_after_conversation"] == 1
        rows, total = service.list_blocks(s, rule_id="window.hours")
        assert total == 1 and rows[0].subject == "manual_contact"


def test_stop_flag_and_do_not_contact(engine: Engine) -> None:
    account_id, phone_id = _us_account(engine)
    at = dt.datetime(2026, 11, 23, 10, 0, tzinfo=NY)
    with Session(engine) as s, s.begin():
        ledger.update_contact_point(s, phone_id, {"do_not_contact": True}, by="t")
        verdict = service.check_contact(s, service.ContactCheck(account_id, "call", at, phone_id))
        assert verdict.rule_id == "contact.do_not_contact"
        debtor_id = s.get_one(Account, account_id).debtor_id
        ledger.set_flag(s, debtor_id, "cease_communication", "written request", by="t")
        verdict = service.check_contact(s, service.ContactCheck(account_id, "email", at))
        assert verdict.rule_id == "stop.cease_communication"


def test_bad_input_names_the_field(engine: Engine) -> None:
    account_id, _ = _us_account(engine)
    with Session(engine) as s:
        with pytest.raises(Invalid) as err:
            service.check_contact(
                s, service.ContactCheck(account_id, "fax", dt.datetime(2026, 11, 23, tzinfo=NY))
            )
        assert err.value.errors[0].field == "channel"
        with pytest.raises(Invalid) as err:
            service.check_contact(
                s,
                service.ContactCheck(account_id, "call", dt.datetime(2026, 11, 23, 10)),  # noqa: DTZ001
            )
        assert err.value.errors[0].field == "at"


SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def test_night_consent_lets_a_cn_call_through_at_night_and_its_change_is_kept(
    engine: Engine,
) -> None:
    with Session(engine) as s, s.begin():
        pf = factories.portfolio(s)  # CNY, CN rules
        d = factories.debtor(s, timezone="Asia/Shanghai")
        phone = ledger.add_contact_point(s, d.id, "phone", "+8613800138000")
        acc = factories.invoice(s, pf, debtor=d, due_date=dt.date(2026, 10, 1))
        ids = (acc.id, phone.id, d.id)
    account_id, phone_id, debtor_id = ids
    night = dt.datetime(2026, 11, 23, 22, 30, tzinfo=SHANGHAI)
    call = service.ContactCheck(account_id, "call", night, phone_id)
    with Session(engine) as s, s.begin():
        assert service.check_contact(s, call, record=False).rule_id == "window.hours"
        ledger.update_debtor(s, debtor_id, {"night_contact_consent": True}, by="agent li")
    with Session(engine) as s, s.begin():
        assert service.check_contact(s, call, record=False).allowed
        history = ledger.debtor_history(s, debtor_id).items
        change = next(c for c in history if c.field == "night_contact_consent")
        assert (change.old_value, change.new_value, change.changed_by) == (
            "False",
            "True",
            "agent li",
        )


def test_us_rules_do_not_rely_on_night_consent(engine: Engine) -> None:
    account_id, phone_id = _us_account(engine)
    with Session(engine) as s, s.begin():
        debtor_id = s.get_one(Account, account_id).debtor_id
        ledger.update_debtor(s, debtor_id, {"night_contact_consent": True}, by="t")
        late = dt.datetime(2026, 11, 23, 21, 30, tzinfo=NY)
        verdict = service.check_contact(s, service.ContactCheck(account_id, "call", late, phone_id))
        assert verdict.rule_id == "window.hours"


def test_no_threat_of_suit_on_a_time_barred_debt(engine: Engine) -> None:
    account_id, phone_id = _us_account(engine)
    at = dt.datetime(2026, 11, 23, 10, 0, tzinfo=NY)
    lawful = (
        "If this is not resolved, our client may take lawful action, including court proceedings."
    )
    with Session(engine) as s, s.begin():
        ledger.set_time_bar(s, account_id, dt.date(2026, 11, 24), by="t")
        # the day before the period ends: still allowed
        before = service.ContactCheck(account_id, "letter", at, text=lawful)
        assert service.check_contact(s, before, record=False).allowed
        later = at + dt.timedelta(days=1)
        barred = service.ContactCheck(account_id, "letter", later, text=lawful)
        verdict = service.check_contact(s, barred)
        assert (verdict.allowed, verdict.rule_id) == (False, "us.time_barred_suit")
        said = service.ContactCheck(account_id, "call", later, phone_id, threatens_suit=True)
        assert service.check_contact(s, said, record=False).rule_id == "us.time_barred_suit"
        # a plain reminder about a time-barred debt is still allowed
        plain = service.ContactCheck(account_id, "call", later, phone_id, text="A reminder.")
        assert service.check_contact(s, plain, record=False).allowed
        with pytest.raises(Invalid) as exc:
            ledger.set_time_bar(s, account_id, dt.date(2000, 1, 1), by="t")
        assert exc.value.errors[0].field == "time_barred_on"


def test_the_time_bar_check_reads_the_template_text_in_force(engine: Engine) -> None:
    """A stored version replaces the shipped text of its name and language, for the guard too."""
    from recoup.channels import service as templates

    with Session(engine) as s:
        assert service.templates_speaking_of_suit(s) == {"lawyer_letter"}
    body = (
        "【{{ creditor_name }}】{{ debtor_name }}，账户已逾期{{ dpd }}天，应还{{ amount }}。"
        "如有争议，您可依法向人民法院提起诉讼。{{ opt_out }}"
    )
    with Session(engine) as s, s.begin():
        templates.save_template(
            s, "reminder_overdue", "zh", "逾期", body, ["sms"], ["amount", "dpd"], "ann"
        )
    with Session(engine) as s:
        assert service.templates_speaking_of_suit(s) == {"lawyer_letter", "reminder_overdue"}
