"""Payments through the API: posted once per external reference, reversed exactly."""

from __future__ import annotations

import datetime as dt
from typing import Any

from recoup.cycle.service import run_cycle
from tests.api.conftest import Api, field_names
from tests.auth import make_user


def _snapshot(api: Api, account: Any) -> tuple[Any, Any, int, list[Any]]:
    aid = account["id"]
    balances = api.ok(api.get(f"/accounts/{aid}/balances"))
    assert balances["is_consistent"], balances
    state = api.ok(api.get(f"/accounts/{aid}"))["state"]
    ledger = api.ok(api.get(f"/accounts/{aid}/ledger", params={"limit": 1}))["total"]
    schedule = api.ok(api.get(f"/accounts/{aid}/schedule"))["items"]
    return balances["cached"], state, ledger, schedule


def _delinquent_loan(api: Api, engine: Any) -> Any:
    loan = api.loan(api.portfolio(), start_date="2025-12-15")
    run_cycle(engine, dt.date(2026, 3, 1))
    return loan


def test_the_same_reference_twice_is_one_payment(api: Api, engine: Any) -> None:
    loan = _delinquent_loan(api, engine)
    body = {"external_ref": "BANK-20260301-0001", "amount_minor": 150_000, "channel": "bank"}
    first = api.payment(loan, **body)
    assert first.status_code == 201, first.text
    payment = first.json()
    assert payment["status"] == "posted" and payment["amount_minor"] == 150_000
    assert sum(p["amount_minor"] for p in payment["allocation"]) == 150_000
    # Default waterfall: late fee and penalty before interest and principal.
    assert [p["component"] for p in payment["allocation"]][:2] == ["late_fee", "penalty"]
    after_first = _snapshot(api, loan)

    again = api.payment(loan, **body)
    assert again.status_code == 200, again.text
    assert again.json() == payment
    assert _snapshot(api, loan) == after_first
    listed = api.ok(api.get(f"/accounts/{loan['id']}/payments"))
    assert listed["total"] == 1 and listed["items"] == [payment]
    assert api.ok(api.get(f"/payments/{payment['id']}")) == payment


def test_a_conflicting_reuse_is_409(api: Api, engine: Any) -> None:
    loan = _delinquent_loan(api, engine)
    other = api.loan(api.portfolio())
    api.ok(api.payment(loan, external_ref="P-1", amount_minor=10_000), 201)
    for change in (
        {"amount_minor": 10_001},
        {"value_date": "2026-03-02"},
        {"currency": "USD"},
        {"account_id": other["id"]},
    ):
        response = api.payment(loan, **{"external_ref": "P-1", "amount_minor": 10_000, **change})
        assert response.status_code == 409, (change, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "P-1" in response.json()["detail"]
    assert api.ok(api.get(f"/accounts/{loan['id']}/payments"))["total"] == 1


def test_amount_in_major_units(api: Api, engine: Any) -> None:
    loan = _delinquent_loan(api, engine)
    payment = api.ok(api.payment(loan, amount_minor=None, amount="1234.56", currency="CNY"), 201)
    assert payment["amount_minor"] == 123_456 and payment["currency"] == "CNY"
    # The same request again, now in minor units, is the same payment.
    again = api.payment(loan, external_ref=payment["external_ref"], amount_minor=123_456)
    assert again.status_code == 200 and again.json()["id"] == payment["id"]

    cases = [
        ({"amount": "12.345", "currency": "CNY"}, "amount"),  # a fen has two decimals
        ({"amount": "12.5", "currency": "JPY"}, "amount"),  # a yen has none
        ({"amount": 12.5, "currency": "CNY"}, "amount"),  # a JSON number is never money
        ({"amount": "12.00"}, "currency"),  # major units need the currency
        ({"amount": "0.00", "currency": "CNY"}, "amount"),
        ({"amount": "-1", "currency": "CNY"}, "amount"),
    ]
    for body, field in cases:
        response = api.payment(loan, amount_minor=None, **body)
        assert response.status_code == 422, (body, response.text)
        assert field_names(response) == [field], body
    both = api.payment(loan, amount="1.00", currency="CNY")
    assert field_names(both) == ["amount"]


def test_reversal_restores_balances(api: Api, engine: Any) -> None:
    loan = _delinquent_loan(api, engine)
    before = _snapshot(api, loan)
    # More than everything owed: the rest becomes a credit (negative balance).
    payment = api.ok(api.payment(loan, amount_minor=2_000_000), 201)
    paid = _snapshot(api, loan)
    assert paid[0]["credit_minor"] < 0 and paid[0]["principal_minor"] == 0
    assert (paid[1]["status"], paid[1]["dpd"], paid[1]["bucket"]) == ("current", 0, "M0")

    reversed_ = api.ok(
        api.post(
            f"/payments/{payment['id']}/reverse",
            {"reason": "bounced / 退票"},
            headers=make_user(api.engine, "admin", username="ops").headers,
        )
    )
    assert reversed_["status"] == "reversed" and reversed_["reversed_at"] is not None
    assert "ops" in reversed_["reversal_reason"]
    after = _snapshot(api, loan)
    assert after[0] == before[0]  # balances by component
    assert after[3] == before[3]  # instalments, paid amounts included
    assert (after[1]["dpd"], after[1]["bucket"], after[1]["status"]) == (
        before[1]["dpd"],
        before[1]["bucket"],
        before[1]["status"],
    )
    # Posting and reversal are both in the ledger: 2 x the lines of the payment.
    assert after[2] == before[2] + 2 * len(payment["allocation"])

    twice = api.post(f"/payments/{payment['id']}/reverse", {"reason": "again"})
    assert twice.status_code == 409
    assert field_names(api.post(f"/payments/{payment['id']}/reverse", {"reason": " "})) == [
        "reason"
    ]
    assert api.post("/payments/999/reverse", {"reason": "x"}).status_code == 404
    # The reversed payment's reference still names it: re-sending it is not a new payment.
    replay = api.payment(loan, external_ref=payment["external_ref"], amount_minor=2_000_000)
    assert replay.status_code == 200 and replay.json()["status"] == "reversed"


def test_payment_problems(api: Api, engine: Any) -> None:
    loan = _delinquent_loan(api, engine)
    assert api.payment({"id": 999}).status_code == 404
    assert api.get("/payments/999").status_code == 404
    assert field_names(api.payment(loan, currency="USD")) == ["currency"]
    assert field_names(api.payment(loan, value_date="2025-01-01")) == ["value_date"]
    assert field_names(api.payment(loan, amount_minor=0)) == ["amount_minor"]
    assert field_names(api.payment(loan, amount_minor=12.0)) == ["amount_minor"]
    assert field_names(api.payment(loan, amount_minor=None)) == ["amount_minor"]
    assert field_names(api.payment(loan, value_date=20260301)) == ["value_date"]
    assert field_names(api.payment(loan, external_ref="")) == ["external_ref"]
    assert field_names(api.payment(loan, external_ref="x" * 101)) == ["external_ref"]
