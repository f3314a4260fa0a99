"""Case assignment (分案) on both databases: rules, load balancing, stages, manual moves."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from recoup.access.models import AuditLog
from recoup.access.service import SYSTEM
from recoup.core.errors import Conflict, Forbidden, Invalid
from recoup.cycle.service import run_cycle
from recoup.workspace import service
from recoup.workspace.models import Assignment, AssignmentHistory
from tests import factories
from tests.workspace.helpers import TODAY, accounts, portfolio_of, set_account, team, user

DAY = TODAY


def rule(engine: Engine, name: str, **kw: object) -> int:
    with Session(engine) as s, s.begin():
        return service.create_rule(s, SYSTEM, name=name, **kw).id


def run(engine: Engine) -> dict[str, int]:
    with Session(engine) as s, s.begin():
        return service.run_assignment(s, DAY)


def owners(engine: Engine) -> dict[int, tuple[int | None, int | None]]:
    with Session(engine) as s:
        return {a.account_id: (a.user_id, a.team_id) for a in s.scalars(select(Assignment))}


def history(engine: Engine, account_id: int) -> list[tuple[str, int | None, int | None]]:
    with Session(engine) as s:
        return [
            (h.reason, h.user_id, h.previous_user_id)
            for h in service.assignment_history(s, account_id)
        ]


def test_rules_route_by_stage_bucket_portfolio_region_language_and_skill(engine: Engine) -> None:
    early, hard, en, sh, pf2 = (team(engine, c) for c in ("EARLY", "HARD", "EN", "SH", "PF2"))
    u_early = user(engine, "early1", team_id=early).user_id
    u_hard = user(engine, "hard1", team_id=hard, skills=["legal"]).user_id
    user(engine, "hard2", team_id=hard)  # lacks the skill
    u_en = user(engine, "en1", team_id=en, languages=["en"]).user_id
    user(engine, "en2", team_id=en, languages=["zh-CN"])  # does not speak the debtor's language
    u_sh = user(engine, "sh1", team_id=sh).user_id
    u_pf2 = user(engine, "pf1", team_id=pf2).user_id
    a_early, a_hard, a_en, a_sh = accounts(
        engine,
        {"stage": "early"},
        {"stage": "hard", "bucket": "M4", "dpd": 100},
        {"language": "en"},
        {"region": "上海市", "bucket": "M2", "dpd": 40},
    )
    (a_pf2,) = accounts(engine, {"stage": "negotiation", "bucket": "M2", "dpd": 40})
    rule(engine, "pf2", priority=5, portfolio_ids=[portfolio_of(engine, a_pf2)], team_id=pf2)
    rule(engine, "english", priority=10, languages=["en"], match_language=True, team_id=en)
    rule(engine, "shanghai", priority=20, regions=["上海市"], buckets=["M2"], team_id=sh)
    rule(engine, "hard", priority=30, stages=["hard"], skill="legal", team_id=hard)
    rule(engine, "early", priority=40, stages=["early"], team_id=early)
    counts = run(engine)
    got = owners(engine)
    assert got[a_early] == (u_early, early)
    assert got[a_hard] == (u_hard, hard)
    assert got[a_en] == (u_en, en)
    assert got[a_sh] == (u_sh, sh)
    assert got[a_pf2] == (u_pf2, pf2)
    assert counts["assigned"] == 5
    assert history(engine, a_early) == [("rule", u_early, None)]


def test_load_is_balanced_best_accounts_first_and_max_load_respected(engine: Engine) -> None:
    t = team(engine, "T")
    busy = user(engine, "busy", team_id=t).user_id
    free = [user(engine, f"c{i}", team_id=t).user_id for i in range(3)]
    capped = user(engine, "capped", team_id=t, max_load=2).user_id
    old = accounts(engine, *({"overdue_amount": 1} for _ in range(6)))
    with Session(engine) as s, s.begin():
        service.reassign(s, SYSTEM, old, user_id=busy)
    ids = accounts(engine, *({"overdue_amount": 1000 * (i + 1)} for i in range(20)))
    rule(engine, "all", team_id=t)
    run(engine)
    got = owners(engine)
    load = Counter(got[i][0] for i in ids)
    assert load[capped] == 2
    # the busy collector already had 6: the others are brought up to 6 before it gets more
    assert [load[u] for u in free] == [6, 6, 6]
    assert load[busy] == 0
    # the best account goes to one of the least loaded (the first of them by id)
    assert got[ids[-1]][0] == free[0]


def test_no_available_user_gives_the_account_to_the_team_only(engine: Engine) -> None:
    t = team(engine, "T")
    user(engine, "full", team_id=t, max_load=1)
    a, b = accounts(engine, {"overdue_amount": 10}, {"overdue_amount": 5})
    rule(engine, "all", team_id=t)
    counts = run(engine)
    got = owners(engine)
    assert got[a][1] == t and got[a][0] is not None
    assert got[b] == (None, t)
    assert counts["team_only"] == 1
    # a second run changes nothing: no new history
    assert run(engine)["assigned"] == 0
    assert len(history(engine, b)) == 1


def test_an_account_stays_within_its_stage_and_moves_on_a_stage_change(engine: Engine) -> None:
    early, hard = team(engine, "E"), team(engine, "H")
    e1 = user(engine, "e1", team_id=early).user_id
    h1 = user(engine, "h1", team_id=hard).user_id
    (acc,) = accounts(engine, {"stage": "early"})
    rule(engine, "early", stages=["early"], team_id=early)
    rule(engine, "hard", stages=["hard"], team_id=hard)
    run(engine)
    assert owners(engine)[acc] == (e1, early)
    # a second early collector joins with no load: the account still stays with e1
    user(engine, "e2", team_id=early)
    assert run(engine)["assigned"] == 0
    assert owners(engine)[acc] == (e1, early)
    set_account(engine, acc, stage="hard", bucket="M4", dpd=95)
    counts = run(engine)
    assert counts["stage_changed"] == 1
    assert owners(engine)[acc] == (h1, hard)
    assert history(engine, acc) == [("rule", e1, None), ("stage_change", h1, e1)]


def test_settled_accounts_are_unassigned(engine: Engine) -> None:
    t = team(engine, "T")
    u = user(engine, "c", team_id=t).user_id
    a, b = accounts(engine, {}, {})
    rule(engine, "all", team_id=t)
    run(engine)
    set_account(engine, a, status="settled", stage="current", overdue_amount=0)
    counts = run(engine)
    assert counts["unassigned"] == 1
    assert a not in owners(engine) and owners(engine)[b][0] == u
    assert history(engine, a)[-1] == ("unassign", None, u)


def test_agency_teams_take_agency_users_and_inactive_users_take_nothing(engine: Engine) -> None:
    ag = team(engine, "AG", kind="agency")
    user(engine, "collector_in_agency", team_id=ag)
    agent = user(engine, "agent", role="agency", team_id=ag).user_id
    with Session(engine) as s, s.begin():
        from recoup.access.models import AppUser

        s.get_one(AppUser, agent).is_active = False
    (acc,) = accounts(engine, {"stage": "recovery", "bucket": "M7+", "dpd": 200})
    rule(engine, "agency", stages=["recovery"], team_id=ag)
    run(engine)
    assert owners(engine)[acc] == (None, ag)


def test_assignment_follows_the_daily_cycle(engine: Engine) -> None:
    """End to end with real ageing: the cycle makes the account overdue and moves its stage."""
    early, neg = team(engine, "E"), team(engine, "N")
    e1 = user(engine, "e1", team_id=early).user_id
    n1 = user(engine, "n1", team_id=neg).user_id
    rule(engine, "early", stages=["early"], team_id=early)
    rule(engine, "negotiation", stages=["negotiation"], team_id=neg)
    with Session(engine) as s, s.begin():
        acc = factories.invoice(s, penalty_rate_ppm=0).id  # due 2026-07-01
    run_cycle(engine, dt.date(2026, 7, 10))
    with Session(engine) as s, s.begin():
        service.run_assignment(s, dt.date(2026, 7, 10))
    assert owners(engine)[acc] == (e1, early)
    run_cycle(engine, dt.date(2026, 8, 5))
    with Session(engine) as s, s.begin():
        service.run_assignment(s, dt.date(2026, 8, 5))
    assert owners(engine)[acc] == (n1, neg)


def test_manual_reassignment_writes_history_and_audit(engine: Engine) -> None:
    t = team(engine, "T")
    c1 = user(engine, "c1", team_id=t).user_id
    c2 = user(engine, "c2", team_id=t).user_id
    boss = user(engine, "boss", role="manager")
    (acc,) = accounts(engine, {})
    rule(engine, "all", team_id=t)
    run(engine)
    assert owners(engine)[acc] == (c1, t)
    with Session(engine) as s, s.begin():
        assert service.reassign(s, boss, [acc], user_id=c2, note="speaks Cantonese") == 1
    assert owners(engine)[acc] == (c2, t)
    assert history(engine, acc)[-1] == ("manual", c2, c1)
    with Session(engine) as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "reassign")).one()
        assert entry.account_id == acc and entry.user_id == boss.user_id
        note = s.scalars(select(AssignmentHistory.note).where(AssignmentHistory.reason == "manual"))
        assert note.one() == "speaks Cantonese"
    # the rules leave a manual assignment alone within the stage
    assert run(engine)["assigned"] == 0
    assert owners(engine)[acc] == (c2, t)
    with Session(engine) as s, s.begin():
        service.reassign(s, boss, [acc], team_id=t)
    assert owners(engine)[acc] == (None, t)


def test_manual_reassignment_refuses_bad_input_and_collectors(engine: Engine) -> None:
    t = team(engine, "T")
    c1 = user(engine, "c1", team_id=t)
    boss = user(engine, "boss", role="manager")
    (acc,) = accounts(engine, {})
    with Session(engine) as s:
        with pytest.raises(Forbidden):
            service.reassign(s, c1, [acc], user_id=c1.user_id)
        with pytest.raises(Invalid):
            service.reassign(s, boss, [acc])
        with pytest.raises(Invalid):
            service.reassign(s, boss, [acc], user_id=boss.user_id)  # a manager works no queue


def test_rule_validation(engine: Engine) -> None:
    t = team(engine, "T")
    rule(engine, "r1", team_id=t)
    with Session(engine) as s:
        with pytest.raises(Invalid) as exc:
            service.create_rule(s, SYSTEM, name="bad", stages=["later"], buckets=["M99"])
        assert {e.field for e in exc.value.errors} == {"stages", "buckets"}
        with pytest.raises(Invalid):
            service.create_rule(s, SYSTEM, name="bad", team_id=9999)
        with pytest.raises(Conflict):
            service.create_rule(s, SYSTEM, name="r1")


def test_an_account_no_rule_matches_stays_where_it_is(engine: Engine) -> None:
    early = team(engine, "E")
    e1 = user(engine, "e1", team_id=early).user_id
    (acc,) = accounts(engine, {"stage": "early"})
    rule(engine, "early", stages=["early"], team_id=early)
    run(engine)
    set_account(engine, acc, stage="recovery", bucket="M7+", dpd=200)
    counts = run(engine)
    assert counts["unmatched"] == 1 and counts["assigned"] == 0
    assert owners(engine)[acc] == (e1, early)


def test_a_second_run_waits_for_the_first_and_finds_nothing_left_to_do(engine: Engine) -> None:
    """The worker after the cycle and a manager's button may start the assignment at once:
    the second waits for the first to commit (its loads would be stale otherwise)."""
    import threading

    t = team(engine, "T")
    user(engine, "c1", team_id=t, max_load=3)
    user(engine, "c2", team_id=t, max_load=3)
    ids = accounts(engine, *({"overdue_amount": 1000 * (i + 1)} for i in range(8)))
    rule(engine, "all", team_id=t)
    second: dict[str, int] = {}
    with Session(engine) as s, s.begin():
        first = service.run_assignment(s, DAY)
        thread = threading.Thread(target=lambda: second.update(run(engine)))
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the second run went ahead while the first was uncommitted"
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert first["assigned"] == 8 and first["team_only"] == 2
    assert second["assigned"] == 0 and second["team_only"] == 0
    load = Counter(owners(engine)[i][0] for i in ids)
    assert sorted(load.values(), reverse=True) == [3, 3, 2]  # max_load 3 each; 2 to the team
