"""The promises API: permissions, validation and the happy path (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from recoup.core.clock import business_today
from recoup.core.db import transaction
from recoup.promises.api import router
from recoup.promises.models import Promise
from recoup.web.app import create_app
from tests.auth import client_as, make_user

PREFIX = "/api/v1"


def app_of(engine):
    app = create_app(engine)
    if not any(getattr(r, "path", "") == f"{PREFIX}/promises" for r in app.routes):
        app.include_router(router, prefix=PREFIX)  # until the lead includes it
    return app


def client(engine, user) -> TestClient:
    return client_as(app_of(engine), user)


def count(engine):
    with transaction(engine) as s:
        return int(s.scalar(select(func.count(Promise.id))) or 0)


def test_happy_path(engine, desk):
    api = client(engine, desk.user)
    due = (business_today() + dt.timedelta(days=3)).isoformat()
    body = {"amount_minor": 50_000, "currency": "CNY", "due_date": due, "channel": "wechat_pay"}
    r = api.post(f"{PREFIX}/accounts/{desk.account_id}/promises", json=body)
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["amount_minor"], made["currency"], made["status"]) == (50_000, "CNY", "open")
    assert made["user_id"] == desk.user.id and made["channel"] == "wechat_pay"

    r = api.get(f"{PREFIX}/accounts/{desk.account_id}/promises")
    assert r.status_code == 200 and r.json()["total"] == 1
    r = api.get(f"{PREFIX}/promises", params={"status": "open", "limit": 10})
    assert [p["id"] for p in r.json()["items"]] == [made["id"]]
    assert api.get(f"{PREFIX}/promises/{made['id']}").json()["due_date"] == due

    r = api.post(f"{PREFIX}/promises/{made['id']}/cancel", json={"reason": "客户改口"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = api.post(f"{PREFIX}/promises/{made['id']}/cancel", json={"reason": "again"})
    assert r.status_code == 409

    r = api.get(
        f"{PREFIX}/promises/stats",
        params={"group_by": "team", "date_from": "2026-01-01", "date_to": "2026-12-31"},
    )
    assert r.status_code == 200 and isinstance(r.json(), list)


def test_bad_input_is_422_naming_the_field(engine, desk):
    api = client(engine, desk.user)
    url = f"{PREFIX}/accounts/{desk.account_id}/promises"
    past = (business_today() - dt.timedelta(days=1)).isoformat()
    r = api.post(url, json={"amount_minor": 100, "due_date": past})
    assert r.status_code == 422
    problem = r.json()
    assert problem["errors"][0]["field"] == "due_date"
    assert "承诺日期已过" in problem["errors"][0]["why"]
    soon = (business_today() + dt.timedelta(days=1)).isoformat()
    for bad in (
        {"amount_minor": 0, "due_date": soon},
        {"amount_minor": 1.5, "due_date": soon},
        {"amount_minor": 100, "due_date": soon, "channel": "bitcoin"},
        {"amount_minor": 100, "due_date": soon, "currency": "USD"},
        {"amount_minor": 100, "due_date": soon, "surprise": 1},
    ):
        assert api.post(url, json=bad).status_code == 422, bad
    assert count(engine) == 0
    stats = api.get(
        f"{PREFIX}/promises/stats", params={"date_from": "2026-03-02", "date_to": "2026-03-01"}
    )
    assert stats.status_code == 422


def test_permissions(engine, desk):
    soon = (business_today() + dt.timedelta(days=1)).isoformat()
    body = {"amount_minor": 100, "due_date": soon}
    url = f"{PREFIX}/accounts/{desk.account_id}/promises"
    stranger = client(engine, make_user(engine, "collector"))
    assert stranger.post(url, json=body).status_code == 403
    assert stranger.get(url).status_code == 403
    auditor = client(engine, make_user(engine, "auditor"))  # may read, not write
    assert auditor.post(url, json=body).status_code == 403
    assert auditor.get(url).status_code == 200
    assert TestClient(app_of(engine)).get(f"{PREFIX}/promises").status_code == 401
    assert count(engine) == 0
