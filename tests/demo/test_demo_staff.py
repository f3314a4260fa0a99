"""The demo's people: one user of each role, teams, assignment rules, and the worked accounts
assigned, so that a newcomer can sign in and find a worklist."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from recoup.access import rules, service
from recoup.access.models import AppUser
from recoup.demo import service as demo
from recoup.workspace.models import Assignment, AssignmentRule

AS_OF = dt.date(2026, 5, 1)


def test_the_demo_has_a_user_of_each_role_and_assigned_accounts(engine: Engine) -> None:
    demo.load_demo(engine, 600, as_of=AS_OF, seed=11, with_strategy=True)
    with Session(engine) as s, s.begin():
        roles = set(s.scalars(select(AppUser.role)))
        assert roles == set(rules.ROLES)
        assert s.scalar(select(func.count()).select_from(AssignmentRule)) == 6
        assigned = s.scalar(select(func.count()).select_from(Assignment))
        delinquent = s.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.user_id.is_not(None))
        )
        assert assigned and delinquent
        signed_in = service.authenticate(s, "wang", demo.DEMO_PASSWORD, dt.datetime.now(dt.UTC))
        assert signed_in.user is not None and signed_in.user.role == "collector"
