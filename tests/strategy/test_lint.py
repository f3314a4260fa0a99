"""The strategy linter: each finding code on a small file that triggers it and one that does
not; the default strategy; the live checks on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from recoup.core.db import transaction
from recoup.cycle.service import run_cycle
from recoup.ledger import service as ledger
from recoup.strategy import rules, service
from recoup.strategy.lint import LintFinding, check_strategy, lint_document
from tests import factories


def strategy(segments: str) -> str:
    """A strategy file with the segments given (YAML list items, any indentation)."""
    head = "strategy: t\ntitle: {en: Test, zh: 测试}\nsegments:\n"
    return head + textwrap.indent(textwrap.dedent(segments).strip("\n"), "  ") + "\n"


def lint(segments: str) -> list[LintFinding]:
    return lint_document(rules.parse_document(strategy(segments)))


def codes(findings: list[LintFinding]) -> list[tuple[str, str, str]]:
    return [(f.severity, f.code, f.path) for f in findings]


SMS = "{id: sms, due: 1, action: sms, template: reminder_overdue}"


def test_every_finding_has_both_languages() -> None:
    findings = lint("""
        - id: a
          when: {bucket: [M1, M2]}
          path: []
        - id: b
          when: {bucket: [M2, M3]}
          path: [{id: l, due: 40, action: letter, template: reminder_overdue}]
        - id: c
          when: {bucket: [M2]}
          path: [{id: s, due: 31, action: sms, template: nope}]
        """)
    assert {f.code for f in findings} >= {"empty_path", "overlap", "template_channel"}
    for f in findings:
        assert f.message_en and f.message_zh and f.message_en != f.message_zh


# --- the default strategy -------------------------------------------------------------------


def test_default_strategy_has_no_findings() -> None:
    assert lint_document(service.validate(service.default_source())) == []


def test_default_strategy_with_other_buckets_reports_dead_steps() -> None:
    """The bucket bounds come from the settings: with shorter buckets the default's steps fall
    outside their segments, and the linter says so."""
    doc = service.validate(service.default_source())
    findings = lint_document(doc, bucket_bounds=[0, 15, 30, 45, 60, 75, 90])
    dead = [f for f in findings if f.code == "unreachable"]
    # m1_early's formal notice at D+10 is still inside M1 (1..15); its D+20 call is not.
    assert "segments[7].path[4].due" in [f.path for f in dead]
    assert "segments[7].path[2].due" not in [f.path for f in dead]


# --- templates ------------------------------------------------------------------------------


def test_unknown_template_is_an_error_with_its_path() -> None:
    findings = lint(f"""
        - id: a
          when: {{bucket: [M1]}}
          path: [{SMS}, {{id: x, due: 2, action: sms, template: no_such_text}}]
        """)
    assert codes(findings) == [("error", "unknown_template", "segments[0].path[1].template")]
    assert "no_such_text" in findings[0].message_en


@pytest.mark.parametrize(
    ("step", "flagged"),
    [
        ("{id: x, due: 10, action: letter, template: reminder_overdue}", True),  # sms/email only
        ("{id: x, due: 10, action: call_task, template: reminder_overdue}", True),
        ("{id: x, due: 10, action: agency_placement, template: formal_notice}", True),
        ("{id: x, due: 10, action: letter, template: formal_notice}", False),
        ("{id: x, due: 10, action: email, template: formal_notice}", False),
        ("{id: x, due: 10, action: lawyer_letter, template: lawyer_letter}", False),  # letter
        ("{id: x, due: 10, action: sms, template: reminder_overdue}", False),
    ],
)
def test_template_channel(step: str, flagged: bool) -> None:
    findings = lint(f"""
        - id: a
          when: {{bucket: [M1]}}
          path: [{step}]
        """)
    expected = [("warning", "template_channel", "segments[0].path[0].template")]
    assert codes(findings) == (expected if flagged else [])


# --- reachability and overlap ---------------------------------------------------------------


def test_segment_covered_by_an_earlier_one_is_unreachable() -> None:
    findings = lint(f"""
        - id: early
          when: {{bucket: [M1, M2]}}
          path: [{SMS}]
        - id: m1
          when: {{bucket: [M1], overdue_amount: {{min: 100}}}}
          path: [{SMS}]
        """)
    assert codes(findings) == [("error", "unreachable", "segments[1]")]
    assert "'early' (segments[0])" in findings[0].message_en


def test_narrow_segment_before_a_broad_one_is_fine() -> None:
    """First match wins: a special case written before the general one is the idiom."""
    findings = lint(f"""
        - id: m1_large
          when: {{bucket: [M1], overdue_amount: {{min: 100}}}}
          path: [{SMS}]
        - id: m1
          when: {{bucket: [M1]}}
          path: [{SMS}]
        """)
    assert findings == []


def test_buckets_and_dpd_ranges_are_compared_through_the_bucket_bounds() -> None:
    findings = lint(f"""
        - id: first_month
          when: {{dpd: {{min: 1, max: 30}}}}
          path: [{SMS}]
        - id: m1
          when: {{bucket: [M1]}}
          path: [{SMS}]
        - id: m2
          when: {{bucket: [M2]}}
          path: [{{id: c, due: 31, action: call_task}}]
        """)
    assert codes(findings) == [("error", "unreachable", "segments[1]")]


def test_segment_covered_by_several_earlier_ones_is_unreachable() -> None:
    findings = lint(f"""
        - id: large
          when: {{bucket: [M1], overdue_amount: {{min: 20000}}}}
          path: [{SMS}]
        - id: small
          when: {{bucket: [M1], overdue_amount: {{max: 20000}}}}
          path: [{SMS}]
        - id: rest
          when: {{bucket: [M1]}}
          path: [{SMS}]
        """)
    assert ("error", "unreachable", "segments[2]") in codes(findings)
    rest = next(f for f in findings if f.path == "segments[2]")
    assert "'large'" in rest.message_en and "'small'" in rest.message_en


def test_catch_all_after_a_flag_and_its_absence_is_unreachable() -> None:
    findings = lint(f"""
        - id: disputed
          when: {{flags: {{any_of: [dispute]}}}}
          path: []
        - id: undisputed
          when: {{flags: {{none_of: [dispute]}}}}
          path: [{SMS}]
        - id: everyone
          path: [{SMS}]
        """)
    assert ("error", "unreachable", "segments[2]") in codes(findings)
    # The flag and its absence exclude each other: no overlap between the first two.
    assert "overlap" not in {f.code for f in findings}


def test_conditions_that_cannot_hold_together() -> None:
    findings = lint(f"""
        - id: odd
          when: {{bucket: [M0], dpd: {{min: 5}}}}
          path: [{SMS}]
        - id: no_bucket
          when: {{bucket: [M9]}}
          path: [{SMS}]
        - id: fine
          when: {{bucket: [M1]}}
          path: [{SMS}]
        """)
    assert codes(findings) == [
        ("error", "unreachable", "segments[0]"),
        ("error", "unreachable", "segments[1]"),
    ]
    assert "never match" in findings[0].message_en


@pytest.mark.parametrize(
    ("due", "fires"),
    [(1, True), (30, True), (31, False), (0, False), (-3, True)],
)
def test_due_step_outside_its_segment_never_fires(due: int, fires: bool) -> None:
    findings = lint(f"""
        - id: m1
          when: {{bucket: [M1]}}
          path: [{{id: s, due: {due}, action: sms, template: reminder_overdue}}]
        """)
    assert codes(findings) == (
        [] if fires else [("error", "unreachable", "segments[0].path[0].due")]
    )


@pytest.mark.parametrize(
    ("first", "second", "overlaps"),
    [
        ("{bucket: [M1, M2]}", "{bucket: [M2, M3]}", True),
        ("{bucket: [M1]}", "{bucket: [M2]}", False),
        ("{dpd: {min: 1, max: 40}}", "{bucket: [M2]}", True),
        ("{dpd: {min: 1, max: 30}}", "{bucket: [M2]}", False),
        ("{overdue_amount: {max: 100}}", "{overdue_amount: {min: 100}}", True),
        ("{overdue_amount: {max: 99}}", "{overdue_amount: {min: 100}}", False),
        ("{risk_band: [A, B]}", "{risk_band: [B, C]}", True),
        ("{risk_band: [A, B]}", "{risk_band: [C]}", False),
        ("{product: [p1]}", "{portfolio: [PF1]}", True),
        ("{kind: [loan]}", "{kind: [invoice]}", False),
        ("{stage: [early, hard]}", "{stage: [hard]}", False),  # contained: second unreachable
        ("{promise: [pending]}", "{promise: [broken, none]}", False),
        ("{tags: {any_of: [vip]}}", "{bucket: [M1]}", True),
        ("{tags: {any_of: [vip]}}", "{tags: {none_of: [vip]}}", False),
        ("{tags: {any_of: [vip, staff]}}", "{tags: {none_of: [vip]}}", True),
        ("{flags: {any_of: [dispute]}}", "{flags: {any_of: [vulnerable]}}", True),
    ],
)
def test_overlap(first: str, second: str, overlaps: bool) -> None:
    findings = lint(f"""
        - id: one
          when: {first}
          path: [{{id: c, stage_day: 1, action: call_task}}]
        - id: two
          when: {second}
          path: [{{id: c, stage_day: 1, action: call_task}}]
        """)
    found = [f for f in findings if f.code == "overlap"]
    assert codes(found) == ([("warning", "overlap", "segments[1]")] if overlaps else [])
    if overlaps:
        assert "'one' (segments[0])" in found[0].message_en
        assert "'two' (segments[1])" in found[0].message_en


# --- escalation -----------------------------------------------------------------------------


def test_letter_after_lawyer_letter_is_deescalation() -> None:
    findings = lint("""
        - id: m4
          when: {bucket: [M4]}
          path:
            - {id: lawyer, due: 91, action: lawyer_letter, template: lawyer_letter}
            - {id: call, due: 95, action: call_task}
            - {id: letter, due: 100, action: letter, template: formal_notice}
        """)
    assert codes(findings) == [("warning", "deescalation", "segments[0].path[2]")]
    assert "DPD 91" in findings[0].message_en and "DPD 100" in findings[0].message_en


def test_escalation_is_compared_across_segments_and_contacts_do_not_count() -> None:
    findings = lint("""
        - id: m3
          when: {bucket: [M3]}
          path:
            - {id: visit, due: 65, action: field_visit}
            - {id: sms, due: 70, action: sms, template: reminder_overdue}
        - id: m4
          when: {bucket: [M4]}
          path:
            - {id: letter, stage_day: 2, action: letter, template: formal_notice}
            - {id: lawyer, due: 100, action: lawyer_letter, template: lawyer_letter}
        """)
    # The stage_day letter fires at the segment's lowest DPD (91) + 2 = 93, after the visit.
    assert codes(findings) == [("warning", "deescalation", "segments[1].path[0]")]


def test_rising_escalation_is_fine() -> None:
    findings = lint("""
        - id: m1
          when: {bucket: [M1]}
          path: [{id: letter, due: 10, action: letter, template: formal_notice}]
        - id: m3
          when: {bucket: [M3]}
          path: [{id: visit, due: 65, action: field_visit}]
        - id: m4
          when: {bucket: [M4]}
          path:
            - {id: lawyer, due: 91, action: lawyer_letter, template: lawyer_letter}
            - {id: call, due: 95, action: call_task}
            - {id: again, due: 110, action: lawyer_letter, template: lawyer_letter}
        """)
    assert findings == []


# --- empty path -----------------------------------------------------------------------------


def test_empty_path() -> None:
    findings = lint(f"""
        - id: hold_out
          when: {{tags: {{any_of: [hold]}}}}
          path: []
        - id: m1
          when: {{bucket: [M1]}}
          path: [{SMS}]
        """)
    assert ("warning", "empty_path", "segments[0].path") in codes(findings)
    findings = lint(f"""
        - id: m1
          when: {{bucket: [M1]}}
          path: [{SMS}]
        """)
    assert findings == []


# --- with the database ----------------------------------------------------------------------


def test_invalid_file_reports_every_error_with_its_path(engine: Engine) -> None:
    source = strategy("""
        - id: a
          when: {bucket: [M1], dpd: {min: 5, max: 2}}
          path:
            - {id: s1, due: 1, action: fax}
            - {id: s2, due: 1, action: sms}
        """)
    with Session(engine) as session:
        findings = check_strategy(session, source)
    assert codes(findings) == [
        ("error", "invalid", "segments[0].when.dpd"),
        ("error", "invalid", "segments[0].path[0].action"),
        ("error", "invalid", "segments[0].path[1]"),
    ]
    assert "template" in findings[2].message_en


def test_not_yaml(engine: Engine) -> None:
    with Session(engine) as session:
        findings = check_strategy(session, "strategy: [unclosed")
    assert codes(findings) == [("error", "invalid", "(file)")]


def test_unknown_template_does_not_stop_the_other_checks(engine: Engine) -> None:
    source = strategy(f"""
        - id: a
          when: {{bucket: [M1, M2]}}
          path: [{{id: s, due: 1, action: sms, template: no_such_text}}]
        - id: b
          when: {{bucket: [M1]}}
          path: [{SMS}]
        """)
    with Session(engine) as session:
        findings = check_strategy(session, source)
    assert codes(findings) == [
        ("error", "unknown_template", "segments[0].path[0].template"),
        ("error", "unreachable", "segments[1]"),
    ]


def test_unknown_product_and_portfolio(engine: Engine) -> None:
    with transaction(engine) as s:
        pf = factories.portfolio(s, code="LIVE")
        ledger.create_product(s, "cash", "Cash loan", pf.id, "loan")
    source = strategy(f"""
        - id: named
          when: {{product: [cash, nope], portfolio: [LIVE]}}
          path: [{SMS}]
        - id: other
          when: {{portfolio: [GONE]}}
          path: [{SMS}]
        """)
    with Session(engine) as session:
        findings = check_strategy(session, source)
    assert codes(findings) == [
        ("warning", "unknown_product", "segments[0].when.product"),
        ("warning", "unknown_portfolio", "segments[1].when.portfolio"),
    ]
    assert "'nope'" in findings[0].message_en and "'cash'" not in findings[0].message_en
    assert "'GONE'" in findings[1].message_en


def _overdue_book(engine: Engine) -> None:
    """Portfolio LIVE on 2026-07-15: two accounts in M1, one in M3, one not yet due, one paid
    in full; and portfolio OTHER with one account in M1."""
    with transaction(engine) as s:
        live = factories.portfolio(s, code="LIVE")
        other = factories.portfolio(s, code="OTHER")
        start = dt.date(2026, 3, 1)
        for due in (dt.date(2026, 7, 1), dt.date(2026, 7, 5), dt.date(2026, 5, 1)):
            factories.invoice(s, live, start_date=start, due_date=due)
        factories.invoice(s, live, start_date=start, due_date=dt.date(2026, 8, 1))
        paid = factories.invoice(s, live, start_date=start, due_date=dt.date(2026, 5, 1))
        ledger.post_payment(
            s,
            account_id=paid.id,
            external_ref="PAID",
            amount=5_000_000,
            value_date=dt.date(2026, 4, 30),
        )
        factories.invoice(s, other, start_date=start, due_date=dt.date(2026, 7, 1))
    run_cycle(engine, dt.date(2026, 7, 15))


def test_uncovered_accounts_by_bucket(engine: Engine) -> None:
    _overdue_book(engine)
    only_m1 = strategy(f"""
        - id: m1
          when: {{bucket: [M1], overdue_amount: {{max: 1000000}}}}
          path: [{SMS}]
        """)
    with Session(engine) as session:
        findings = check_strategy(session, only_m1)
        covered = check_strategy(session, service.default_source())
        one = check_strategy(session, only_m1, ["OTHER"])
        unknown = check_strategy(session, only_m1, ["NOPE"])
    uncovered = [f for f in findings if f.code == "uncovered"]
    assert [f.path for f in uncovered] == ["segments"]
    assert "portfolio LIVE: 1 open overdue account(s)" in uncovered[0].message_en
    assert "(M3: 1)" in uncovered[0].message_en
    assert "M3：1" in uncovered[0].message_zh
    assert covered == []
    assert one == []
    assert codes(unknown) == [("error", "unknown_portfolio", "portfolio")]


def test_uncovered_counts_every_bucket(engine: Engine) -> None:
    _overdue_book(engine)
    nothing_overdue = strategy("""
        - id: pre_due
          when: {bucket: [M0]}
          path: [{id: r, due: -1, action: sms, template: reminder_due_tomorrow}]
        """)
    with Session(engine) as session:
        findings = check_strategy(session, nothing_overdue, ["LIVE"])
    assert codes(findings) == [("warning", "uncovered", "segments")]
    assert "3 open overdue account(s)" in findings[0].message_en
    assert "(M1: 2, M3: 1)" in findings[0].message_en
