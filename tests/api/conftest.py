"""Fixtures of the API tests: a client on each database and builders that go through the API."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from recoup.web.app import create_app
from tests.auth import make_user

PREFIX = "/api/v1"
_seq = itertools.count(1)


class Api:
    """A TestClient with builders of valid data; each returns the created resource's JSON."""

    def __init__(self, client: TestClient, engine: Engine | None = None) -> None:
        self.client = client
        self.engine = engine

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(PREFIX + path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.client.post(PREFIX + path, json=body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.client.put(PREFIX + path, json=body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.client.patch(PREFIX + path, json=body, **kw)

    def ok(self, response: Any, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    def creditor(self, **kw: Any) -> Any:
        n = next(_seq)
        return self.ok(self.post("/creditors", {"code": f"CR{n}", "name": f"银行{n}", **kw}), 201)

    def portfolio(self, creditor: Any = None, **kw: Any) -> Any:
        creditor = creditor or self.creditor()
        n = next(_seq)
        body = {"code": f"PF{n}", "name": f"Cards {n}", "creditor_id": creditor["id"], **kw}
        return self.ok(self.post("/portfolios", body), 201)

    def debtor(self, **kw: Any) -> Any:
        n = next(_seq)
        body = {"external_ref": f"D{n}", "name": f"张三{n}", **kw}
        return self.ok(self.post("/debtors", body), 201)

    def loan(self, portfolio: Any, debtor: Any = None, **kw: Any) -> Any:
        debtor = debtor or self.debtor()
        body = {
            "external_ref": f"L{next(_seq)}",
            "debtor_id": debtor["id"],
            "portfolio_id": portfolio["id"],
            "kind": "loan",
            "principal_minor": 1_200_000,
            "start_date": "2026-01-15",
            "term": 12,
            "method": "annuity",
            "interest_rate": "12",
            "penalty_rate": "18.25",
            "late_fee_fixed_minor": 5_000,
            "grace_days": 3,
            **kw,
        }
        return self.ok(self.post("/accounts", body), 201)

    def invoice(self, portfolio: Any, debtor: Any = None, **kw: Any) -> Any:
        debtor = debtor or self.debtor(kind="company", name="华东贸易有限公司")
        body = {
            "external_ref": f"INV{next(_seq)}",
            "debtor_id": debtor["id"],
            "portfolio_id": portfolio["id"],
            "kind": "invoice",
            "principal_minor": 5_000_000,
            "start_date": "2026-01-01",
            "due_date": "2026-02-01",
            "penalty_rate": "5",
            **kw,
        }
        return self.ok(self.post("/accounts", body), 201)

    def payment(self, account: Any, **kw: Any) -> Any:
        body = {
            "account_id": account["id"],
            "external_ref": f"PAY{next(_seq)}",
            "amount_minor": 50_000,
            "value_date": "2026-03-01",
            **kw,
        }
        return self.post("/payments", body)


@pytest.fixture
def client(engine: Engine) -> TestClient:
    client = TestClient(create_app(engine))
    client.headers.update(make_user(engine, "admin").headers)
    return client


@pytest.fixture
def api(client: TestClient, engine: Engine) -> Api:
    return Api(client, engine)


def field_names(response: Any) -> list[str]:
    """The fields a problem-details response names."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return [e["field"] for e in response.json().get("errors", [])]
