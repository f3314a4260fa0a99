"""Signed-in test clients: a user of a role with an API token, and a TestClient that sends it."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.access import service as access

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery"


@functools.cache
def _password_hash() -> str:
    return access.hash_password(PASSWORD)


@dataclass(frozen=True)
class TestUser:
    id: int
    username: str
    role: str
    team_id: int | None
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_user(
    engine: Engine, role: str = "admin", username: str | None = None, **kw: Any
) -> TestUser:
    """A user of `role` (password PASSWORD) with an API token, committed."""
    name = username or f"{role}{next(_seq)}"
    with Session(engine) as session, session.begin():
        # Argon2 is slow on purpose: hash the test password once, not for every user.
        user = access.create_user(session, name, None, role, **kw)
        user.password_hash = _password_hash()
        token, _ = access.issue_token(session, user, "tests")
        return TestUser(user.id, user.username, user.role, user.team_id, token)


def make_team(engine: Engine, code: str | None = None, kind: str = "internal") -> int:
    with Session(engine) as session, session.begin():
        code = code or f"T{next(_seq)}"
        return access.create_team(session, code, f"Team {code}", kind).id


def client_as(app: Any, user: TestUser) -> TestClient:
    client = TestClient(app)
    client.headers.update(user.headers)
    return client


def admin_client(engine: Engine) -> TestClient:
    """A client of a new admin, for tests about something other than permissions."""
    from recoup.web.app import create_app

    return client_as(create_app(engine), make_user(engine, "admin"))
