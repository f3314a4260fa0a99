"""Call scripts (话术): the shipped ones load, follow the seeds' eight steps and pass the
wording check; saved versions override them; a bad file names the bad key."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from recoup.compliance import wording
from recoup.contacts import service
from recoup.contacts.models import CallScript
from recoup.core.errors import Invalid
from recoup.core.settings import get_settings
from tests.contacts.conftest import Case

MAIN_REASONS = (
    "hardship",
    "forgot",
    "dispute",
    "fraud_claim",
    "someone_else",
    "waiting_salary",
    "business_downturn",
    "refuses",
    "claims_paid",
)


def _lines(script: dict[str, object]) -> list[str]:
    out = [str(script["title"])]
    for step in script["steps"]:  # type: ignore[attr-defined]
        out += [step["title"], *step["say"], *step["tips"]]
    return out


def test_every_stage_and_main_reason_has_a_script_in_both_languages() -> None:
    shipped = service.shipped_scripts()
    for language in ("zh", "en"):
        for stage in get_settings().stage_thresholds:
            script = shipped[(stage, "general", language)]
            assert [s["id"] for s in script["steps"]] == list(service.STEP_IDS)
            assert all(s["say"] for s in script["steps"])
        for reason in MAIN_REASONS:
            assert (service.ANY_STAGE, reason, language) in shipped


def test_every_shipped_script_passes_the_wording_check() -> None:
    for key, script in service.shipped_scripts().items():
        for line in _lines(script):
            finding = wording.first_finding(line)
            assert finding is None, (key, line, finding)


def test_a_bad_script_file_names_the_bad_key() -> None:
    text = """
language: zh
stages:
  early:
    title: 早期
    steps:
      - id: confirm_identity
        title: 确认身份
        say: [您好]
        colour: red
"""
    with pytest.raises(service.ScriptError) as exc:
        service.parse_script_file("zh.yaml", text)
    message = str(exc.value)
    assert "zh.yaml" in message and "stages.early.steps[0].colour" in message


def test_a_reason_script_fills_its_missing_steps_from_the_stage(engine: Engine) -> None:
    with Session(engine) as s:
        script = service.script_for(s, "negotiation", "waiting_salary", "zh-CN")
        assert script.reason == "waiting_salary" and script.source == "shipped"
        ids = [step["id"] for step in script.steps]
        assert ids == list(service.STEP_IDS)
        by_id = {step["id"]: step for step in script.steps}
        assert "工资" in by_id["hear_reason"]["say"][0]
        general = service.script_for(s, "negotiation", None, "zh")
        assert by_id["introduce"] == general.steps[1]
        # a reason without its own script shows the stage's script
        assert service.script_for(s, "early", "illness", "en").reason == "general"
        with pytest.raises(Invalid):
            service.script_for(s, "someday", None, "en")


def test_saving_a_script_makes_a_new_active_version(engine: Engine, case: Case) -> None:
    with Session(engine) as s, s.begin():
        base = service.script_for(s, "early", None, "en")
        steps = [dict(step) for step in base.steps]
        steps[2]["say"] = ["Your payment of {amount} is {dpd} days late."]
        first = service.save_script(s, case.principal, "early", "general", "en", "Early v1", steps)
        second = service.save_script(s, case.principal, "early", "general", "en", "Early v2", steps)
        assert (first.version, second.version) == (1, 2)
    with Session(engine) as s:
        shown = service.script_for(s, "early", "forgot", "en")
        assert shown.source == "shipped"  # the reason script still wins, on its own steps…
        assert shown.steps[2]["say"] == [
            "Your payment of {amount} is {dpd} days late."
        ]  # …not here
        general = service.script_for(s, "early", None, "en")
        assert (general.title, general.source, general.version) == ("Early v2", "saved", 2)
        rows = s.scalars(select(CallScript).order_by(CallScript.version)).all()
        assert [(r.version, r.is_active, r.reason) for r in rows] == [(1, False, ""), (2, True, "")]
        catalog = {(c.stage, c.reason, c.language): c for c in service.list_scripts(s)}
        assert catalog[("early", "general", "en")].version == 2
        assert catalog[("any", "hardship", "zh")].source == "shipped"


def test_a_script_with_forbidden_wording_is_not_saved(engine: Engine, case: Case) -> None:
    steps = [{"id": "obtain_promise", "title": "施压", "say": ["不还钱就通知你的家人和单位"]}]
    with pytest.raises(Invalid) as exc, Session(engine) as s, s.begin():
        service.save_script(s, case.principal, "any", "refuses", "zh", "拒还", steps)
    error = exc.value.errors[0]
    assert error.field == "steps[0].say[0]" and "wording.third_party_shaming" in error.why
    with Session(engine) as s:
        assert s.scalars(select(CallScript)).all() == []


def test_a_stage_script_needs_every_step(engine: Engine, case: Case) -> None:
    steps = [{"id": "introduce", "title": "Who", "say": ["I am {collector_name}."]}]
    with pytest.raises(Invalid) as exc, Session(engine) as s:
        service.save_script(s, case.principal, "early", "general", "en", "Short", steps)
    assert "missing" in str(exc.value)
