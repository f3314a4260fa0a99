"""Users, sign-in with lock-out, tokens, sessions and the append-only audit log, on both
databases."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from recoup.access import service
from recoup.access.models import AppUser, AuditLog
from recoup.core.db import utcnow
from recoup.core.errors import Conflict, Invalid
from recoup.web.app import create_app
from tests.auth import PASSWORD, client_as, make_user


def _sign_in(engine: Engine, username: str, password: str, now: dt.datetime) -> str | None:
    with Session(engine) as s, s.begin():
        return service.authenticate(s, username, password, now).why


def test_a_user_is_locked_after_repeated_failures(engine: Engine) -> None:
    user = make_user(engine, "collector")
    now = utcnow()
    for _ in range(4):
        assert _sign_in(engine, user.username, "wrong-password", now) == service.WRONG
    assert _sign_in(engine, user.username, "wrong-password", now) == service.LOCKED
    # Locked: even the right password is refused until the lock ends.
    assert _sign_in(engine, user.username, PASSWORD, now) == service.LOCKED
    later = now + dt.timedelta(minutes=16)
    assert _sign_in(engine, user.username, PASSWORD, later) is None
    with Session(engine) as s:
        actions = s.scalars(
            select(AuditLog.action).where(AuditLog.entity_id == str(user.id)).order_by(AuditLog.id)
        ).all()
    assert actions == ["login_failed"] * 5 + ["login_locked", "login"]


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(engine: Engine) -> None:
    assert _sign_in(engine, "nobody", "whatever-password", utcnow()) == service.WRONG


def test_bad_users_are_refused_naming_the_field(engine: Engine) -> None:
    with Session(engine) as s, s.begin(), pytest.raises(Invalid) as exc:
        service.create_user(s, "bad name!", "short", "boss")
    assert {e.field for e in exc.value.errors} == {"role", "username", "password"}
    make_user(engine, "collector", username="taken")
    with Session(engine) as s, s.begin(), pytest.raises(Conflict):
        service.create_user(s, "taken", "another-password-1", "collector")


def test_a_revoked_or_expired_token_no_longer_signs_in(engine: Engine) -> None:
    user = make_user(engine, "analyst")
    client = client_as(create_app(engine), user)
    assert client.get("/api/v1/auth/me").json()["username"] == user.username
    with Session(engine) as s, s.begin():
        db_user = s.get_one(AppUser, user.id)
        short, row = service.issue_token(s, db_user, "short-lived", expires_days=1)
        token_id = row.id
    client.headers["Authorization"] = f"Bearer {short}"
    assert client.get("/api/v1/auth/me").status_code == 200
    with Session(engine) as s, s.begin():
        late = utcnow() + dt.timedelta(days=2)
        assert service.principal_for_token(s.connection(), short, late) is None
    assert client.delete(f"/api/v1/auth/tokens/{token_id}").status_code == 200
    assert client.get("/api/v1/auth/me").status_code == 401
    client.headers["Authorization"] = "Bearer rcp_not-a-token"
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_token_by_password_through_the_api(engine: Engine) -> None:
    user = make_user(engine, "manager")
    client = create_app(engine)
    from fastapi.testclient import TestClient

    c = TestClient(client)
    bad = c.post("/api/v1/auth/token", json={"username": user.username, "password": "nope"})
    assert bad.status_code == 401
    good = c.post("/api/v1/auth/token", json={"username": user.username, "password": PASSWORD})
    assert good.status_code == 201
    token = good.json()["token"]
    me = c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["role"] == "manager" and "arrangement:approve" in me["permissions"]


def test_the_audit_log_refuses_changes(engine: Engine) -> None:
    make_user(engine, "admin")
    with Session(engine) as s, s.begin():
        service.audit(s, service.SYSTEM, "create", "thing", 1)
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises((IntegrityError, DBAPIError)), engine.begin() as conn:
            conn.execute(text(statement))
    with Session(engine) as s:
        assert s.scalar(select(AuditLog.action).where(AuditLog.entity == "thing")) == "create"


def test_auditors_query_the_audit_log_and_collectors_may_not(engine: Engine) -> None:
    app = create_app(engine)
    admin = client_as(app, make_user(engine, "admin"))
    admin.post("/api/v1/teams", json={"code": "AUD", "name": "n"})
    auditor = client_as(app, make_user(engine, "auditor"))
    page = auditor.get("/api/v1/audit", params={"entity": "team"}).json()
    assert page["total"] == 1 and page["items"][0]["action"] == "create"
    collector = client_as(app, make_user(engine, "collector"))
    assert collector.get("/api/v1/audit").status_code == 403


def test_every_change_through_the_api_is_in_the_audit_log(engine: Engine) -> None:
    app = create_app(engine)
    admin = client_as(app, make_user(engine, "admin"))
    created = admin.post("/api/v1/creditors", json={"code": "AUD-CR", "name": "银行"})
    assert created.status_code == 201
    refused = admin.post("/api/v1/creditors", json={"code": "AUD-CR", "name": "again"})
    assert refused.status_code == 409  # nothing changed: nothing recorded
    with Session(engine) as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.entity == "creditors")).all()
    assert [(r.action, r.detail["path"]) for r in rows] == [("post", "/api/v1/creditors")]
