"""The arrangements API: propose, queue, approve, with the permissions each route declares."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from recoup.core.clock import business_today
from recoup.core.db import transaction
from recoup.cycle.service import run_cycle
from recoup.web.app import create_app
from recoup.workspace.models import Assignment
from tests import factories
from tests.auth import client_as, make_user


def test_propose_queue_approve_and_a_collector_is_refused_the_queue(engine: Engine) -> None:
    collector = make_user(engine, "collector")
    manager = make_user(engine, "manager")
    with transaction(engine) as s:
        acc = factories.invoice(
            s, late_fee_fixed=10_000, start_date=dt.date(2025, 12, 1), due_date=dt.date(2026, 1, 1)
        )
        s.add(Assignment(account_id=acc.id, user_id=collector.id, stage="early"))
        acc_id = acc.id
    today = business_today()
    run_cycle(engine, max(today, dt.date(2026, 2, 1)))
    app = create_app(engine)
    as_collector, as_manager = client_as(app, collector), client_as(app, manager)

    r = as_collector.post(
        f"/api/v1/accounts/{acc_id}/arrangements",
        json={"kind": "waiver", "waivers": {"late_fee_minor": 5_000}, "reason": "hardship"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "proposed" and body["waivers"]["late_fee_minor"] == 5_000

    assert as_collector.get("/api/v1/arrangements/queue").status_code == 403
    queue = as_manager.get("/api/v1/arrangements/queue")
    assert queue.status_code == 200 and [a["id"] for a in queue.json()] == [body["id"]]

    r = as_manager.post(f"/api/v1/arrangements/{body['id']}/approve", json={"note": "ok"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    got = as_collector.get(f"/api/v1/arrangements/{body['id']}").json()
    assert got["decided_by"] == manager.username
    listed = as_collector.get(f"/api/v1/accounts/{acc_id}/arrangements").json()
    assert [a["id"] for a in listed] == [body["id"]]
    check = as_manager.get(f"/api/v1/accounts/{acc_id}/balances").json()
    assert check["is_consistent"] and check["cached"]


def test_bad_instalments_and_float_money_are_refused(engine: Engine) -> None:
    manager = make_user(engine, "manager")
    with transaction(engine) as s:
        acc_id = factories.invoice(s).id
    client = client_as(create_app(engine), manager)
    r = client.post(
        f"/api/v1/accounts/{acc_id}/arrangements",
        json={
            "kind": "instalment_plan",
            "total_amount_minor": 5_000_000,
            "instalments": [
                {"due_date": "2199-01-01", "amount_minor": 1_000},
                {"due_date": "2199-02-01", "amount_minor": 1_000},
            ],
        },
    )
    assert r.status_code == 422 and "instalments" in r.text
    r = client.post(
        f"/api/v1/accounts/{acc_id}/arrangements",
        json={"kind": "waiver", "waivers": {"late_fee_minor": 1.5}},
    )
    assert r.status_code == 422
    assert client.get(f"/api/v1/accounts/{acc_id}/arrangements").json() == []
