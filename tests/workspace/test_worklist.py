"""The worklist on both databases: what is in it, its order, its scope, filters, next."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.access.service import SYSTEM, Principal
from recoup.core.errors import Forbidden
from recoup.core.settings import get_settings
from recoup.workspace import rules, service
from tests.workspace.helpers import NOW, TODAY, accounts, planned, promise, team, user

HOUR = dt.timedelta(hours=1)


def give(engine: Engine, ids: list[int], **to: int | None) -> None:
    with Session(engine) as s, s.begin():
        service.reassign(s, SYSTEM, ids, **to)  # type: ignore[arg-type]


def task(engine: Engine, account_id: int, kind: str, due: dt.datetime) -> int:
    with Session(engine) as s, s.begin():
        return service.create_task(s, account_id, kind, due, by="test").id


def wl(engine: Engine, who: Principal, **kw: object) -> tuple[int, list[service.WorkItem]]:
    with Session(engine) as s:
        return service.worklist(s, who, NOW, **kw)  # type: ignore[arg-type]


@pytest.fixture
def desk(engine: Engine) -> dict[str, object]:
    """Team T with collectors c1 and c2, and accounts of c1 with work of every kind."""
    t = team(engine, "T")
    c1 = user(engine, "c1", team_id=t)
    c2 = user(engine, "c2", team_id=t)
    big, mid, small, visit, nothing, future = accounts(
        engine,
        {"overdue_amount": 900_000, "risk_band": "E", "dpd": 40, "stage": "negotiation"},
        {"overdue_amount": 300_000, "risk_band": "A", "dpd": 20},
        {"overdue_amount": 100_000, "dpd": 5, "name": "李四"},
        {"overdue_amount": 800_000, "dpd": 70, "stage": "hard", "bucket": "M3"},
        {"overdue_amount": 500_000},
        {"overdue_amount": 700_000},
    )
    give(engine, [big, mid, small, visit, nothing, future], user_id=c1.user_id)
    planned(engine, big, "call_task", NOW - HOUR)
    planned(engine, mid, "call_task", NOW - 2 * HOUR)
    promise(engine, mid, TODAY)
    task(engine, small, "callback", NOW + 3 * HOUR)  # later today: in
    planned(engine, visit, "field_visit", NOW - HOUR)
    planned(engine, nothing, "sms", NOW - HOUR)  # not work for a person
    planned(engine, nothing, "call_task", NOW - HOUR, status="done")
    promise(engine, nothing, TODAY + dt.timedelta(days=1))
    task(engine, future, "callback", NOW + dt.timedelta(days=1))  # tomorrow: out
    return {
        "team": t,
        "c1": c1,
        "c2": c2,
        "big": big,
        "mid": mid,
        "small": small,
        "visit": visit,
    }


def test_worklist_mixes_kinds_ordered_by_expected_value(engine: Engine, desk: dict) -> None:
    total, items = wl(engine, desk["c1"])
    assert total == 4
    s = get_settings()
    kw = {
        "probabilities": s.worklist_probability,
        "stage_weights": s.worklist_stage_weight,
        "efforts": s.worklist_effort,
    }
    expected = {
        desk["big"]: rules.expected_value(900_000, "E", "negotiation", ["call_task"], **kw),
        desk["mid"]: rules.expected_value(
            300_000, "A", "early", ["call_task", "promise_due"], **kw
        ),
        desk["small"]: rules.expected_value(100_000, None, "early", ["callback"], **kw),
        desk["visit"]: rules.expected_value(800_000, None, "hard", ["field_visit"], **kw),
    }
    order = sorted(expected, key=lambda a: -expected[a])
    assert [i.account_id for i in items] == order
    for item in items:
        assert item.score == pytest.approx(expected[item.account_id])
    mid = next(i for i in items if i.account_id == desk["mid"])
    assert mid.reason == "promise_due" and mid.reasons == ["promise_due", "call_task"]
    small = next(i for i in items if i.account_id == desk["small"])
    assert small.debtor_name == "李四" and small.reasons == ["callback"]


def test_ties_are_broken_by_dpd_then_account(engine: Engine) -> None:
    t = team(engine, "T")
    c = user(engine, "c", team_id=t)
    a, b, d = accounts(engine, {"dpd": 10}, {"dpd": 30}, {"dpd": 10})
    give(engine, [a, b, d], user_id=c.user_id)
    for acc in (a, b, d):
        planned(engine, acc, "call_task", NOW - HOUR)
    assert [i.account_id for i in wl(engine, c)[1]] == [b, a, d]


def test_a_collector_sees_only_their_own_and_their_teams_accounts(
    engine: Engine, desk: dict
) -> None:
    c2 = desk["c2"]
    assert wl(engine, c2) == (0, [])
    (team_only,) = accounts(engine, {})
    give(engine, [team_only], team_id=desk["team"])
    task(engine, team_only, "follow_up", NOW - HOUR)
    other = team(engine, "OTHER")
    (elsewhere,) = accounts(engine, {})
    give(engine, [elsewhere], team_id=other)
    task(engine, elsewhere, "follow_up", NOW - HOUR)
    assert [i.account_id for i in wl(engine, c2)[1]] == [team_only]
    assert team_only in [i.account_id for i in wl(engine, desk["c1"])[1]]
    with pytest.raises(Forbidden):
        wl(engine, c2, user_id=desk["c1"].user_id)
    # a manager may look at anyone's queue, or a whole team's
    boss = user(engine, "boss", role="manager")
    assert wl(engine, boss, user_id=desk["c1"].user_id)[0] == 5
    assert wl(engine, boss, team_id=desk["team"])[0] == 5
    assert wl(engine, boss, team_id=other)[0] == 1


def test_filters_and_paging(engine: Engine, desk: dict) -> None:
    c1 = desk["c1"]
    assert [i.account_id for i in wl(engine, c1, kinds=["field_visit"])[1]] == [desk["visit"]]
    total, items = wl(engine, c1, kinds=["promise_due"])
    assert total == 1 and items[0].reasons == ["promise_due"]
    assert [i.account_id for i in wl(engine, c1, stage="hard")[1]] == [desk["visit"]]
    assert [i.account_id for i in wl(engine, c1, bucket="M3")[1]] == [desk["visit"]]
    assert wl(engine, c1, min_overdue=800_000)[0] == 2
    assert [i.account_id for i in wl(engine, c1, search="李四")[1]] == [desk["small"]]
    assert wl(engine, c1, search="100%")[0] == 0  # wildcards are literal
    full = [i.account_id for i in wl(engine, c1)[1]]
    total, page = wl(engine, c1, limit=2, offset=2)
    assert total == 4 and [i.account_id for i in page] == full[2:]
    assert wl(engine, c1, limit=2, offset=10) == (4, [])


def test_next_account_skips_what_was_passed_over(engine: Engine, desk: dict) -> None:
    c1 = desk["c1"]
    full = [i.account_id for i in wl(engine, c1)[1]]
    with Session(engine) as s:
        first = service.next_account(s, c1, NOW)
        assert first is not None and first.account_id == full[0]
        second = service.next_account(s, c1, NOW, skip=full[:1])
        assert second is not None and second.account_id == full[1]
        assert service.next_account(s, c1, NOW, skip=full) is None
        visit = service.next_account(s, c1, NOW, kinds=["field_visit"])
        assert visit is not None and visit.account_id == desk["visit"]


def test_done_work_leaves_the_worklist(engine: Engine, desk: dict) -> None:
    c1 = desk["c1"]
    tid = task(engine, desk["big"], "callback", NOW - HOUR)

    def reasons_of_big() -> list[str]:
        return next(i.reasons for i in wl(engine, c1)[1] if i.account_id == desk["big"])

    assert reasons_of_big() == ["callback", "call_task"]
    with Session(engine) as s, s.begin():
        service.close_task(s, tid, c1)
    assert reasons_of_big() == ["call_task"]
    with Session(engine) as s:
        total, tasks = service.open_tasks(s, c1)
    assert tid not in [t.id for t in tasks]
    assert total == 2  # the callbacks of small (today) and future (tomorrow)
