"""The worker's batch path of rendering (`service.render_batch`, used by the outbox) gives
exactly what `service.render` gives message by message: the same text, version, hash and
placeholders, and the same refusal (unknown account or template, wrong channel, a lawyer letter
without a law firm, forbidden wording carried by a value)."""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.channels import rules, service
from recoup.core.errors import DomainError
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from tests import factories

AS_OF = dt.date(2026, 8, 15)


def _book(engine: Engine) -> list[int]:
    """Accounts that differ where rendering differs: language, currency, loans and invoices,
    penalties accrued, an address of the debtor's own or only as a contact point or none,
    sender details set for the creditor and overridden for a portfolio, a law firm or not,
    and a debtor whose name is forbidden wording."""
    ids = []
    with Session(engine) as s, s.begin():
        cny = factories.portfolio(s)
        usd = factories.portfolio(s, currency="USD")
        service.set_sender_profile(
            s,
            {"service_phone": "400-800-1234", "dispute_contact": "dispute@example.com"},
            "t",
            creditor=cny.creditor_id,
        )
        service.set_sender_profile(
            s, {"service_phone": "400-000-0000", "collector_name": "催收部"}, "t",
            creditor=usd.creditor_id,
        )  # fmt: skip
        phone = {"zh": "400-800-5678", "en": "+86 400 800 5678"}  # the portfolio's wins
        details = {"service_phone": phone, "law_firm": "示例律师事务所"}
        service.set_sender_profile(s, details, "t", portfolio=usd.id)
        people = [
            factories.debtor(s, address="上海市浦东新区世纪大道100号"),
            factories.debtor(s, language="en", name="John Smith", address="1 Main St"),
            factories.debtor(s),  # no address of its own …
            factories.debtor(s, language="en", name="Jane Doe"),  # … and none at all
            factories.debtor(s, name="王曝光"),  # wording the guard refuses
        ]
        ledger.add_contact_point(s, people[2].id, "address", "北京市朝阳区建国路1号")
        for n, person in enumerate(people):
            pf = cny if n % 2 == 0 else usd
            ids.append(factories.invoice(s, pf, debtor=person).id)
            ids.append(
                factories.loan(
                    s, pf, debtor=person, principal=1_000_000 + 12_345 * n, term=6 + n
                ).id
            )
    run_cycle(engine, AS_OF)
    return ids


def _same(a: service.Rendered | DomainError, b: service.Rendered | DomainError) -> bool:
    if isinstance(a, service.Rendered) or isinstance(b, service.Rendered):
        return a == b
    return type(a) is type(b) and str(a) == str(b)


def test_batch_rendering_agrees_with_render(engine: Engine) -> None:
    accounts = _book(engine)
    cases = [
        ("reminder_overdue", "sms"),
        ("reminder_before_due", "email"),
        ("offer_plan", "sms"),
        ("formal_notice", "email"),
        ("formal_notice", "sms"),  # not written for SMS: Invalid
        ("lawyer_letter", "letter"),  # Invalid without a law firm
        ("no_such_template", "sms"),  # NotFound
    ]
    requests = [service.RenderRequest(t, a, c) for a in accounts for t, c in cases]
    requests.append(service.RenderRequest("reminder_overdue", 999_999, "sms"))  # NotFound
    random.Random(7).shuffle(requests)
    with Session(engine) as s:
        batch = service.render_batch(s, requests, AS_OF)
        for request, got in zip(requests, batch, strict=True):
            try:
                expected: service.Rendered | DomainError = service.render(
                    s, request.name, request.account_id, AS_OF, request.channel
                )
            except DomainError as exc:
                expected = exc
            assert _same(got, expected), (request, got, expected)
    kinds = {type(r).__name__ for r in batch}
    assert kinds == {"Rendered", "Invalid", "NotFound", "Blocked"}


@settings(max_examples=300, deadline=None)
@given(
    minor=st.one_of(
        st.integers(-(10**15), 10**15), st.sampled_from([0, 1, -1, 5, 99, 100, 999, 1000])
    ),
    currency=st.sampled_from(["CNY", "USD", "JPY", "EUR", "HKD", "KWD", "GBP", "CLF"]),
    language=st.sampled_from(rules.LANGUAGES),
)
def test_batch_amounts_are_written_as_render_writes_them(
    minor: int, currency: str, language: str
) -> None:
    assert service._batch_amount(minor, currency, language) == rules.format_amount(
        minor, currency, language
    )


@given(
    day=st.one_of(st.none(), st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31))),
    language=st.sampled_from(rules.LANGUAGES),
)
def test_batch_dates_are_written_as_render_writes_them(day: dt.date | None, language: str) -> None:
    assert service._batch_day(day, language) == rules.format_day(day, language)
