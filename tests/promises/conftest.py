"""Builders of the promises tests: a collector with an account assigned to them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from recoup.access.models import AppUser
from recoup.access.service import Principal, principal_of
from recoup.core.db import transaction
from recoup.workspace.models import Assignment
from tests import factories
from tests.auth import TestUser, make_team, make_user


@dataclass
class Desk:
    """A collector, their team and an account assigned to them."""

    engine: Engine
    team_id: int
    user: TestUser
    account_id: int

    def principal(self, user: TestUser | None = None) -> Principal:
        with transaction(self.engine) as s:
            return principal_of(s.get_one(AppUser, (user or self.user).id))

    def new_account(self, user: TestUser | None = None, **kw: object) -> int:
        user = user or self.user
        with transaction(self.engine) as s:
            acc = factories.loan(s, **kw)
            s.add(
                Assignment(account_id=acc.id, user_id=user.id, team_id=user.team_id, stage="early")
            )
            return acc.id


@pytest.fixture
def desk(engine: Engine) -> Desk:
    team = make_team(engine)
    user = make_user(engine, "collector", team_id=team)
    d = Desk(engine, team, user, 0)
    d.account_id = d.new_account()
    return d
