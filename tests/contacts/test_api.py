"""The contacts API: codes, may-I-contact, logging (201, or 409 with the block kept), the
contact list, attachments up and down, scripts, and the permissions on every route."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from recoup.compliance.models import ComplianceBlock
from recoup.web.app import create_app, route_table
from tests.auth import client_as, make_user
from tests.contacts.conftest import SHANGHAI, Case

API = "/api/v1"


def _yesterday_at(hour: int) -> dt.datetime:
    today = dt.datetime.now(SHANGHAI).date()
    return dt.datetime.combine(today - dt.timedelta(days=1), dt.time(hour), tzinfo=SHANGHAI)


def test_every_contacts_route_declares_its_permission(engine: Engine) -> None:
    expected = {
        ("GET", "/api/v1/contact-codes"): "workspace:read",
        ("GET", "/api/v1/accounts/{account_id}/contact-check"): "workspace:read",
        ("POST", "/api/v1/accounts/{account_id}/contacts"): "workspace:write",
        ("GET", "/api/v1/accounts/{account_id}/contacts"): "workspace:read",
        ("POST", "/api/v1/interactions/{interaction_id}/attachments"): "workspace:write",
        ("GET", "/api/v1/attachments/{attachment_id}"): "workspace:read",
        ("GET", "/api/v1/scripts"): "workspace:read",
        ("GET", "/api/v1/scripts/catalog"): "workspace:read",
        ("PUT", "/api/v1/scripts/{stage}/{reason}/{language}"): "scripts:write",
    }
    from recoup.access.deps import declared_permission

    table = {(m.upper(), p): declared_permission(r) for m, p, r in route_table(create_app(engine))}
    for key, permission in expected.items():
        assert table.get(key) == permission, key


def test_log_list_and_attach(engine: Engine, case: Case) -> None:
    client = client_as(create_app(engine), case.collector)
    codes = client.get(f"{API}/contact-codes").json()
    assert {"code": "promise", "zh": "承诺还款", "en": "Promise to pay"} in codes["outcomes"]
    assert "spouse" in codes["third_parties"]

    check = client.get(
        f"{API}/accounts/{case.account_id}/contact-check",
        params={
            "channel": "call",
            "contact_point_id": case.phone_id,
            "at": _yesterday_at(10).isoformat(),
        },
    )
    assert check.status_code == 200 and check.json()["allowed"] is True

    due = (dt.datetime.now(SHANGHAI).date() + dt.timedelta(days=3)).isoformat()
    body = {
        "channel": "call",
        "contact_point_id": case.phone_id,
        "outcome": "promise",
        "reason_code": "waiting_salary",
        "willingness": 4,
        "ability": 3,
        "notes": "客户承诺发工资当天还款。",
        "at": _yesterday_at(10).isoformat(),
        "promise": {"amount_minor": 30000, "due_date": due, "channel": "wechat_pay"},
        "callback_at": _yesterday_at(10).replace(hour=15).isoformat(),
    }
    r = client.post(f"{API}/accounts/{case.account_id}/contacts", json=body)
    assert r.status_code == 201, r.text
    logged = r.json()
    assert logged["promise_id"] and logged["task_id"] and logged["warning"] is None
    interaction_id = logged["contact"]["id"]

    up = client.post(
        f"{API}/interactions/{interaction_id}/attachments",
        files={"file": ("call.mp3", b"ID3 recording bytes", "audio/mpeg")},
    )
    assert up.status_code == 201, up.text
    attachment = up.json()
    bad = client.post(
        f"{API}/interactions/{interaction_id}/attachments",
        files={"file": ("run.sh", b"#!/bin/sh", "text/x-shellscript")},
    )
    assert bad.status_code == 422

    listed = client.get(f"{API}/accounts/{case.account_id}/contacts").json()
    assert [c["id"] for c in listed] == [interaction_id]
    assert (
        listed[0]["outcome"] == "promise" and listed[0]["attachments"][0]["id"] == attachment["id"]
    )

    down = client.get(f"{API}/attachments/{attachment['id']}")
    assert down.status_code == 200 and down.content == b"ID3 recording bytes"
    assert down.headers["x-content-sha256"] == attachment["sha256"]


def test_a_blocked_contact_is_409_and_the_block_is_kept(engine: Engine, case: Case) -> None:
    client = client_as(create_app(engine), case.collector)
    r = client.post(
        f"{API}/accounts/{case.account_id}/contacts",
        json={"channel": "call", "outcome": "no_answer", "at": _yesterday_at(23).isoformat()},
    )
    assert r.status_code == 409
    problem = r.json()
    assert problem["rule"] == "window.hours" and problem["reason_zh"]
    with Session(engine) as s:
        assert s.scalar(select(func.count(ComplianceBlock.id))) == 1
    assert client.get(f"{API}/accounts/{case.account_id}/contacts").json() == []


def test_forbidden_notes_are_422(engine: Engine, case: Case) -> None:
    client = client_as(create_app(engine), case.collector)
    r = client.post(
        f"{API}/accounts/{case.account_id}/contacts",
        json={"channel": "call", "outcome": "refusal", "notes": "再不还就爆通讯录"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "notes"


def test_a_collector_gets_403_on_someone_elses_account(engine: Engine, case: Case) -> None:
    client = client_as(create_app(engine), case.other)
    body = {"channel": "call", "outcome": "no_answer"}
    assert client.post(f"{API}/accounts/{case.account_id}/contacts", json=body).status_code == 403
    assert client.get(f"{API}/accounts/{case.account_id}/contacts").status_code == 403
    assert client.get(f"{API}/accounts/{case.account_id}/contact-check").status_code == 403


def test_scripts_read_by_collectors_saved_by_managers(engine: Engine, case: Case) -> None:
    app = create_app(engine)
    collector = client_as(app, case.collector)
    script = collector.get(
        f"{API}/scripts", params={"stage": "early", "reason": "hardship", "language": "zh"}
    )
    assert script.status_code == 200 and len(script.json()["steps"]) == 8
    catalog = collector.get(f"{API}/scripts/catalog").json()
    assert {"early", "negotiation", "hard", "recovery", "any"} <= {c["stage"] for c in catalog}
    body = {"title": "早期提醒", "steps": script.json()["steps"]}
    assert collector.put(f"{API}/scripts/early/general/zh", json=body).status_code == 403
    manager = client_as(app, make_user(engine, "manager"))
    saved = manager.put(f"{API}/scripts/early/hardship/zh", json=body)
    assert saved.status_code == 200, saved.text
    assert (saved.json()["version"], saved.json()["source"]) == (1, "saved")
