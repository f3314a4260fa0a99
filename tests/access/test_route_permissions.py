"""Every API route and page against every role, generated from the app's route table: a new
route that declares no permission fails here, and so does a role that gets in where its
permissions say it may not (or is kept out where they say it may)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from recoup.access import rules
from recoup.access.deps import declared_permission
from recoup.core.db import make_engine
from recoup.web.app import create_app, route_table
from recoup.workspace.models import Assignment
from tests import factories
from tests.auth import client_as, make_team, make_user

ROUTES = [
    (method, path, route)
    for method, path, route in route_table(create_app(make_engine("sqlite://")))
    if method != "head"
]


@pytest.mark.parametrize(
    ("method", "path", "route"), ROUTES, ids=[f"{m.upper()} {p}" for m, p, _ in ROUTES]
)
def test_every_route_declares_a_permission(method: str, path: str, route: Any) -> None:
    permission = declared_permission(route)
    assert permission is not None, f"{method.upper()} {path} declares no permission"
    assert permission in rules.PERMISSIONS


def _fill(path: str, account_id: int, victim: Any) -> str:
    # Every id names the seeded account's row where it can; other ids are 1 (absent is fine:
    # what matters is whether the role got past the permission check).
    path = path.replace("{account_id}", str(account_id))
    # Users and tokens: a user of its own, so that no role revokes its own token on the way.
    path = path.replace("{user_id}", str(victim.id)).replace("{token_id}", str(victim.token_id))
    path = path.replace("{as_of}", "2026-03-01").replace("{jurisdiction}", "CN")
    path = path.replace("{language}", "zh").replace("{name}", "formal_notice")
    return re.sub(r"\{[^}]+\}", "1", path)


def _refused_for_role(response: Any) -> bool:
    if response.status_code != 403:
        return False
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        return "your role" in response.json().get("detail", "")
    return True  # a page: the error page says forbidden


def test_each_role_gets_exactly_what_its_permissions_allow(engine: Engine) -> None:
    team = make_team(engine)
    with Session(engine) as session, session.begin():
        account = factories.loan(session)
        account_id = account.id
        session.execute(
            insert(Assignment).values(account_id=account_id, team_id=team, stage="early")
        )
    victim_user = make_user(engine, "collector")
    with Session(engine) as session, session.begin():
        from recoup.access import service as access

        _, row = access.issue_token(session, access.get_user(session, victim_user.id), "victim")
        victim = type("Victim", (), {"id": victim_user.id, "token_id": row.id})
    app = create_app(engine)
    clients = {
        role: client_as(
            app, make_user(engine, role, team_id=team if role in ("collector", "agency") else None)
        )
        for role in rules.ROLES
    }
    anonymous = TestClient(app)
    failures = []
    for method, path, route in ROUTES:
        permission = declared_permission(route)
        target = _fill(path, account_id, victim)
        is_api = path.startswith("/api/")
        kw: dict[str, Any] = {"follow_redirects": False}
        if method in ("post", "put", "patch") and is_api:
            kw["json"] = {}
        if permission == "public":
            continue  # proves its sender otherwise (signature) or is the sign-in page
        response = anonymous.request(method.upper(), target, **kw)
        expected_anon = (401,) if is_api else (303, 403)
        if response.status_code not in expected_anon:
            failures.append(f"anonymous {method.upper()} {path}: {response.status_code}")
        for role, client in clients.items():
            allowed = permission in rules.permissions_for(role)
            response = client.request(method.upper(), target, **kw)
            refused = _refused_for_role(response)
            if allowed and (refused or response.status_code == 401):
                failures.append(
                    f"{role} kept out of {method.upper()} {path}: {response.status_code}"
                )
            if not allowed and not refused:
                failures.append(f"{role} got into {method.upper()} {path}: {response.status_code}")
    assert not failures, "\n".join(failures)
