"""The templates API: list, read, save (refusals as problem details naming the field and the
reason), history, preview for an account, the variables, sender details, and letters as PDF."""

from __future__ import annotations

import io

import pypdf
from sqlalchemy import Engine

from tests.api.conftest import Api, field_names
from tests.channels.conftest import AS_OF, Case

BODY = "{{ debtor_name }}，账户{{ account_ref }}已逾期{{ dpd }}天，应还{{ amount }}。{{ opt_out }}"


def test_list_and_read_templates(api: Api) -> None:
    rows = api.ok(api.get("/templates"))
    names = {(t["name"], t["language"]) for t in rows}
    assert {("formal_notice", "zh"), ("lawyer_letter", "en")} <= names
    assert all(t["version"] == 0 and t["source"] == "catalog" for t in rows)
    one = api.ok(api.get("/templates/formal_notice", params={"language": "zh"}))
    assert [(t["language"], t["kind"], t["channels"]) for t in one] == [
        ("zh", "formal_notice", ["letter", "email"])
    ]
    assert len(api.ok(api.get("/templates/formal_notice"))) == 2
    missing = api.get("/templates/no_such_template")
    assert missing.status_code == 404


def test_save_makes_a_new_version_and_history_lists_them(api: Api) -> None:
    body = {"subject": "逾期", "body": BODY, "channels": ["sms"], "requires": ["dpd"], "by": "ann"}
    saved = api.ok(api.put("/templates/reminder_overdue/zh", body))
    assert (saved["version"], saved["source"], saved["created_by"]) == (1, "stored", "ann")
    saved = api.ok(
        api.put("/templates/reminder_overdue/zh", {**body, "note": "v2", "subject": "逾期提醒"})
    )
    assert saved["version"] == 2
    history = api.ok(api.get("/templates/reminder_overdue/history", params={"language": "zh"}))
    assert [(t["version"], t["is_active"]) for t in history] == [(2, True), (1, False), (0, False)]
    active = api.ok(api.get("/templates/reminder_overdue", params={"language": "zh"}))
    assert active[0]["subject"] == "逾期提醒"


def test_a_refused_save_is_a_problem_naming_the_field_and_the_reason(api: Api) -> None:
    body = {
        "subject": "逾期",
        "body": "{{ debtor_nam }}，不还钱就去你单位闹。{{ opt_out }}",
        "channels": ["sms", "fax"],
    }
    r = api.put("/templates/reminder_overdue/zh", body)
    assert r.status_code == 422
    assert field_names(r) == ["channels[1]", "body", "body"]
    errors = r.json()["errors"]
    assert errors[1]["value"] == "debtor_nam" and "unknown variable" in errors[1]["why"]
    assert errors[2]["value"] == "去你单位闹"
    assert "forbidden wording" in errors[2]["why"] and "禁用措辞" in errors[2]["why"]
    # nothing was stored
    history = api.ok(api.get("/templates/reminder_overdue/history", params={"language": "zh"}))
    assert [t["version"] for t in history] == [0]
    # a language that is not zh or en is refused by the path
    r = api.put("/templates/reminder_overdue/fr", {**body, "channels": ["sms"]})
    assert r.status_code == 422 and field_names(r) == ["language"]


def test_preview_for_an_account(api: Api, engine: Engine, case: Case) -> None:
    r = api.ok(
        api.post(
            "/templates/reminder_overdue/preview",
            {"account_id": case.account_id, "as_of": AS_OF.isoformat(), "channel": "sms"},
        )
    )
    assert r["language"] == "zh" and r["template_version"] == 0
    assert "已逾期45天，应还¥50,000.00" in r["body"] and r["body"].endswith("回复TD退订")
    assert r["placeholders"] == ["service_phone"] and len(r["sha256"]) == 64
    draft = api.ok(
        api.post(
            "/templates/reminder_overdue/preview",
            {
                "account_id": case.account_id,
                "as_of": AS_OF.isoformat(),
                "language": "en",
                "body": "{{ debtor_name }}: {{ amount }}, {{ dpd }} days. {{ opt_out }}",
            },
        )
    )
    assert draft["body"] == "李四: CN¥50,000.00, 45 days. Reply STOP to opt out"
    assert draft["template_version"] is None
    wrong = api.post(
        "/templates/reminder_overdue/preview",
        {"account_id": case.account_id, "as_of": AS_OF.isoformat(), "channel": "letter"},
    )
    assert wrong.status_code == 422 and field_names(wrong) == ["channel"]


def test_variables_are_listed_in_both_languages(api: Api) -> None:
    rows = api.ok(api.get("/template-variables"))
    by_name = {v["name"]: v for v in rows}
    assert by_name["dpd"]["zh"] == "逾期天数（数字）"
    assert {"amount", "deadline", "dispute_contact", "opt_out", "law_firm"} <= set(by_name)


def test_sender_details_and_the_letter_pdf(api: Api, engine: Engine, case: Case) -> None:
    assert api.ok(api.get(f"/creditors/{case.creditor_code}/sender-profile")) is None
    profile = api.ok(
        api.put(
            f"/portfolios/{case.portfolio_code}/sender-profile",
            {"details": {"law_firm": {"zh": "示例律师事务所"}}, "by": "ops"},
        )
    )
    assert profile["details"] == {"law_firm": {"zh": "示例律师事务所"}}
    bad = api.put(f"/creditors/{case.creditor_code}/sender-profile", {"details": {"fax": "1"}})
    assert bad.status_code == 422 and field_names(bad) == ["fax"]
    r = api.get(
        f"/accounts/{case.account_id}/letters/lawyer_letter.pdf",
        params={"as_of": AS_OF.isoformat()},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    assert "示例律师事务所" in text
    missing = api.get(
        f"/accounts/{case.account_id}/letters/formal_notice.pdf", params={"as_of": "2026-13-01"}
    )
    assert missing.status_code == 422 and field_names(missing) == ["as_of"]
