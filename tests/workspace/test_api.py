"""The workspace API: permissions per role, scope, and the round trips."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from recoup.core.db import utcnow
from recoup.web.app import create_app
from tests.auth import client_as, make_team, make_user
from tests.workspace.helpers import accounts, planned

RULE = {"name": "early", "stages": ["early"], "priority": 10}


def test_collectors_may_not_manage_assignment(engine: Engine) -> None:
    team = make_team(engine)
    collector = client_as(create_app(engine), make_user(engine, "collector", team_id=team))
    assert collector.get("/api/v1/assignment-rules").status_code == 403
    assert collector.post("/api/v1/assignment-rules", json=RULE).status_code == 403
    assert collector.put("/api/v1/assignment-rules/1", json={"priority": 1}).status_code == 403
    assert collector.post("/api/v1/assignment/run", json={}).status_code == 403
    r = collector.post("/api/v1/assignments", json={"account_ids": [1], "team_id": team})
    assert r.status_code == 403
    analyst = client_as(create_app(engine), make_user(engine, "analyst"))
    assert analyst.get("/api/v1/assignment-rules").status_code == 403
    assert analyst.post("/api/v1/tasks", json={}).status_code == 403  # workspace:write


def test_rules_run_reassign_and_history(engine: Engine) -> None:
    team = make_team(engine)
    c1 = make_user(engine, "collector", team_id=team)
    c2 = make_user(engine, "collector", team_id=team)
    manager = client_as(create_app(engine), make_user(engine, "manager"))
    (acc,) = accounts(engine, {})
    r = manager.post("/api/v1/assignment-rules", json={**RULE, "team_id": team})
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    r = manager.post("/api/v1/assignment-rules", json={**RULE, "stages": ["soon"]})
    assert r.status_code == 422
    assert (
        manager.post("/api/v1/assignment-rules", json={**RULE, "team_id": team}).status_code == 409
    )
    r = manager.put(f"/api/v1/assignment-rules/{rule_id}", json={"buckets": ["M1", "M2"]})
    assert r.status_code == 200 and r.json()["buckets"] == ["M1", "M2"]
    assert r.json()["stages"] == ["early"]
    assert manager.put("/api/v1/assignment-rules/999", json={}).status_code == 404
    assert [x["id"] for x in manager.get("/api/v1/assignment-rules").json()] == [rule_id]
    r = manager.post("/api/v1/assignment/run", json={"as_of": "2026-11-24"})
    assert r.status_code == 200 and r.json()["counts"]["assigned"] == 1
    r = manager.post(
        "/api/v1/assignments", json={"account_ids": [acc], "user_id": c2.id, "note": "VIP"}
    )
    assert r.status_code == 200 and r.json() == {"moved": 1}
    h = manager.get(f"/api/v1/accounts/{acc}/assignment-history").json()
    assert [(x["reason"], x["user_id"], x["previous_user_id"]) for x in h] == [
        ("rule", c1.id, None),
        ("manual", c2.id, c1.id),
    ]
    # scope: a collector of another team may not read the history
    app = create_app(engine)
    outsider = make_user(engine, "collector", team_id=make_team(engine))
    url = f"/api/v1/accounts/{acc}/assignment-history"
    assert client_as(app, outsider).get(url).status_code == 403
    assert client_as(app, c2).get(url).status_code == 200
    assert manager.get("/api/v1/accounts/99999/assignment-history").status_code == 404


def test_worklist_next_and_tasks_for_a_collector(engine: Engine) -> None:
    team = make_team(engine)
    me = make_user(engine, "collector", team_id=team)
    other = make_user(engine, "collector", team_id=make_team(engine))
    manager = client_as(create_app(engine), make_user(engine, "manager"))
    a, b = accounts(engine, {"overdue_amount": 500_000}, {"overdue_amount": 100_000})
    assert (
        manager.post(
            "/api/v1/assignments", json={"account_ids": [a, b], "user_id": me.id}
        ).status_code
        == 200
    )
    now = utcnow()
    planned(engine, a, "call_task", now - dt.timedelta(minutes=5))
    client = client_as(create_app(engine), me)
    due = (now - dt.timedelta(minutes=1)).isoformat()
    r = client.post("/api/v1/tasks", json={"account_id": b, "kind": "callback", "due_at": due})
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]
    assert r.json()["user_id"] == me.id  # to the account's collector
    page = client.get("/api/v1/worklist", params={"limit": 10}).json()
    assert page["total"] == 2
    assert [i["account_id"] for i in page["items"]] == [a, b]
    assert page["items"][1]["reasons"] == ["callback"]
    only = client.get("/api/v1/worklist", params={"kind": "callback"}).json()
    assert [i["account_id"] for i in only["items"]] == [b]
    assert client.get("/api/v1/worklist", params={"kind": "nap"}).status_code == 422
    assert client.get("/api/v1/worklist/next").json()["account_id"] == a
    assert client.get("/api/v1/worklist/next", params={"skip": [a]}).json()["account_id"] == b
    assert client.get("/api/v1/worklist/next", params={"skip": [a, b]}).json() is None
    assert client.get("/api/v1/worklist", params={"user_id": other.id}).status_code == 403
    tasks = client.get("/api/v1/tasks").json()
    assert [t["id"] for t in tasks["items"]] == [task_id]
    # another collector cannot close my task, nor create one on my account
    stranger = client_as(create_app(engine), other)
    assert stranger.post(f"/api/v1/tasks/{task_id}/done").status_code == 403
    r = stranger.post("/api/v1/tasks", json={"account_id": b, "kind": "callback", "due_at": due})
    assert r.status_code == 403
    r = client.post(
        "/api/v1/tasks", json={"account_id": b, "kind": "callback", "due_at": "2026-11-24T10:00:00"}
    )
    assert r.status_code == 422  # no zone
    r = client.post(f"/api/v1/tasks/{task_id}/done")
    assert r.status_code == 200 and r.json()["status"] == "done"
    assert client.get("/api/v1/tasks").json()["total"] == 0
    assert [i["account_id"] for i in client.get("/api/v1/worklist").json()["items"]] == [a]
    # a manager looks at the collector's queue
    assert manager.get("/api/v1/worklist", params={"user_id": me.id}).json()["total"] == 1


def test_every_workspace_route_declares_a_permission(engine: Engine) -> None:
    from recoup.access.deps import declared_permission
    from recoup.workspace.api import router

    expected = {
        ("GET", "/worklist"): "workspace:read",
        ("GET", "/worklist/next"): "workspace:read",
        ("GET", "/tasks"): "workspace:read",
        ("POST", "/tasks"): "workspace:write",
        ("POST", "/tasks/{task_id}/done"): "workspace:write",
        ("GET", "/assignment-rules"): "assignment:manage",
        ("POST", "/assignment-rules"): "assignment:manage",
        ("PUT", "/assignment-rules/{rule_id}"): "assignment:manage",
        ("POST", "/assignment/run"): "assignment:manage",
        ("POST", "/assignments"): "assignment:manage",
        ("GET", "/accounts/{account_id}/assignment-history"): "workspace:read",
    }
    got = {
        (m, r.path): declared_permission(r)  # type: ignore[attr-defined]
        for r in router.routes
        for m in r.methods  # type: ignore[attr-defined]
    }
    assert got == expected
