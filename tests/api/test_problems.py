"""Malformed input is a 4xx problem-details response naming the field, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import PREFIX, Api, field_names


@pytest.fixture
def ids(api: Api) -> dict[str, Any]:
    pf = api.portfolio()
    debtor = api.debtor()
    loan = api.loan(pf, debtor)
    return {"portfolio_id": pf["id"], "debtor_id": debtor["id"], "account_id": loan["id"]}


def _account(ids: dict[str, Any], **kw: Any) -> dict[str, Any]:
    body = {
        "external_ref": "NEW-1",
        "debtor_id": ids["debtor_id"],
        "portfolio_id": ids["portfolio_id"],
        "kind": "loan",
        "principal_minor": 100_000,
        "start_date": "2026-01-15",
        "term": 6,
        "method": "annuity",
        "interest_rate": "10",
    }
    body.update(kw)
    return {k: v for k, v in body.items() if v is not ...}


def _payment(ids: dict[str, Any], **kw: Any) -> dict[str, Any]:
    body = {
        "account_id": ids["account_id"],
        "external_ref": "PAY-1",
        "amount_minor": 1_000,
        "value_date": "2026-03-01",
    }
    body.update(kw)
    return {k: v for k, v in body.items() if v is not ...}


NUL = "a\x00b"
HUGE = 2**70

ACCOUNT_CASES = [
    ({"principal_minor": 1234.5}, "principal_minor"),
    ({"principal_minor": 1234.0}, "principal_minor"),
    ({"principal_minor": True}, "principal_minor"),
    ({"principal_minor": "12.34"}, "principal_minor"),
    ({"principal_minor": -5}, "principal_minor"),
    ({"principal_minor": HUGE}, "principal_minor"),
    ({"principal_minor": str(HUGE)}, "principal_minor"),
    ({"principal_minor": [1]}, "principal_minor"),
    ({"principal_minor": ...}, "principal_minor"),
    ({"principal": "12.345", "principal_minor": None, "currency": "CNY"}, "principal"),
    ({"principal": "1e3", "principal_minor": None, "currency": "CNY"}, "principal"),
    ({"start_date": "2026-02-30"}, "start_date"),
    ({"start_date": "2026-13-01"}, "start_date"),
    ({"start_date": "20260115"}, "start_date"),
    ({"start_date": 1768435200}, "start_date"),
    ({"start_date": "2026-01-15T00:00:00"}, "start_date"),
    ({"start_date": "9999-12-31"}, "start_date"),
    ({"start_date": ...}, "start_date"),
    ({"method": "balloon"}, "method"),
    ({"kind": "mortgage"}, "kind"),
    ({"term": 0}, "term"),
    ({"term": 601}, "term"),
    ({"term": "twelve"}, "term"),
    ({"term": HUGE}, "term"),
    ({"interest_rate": 10.5}, "interest_rate"),
    ({"interest_rate": "10.12345"}, "interest_rate"),
    ({"interest_rate": "-1"}, "interest_rate"),
    ({"interest_rate": "101"}, "interest_rate"),
    ({"interest_rate": "NaN"}, "interest_rate"),
    ({"penalty_rate": "五"}, "penalty_rate"),
    ({"grace_days": 366}, "grace_days"),
    ({"late_fee_fixed_minor": 0.5}, "late_fee_fixed_minor"),
    ({"debtor_id": HUGE}, "debtor_id"),
    ({"debtor_id": 0}, "debtor_id"),
    ({"portfolio_id": "one"}, "portfolio_id"),
    ({"external_ref": NUL}, "external_ref"),
    ({"external_ref": "\ud800"}, "external_ref"),
    ({"external_ref": "x" * 65}, "external_ref"),
    ({"external_ref": ""}, "external_ref"),
    ({"external_ref": 12}, "external_ref"),
    ({"currency": "RMB1"}, "currency"),
    ({"principle_minor": 5}, "principle_minor"),
    ({"schedule": [{"due_date": "2026-02-30", "principal_minor": 1}]}, "schedule.0.due_date"),
    (
        {"schedule": [{"due_date": "2026-02-15", "principal_minor": 0.5}]},
        "schedule.0.principal_minor",
    ),
    ({"schedule": []}, "schedule"),
    ({"schedule": "monthly"}, "schedule"),
]


@pytest.mark.parametrize(("change", "field"), ACCOUNT_CASES, ids=[f for _, f in ACCOUNT_CASES])
def test_account_input(api: Api, ids: dict[str, Any], change: dict[str, Any], field: str) -> None:
    # Sent as ASCII JSON so that a lone surrogate travels as "\ud800" like a real client would.
    raw = json.dumps(_account(ids, **change))
    response = api.client.post(
        PREFIX + "/accounts", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert field in field_names(response)
    problem = response.json()
    assert problem["type"] == "https://recoup.dev/problems/invalid"
    assert problem["status"] == 422 and field in problem["detail"]


PAYMENT_CASES = [
    ({"amount_minor": 10.5}, "amount_minor"),
    ({"amount_minor": 0}, "amount_minor"),
    ({"amount_minor": -100}, "amount_minor"),
    ({"amount_minor": 10**13}, "amount_minor"),
    ({"amount_minor": None, "amount": 10.5, "currency": "CNY"}, "amount"),
    ({"value_date": "2026-02-29"}, "value_date"),  # 2026 is not a leap year
    ({"value_date": None}, "value_date"),
    ({"account_id": -1}, "account_id"),
    ({"account_id": HUGE}, "account_id"),
    ({"currency": 156}, "currency"),
    ({"channel": NUL}, "channel"),
    ({"external_ref": ...}, "external_ref"),
]


@pytest.mark.parametrize(("change", "field"), PAYMENT_CASES, ids=[f for _, f in PAYMENT_CASES])
def test_payment_input(api: Api, ids: dict[str, Any], change: dict[str, Any], field: str) -> None:
    response = api.post("/payments", _payment(ids, **change))
    assert response.status_code == 422, response.text
    assert field in field_names(response)


QUERY_CASES = [
    ("/accounts", {"limit": 0}, "limit"),
    ("/accounts", {"limit": 501}, "limit"),
    ("/accounts", {"limit": "ten"}, "limit"),
    ("/accounts", {"offset": -1}, "offset"),
    ("/accounts", {"offset": str(HUGE)}, "offset"),
    ("/accounts", {"dpd_min": "abc"}, "dpd_min"),
    ("/accounts", {"dpd_max": str(HUGE)}, "dpd_max"),
    ("/accounts", {"status": "bogus"}, "status"),
    ("/accounts", {"bucket": "M99"}, "bucket"),
    ("/accounts", {"portfolio": "\x00"}, "portfolio"),
    ("/accounts", {"debtor_id": "1.5"}, "debtor_id"),
    ("/accounts", {"colour": "red"}, "colour"),
    ("/debtors", {"kind": "alien"}, "kind"),
    ("/debtors", {"name": "a\x00"}, "name"),
    ("/cycle-runs", {"limit": -3}, "limit"),
]


@pytest.mark.parametrize(
    ("path", "params", "field"), QUERY_CASES, ids=[f"{p}-{f}" for p, _, f in QUERY_CASES]
)
def test_query_input(api: Api, path: str, params: dict[str, Any], field: str) -> None:
    response = api.get(path, params=params)
    assert response.status_code == 422, response.text
    assert field_names(response) == [field]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/accounts/abc", "account_id"),
        ("/accounts/0", "account_id"),
        ("/accounts/99999999999999999999999", "account_id"),
        ("/accounts/1.5/schedule", "account_id"),
        ("/debtors/-1", "debtor_id"),
        ("/payments/%00", "payment_id"),
        ("/cycle-runs/2026-02-30", "as_of"),
        ("/cycle-runs/yesterday", "as_of"),
        ("/cycle-runs/1", "as_of"),
    ],
)
def test_path_input(api: Api, path: str, field: str) -> None:
    response = api.get(path)
    assert response.status_code == 422, response.text
    assert field_names(response) == [field]


@pytest.mark.parametrize(
    "raw",
    [b'{"external_ref": ', b"not json", b"", b'{"a": 1}}', b'[{"a"', b"\xff\xfe"],
    ids=["truncated", "text", "empty", "trailing", "array", "binary"],
)
def test_invalid_json(api: Api, raw: bytes) -> None:
    response = api.client.post(
        PREFIX + "/payments", content=raw, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if response.status_code == 422:
        assert field_names(response) == ["body"]


@pytest.mark.parametrize(
    "body", [[], "x", 1, None, {"account_id": {"$gt": 0}}], ids=["list", "str", "int", "null", "op"]
)
def test_wrong_body_shape(api: Api, body: Any) -> None:
    response = api.post("/payments", body)
    assert response.status_code == 422, response.text
    assert field_names(response)


def test_nan_and_infinity_are_refused_and_echoed_safely(api: Api, ids: dict[str, Any]) -> None:
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        raw = json.dumps(_payment(ids)).replace(
            '"amount_minor": 1000', f'"amount_minor": {literal}'
        )
        response = api.client.post(
            PREFIX + "/payments", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert field_names(response) == ["amount_minor"]


def test_cycle_run_input(api: Api, ids: dict[str, Any]) -> None:
    assert field_names(api.post("/cycle-runs", {"as_of": "2026-02-30"})) == ["as_of"]
    assert field_names(api.post("/cycle-runs", {})) == ["as_of"]
    assert api.get("/cycle-runs/2026-03-01").status_code == 404
    run = api.ok(api.post("/cycle-runs", {"as_of": "2026-03-01"}))
    assert run["status"] == "completed" and run["partitions_done"] == run["partitions"]
    assert run["counts"]["accounts"] == 1
    again = api.ok(api.post("/cycle-runs", {"as_of": "2026-03-01"}))
    assert again["partitions_done"] == 0 and again["partitions_skipped"] == run["partitions"]
    assert again["counts"] == run["counts"]
    # Dates cannot go backwards once a later one has run.
    assert field_names(api.post("/cycle-runs", {"as_of": "2026-02-01"})) == ["as_of"]
    listed = api.ok(api.get("/cycle-runs"))
    assert listed["total"] == 1 and listed["items"][0]["as_of"] == "2026-03-01"
    one = api.ok(api.get("/cycle-runs/2026-03-01"))
    assert one == {k: v for k, v in again.items() if not k.startswith("partitions_")}


def test_errors_are_problem_details(api: Api) -> None:
    response = api.get("/accounts/424242")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "https://recoup.dev/problems/not-found",
        "title": "Not found / 未找到",
        "status": 404,
        "detail": "account 424242 does not exist",
    }
    unknown = api.get("/no-such-thing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    wrong_method = api.client.delete(PREFIX + "/accounts")
    assert wrong_method.status_code == 405
