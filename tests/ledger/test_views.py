"""The ledger pages as a collector reads them: overview, account list, account page."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.core.db import transaction
from recoup.cycle.service import get_run, run_cycle
from recoup.ledger import service
from recoup.ledger.models import Account, Portfolio
from recoup.web.app import create_app
from recoup.web.i18n import Formats
from tests import factories as f
from tests.auth import make_user
from tests.web.htmltext import body_rows, rows, section, text

AS_OF = dt.date(2026, 5, 1)
EN = Formats("en", "Asia/Shanghai")
ZH = Formats("zh-CN", "Asia/Shanghai")


@dataclass
class Book:
    pf_id: int
    pf2_id: int
    late: int  # nothing paid: oldest due 2026-02-15, DPD 75, M3
    half: int  # two instalments paid: oldest due 2026-04-15, DPD 16, M1
    fresh: int  # first due 2026-05-20: current, M0
    invoice: int  # USD invoice due 2026-03-01: DPD 61, M3
    late_name: str
    payment_ref: str


@pytest.fixture
def book(engine: Engine) -> Book:
    with transaction(engine) as s:
        pf = f.portfolio(s)
        pf2 = f.portfolio(s, currency="USD")
        late_debtor = f.debtor(s, name="李四", id_number="110101199001011234")
        late = f.loan(s, pf, debtor=late_debtor)
        half = f.loan(s, pf)
        fresh = f.loan(s, pf, start_date=dt.date(2026, 4, 20))
        invoice = f.invoice(s, pf2, start_date=dt.date(2026, 2, 1), due_date=dt.date(2026, 3, 1))
        first_two = sum(
            i.principal_due + i.interest_due + i.fee_due
            for i in service.instalments_of(s, half.id)[:2]
        )
        service.post_payment(
            s,
            account_id=half.id,
            external_ref="BANK-0001",
            amount=first_two,
            value_date=dt.date(2026, 3, 15),
        )
        service.add_contact_point(
            s, late_debtor.id, "phone", "13800138000", is_verified=True, has_consent=True
        )
        service.add_contact_point(
            s, late_debtor.id, "phone", "13900139000", owner="emergency", owner_name="王五"
        )
        service.set_flag(s, late_debtor.id, "dispute", "客户称金额有误", by="collector.liu")
        service.update_debtor(s, late_debtor.id, {"employer": "华为技术有限公司"}, by="lead.chen")
        ids = Book(pf.id, pf2.id, late.id, half.id, fresh.id, invoice.id, "李四", "BANK-0001")
    run_cycle(engine, AS_OF)
    return ids


@pytest.fixture
def client(engine: Engine, book: Book):
    with TestClient(create_app(engine)) as c:
        c.headers.update(make_user(engine, "admin").headers)
        yield c


def accounts(engine: Engine) -> dict[int, Account]:
    with Session(engine) as s:
        return {a.id: a for a in s.query(Account)}


# --------------------------------------------------------------------------- overview


def test_overview_counts_and_amounts_per_bucket(client, book, engine):
    accts = accounts(engine)
    late, half, fresh = accts[book.late], accts[book.half], accts[book.fresh]
    assert (late.bucket, half.bucket, fresh.bucket) == ("M3", "M1", "M0")
    page = client.get("/?lang=en").text
    card = section(page, f"portfolio-{book.pf_id}")
    table = card[card.index("by-bucket") :]
    assert rows(table, 'data-bucket="M3"') == [
        [
            "M3",
            "61–90 days past due",
            "1",
            EN.money(late.overdue_amount, "CNY"),
            "CN¥12,000.00",
        ]
    ]
    assert rows(table, 'data-bucket="M1"')[0][2] == "1"
    assert rows(table, 'data-bucket="M1"')[0][3] == EN.money(half.overdue_amount, "CNY")
    assert rows(table, 'data-bucket="M0"')[0][:3] == ["M0", "not past due", "1"]
    assert rows(table, 'data-bucket="M2"')[0][2:] == ["0", "CN¥0.00", "CN¥0.00"]
    assert rows(table, 'data-bucket="M7+"')[0][1] == "over 180 days past due"
    overdue = late.overdue_amount + half.overdue_amount + fresh.overdue_amount
    principal = late.principal_balance + half.principal_balance + fresh.principal_balance
    footer = table[table.index("<tfoot>") :]
    assert rows(footer)[0] == [
        "Total",
        "3",
        EN.money(overdue, "CNY"),
        EN.money(principal, "CNY"),
    ]


def test_overview_by_status(client, book):
    page = client.get("/?lang=en").text
    card = section(page, f"portfolio-{book.pf_id}")
    statuses = card[card.index("by-status") :]
    assert rows(statuses, 'data-status="delinquent"')[0][:2] == ["Delinquent", "2"]
    assert rows(statuses, 'data-status="current"')[0][:2] == ["Current", "1"]
    assert rows(statuses, 'data-status="settled"')[0][:2] == ["Settled", "0"]


def test_overview_totals_are_per_currency(client, book, engine):
    page = client.get("/?lang=en").text
    # One portfolio per currency: no total card repeating it.
    assert 'id="total-' not in page
    with transaction(engine) as s:
        f.loan(s, f.portfolio(s))
    page = client.get("/?lang=en").text
    cny = section(page, "total-CNY")
    assert "All portfolios · CNY" in text(cny)
    assert rows(cny, 'data-bucket="M0"')[0][2] == "2"
    assert rows(cny, 'data-bucket="M3"')[0][2] == "1"
    # Amounts in different currencies are never added together.
    assert 'id="total-USD"' not in page
    usd = section(page, f"portfolio-{book.pf2_id}")
    inv = accounts(engine)[book.invoice]
    assert rows(usd, 'data-bucket="M3"')[0][2:4] == ["1", EN.money(inv.overdue_amount, "USD")]
    assert "$" in EN.money(inv.overdue_amount, "USD")


def test_overview_shows_the_last_cycle_run(client, book):
    en = text(section(client.get("/?lang=en").text, "cycle-run"))
    assert "Last run as of 2026-05-01" in en
    assert "Completed" in en
    assert "Accounts in the book 4" in en
    zh = text(section(client.get("/?lang=zh-CN").text, "cycle-run"))
    assert "最近一次跑批：业务日期 2026-05-01" in zh
    assert "在册账户总数 4" in zh


def test_overview_shows_cycle_amounts_per_currency(client, book, engine):
    """CNY and USD minor units are never added together: each currency is shown as money."""
    with transaction(engine) as s:
        counts = get_run(s, AS_OF).counts
    assert counts["penalty_accrued:CNY"] > 0 and counts["penalty_accrued:USD"] > 0
    assert "penalty_accrued" not in counts
    en = text(section(client.get("/?lang=en").text, "cycle-run"))
    shown = en.split("Penalty interest accrued", 1)[1]
    assert shown.startswith(
        f" {EN.money(counts['penalty_accrued:CNY'], 'CNY')}"
        f" {EN.money(counts['penalty_accrued:USD'], 'USD')}"
    )


def test_overview_chart_gets_exact_decimal_amounts(client, book, engine):
    page = section(client.get("/?lang=en").text, f"portfolio-{book.pf_id}")
    data = re.search(r'<script type="application/json">(.*?)</script>', page, re.S)
    assert data is not None
    late = accounts(engine)[book.late]
    assert '"M3"' in data.group(1)
    # The late loan is the only CNY account in M3: its overdue amount, as an exact string.
    amount = f"{late.overdue_amount // 100}.{late.overdue_amount % 100:02d}"
    assert f'"{amount}"' in data.group(1)


def test_overview_before_any_cycle_and_without_data(engine):
    with TestClient(create_app(engine)) as c:
        c.headers.update(make_user(engine, "admin").headers)
        body = text(c.get("/?lang=en").text)
    assert "The daily cycle has not run yet" in body
    assert "There are no portfolios yet" in body


# --------------------------------------------------------------------------- account list


def _refs(page: str) -> list[str]:
    return [r[0] for r in body_rows(page)] if "<tbody>" in page else []


def _ref(engine: Engine, account_id: int) -> str:
    return accounts(engine)[account_id].external_ref


def test_account_list_filters(client, book, engine):
    ref = {k: _ref(engine, getattr(book, k)) for k in ("late", "half", "fresh", "invoice")}
    assert "4 accounts" in text(client.get("/accounts?lang=en").text)
    assert sorted(_refs(client.get("/accounts?bucket=M3").text)) == sorted(
        [ref["late"], ref["invoice"]]
    )
    assert _refs(client.get(f"/accounts?bucket=M3&portfolio={book.pf_id}").text) == [ref["late"]]
    assert _refs(client.get("/accounts?status=current").text) == [ref["fresh"]]
    assert sorted(_refs(client.get("/accounts?dpd_min=10&dpd_max=70").text)) == sorted(
        [ref["half"], ref["invoice"]]
    )
    # Empty fields from the form mean "any".
    assert len(_refs(client.get("/accounts?portfolio=&bucket=&dpd_min=&q=").text)) == 4


def test_account_list_search_by_name_or_reference(client, book, engine):
    late_ref = _ref(engine, book.late)
    assert _refs(client.get("/accounts", params={"q": "李四"}).text) == [late_ref]
    assert _refs(client.get("/accounts", params={"q": "李"}).text) == [late_ref]
    assert _refs(client.get("/accounts", params={"q": late_ref}).text) == [late_ref]
    assert _refs(client.get("/accounts", params={"q": "INV"}).text) == [_ref(engine, book.invoice)]
    # Wildcard characters are searched for literally.
    page = client.get("/accounts", params={"q": "%", "lang": "en"}).text
    assert "No accounts match these filters." in text(page)


def test_account_list_row_shows_what_a_collector_needs(client, book, engine):
    late = accounts(engine)[book.late]
    with Session(engine) as s:
        portfolio_code = s.get_one(Portfolio, late.portfolio_id).code
    page = client.get(f"/accounts?q={late.external_ref}&lang=en").text
    assert body_rows(page)[0] == [
        late.external_ref,
        "李四",
        portfolio_code,
        "M3",
        "75",
        "Negotiation",
        "Delinquent",
        EN.money(late.overdue_amount, "CNY"),
        "CN¥12,000.00",
    ]
    assert f'href="/accounts/{book.late}"' in page


def test_htmx_request_gets_only_the_results(client, book):
    fragment = client.get("/accounts?bucket=M3&lang=en", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "2 accounts" in text(fragment.text)
    # The language switch comes along out of band, pointing at the filtered list.
    assert 'hx-swap-oob="true"' in fragment.text
    assert "/accounts?bucket=M3&amp;lang=zh-CN" in fragment.text
    restore = client.get(
        "/accounts?bucket=M3",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restore.text


def test_account_list_pages_by_50(engine):
    with transaction(engine) as s:
        pf = f.portfolio(s)
        for _ in range(52):
            f.invoice(s, pf)
    with TestClient(create_app(engine)) as c:
        c.headers.update(make_user(engine, "admin").headers)
        first = c.get("/accounts?lang=en").text
        assert "52 accounts" in text(first)
        assert len(body_rows(first)) == 50
        assert 'rel="prev"' not in first
        next_url = re.search(r'rel="next" href="([^"]+)"', first)
        assert next_url is not None
        second = c.get(next_url.group(1).replace("&amp;", "&")).text
        assert len(body_rows(second)) == 2
        assert 'rel="next"' not in second
        prev_url = re.search(r'rel="prev" href="([^"]+)"', second)
        assert prev_url is not None
        back = c.get(prev_url.group(1).replace("&amp;", "&")).text
        assert _refs(back) == _refs(first)


# --------------------------------------------------------------------------- account page


def test_account_page_shows_position_and_balances(client, book, engine):
    late = accounts(engine)[book.late]
    page = client.get(f"/accounts/{book.late}?lang=en").text
    position = text(section(page, "position"))
    assert "Days past due 75" in position
    assert "as of 2026-05-01" in position
    assert "Oldest unpaid due date 2026-02-15" in position
    balances = section(page, "balances")
    expected = {
        "principal": late.principal_balance,
        "interest": late.interest_balance,
        "fee": late.fee_balance,
        "penalty": late.penalty_balance,
        "late_fee": late.late_fee_balance,
        "credit": late.credit_balance,
    }
    for component, minor in expected.items():
        assert rows(balances, f'data-component="{component}"')[0][1] == EN.money(minor, "CNY")
    assert late.penalty_balance > 0 and late.late_fee_balance > 0
    total = sum(v for k, v in expected.items() if k != "credit") - late.credit_balance
    assert rows(balances[balances.index("<tfoot>") :])[0] == ["Total owed", EN.money(total, "CNY")]


def test_position_of_an_account_the_cycle_had_nothing_to_do_for(client, book, engine):
    """Nothing was due on the fresh loan, so the run did not touch it; after the completed run
    its position still holds as of the run's date."""
    page = text(client.get(f"/accounts/{book.fresh}?lang=en").text)
    assert "as of 2026-05-01" in page
    assert "not yet aged by the daily cycle" not in page
    with transaction(engine) as s:
        account = f.loan(s, s.get(f.Portfolio, book.pf_id))  # opened after the run
        new_id = account.id
    later = text(client.get(f"/accounts/{new_id}?lang=en").text)
    assert "not yet aged by the daily cycle" in later


def test_account_page_shows_the_schedule(client, book, engine):
    with Session(engine) as s:
        plan = service.instalments_of(s, book.late)
    page = client.get(f"/accounts/{book.late}?lang=en").text
    lines = body_rows(section(page, "schedule"))
    assert len(lines) == 12
    assert [line[1] for line in lines] == [i.due_date.isoformat() for i in plan]
    assert [line[8] for line in lines[:4]] == ["Overdue", "Overdue", "Overdue", "Not yet due"]
    first = plan[0]
    assert lines[0][2:6] == [
        EN.money(first.principal_due, "CNY"),
        EN.money(first.interest_due, "CNY"),
        EN.money(first.fee_due, "CNY"),
        EN.money(first.principal_due + first.interest_due + first.fee_due, "CNY"),
    ]
    half = body_rows(section(client.get(f"/accounts/{book.half}?lang=en").text, "schedule"))
    assert [line[8] for line in half[:3]] == ["Paid", "Paid", "Overdue"]


def test_account_page_shows_payments(client, book, engine):
    with Session(engine) as s:
        paid = sum(
            i.principal_due + i.interest_due for i in service.instalments_of(s, book.half)[:2]
        )
    page = client.get(f"/accounts/{book.half}?lang=en").text
    assert body_rows(section(page, "payments")) == [
        [book.payment_ref, "2026-03-15", EN.money(paid, "CNY"), "—", "Posted"]
    ]
    late = client.get(f"/accounts/{book.late}?lang=en").text
    assert "No payments yet." in text(section(late, "payments"))


def test_personal_data_is_shown_when_asked_for_and_the_view_is_recorded(client, book, engine):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from recoup.access.models import AuditLog

    page = client.get(f"/accounts/{book.late}?lang=en&unmask=1").text
    assert "ID number 110101199001011234" in text(section(page, "debtor"))
    assert body_rows(section(page, "contacts"))[0][1] == "13800138000"
    with Session(engine) as s:
        entry = s.scalar(select(AuditLog).where(AuditLog.action == "view_unmasked"))
        assert entry is not None and entry.account_id == book.late


def test_account_page_shows_debtor_contacts_flags_and_history(client, book):
    page = client.get(f"/accounts/{book.late}?lang=en").text
    debtor = text(section(page, "debtor"))
    assert "Name 李四" in debtor
    assert "ID number 110101********1234" in debtor  # masked until asked for
    assert "Employer 华为技术有限公司" in debtor
    assert "Time zone Asia/Shanghai" in debtor
    contacts = body_rows(section(page, "contacts"))
    assert contacts[0] == ["Phone", "138****8000", "Self", "Yes", "Yes", "No"]
    assert contacts[1] == ["Phone", "139****9000", "Emergency contact · 王五", "No", "No", "No"]
    flags = body_rows(section(page, "flags"))
    assert flags[0][:3] == ["Dispute", "客户称金额有误", "collector.liu"]
    history = body_rows(section(page, "history"))
    assert history[0][1:] == ["lead.chen", "Profile · Employer", "—", "华为技术有限公司"]
    assert ["system", "Contact point · Owner", "—", "Emergency contact"] in [h[1:] for h in history]


def test_switching_language_changes_the_labels(client, book):
    en = text(client.get(f"/accounts/{book.late}?lang=en").text)
    zh = text(client.get(f"/accounts/{book.late}?lang=zh-CN").text)
    for english, chinese in [
        ("Days past due", "逾期天数"),
        ("Repayment schedule", "还款计划"),
        ("Penalty interest", "罚息"),
        ("Late fees", "滞纳金"),
        ("Contact points", "联系方式"),
        ("Collection stage", "催收阶段"),
    ]:
        assert english in en and english not in zh
        assert chinese in zh and chinese not in en
    assert "¥12,000.00" in zh and "CN¥" not in zh


def test_unknown_account_is_a_404_page(client, book):
    page = client.get("/accounts/987654")
    assert page.status_code == 404
    assert "未找到" in text(page.text)
    assert "Not found" in text(client.get("/accounts/987654?lang=en").text)
