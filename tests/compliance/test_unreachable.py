"""A contact person may be called only to find a debtor who cannot be reached (CN): blocked while
the debtor answers or has not been tried, allowed after unanswered calls or when no phone of the
debtor's own can be used."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.compliance import service
from recoup.compliance.service import ContactCheck
from recoup.ledger import service as ledger
from tests import factories

AT = dt.datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def _setup(engine: Engine, with_own_phone: bool = True) -> tuple[int, int, int | None]:
    with Session(engine) as s, s.begin():
        account = factories.loan(s)
        own = (
            ledger.add_contact_point(s, account.debtor_id, "phone", "13800000001").id
            if with_own_phone
            else None
        )
        emergency = ledger.add_contact_point(
            s, account.debtor_id, "phone", "13900000002", owner="emergency"
        )
        return account.id, emergency.id, own


def _check(engine: Engine, account_id: int, point_id: int) -> str | None:
    with Session(engine) as s, s.begin():
        check = ContactCheck(account_id, "call", AT, point_id, purpose="locate")
        return service.check_contact(s, check, record=False).rule_id


def test_contact_persons_only_when_the_debtor_cannot_be_reached(engine: Engine) -> None:
    account_id, emergency, own = _setup(engine)
    assert _check(engine, account_id, emergency) == "third_party.debtor_reachable"
    with Session(engine) as s, s.begin():
        for hours in (72, 48, 24):
            service.record_contact(
                s, account_id=account_id, channel="call", at=AT - dt.timedelta(hours=hours),
                contact_point_id=own,
            )  # fmt: skip
    assert _check(engine, account_id, emergency) is None
    # An answered call to the debtor makes them reachable again.
    with Session(engine) as s, s.begin():
        service.record_contact(
            s, account_id=account_id, channel="call", at=AT - dt.timedelta(hours=2),
            contact_point_id=own, connected=True, conversation=True,
        )  # fmt: skip
    assert _check(engine, account_id, emergency) == "third_party.debtor_reachable"


def test_a_debtor_without_a_usable_phone_is_unreachable(engine: Engine) -> None:
    account_id, emergency, _ = _setup(engine, with_own_phone=False)
    assert _check(engine, account_id, emergency) is None


def test_a_compliance_officer_sets_what_unreachable_means_per_portfolio(engine: Engine) -> None:
    account_id, emergency, own = _setup(engine)
    with Session(engine) as s, s.begin():
        service.record_contact(
            s, account_id=account_id, channel="call", at=AT - dt.timedelta(days=3),
            contact_point_id=own,
        )  # fmt: skip
    assert _check(engine, account_id, emergency) == "third_party.debtor_reachable"  # 1 of 3
    with Session(engine) as s, s.begin():
        code = s.get_one(
            factories.Portfolio, s.get_one(factories.Account, account_id).portfolio_id
        ).code
        service.set_overrides(s, code, {"unreachable_attempts": 1}, by="officer", note="test")
    assert _check(engine, account_id, emergency) is None
    with Session(engine) as s, s.begin():
        service.set_overrides(
            s, code, {"unreachable_attempts": 1, "unreachable_days": 2}, by="officer", note=None
        )
    # the one call was three days ago: outside the two days
    assert _check(engine, account_id, emergency) == "third_party.debtor_reachable"
