"""Accounts through the API: opening loans and invoices, reading them, listing with filters and
pagination after the daily cycle has aged them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from recoup.cycle.service import run_cycle
from recoup.ledger import bulk
from tests.api.conftest import Api, field_names


def test_loan_with_generated_schedule(api: Api) -> None:
    pf = api.portfolio()
    loan = api.loan(pf, principal_minor="1200000", method="equal_principal")
    assert loan["kind"] == "loan" and loan["currency"] == "CNY"
    assert loan["terms"]["principal_minor"] == 1_200_000
    assert loan["terms"]["interest_rate"] == "12.00"
    assert loan["terms"]["penalty_rate"] == "18.25"
    assert loan["terms"]["cap_rate"] == "12.00"  # 4 x the one-year LPR of 3.00 % (2025-05-20)
    assert loan["state"] == {
        "status": "current",
        "status_since": None,
        "dpd": 0,
        "bucket": "M0",
        "stage": "current",
        "oldest_unpaid_due": None,
        "overdue_minor": 0,
        "recognised_through": None,
        "accrued_through": None,
    }
    assert loan["balances"]["principal_minor"] == 1_200_000

    schedule = api.ok(api.get(f"/accounts/{loan['id']}/schedule"))
    items = schedule["items"]
    assert len(items) == 12 and schedule["currency"] == "CNY"
    assert sum(i["principal_due_minor"] for i in items) == 1_200_000
    assert items[0]["due_date"] == "2026-02-15"
    assert items[0]["principal_due_minor"] == 100_000  # equal principal
    assert items[0]["interest_due_minor"] == 12_000  # 1 % a month on 1,200,000
    assert api.ok(api.get(f"/accounts/{loan['id']}")) == loan


def test_loan_with_given_schedule_and_major_units(api: Api) -> None:
    pf = api.portfolio()
    loan = api.loan(
        pf,
        principal_minor=None,
        principal="3000.00",
        currency="cny",
        term=None,
        method=None,
        schedule=[
            {"due_date": "2026-03-15", "principal_minor": 200_000, "interest_minor": "3000"},
            {"due_date": "2026-02-15", "principal_minor": 100_000, "fee_minor": 500},
        ],
    )
    assert loan["terms"]["principal_minor"] == 300_000
    assert loan["terms"]["method"] == "given" and loan["terms"]["term"] == 2
    items = api.ok(api.get(f"/accounts/{loan['id']}/schedule"))["items"]
    assert [(i["seq"], i["due_date"], i["outstanding_minor"]) for i in items] == [
        (1, "2026-02-15", 100_500),
        (2, "2026-03-15", 203_000),
    ]


def test_invoice_and_problems_from_the_service(api: Api) -> None:
    pf = api.portfolio()
    inv = api.invoice(pf)
    assert inv["terms"]["method"] == "invoice" and inv["terms"]["term"] == 1

    # Shape errors caught by the service name the field as well.
    debtor = api.debtor()
    base = {
        "external_ref": "X1",
        "debtor_id": debtor["id"],
        "portfolio_id": pf["id"],
        "kind": "invoice",
        "principal_minor": 100,
        "start_date": "2026-03-01",
    }
    assert field_names(api.post("/accounts", base)) == ["due_date"]
    before = {**base, "due_date": "2026-02-01"}
    assert field_names(api.post("/accounts", before)) == ["due_date"]
    usd = {**base, "due_date": "2026-04-01", "currency": "USD"}
    assert field_names(api.post("/accounts", usd)) == ["currency"]
    loan = {**base, "kind": "loan", "method": "annuity"}
    assert field_names(api.post("/accounts", loan)) == ["term"]
    over_cap = {**loan, "term": 12, "interest_rate": "24"}
    assert field_names(api.post("/accounts", over_cap)) == ["interest_rate"]
    both = {**base, "due_date": "2026-04-01", "principal": "1.00", "currency": "CNY"}
    assert field_names(api.post("/accounts", both)) == ["principal"]
    no_currency = {**base, "due_date": "2026-04-01", "principal_minor": None, "principal": "1"}
    assert field_names(api.post("/accounts", no_currency)) == ["currency"]
    # The same external reference twice is a conflict.
    ok = {**base, "due_date": "2026-04-01"}
    api.ok(api.post("/accounts", ok), 201)
    again = api.post("/accounts", ok)
    assert again.status_code == 409
    assert again.json()["type"] == "https://recoup.dev/problems/conflict"


def test_account_inherits_product_terms(api: Api) -> None:
    pf = api.portfolio()
    product = api.ok(
        api.post(
            "/products",
            {
                "code": "CASH12",
                "name": "现金贷 12期",
                "portfolio_id": pf["id"],
                "kind": "loan",
                "interest_rate": "9.6",
                "penalty_rate": "0.0365",
                "term": 6,
                "method": "bullet",
            },
        ),
        201,
    )
    assert product["interest_rate"] == "9.60" and product["penalty_rate"] == "0.0365"
    assert api.ok(api.get(f"/products/{product['id']}")) == product
    listed = api.ok(api.get("/products", params={"portfolio_id": pf["id"]}))
    assert listed["total"] == 1 and listed["items"] == [product]

    loan = api.loan(
        pf,
        product_id=product["id"],
        term=None,
        method=None,
        interest_rate=None,
        penalty_rate=None,
    )
    assert loan["product_id"] == product["id"]
    assert loan["terms"]["method"] == "bullet" and loan["terms"]["term"] == 1
    assert loan["terms"]["interest_rate"] == "9.60"
    assert loan["terms"]["penalty_rate"] == "0.0365"


def test_list_paginates_with_a_total(api: Api) -> None:
    pf = api.portfolio()
    ids = [api.loan(pf)["id"] for _ in range(5)]
    page = api.ok(api.get("/accounts", params={"limit": 2, "offset": 2}))
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 2
    assert [a["id"] for a in page["items"]] == ids[2:4]
    last = api.ok(api.get("/accounts", params={"limit": 2, "offset": 4}))
    assert [a["id"] for a in last["items"]] == ids[4:]
    beyond = api.ok(api.get("/accounts", params={"offset": 50}))
    assert beyond["items"] == [] and beyond["total"] == 5
    default = api.ok(api.get("/accounts"))
    assert default["limit"] == 50 and default["offset"] == 0 and len(default["items"]) == 5


def test_filters_after_the_daily_cycle(api: Api, engine) -> None:
    creditor = api.creditor(code="BANK-A")
    pf = api.portfolio(creditor, code="CARDS")
    other = api.portfolio()  # another creditor's portfolio, never matched below
    debtor = api.debtor()
    # First due dates: 2026-02-15, 2026-01-15, 2025-11-10, 2026-03-20, and an invoice 2026-02-01.
    dpd14 = api.loan(pf, debtor)
    dpd45 = api.loan(pf, start_date="2025-12-15")
    dpd111 = api.loan(pf, start_date="2025-10-10")
    not_due = api.loan(pf, start_date="2026-02-20")
    dpd28 = api.invoice(pf)
    api.loan(other, start_date="2025-12-15")

    result = run_cycle(engine, dt.date(2026, 3, 1))
    assert result.partitions_done > 0

    def ids(**params: object) -> list[int]:
        page = api.ok(api.get("/accounts", params={"portfolio": "CARDS", **params}))
        assert [a["id"] for a in page["items"]] == sorted(a["id"] for a in page["items"])
        assert page["total"] == len(page["items"])
        return [a["id"] for a in page["items"]]

    state = api.ok(api.get(f"/accounts/{dpd45['id']}"))["state"]
    assert (state["dpd"], state["bucket"], state["stage"], state["status"]) == (
        45,
        "M2",
        "negotiation",
        "delinquent",
    )
    assert ids(bucket="M1") == [dpd14["id"], dpd28["id"]]
    assert ids(bucket="M0") == [not_due["id"]]
    assert ids(bucket="M4") == [dpd111["id"]]
    assert ids(dpd_min=30, dpd_max=120) == [dpd45["id"], dpd111["id"]]
    assert ids(dpd_min=28) == [dpd45["id"], dpd111["id"], dpd28["id"]]  # in id order
    assert ids(dpd_max=14) == [dpd14["id"], not_due["id"]]
    assert ids(status="delinquent", dpd_max=30) == [dpd14["id"], dpd28["id"]]
    assert ids(status="settled") == []

    # Portfolio and creditor by id or by code, debtor by id; the other portfolio stays out.
    every = [dpd14["id"], dpd45["id"], dpd111["id"], not_due["id"], dpd28["id"]]
    assert ids(portfolio=str(pf["id"])) == every
    by_creditor = api.ok(api.get("/accounts", params={"creditor": "BANK-A"}))
    assert [a["id"] for a in by_creditor["items"]] == every
    by_creditor_id = api.ok(api.get("/accounts", params={"creditor": creditor["id"]}))
    assert by_creditor_id["total"] == 5
    mine = api.ok(api.get("/accounts", params={"debtor_id": debtor["id"]}))
    assert [a["id"] for a in mine["items"]] == [dpd14["id"]]
    two = api.ok(api.get("/accounts", params={"bucket": "M1", "limit": 1, "offset": 1}))
    assert two["total"] == 2 and [a["id"] for a in two["items"]] == [dpd28["id"]]

    # Bad filter values name the field.
    assert field_names(api.get("/accounts", params={"bucket": "M9"})) == ["bucket"]
    assert field_names(api.get("/accounts", params={"dpd_min": 9, "dpd_max": 3})) == ["dpd_max"]
    assert field_names(api.get("/accounts", params={"portfolio": "NOPE"})) == ["portfolio"]
    assert field_names(api.get("/accounts", params={"creditor": "999"})) == ["creditor"]
    assert field_names(api.get("/accounts", params={"status": "asleep"})) == ["status"]
    assert field_names(api.get("/accounts", params={"dpd_min": "-1"})) == ["dpd_min"]
    assert field_names(api.get("/accounts", params={"bucketz": "M1"})) == ["bucketz"]


def test_open_ended_bucket_accepts_an_unencoded_plus(api: Api, engine) -> None:
    pf = api.portfolio()
    old = api.loan(pf, start_date="2025-01-15", interest_rate="0")
    run_cycle(engine, dt.date(2026, 3, 1))
    assert api.ok(api.get(f"/accounts/{old['id']}"))["state"]["bucket"] == "M7+"
    for raw in ("/accounts?bucket=M7%2B", "/accounts?bucket=M7+", "/accounts?bucket=M7"):
        assert [a["id"] for a in api.ok(api.get(raw))["items"]] == [old["id"]]


def test_ledger_and_balances_agree(api: Api, engine) -> None:
    pf = api.portfolio()
    loan = api.loan(pf, start_date="2025-12-15")
    run_cycle(engine, dt.date(2026, 3, 1))
    api.ok(api.payment(loan, amount_minor=150_000), 201)

    check = api.ok(api.get(f"/accounts/{loan['id']}/balances"))
    assert check["is_consistent"] is True
    assert check["cached"] == check["derived"]
    account = api.ok(api.get(f"/accounts/{loan['id']}"))
    assert account["balances"] == check["cached"]

    entries = api.ok(api.get(f"/accounts/{loan['id']}/ledger", params={"limit": 500}))
    assert entries["total"] == len(entries["items"]) > 3
    assert entries["items"][0]["kind"] == "disbursement"
    assert entries["items"][0]["amount_minor"] == 1_200_000
    assert sum(e["amount_minor"] for e in entries["items"]) == check["derived"]["total_minor"]
    page = api.ok(api.get(f"/accounts/{loan['id']}/ledger", params={"limit": 2, "offset": 1}))
    assert page["items"] == entries["items"][1:3]


def test_not_found(api: Api) -> None:
    for path in (
        "/accounts/999",
        "/accounts/999/schedule",
        "/accounts/999/ledger",
        "/accounts/999/balances",
        "/accounts/999/payments",
        "/creditors/999",
        "/portfolios/999",
        "/products/999",
    ):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404
    debtor = api.debtor()
    missing_portfolio = {
        "external_ref": "L404",
        "debtor_id": debtor["id"],
        "portfolio_id": 999,
        "kind": "invoice",
        "principal_minor": 100,
        "start_date": "2026-01-01",
        "due_date": "2026-02-01",
    }
    assert api.post("/accounts", missing_portfolio).status_code == 404


def test_the_time_bar_is_set_when_opening_and_changed_later(api: Api) -> None:
    pf = api.portfolio()
    inv = api.invoice(pf, time_barred_on="2029-06-30")
    assert inv["time_barred_on"] == "2029-06-30"
    path = f"/accounts/{inv['id']}/time-bar"
    changed = api.ok(api.put(path, {"time_barred_on": "2029-12-31"}))
    assert changed["time_barred_on"] == "2029-12-31"
    assert api.ok(api.put(path, {"time_barred_on": None}))["time_barred_on"] is None
    history = api.ok(api.get(f"/debtors/{inv['debtor_id']}/history"))["items"]
    assert [(h["entity"], h["field"], h["old_value"], h["new_value"]) for h in history[:2]] == [
        ("account", "time_barred_on", "2029-12-31", None),
        ("account", "time_barred_on", "2029-06-30", "2029-12-31"),
    ]
    # bad input names the field
    early = api.put(path, {"time_barred_on": "1999-01-01"})
    assert early.status_code == 422 and field_names(early) == ["time_barred_on"]
    assert field_names(api.put(path, {"time_barred_on": "someday"})) == ["time_barred_on"]
    assert field_names(api.put(path, {})) == ["time_barred_on"]
    assert api.put("/accounts/999999/time-bar", {"time_barred_on": None}).status_code == 404


def test_an_imported_loan_shows_its_whole_schedule(api: Api, tmp_path: Path) -> None:
    """An import leaves a generated schedule to be written when needed: the API's schedule and
    the account page show it whole all the same, the rows those of a loan opened here."""
    pf, debtor = api.portfolio(), api.debtor()
    opened = api.loan(
        pf, debtor, method="equal_principal", penalty_rate="0", late_fee_fixed_minor=0
    )
    path = tmp_path / "accounts.csv"
    path.write_text(
        "external_ref,debtor_ref,portfolio,principal,start_date,term,method,interest_rate\n"
        f"IMP-1,{debtor['external_ref']},{pf['code']},12000.00,2026-01-15,12,equal_principal,12\n"
    )
    assert api.engine is not None
    assert bulk.import_file(api.engine, "accounts", path).counts["instalment"] == 0
    listed = api.ok(api.get("/accounts", params={"portfolio": pf["code"]}))["items"]
    imported = next(a for a in listed if a["external_ref"] == "IMP-1")
    page = api.client.get(f"/accounts/{imported['id']}")
    assert page.status_code == 200 and "2027-01-15" in page.text  # the twelfth due date
    mine = api.ok(api.get(f"/accounts/{imported['id']}/schedule"))["items"]
    theirs = api.ok(api.get(f"/accounts/{opened['id']}/schedule"))["items"]
    assert len(mine) == 12 and mine == theirs
