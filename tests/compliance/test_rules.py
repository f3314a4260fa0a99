"""Pure rules of the compliance guard: windows, caps, stop flags, third parties, precedence,
rule-set files, scheduling, and the scalar and vectorised forms agreeing."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recoup.compliance import rules
from recoup.compliance.rules import Contact, check, load_ruleset
from recoup.core.errors import Invalid

UTC = dt.UTC
NY, LA, CHI = "America/New_York", "America/Los_Angeles", "America/Chicago"
SH, URUMQI = "Asia/Shanghai", "Asia/Urumqi"

US = load_ruleset("US")
CN = load_ruleset("CN")


def local(
    zone: str, year: int, month: int, day: int, hour: int, minute: int = 0, fold: int = 0
) -> dt.datetime:
    """An aware instant given as a wall-clock time in `zone`."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)


def contact(**kw: object) -> Contact:
    """A contact that breaks no rule of either rule set unless told to."""
    base: dict[str, object] = {
        "channel": "call",
        "at": local(NY, 2026, 6, 15, 12, 0),
        "zones": (NY,),
    }
    base.update(kw)
    if isinstance(base["zones"], str):
        base["zones"] = (base["zones"],)
    return Contact(**base)  # type: ignore[arg-type]


def rule_of(c: Contact, ruleset: rules.RuleSet) -> str | None:
    return check(c, ruleset).rule_id


# --------------------------------------------------------------------------- window


@pytest.mark.parametrize("zone", [NY, LA, CHI])
@pytest.mark.parametrize("day", [dt.date(2026, 1, 15), dt.date(2026, 7, 15)])
@pytest.mark.parametrize(
    ("wall", "allowed"),
    [
        (dt.time(7, 59, 59), False),
        (dt.time(8, 0, 0), True),
        (dt.time(20, 59, 59), True),
        (dt.time(21, 0, 0), True),  # Reg F: only *after* 9 p.m. is barred
        (dt.time(21, 0, 1), False),
        (dt.time(21, 0, 0, 1), False),
    ],
)
def test_us_window_edges(zone: str, day: dt.date, wall: dt.time, allowed: bool) -> None:
    at = dt.datetime.combine(day, wall, tzinfo=ZoneInfo(zone))
    verdict = check(contact(at=at, zones=zone), US)
    assert verdict.allowed is allowed
    assert verdict.rule_id == (None if allowed else "window.hours")
    # The instant may be given in any zone: only the debtor's zone decides.
    assert check(contact(at=at.astimezone(UTC), zones=zone), US).allowed is allowed


@pytest.mark.parametrize("zone", [SH, URUMQI])
@pytest.mark.parametrize(
    ("wall", "allowed"),
    [
        (dt.time(7, 59, 59), False),
        (dt.time(8, 0, 0), True),
        (dt.time(21, 59, 59), True),
        (dt.time(22, 0, 0), False),  # 22:00 to 08:00 is barred
    ],
)
def test_cn_window_edges(zone: str, wall: dt.time, allowed: bool) -> None:
    at = dt.datetime.combine(dt.date(2026, 6, 15), wall, tzinfo=ZoneInfo(zone))
    assert check(contact(at=at, zones=zone), CN).allowed is allowed


def test_urumqi_and_beijing_time_differ_for_the_same_instant() -> None:
    at = local(SH, 2026, 6, 15, 8, 30)  # 06:30 in Asia/Urumqi (UTC+6)
    assert check(contact(at=at, zones=SH), CN).allowed
    assert rule_of(contact(at=at, zones=URUMQI), CN) == "window.hours"
    assert rule_of(contact(at=at, zones=(SH, URUMQI)), CN) == "window.hours"


@pytest.mark.parametrize(
    ("utc_wall", "before", "after"),
    [
        # 2026-03-08 spring forward: 12:30 UTC is 07:30 EST the day before, 08:30 EDT that day.
        (dt.time(12, 30), dt.date(2026, 3, 7), dt.date(2026, 3, 8)),
        # 01:30 UTC is 20:30 EST on 7 March but 21:30 EDT on 8 March.
        (dt.time(1, 30), dt.date(2026, 3, 8), dt.date(2026, 3, 9)),
    ],
)
def test_dst_spring_forward_in_new_york(utc_wall: dt.time, before: dt.date, after: dt.date) -> None:
    first = dt.datetime.combine(before, utc_wall, tzinfo=UTC)
    second = dt.datetime.combine(after, utc_wall, tzinfo=UTC)
    verdicts = [check(contact(at=at, zones=NY), US).allowed for at in (first, second)]
    assert verdicts == ([False, True] if utc_wall.hour == 12 else [True, False])


def test_dst_fall_back_in_new_york() -> None:
    # 2026-11-01: 12:30 UTC is 08:30 EDT on 31 October but 07:30 EST on 1 November.
    assert check(contact(at=dt.datetime(2026, 10, 31, 12, 30, tzinfo=UTC), zones=NY), US).allowed
    assert not check(contact(at=dt.datetime(2026, 11, 1, 12, 30, tzinfo=UTC), zones=NY), US).allowed
    # 01:30 UTC: 21:30 EDT on 31 October (blocked), 20:30 EST on 1 November (allowed).
    assert not check(contact(at=dt.datetime(2026, 11, 1, 1, 30, tzinfo=UTC), zones=NY), US).allowed
    assert check(contact(at=dt.datetime(2026, 11, 2, 1, 30, tzinfo=UTC), zones=NY), US).allowed


def test_uncertain_zone_needs_every_candidate_inside() -> None:
    both = (NY, LA)
    assert rule_of(contact(at=local(NY, 2026, 6, 15, 8, 30), zones=both), US) == "window.hours"
    assert check(contact(at=local(NY, 2026, 6, 15, 11, 0), zones=both), US).allowed  # 08:00 LA
    assert check(contact(at=local(NY, 2026, 6, 15, 21, 0), zones=both), US).allowed
    assert not check(contact(at=local(NY, 2026, 6, 15, 21, 30), zones=both), US).allowed


def test_no_known_zone_means_no_windowed_contact() -> None:
    assert rule_of(contact(zones=()), US) == "window.hours"
    assert check(contact(zones=(), channel="letter"), US).allowed


def test_night_consent_lifts_the_cn_window_only() -> None:
    night = local(SH, 2026, 6, 15, 23, 0)
    assert rule_of(contact(at=night, zones=SH), CN) == "window.hours"
    assert check(contact(at=night, zones=SH, night_consent=True), CN).allowed
    night_ny = local(NY, 2026, 6, 15, 23, 0)
    assert rule_of(contact(at=night_ny, night_consent=True), US) == "window.hours"


@pytest.mark.parametrize("channel", ["call", "voice", "sms", "email", "visit"])
def test_window_applies_to_the_rule_sets_channels(channel: str) -> None:
    kw = {"collectors": 2} if channel == "visit" else {}
    c = contact(channel=channel, at=local(SH, 2026, 6, 15, 23, 0), zones=SH, **kw)
    assert rule_of(c, CN) == "window.hours"
    c = contact(channel=channel, at=local(NY, 2026, 6, 15, 22, 0), zones=NY)
    assert rule_of(c, US) == "window.hours"


def test_letters_are_not_windowed() -> None:
    assert check(contact(channel="letter", at=local(NY, 2026, 6, 15, 3, 0)), US).allowed
    assert check(contact(channel="letter", at=local(SH, 2026, 6, 15, 3, 0), zones=SH), CN).allowed


def test_local_window_ok_directly() -> None:
    assert rules.local_window_ok(local(NY, 2026, 6, 15, 8, 0), [NY], US)
    assert not rules.local_window_ok(local(NY, 2026, 6, 15, 8, 0), [NY, LA], US)
    assert not rules.local_window_ok(local(SH, 2026, 6, 15, 23, 0), [SH], CN)
    assert rules.local_window_ok(local(SH, 2026, 6, 15, 23, 0), [SH], CN, night_consent=True)
    with pytest.raises(Invalid):
        rules.local_window_ok(dt.datetime(2026, 6, 15, 12), [NY], US)  # noqa: DTZ001


# --------------------------------------------------------------------------- caps


@pytest.mark.parametrize("channel", ["call", "voice"])
def test_us_seven_calls_in_seven_days(channel: str) -> None:
    assert check(contact(channel=channel, call_attempts_debt_7d=6), US).allowed
    c = contact(channel=channel, call_attempts_debt_7d=7)
    assert rule_of(c, US) == "us.call_attempts_7d"
    assert check(contact(channel="sms", call_attempts_debt_7d=7), US).allowed
    assert check(c, CN).allowed  # not a CN rule


def test_us_quiet_period_after_a_conversation() -> None:
    at = local(NY, 2026, 6, 15, 12, 0)
    almost = at - dt.timedelta(days=6, hours=23, minutes=59)
    c = contact(at=at, last_conversation_at=almost)
    assert rule_of(c, US) == "us.quiet_after_conversation"
    assert check(contact(at=at, last_conversation_at=at - dt.timedelta(days=7)), US).allowed
    assert check(contact(channel="email", at=at, last_conversation_at=almost), US).allowed
    assert check(c, CN).allowed


def test_cn_connected_automated_voice_per_day() -> None:
    at = local(SH, 2026, 6, 15, 10, 0)
    assert check(
        contact(channel="voice", at=at, zones=SH, connected_voice_debtor_today=2), CN
    ).allowed
    c = contact(channel="voice", at=at, zones=SH, connected_voice_debtor_today=3)
    assert rule_of(c, CN) == "cn.voice_connected_daily"
    assert check(dataclasses.replace(c, channel="call"), CN).allowed
    assert check(dataclasses.replace(c, zones=(NY,), at=local(NY, 2026, 6, 15, 10)), US).allowed


@pytest.mark.parametrize("channel", ["call", "voice"])
def test_cn_unanswered_attempts_per_number_per_day(channel: str) -> None:
    at = local(SH, 2026, 6, 15, 10, 0)
    c = contact(channel=channel, at=at, zones=SH, unanswered_attempts_number_today=5)
    assert check(c, CN).allowed
    c = dataclasses.replace(c, unanswered_attempts_number_today=6)
    assert rule_of(c, CN) == "cn.unanswered_attempts_daily"
    assert check(dataclasses.replace(c, channel="sms"), CN).allowed


def test_cn_visits_need_two_collectors() -> None:
    at = local(SH, 2026, 6, 15, 10, 0)
    assert (
        rule_of(contact(channel="visit", at=at, zones=SH, collectors=1), CN) == "visit.collectors"
    )
    assert check(contact(channel="visit", at=at, zones=SH, collectors=2), CN).allowed
    assert check(contact(channel="visit", collectors=1), US).allowed


def test_us_validation_notice_within_five_days() -> None:
    at = local(NY, 2026, 6, 15, 12, 0)
    day5 = contact(at=at, first_communication_at=at - dt.timedelta(days=5))
    day6 = contact(at=at, first_communication_at=at - dt.timedelta(days=6))
    assert check(day5, US).allowed
    assert rule_of(day6, US) == "us.validation_notice"
    assert rule_of(dataclasses.replace(day6, channel="letter"), US) == "us.validation_notice"
    assert check(dataclasses.replace(day6, validation_notice_sent=True), US).allowed
    assert check(day6, CN).allowed
    # A location contact with a third party is not a collection communication.
    locate = dataclasses.replace(day6, party="emergency", purpose="locate")
    assert check(locate, US).allowed


# --------------------------------------------------------------------------- stops and content


@pytest.mark.parametrize("flag", rules.STOP_FLAGS)
@pytest.mark.parametrize("channel", rules.CHANNELS)
@pytest.mark.parametrize("ruleset", [US, CN], ids=["US", "CN"])
def test_every_stop_flag_blocks_every_channel(
    flag: str, channel: str, ruleset: rules.RuleSet
) -> None:
    c = contact(channel=channel, flags=frozenset({flag}), collectors=2)
    verdict = check(c, ruleset)
    assert verdict == rules.blocked(f"stop.{flag}", ruleset)
    assert verdict.reason_en and verdict.reason_zh
    assert check(dataclasses.replace(c, flags=frozenset()), ruleset).allowed


@pytest.mark.parametrize("ruleset", [US, CN], ids=["US", "CN"])
def test_do_not_contact(ruleset: rules.RuleSet) -> None:
    assert rule_of(contact(do_not_contact=True), ruleset) == "contact.do_not_contact"


def test_third_parties_us() -> None:
    assert rule_of(contact(party="emergency"), US) == "third_party.purpose"
    assert rule_of(contact(party="spouse"), US) == "third_party.purpose"
    assert rule_of(contact(party="employer", purpose="locate"), US) is None
    told = contact(party="relative", purpose="locate", tells_debt_to_third_party=True)
    assert rule_of(told, US) == "third_party.disclosure"
    assert check(contact(party="guarantor"), US).allowed  # a guarantor owes too
    # The debtor's reachability matters only under CN rules.
    assert check(contact(party="emergency", purpose="locate", debtor_unreachable=False), US).allowed


def test_third_parties_cn() -> None:
    at = local(SH, 2026, 6, 15, 10, 0)
    locate = contact(at=at, zones=SH, party="emergency", purpose="locate")
    assert rule_of(locate, CN) == "third_party.debtor_reachable"
    assert check(dataclasses.replace(locate, debtor_unreachable=True), CN).allowed
    assert rule_of(dataclasses.replace(locate, purpose="collect"), CN) == "third_party.purpose"
    told = dataclasses.replace(locate, debtor_unreachable=True, tells_debt_to_third_party=True)
    assert rule_of(told, CN) == "third_party.disclosure"
    assert check(contact(at=at, zones=SH, party="guarantor"), CN).allowed


@pytest.mark.parametrize("ruleset", [US, CN], ids=["US", "CN"])
def test_electronic_messages_need_an_opt_out(ruleset: rules.RuleSet) -> None:
    at = local(SH, 2026, 6, 15, 10, 0) if ruleset is CN else local(NY, 2026, 6, 15, 10)
    zone = SH if ruleset is CN else NY
    for channel in ("sms", "email"):
        c = contact(channel=channel, at=at, zones=zone, has_opt_out=False)
        assert rule_of(c, ruleset) == "electronic.opt_out"
    assert check(contact(channel="letter", at=at, zones=zone, has_opt_out=False), ruleset).allowed


@pytest.mark.parametrize("ruleset", [US, CN], ids=["US", "CN"])
def test_no_suit_threat_on_a_time_barred_debt(ruleset: rules.RuleSet) -> None:
    at = local(SH, 2026, 6, 15, 10, 0)
    c = contact(channel="letter", at=at, is_time_barred=True, threatens_suit=True)
    assert rule_of(c, ruleset) == "us.time_barred_suit"
    assert check(dataclasses.replace(c, threatens_suit=False), ruleset).allowed
    assert check(dataclasses.replace(c, is_time_barred=False), ruleset).allowed


# --------------------------------------------------------------------------- precedence


def _peel(c: Contact, ruleset: rules.RuleSet, fixes: list[tuple[str, dict[str, object]]]) -> None:
    """Each step: the contact reports `rule`; applying the fix moves it to the next rule."""
    for rule_id, fix in fixes:
        assert rule_of(c, ruleset) == rule_id
        c = dataclasses.replace(c, **fix)  # type: ignore[arg-type]
    assert check(c, ruleset).allowed


def test_precedence_us() -> None:
    at = local(NY, 2026, 6, 15, 22, 0)
    flags = list(rules.STOP_PRECEDENCE)
    c = contact(
        channel="call",
        at=at,
        flags=frozenset(flags),
        do_not_contact=True,
        party="emergency",
        tells_debt_to_third_party=True,
        call_attempts_debt_7d=9,
        last_conversation_at=at - dt.timedelta(days=1),
        first_communication_at=at - dt.timedelta(days=30),
        is_time_barred=True,
        threatens_suit=True,
        has_opt_out=False,
    )
    stops: list[tuple[str, dict[str, object]]] = [
        (f"stop.{f}", {"flags": frozenset(flags[i + 1 :])}) for i, f in enumerate(flags)
    ]
    _peel(
        c,
        US,
        [
            *stops,
            ("contact.do_not_contact", {"do_not_contact": False}),
            ("third_party.purpose", {"purpose": "locate"}),
            ("third_party.disclosure", {"party": "self", "purpose": "collect"}),
            ("window.hours", {"at": local(NY, 2026, 6, 15, 12, 0)}),
            ("us.call_attempts_7d", {"call_attempts_debt_7d": 0}),
            ("us.quiet_after_conversation", {"last_conversation_at": None}),
            ("us.validation_notice", {"validation_notice_sent": True}),
            ("us.time_barred_suit", {"threatens_suit": False, "channel": "sms"}),
            ("electronic.opt_out", {"has_opt_out": True}),
        ],
    )


def test_precedence_cn() -> None:
    at = local(SH, 2026, 6, 15, 23, 0)
    c = contact(
        channel="voice",
        at=at,
        zones=SH,
        flags=frozenset({"vulnerable", "dispute"}),
        do_not_contact=True,
        party="relative",
        tells_debt_to_third_party=True,
        connected_voice_debtor_today=3,
        unanswered_attempts_number_today=6,
        is_time_barred=True,
        threatens_suit=True,
    )
    _peel(
        c,
        CN,
        [
            ("stop.dispute", {"flags": frozenset({"vulnerable"})}),
            ("stop.vulnerable", {"flags": frozenset()}),
            ("contact.do_not_contact", {"do_not_contact": False}),
            ("third_party.purpose", {"purpose": "locate"}),
            ("third_party.disclosure", {"tells_debt_to_third_party": False}),
            ("third_party.debtor_reachable", {"debtor_unreachable": True}),
            ("window.hours", {"night_consent": True}),
            ("cn.voice_connected_daily", {"connected_voice_debtor_today": 0}),
            ("cn.unanswered_attempts_daily", {"channel": "visit"}),
            ("visit.collectors", {"collectors": 2}),
            ("us.time_barred_suit", {"threatens_suit": False}),
        ],
    )


# --------------------------------------------------------------------------- rule-set files


def test_packaged_defaults() -> None:
    assert rules.jurisdictions() == ["CN", "US"]
    assert (US.window_start, US.window_end, US.window_end_inclusive) == (
        dt.time(8),
        dt.time(21),
        True,
    )
    assert (CN.window_start, CN.window_end, CN.window_end_inclusive) == (
        dt.time(8),
        dt.time(22),
        False,
    )
    assert (US.max_call_attempts_per_debt_7d, US.quiet_days_after_conversation) == (7, 7)
    assert US.validation_notice_days == 5 and not US.night_consent_allows
    assert CN.max_connected_voice_per_debtor_day == 3
    assert CN.max_unanswered_attempts_per_number_day == 6
    assert CN.min_visit_collectors == 2 and CN.third_party_requires_debtor_unreachable
    assert CN.night_consent_allows
    assert (US.retention_years, CN.retention_years) == (3, 5)
    assert load_ruleset("us") is US  # cached


@pytest.mark.parametrize("ruleset", [US, CN], ids=["US", "CN"])
def test_every_rule_has_a_source(ruleset: rules.RuleSet) -> None:
    for rule_id in rules.RULE_IDS:
        assert ruleset.sources[rule_id].strip(), rule_id
        en, zh = rules.reason(rule_id, ruleset)
        assert en and zh
    assert ruleset.sources["retention_years"].strip()


def test_overrides_change_a_portfolios_numbers() -> None:
    cn = load_ruleset("CN", {"window_end": "21:00"})
    at = local(SH, 2026, 6, 15, 21, 30)
    assert check(contact(at=at, zones=SH), CN).allowed
    assert rule_of(contact(at=at, zones=SH), cn) == "window.hours"
    assert "21:00" in check(contact(at=at, zones=SH), cn).reason_en
    # Switching a rule off, and switching a CN rule on for a US portfolio.
    off = load_ruleset("CN", {"max_unanswered_attempts_per_number_day": None})
    c = contact(at=local(SH, 2026, 6, 15, 10), zones=SH, unanswered_attempts_number_today=9)
    assert rule_of(c, CN) == "cn.unanswered_attempts_daily" and check(c, off).allowed
    us = load_ruleset("US", {"max_connected_voice_per_debtor_day": 2})
    assert rule_of(contact(channel="voice", connected_voice_debtor_today=2), us) == (
        "cn.voice_connected_daily"
    )
    cited = load_ruleset("US", {"sources": {"window.hours": "Portfolio policy"}})
    assert cited.sources["window.hours"] == "Portfolio policy"
    assert cited.sources["us.call_attempts_7d"] == US.sources["us.call_attempts_7d"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"window_ends": "21:00"}, "window_ends"),
        ({"jurisdiction": "US"}, "jurisdiction"),
        ({"window_end": "25:00"}, "window_end"),
        ({"window_end": "07:00"}, "window_end"),
        ({"window_start": "23:00"}, "window_start"),
        ({"max_call_attempts_per_debt_7d": "seven"}, "max_call_attempts_per_debt_7d"),
        ({"max_call_attempts_per_debt_7d": -1}, "max_call_attempts_per_debt_7d"),
        ({"min_visit_collectors": 0}, "min_visit_collectors"),
        ({"window_channels": ["fax"]}, "window_channels"),
        ({"sources": {"window.hours": ""}}, "sources"),
        ({"sources": {"no.such.rule": "x"}}, "sources"),
        ({"sources": "x"}, "sources"),
    ],
)
def test_bad_overrides_name_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(Invalid) as err:
        load_ruleset("US", overrides)
    assert err.value.errors[0].field == key


def test_unknown_jurisdiction() -> None:
    with pytest.raises(Invalid) as err:
        load_ruleset("XX")
    assert err.value.errors[0].field == "jurisdiction"


def test_bad_contact_values_are_invalid() -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"channel": "fax"}, "channel"),
        ({"party": "neighbour"}, "party"),
        ({"purpose": "chat"}, "purpose"),
        ({"flags": frozenset({"disputed"})}, "flags"),
        ({"zones": ("Mars/Olympus",)}, "zones"),
        ({"at": dt.datetime(2026, 6, 15, 12)}, "at"),  # noqa: DTZ001
        ({"last_conversation_at": dt.datetime(2026, 6, 15, 12)}, "last_conversation_at"),  # noqa: DTZ001
    ]
    for kw, field in cases:
        c = contact(**kw)
        with pytest.raises(Invalid) as err:
            check(c, US)
        assert err.value.errors[0].field == field
        if field not in ("at", "last_conversation_at"):
            with pytest.raises(Invalid) as err:
                rules.check_frame(rules.contacts_frame([c]), US)
            assert err.value.errors[0].field == field


# --------------------------------------------------------------------------- scheduling


def test_next_allowed_time_before_and_after_the_window() -> None:
    early = local(NY, 2026, 6, 15, 6, 30)
    assert rules.next_allowed_time(early, [NY], US) == local(NY, 2026, 6, 15, 8, 0)
    late = local(NY, 2026, 6, 15, 21, 30)
    assert rules.next_allowed_time(late, [NY], US) == local(NY, 2026, 6, 16, 8, 0)
    inside = local(NY, 2026, 6, 15, 12, 0)
    assert rules.next_allowed_time(inside, [NY], US) == inside
    cn_late = local(SH, 2026, 6, 15, 22, 0)
    assert rules.next_allowed_time(cn_late, [SH], CN) == local(SH, 2026, 6, 16, 8, 0)
    assert rules.next_allowed_time(early, [], US) is None


def test_next_allowed_time_with_uncertain_zones() -> None:
    both = [NY, LA]
    early = local(NY, 2026, 6, 15, 6, 0)
    assert rules.next_allowed_time(early, both, US) == local(NY, 2026, 6, 15, 11, 0)
    late = local(NY, 2026, 6, 15, 22, 0)  # 19:00 in LA; NY opens at 05:00 LA
    assert rules.next_allowed_time(late, both, US) == local(NY, 2026, 6, 16, 11, 0)


def test_next_allowed_time_across_dst() -> None:
    # The night before spring forward: the window opens at 08:00 EDT, 12:00 UTC.
    at = local(NY, 2026, 3, 7, 21, 30)
    assert rules.next_allowed_time(at, [NY], US) == dt.datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    # The night before fall back: 08:00 EST, 13:00 UTC.
    at = local(NY, 2026, 10, 31, 22, 0)
    assert rules.next_allowed_time(at, [NY], US) == dt.datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_next_allowed_time_when_the_window_opens_inside_a_dst_gap() -> None:
    # A portfolio's window opening at 02:30: on 2026-03-08 New York jumps from 02:00 to 03:00,
    # so the window opens at the jump, 07:00 UTC.
    early = load_ruleset("US", {"window_start": "02:30"})
    at = local(NY, 2026, 3, 8, 1, 0)
    assert rules.next_allowed_time(at, [NY], early) == dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_next_allowed_time_none_when_windows_never_meet() -> None:
    narrow = load_ruleset("US", {"window_start": "09:00", "window_end": "10:00"})
    at = local(NY, 2026, 6, 15, 12, 0)
    assert rules.next_allowed_time(at, [NY, SH], narrow) is None


ZONES = [
    NY,
    LA,
    CHI,
    "America/Denver",
    "America/Phoenix",
    "Pacific/Honolulu",
    SH,
    URUMQI,
    "Europe/London",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Havana",  # DST at midnight
    "Asia/Kathmandu",
]


@settings(max_examples=60, deadline=None)
@given(
    at=st.datetimes(
        min_value=dt.datetime(2026, 1, 1),  # noqa: DTZ001
        max_value=dt.datetime(2027, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    ruleset=st.sampled_from([US, CN]),
)
def test_next_allowed_time_is_the_earliest_allowed_instant(
    at: dt.datetime, zones: list[str], ruleset: rules.RuleSet
) -> None:
    found = rules.next_allowed_time(at, zones, ruleset)
    end = at + dt.timedelta(days=7) if found is None else found
    if found is not None:
        assert found >= at and rules.local_window_ok(found, zones, ruleset)
        if found != at:
            just_before = found.astimezone(UTC) - dt.timedelta(microseconds=1)
            assert not rules.local_window_ok(just_before, zones, ruleset)
    probe = at
    while probe < end:  # nothing allowed earlier, on a 10-minute grid
        assert not rules.local_window_ok(probe, zones, ruleset)
        probe += dt.timedelta(minutes=10)


# --------------------------------------------------------------------------- scalar vs vectorised

ALL_ON_US = load_ruleset(
    "US",
    {
        "max_connected_voice_per_debtor_day": 3,
        "max_unanswered_attempts_per_number_day": 6,
        "min_visit_collectors": 2,
        "third_party_requires_debtor_unreachable": True,
        "night_consent_allows": True,
        "window_end_inclusive": False,
    },
)
ALL_ON_CN = load_ruleset(
    "CN",
    {
        "max_call_attempts_per_debt_7d": 7,
        "quiet_days_after_conversation": 7,
        "validation_notice_days": 5,
        "window_end_inclusive": True,
        "window_channels": ["call", "voice", "letter"],
    },
)
RULESETS = {"US": US, "CN": CN, "US-all": ALL_ON_US, "CN-all": ALL_ON_CN}

# Rough instants of DST changes (the strategy spreads +-2 days around them).
TRANSITIONS = [
    dt.datetime(2026, 3, 8, 7, tzinfo=UTC),  # America/New_York and the US zones
    dt.datetime(2026, 11, 1, 6, tzinfo=UTC),
    dt.datetime(2026, 3, 29, 1, tzinfo=UTC),  # Europe/London
    dt.datetime(2026, 10, 25, 1, tzinfo=UTC),
    dt.datetime(2026, 4, 4, 15, tzinfo=UTC),  # Australia/Lord_Howe
    dt.datetime(2026, 3, 8, 5, tzinfo=UTC),  # America/Havana
]
EDGES = [
    dt.time(7, 59, 59, 999_999),
    dt.time(8, 0),
    dt.time(20, 59, 59),
    dt.time(21, 0),
    dt.time(21, 0, 0, 1),
    dt.time(21, 59, 59, 999_999),
    dt.time(22, 0),
]


@st.composite
def instants(draw: st.DrawFn, zones: tuple[str, ...]) -> dt.datetime:
    kind = draw(st.sampled_from(["dst", "edge", "edge", "any"]))
    if kind == "dst":
        at = draw(st.sampled_from(TRANSITIONS)) + draw(
            st.timedeltas(min_value=dt.timedelta(days=-2), max_value=dt.timedelta(days=2))
        )
    elif kind == "edge":  # a window edge in one of the contact's own zones
        day = draw(st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2026, 12, 31)))
        wall = dt.datetime.combine(day, draw(st.sampled_from(EDGES)))
        zone = ZoneInfo(draw(st.sampled_from(zones or tuple(ZONES))))
        at = wall.replace(tzinfo=zone, fold=draw(st.sampled_from([0, 1])))
    else:
        at = draw(
            st.datetimes(
                min_value=dt.datetime(2025, 1, 1),  # noqa: DTZ001
                max_value=dt.datetime(2027, 12, 31),  # noqa: DTZ001
                timezones=st.just(UTC),
            )
        )
    # Any aware representation of the instant will do.
    return at.astimezone(ZoneInfo(draw(st.sampled_from(ZONES))))


def _before(draw: st.DrawFn, at: dt.datetime, edge_days: int) -> dt.datetime | None:
    """None, or an instant about `edge_days` before `at` (exactly, or 1 µs either side)."""
    choice = draw(st.sampled_from(["none", "edge", "edge", "any"]))
    if choice == "none":
        return None
    if choice == "edge":
        days = dt.timedelta(days=edge_days)
        one = dt.timedelta(microseconds=1)
        delta = draw(st.sampled_from([days, days - one, days + one]))
    else:
        delta = draw(st.timedeltas(min_value=dt.timedelta(days=-1), max_value=dt.timedelta(days=9)))
    # Absolute arithmetic in UTC, then any representation.
    return (at.astimezone(UTC) - delta).astimezone(ZoneInfo(draw(st.sampled_from(ZONES))))


def _mostly(value: object, *others: object) -> st.SearchStrategy[object]:
    """`value` three times in four, so that later rules in the precedence get reached."""
    return st.sampled_from([value, value, value, *others])


@st.composite
def contacts(draw: st.DrawFn) -> Contact:
    one_zone = st.lists(st.sampled_from(ZONES), min_size=1, max_size=1)
    zones = tuple(
        draw(
            st.one_of(one_zone, one_zone, st.lists(st.sampled_from(ZONES), max_size=3, unique=True))
        )
    )
    at = draw(instants(zones))
    return Contact(
        channel=draw(st.sampled_from(rules.CHANNELS)),
        at=at,
        zones=zones,
        party=draw(_mostly("self", *rules.OWNERS)),  # type: ignore[arg-type]
        purpose=draw(_mostly("collect", "locate")),  # type: ignore[arg-type]
        flags=draw(
            st.one_of(
                st.just(frozenset()),
                st.just(frozenset()),
                st.just(frozenset()),
                st.frozensets(st.sampled_from(rules.STOP_FLAGS), min_size=1),
            )
        ),
        do_not_contact=draw(_mostly(False, True)),  # type: ignore[arg-type]
        night_consent=draw(st.booleans()),
        debtor_unreachable=draw(st.booleans()),
        call_attempts_debt_7d=draw(st.integers(0, 9)),
        last_conversation_at=_before(draw, at, 7),
        connected_voice_debtor_today=draw(st.integers(0, 4)),
        unanswered_attempts_number_today=draw(st.integers(0, 8)),
        collectors=draw(st.integers(0, 3)),
        first_communication_at=_before(draw, at, 5),
        validation_notice_sent=draw(st.booleans()),
        is_time_barred=draw(st.booleans()),
        threatens_suit=draw(_mostly(False, True)),  # type: ignore[arg-type]
        has_opt_out=draw(_mostly(True, False)),  # type: ignore[arg-type]
        tells_debt_to_third_party=draw(_mostly(False, True)),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", list(RULESETS))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(contacts(), max_size=25))
def test_scalar_and_vectorised_forms_agree(name: str, batch: list[Contact]) -> None:
    ruleset = RULESETS[name]
    frame = rules.check_frame(rules.contacts_frame(batch), ruleset)
    assert frame.height == len(batch)
    assert frame.schema == pl.Schema(rules.VERDICT_SCHEMA)
    for c, row in zip(batch, frame.iter_rows(named=True), strict=True):
        verdict = check(c, ruleset)
        assert rules.Verdict(**row) == verdict, c
        assert verdict.rule_id is None or verdict.rule_id in ruleset.sources


def test_check_frame_defaults_missing_columns_and_reads_naive_as_utc() -> None:
    frame = pl.DataFrame(
        {
            "channel": ["call", "sms", "call"],
            "at": [
                dt.datetime(2026, 6, 15, 16, 0),  # noqa: DTZ001  12:00 in New York
                dt.datetime(2026, 6, 15, 3, 0),  # noqa: DTZ001  23:00 in New York
                dt.datetime(2026, 6, 15, 16, 0),  # noqa: DTZ001
            ],
            "zones": [[NY], [NY], [NY]],
            "call_attempts_debt_7d": [0, 0, 7],
        }
    )
    out = rules.check_frame(frame, US)
    assert out["allowed"].to_list() == [True, False, False]
    assert out["rule_id"].to_list() == [None, "window.hours", "us.call_attempts_7d"]
    assert out["reason_en"][0] == "" and out["reason_zh"][1]


def test_check_frame_of_no_rows() -> None:
    out = rules.check_frame(rules.contacts_frame([]), CN)
    assert out.height == 0 and list(out.columns) == list(rules.VERDICT_SCHEMA)
