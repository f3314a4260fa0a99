"""The pure rules of logging a contact: codes, what they mean for the guard, validation."""

from __future__ import annotations

from typing import Any, get_args

from recoup.compliance import rules as guard_rules
from recoup.contacts import rules
from recoup.ledger.schemas import ContactOwner


def _errors(**kw: Any) -> dict[str, str]:
    fields: dict[str, Any] = {"channel": "call", "party": "self", "outcome": "right_party", **kw}
    values = rules.ContactValues(**fields)
    return {e.field: e.why for e in rules.validate(values, rules.REASONS)}


def test_codes_have_both_languages_and_match_the_guard() -> None:
    for table in (rules.CHANNELS, rules.PARTIES, rules.OUTCOMES, rules.REASONS):
        assert all(set(label) == {"zh", "en"} and all(label.values()) for label in table.values())
    assert set(rules.PARTIES) == set(guard_rules.OWNERS) == set(get_args(ContactOwner))
    assert set(rules.GUARD_CHANNEL.values()) <= set(guard_rules.CHANNELS)
    assert rules.OBLIGORS == guard_rules.OBLIGORS


def test_configured_reasons_extend_the_list() -> None:
    merged = rules.reasons({"gambling": {"zh": "赌博", "en": "Gambling"}})
    assert merged["gambling"] == {"zh": "赌博", "en": "Gambling"}
    assert "waiting_salary" in merged and "gambling" not in rules.REASONS
    values = rules.ContactValues("call", "self", "hardship", reason_code="gambling")
    assert rules.validate(values, rules.REASONS)[0].field == "reason_code"
    assert rules.validate(values, merged) == []


def test_outcomes_feed_the_guard_counters() -> None:
    assert not rules.is_connected("no_answer")
    assert rules.is_connected("wrong_number")
    assert not rules.is_conversation("wrong_number", "self")
    assert rules.is_conversation("promise", "self")
    # talking with the debtor's spouse is not a conversation about the debt
    assert not rules.is_conversation("right_party", "spouse")
    assert rules.purpose_for("self") == "collect"
    assert rules.purpose_for("guarantor") == "collect"
    assert rules.purpose_for("relative") == "locate"


def test_validation_names_every_bad_field() -> None:
    assert _errors() == {}
    bad = _errors(channel="fax", party="boss", outcome="maybe", willingness=0, ability=6)
    assert set(bad) == {"channel", "party", "outcome", "willingness", "ability"}
    assert "1" in bad["willingness"] and "5" in bad["ability"]
    assert set(_errors(notes="x" * (rules.MAX_NOTES + 1))) == {"notes"}


def test_promise_goes_with_the_promise_outcome() -> None:
    assert set(_errors(outcome="promise")) == {"promise"}
    assert _errors(outcome="promise", has_promise=True) == {}
    assert set(_errors(outcome="refusal", has_promise=True)) == {"promise"}


def test_third_party_is_never_asked_about_the_debt() -> None:
    # seeds + CN [B][C]: contact persons only help restore contact with the debtor
    assert _errors(party="spouse", contact_point_id=3) == {}
    assert set(
        _errors(party="spouse", outcome="promise", has_promise=True, contact_point_id=3)
    ) == {"outcome"}
    assert set(_errors(party="relative")) == {"contact_point_id"}
    # a guarantor owes the debt and may promise
    assert _errors(party="guarantor", outcome="promise", has_promise=True) == {}


def test_guard_mode_warns_only_for_hours_and_caps() -> None:
    modes = {"CN": "warn"}
    assert rules.guard_mode("CN", modes, "window.hours") == "warn"
    assert rules.guard_mode("cn", modes, "cn.unanswered_attempts_daily") == "warn"
    assert rules.guard_mode("US", modes, "window.hours") == "block"
    for hard in ("stop.dispute", "stop.deceased", "contact.do_not_contact", "third_party.purpose"):
        assert rules.guard_mode("CN", modes, hard) == "block"
    assert rules.guard_mode("CN", {"CN": "nonsense"}, "window.hours") == "block"


def test_dispute_is_a_hint_not_a_flag() -> None:
    assert rules.dispute_hint("dispute", None)
    assert rules.dispute_hint("right_party", "fraud_claim")
    assert not rules.dispute_hint("promise", "waiting_salary")
