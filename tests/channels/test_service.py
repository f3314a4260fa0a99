"""Templates on a real database (SQLite and PostgreSQL): rendering for a real account with the
amounts written exactly in Chinese and English, versions, refused saves that change nothing,
sender details, and the refusals a sender relies on."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from recoup.channels import rules, service
from recoup.channels.models import MessageTemplate
from recoup.core.db import transaction
from recoup.core.errors import Blocked, Invalid, NotFound
from recoup.core.settings import get_settings
from recoup.cycle.service import run_cycle
from recoup.ledger.models import Account
from tests import factories
from tests.channels.conftest import AS_OF, Case, invoice_case

PHONE = {"service_phone": "400-820-0000", "dispute_contact": "400-820-0000或dispute@eb.example"}


def _set_phone(engine: Engine, case: Case) -> None:
    with transaction(engine) as s:
        service.set_sender_profile(s, PHONE, "test", creditor=case.creditor_code)


def test_render_for_a_real_account_in_chinese(engine: Engine, case: Case) -> None:
    _set_phone(engine, case)
    with Session(engine) as s:
        r = service.render(s, "reminder_overdue", case.account_id, AS_OF, "sms")
    assert (r.name, r.language, r.channel, r.template_version) == (
        "reminder_overdue", "zh", "sms", 0
    )  # fmt: skip
    assert r.body == (
        f"【东方银行】尊敬的李四，您的账户{case.account_ref}已逾期45天，应还¥50,000.00。"
        "请尽快还款，如有困难请致电400-820-0000与我们协商。回复TD退订"
    )
    assert r.subject == "逾期提醒"
    assert r.sha256 == rules.content_hash(r.subject, r.body)
    assert r.placeholders == ()


def test_render_for_a_real_account_in_english(engine: Engine, case: Case) -> None:
    _set_phone(engine, case)
    with Session(engine) as s:
        r = service.render(s, "formal_notice", case.account_id, AS_OF, "letter", "en")
    assert r.language == "en"
    assert r.body == (
        "Dear 李四,\n\n"
        f"Your account {case.account_ref} with 东方银行 is 45 days overdue. The amount due as of"
        " this notice is CN¥50,000.00.\n"
        "Please pay by August 22, 2026, or contact us to agree a repayment arrangement.\n"
        "If you dispute this debt, tell us by August 22, 2026 through"
        " 400-820-0000或dispute@eb.example; we will pause collection while we verify it.\n\n"
        "东方银行"
    )  # the letter has no opt-out line


def test_the_debtor_language_is_the_default(engine: Engine) -> None:
    case = invoice_case(engine, language="en", name="Jane Roe")
    with Session(engine) as s:
        r = service.render(s, "reminder_overdue", case.account_id, AS_OF, "sms")
        assert r.language == "en" and r.body.startswith("东方银行: Dear Jane Roe,")
        assert r.body.endswith("Reply STOP to opt out")
        assert service.render(s, "reminder_overdue", case.account_id, AS_OF, "sms", "zh-CN")
        assert r.placeholders == ("service_phone",)  # nobody set the phone number


def test_message_context_of_a_loan_after_the_daily_cycle(engine: Engine) -> None:
    with transaction(engine) as s:
        acc = factories.loan(s)  # first instalment due 2026-02-15, nothing paid
        account_id = acc.id
    run_cycle(engine, dt.date(2026, 4, 1))
    with Session(engine) as s:
        account = s.get_one(Account, account_id)
        ctx = service.message_context(s, account_id, dt.date(2026, 4, 1), "sms")
        zh = service.build_context(s, account_id, dt.date(2026, 4, 1), "sms", "zh")
    assert account.penalty_balance > 0 and account.late_fee_balance > 0
    money = {
        k: rules.format_amount(v, "CNY", "zh")
        for k, v in (
            ("amount", account.overdue_amount),
            ("overdue_amount", account.overdue_amount),
            ("amount_penalty", account.penalty_balance),
            ("amount_late_fee", account.late_fee_balance),
        )
    }
    assert {k: ctx[k] for k in money} == money
    # The components add up to the amount, to the fen.
    assert zh.due.total == account.overdue_amount
    assert (ctx["dpd"], ctx["due_date"], ctx["overdue_instalments"]) == ("45", "2026年2月15日", "2")
    assert (ctx["today"], ctx["deadline"]) == ("2026年4月1日", "2026年4月8日")
    assert ctx["opt_out"] == "回复TD退订"
    assert set(ctx) == set(rules.VARIABLES)


def test_deadline_days_and_channel_opt_out(engine: Engine, case: Case) -> None:
    with Session(engine) as s:
        ctx = service.message_context(s, case.account_id, AS_OF, "email", deadline_days=14)
        assert ctx["deadline"] == "2026年8月29日"
        # No unsubscribe link of the creditor's own: Recoup's page, signed for the account.
        token = rules.unsubscribe_token(get_settings().secret_key, "a", case.account_id)
        assert f"/unsubscribe/{token}" in ctx["opt_out"]
        assert ctx["self_service_link"] == f"https://pay.example/s/{case.account_ref}"
        built = service.build_context(s, case.account_id, AS_OF, "email")
        assert "self_service_link" in built.placeholders
        assert "opt_out" not in built.placeholders
        # A strategy action stands for its channel.
        assert service.message_context(s, case.account_id, AS_OF, "call_task")["opt_out"] == ""
        with pytest.raises(Invalid) as err:
            service.message_context(s, case.account_id, AS_OF, "fax")
        assert err.value.errors[0].field == "channel"


def test_saving_creates_versions_and_the_latest_is_rendered(engine: Engine, case: Case) -> None:
    body = (
        "【{{ creditor_name }}】{{ debtor_name }}，账户已逾期{{ dpd }}天，应还{{ amount }}。"
        "{{ opt_out }}"
    )
    with transaction(engine) as s:
        v1 = service.save_template(
            s, "reminder_overdue", "zh", "逾期", body, ["sms"], ["amount", "dpd"], "ann", "shorter"
        )
        v2 = service.save_template(
            s, "reminder_overdue", "zh", "逾期", body.replace("。{{", "，请尽快还款。{{"),
            ["sms", "email"], ["amount", "dpd"], "bob",
        )  # fmt: skip
        again = service.save_template(
            s, "reminder_overdue", "zh", "逾期", v2.body, ["sms", "email"], ["amount", "dpd"], "c"
        )
    assert (v1.version, v2.version, again.version) == (1, 2, 2)  # the same text twice: one version
    with Session(engine) as s:
        active = service.get_template(s, "reminder_overdue", "zh")
        assert (active.version, active.created_by, active.source) == (2, "bob", "stored")
        history = service.template_history(s, "reminder_overdue", "zh")
        assert [(t.version, t.is_active) for t in history] == [(2, True), (1, False), (0, False)]
        assert history[1].note == "shorter"
        # English is untouched: still the shipped default.
        assert service.get_template(s, "reminder_overdue", "en").version == 0
        r = service.render(s, "reminder_overdue", case.account_id, AS_OF, "sms")
        assert r.template_version == 2
        assert r.body == "【东方银行】李四，账户已逾期45天，应还¥50,000.00，请尽快还款。回复TD退订"
        listed = {(t.name, t.language): t.version for t in service.list_templates(s)}
        assert listed[("reminder_overdue", "zh")] == 2
        assert listed[("lawyer_letter", "en")] == 0


def test_a_refused_save_stores_nothing_and_keeps_the_active_version(engine: Engine) -> None:
    good = "{{ debtor_name }}，应还{{ amount }}，逾期{{ dpd }}天。{{ opt_out }}"
    with transaction(engine) as s:
        service.save_template(s, "reminder_overdue", "zh", "逾期", good, ["sms"], [], "ann")
    bad = "{{ debtor_name }}，应还{{ amount }}，不还钱就去你单位闹。{{ opt_out }}"
    with pytest.raises(Invalid) as err, transaction(engine) as s:
        service.save_template(s, "reminder_overdue", "zh", "逾期", bad, ["sms"], ["dpd"], "eve")
    fields = [(e.field, e.value) for e in err.value.errors]
    assert fields == [("body", "去你单位闹"), ("body", "dpd")]
    why = err.value.errors[0].why
    assert "forbidden wording" in why and "禁用措辞" in why and "wording.threat" in why
    with Session(engine) as s:
        active = service.get_template(s, "reminder_overdue", "zh")
        assert (active.version, active.body) == (1, good)
        assert s.scalar(select(func.count(MessageTemplate.id))) == 1


def test_a_formal_notice_cannot_lose_its_deadline(engine: Engine) -> None:
    with Session(engine) as s:
        shipped = service.get_template(s, "formal_notice", "zh")
        body = shipped.body.replace("请于{{ deadline }}前还款", "请尽快还款").replace(
            "请于{{ deadline }}前通过", "请通过"
        )
        with pytest.raises(Invalid) as err:
            service.save_template(
                s, "formal_notice", "zh", shipped.subject, body, list(shipped.channels),
                list(shipped.requires), "eve",
            )  # fmt: skip
    assert [(e.field, e.value) for e in err.value.errors] == [("body", "deadline")]


def test_new_templates_can_be_saved_and_unknown_ones_are_not_found(engine: Engine) -> None:
    with transaction(engine) as s:
        saved = service.save_template(
            s, "payment_thanks", "en", "Thank you", "Thank you, {{ debtor_name }}.", ["letter"],
            [], "ann",
        )  # fmt: skip
        assert (saved.version, saved.kind) == (1, "message")
        assert "payment_thanks" in service.template_names(s)
        with pytest.raises(NotFound):
            service.get_template(s, "payment_thanks", "zh")
        with pytest.raises(NotFound):
            service.template_history(s, "no_such_template")


def test_a_template_is_rendered_only_for_its_channels(engine: Engine, case: Case) -> None:
    with Session(engine) as s, pytest.raises(Invalid) as err:
        service.render(s, "reminder_overdue", case.account_id, AS_OF, "letter")
    assert err.value.errors[0].field == "channel"
    assert "sms, email" in err.value.errors[0].why


def test_a_lawyer_letter_needs_a_law_firm(engine: Engine, case: Case) -> None:
    with Session(engine) as s:
        with pytest.raises(Invalid) as err:
            service.render(s, "lawyer_letter", case.account_id, AS_OF, "lawyer_letter")
        assert err.value.errors[0].field == "law_firm"
        # A preview shows the stand-in and says so.
        r = service.preview(s, "lawyer_letter", case.account_id, AS_OF)
        assert "（受托律师事务所）" in r.body and "law_firm" in r.placeholders
    with transaction(engine) as s:
        service.set_sender_profile(
            s, {"law_firm": {"zh": "示例律师事务所", "en": "Example LLP"}}, "test",
            portfolio=case.portfolio_code,
        )  # fmt: skip
    with Session(engine) as s:
        r = service.render(s, "lawyer_letter", case.account_id, AS_OF, "letter")
        assert r.body.startswith("李四：\n\n示例律师事务所（以下简称“本所”）受东方银行委托")
        assert "已逾期45天，应还金额为¥50,000.00" in r.body
        assert "请于2026年8月22日前还款" in r.body
        assert "law_firm" not in r.placeholders


def test_portfolio_details_win_over_the_creditors(engine: Engine, case: Case) -> None:
    with transaction(engine) as s:
        service.set_sender_profile(s, PHONE, "test", creditor=case.creditor_code)
        service.set_sender_profile(
            s, {"service_phone": "021-5555-0000"}, "test", portfolio=case.portfolio_code
        )
    with Session(engine) as s:
        ctx = service.message_context(s, case.account_id, AS_OF, "sms")
        assert ctx["service_phone"] == "021-5555-0000"
        assert ctx["dispute_contact"] == PHONE["dispute_contact"]  # from the creditor
        profile = service.get_sender_profile(s, portfolio=case.portfolio_code)
        assert profile is not None and profile.updated_by == "test"


def test_sender_details_are_checked_and_owners_must_exist(engine: Engine, case: Case) -> None:
    with Session(engine) as s:
        with pytest.raises(Invalid) as err:
            service.set_sender_profile(
                s,
                {"service_phone": "不还钱就去你单位闹", "fax": "1"},
                "t",
                creditor=case.creditor_code,
            )
        assert [e.field for e in err.value.errors] == ["service_phone", "fax"]
        with pytest.raises(NotFound):
            service.set_sender_profile(s, PHONE, "t", creditor="NOPE")
        with pytest.raises(Invalid):
            service.set_sender_profile(s, PHONE, "t")


def test_rendered_text_is_checked_again(engine: Engine) -> None:
    # Whatever the template, wording the guard forbids does not go out (here in a name).
    case = invoice_case(engine, name="去你单位闹")
    with Session(engine) as s, pytest.raises(Blocked) as err:
        service.render(s, "reminder_overdue", case.account_id, AS_OF, "sms")
    assert err.value.rule == "wording.threat"


def test_preview_of_a_draft_writes_nothing(engine: Engine, case: Case) -> None:
    draft = (
        "{{ debtor_name }}：已逾期{{ dpd }}天，请于{{ deadline }}前还款{{ amount }}。{{ opt_out }}"
    )
    with transaction(engine) as s:
        r = service.preview(s, "reminder_overdue", case.account_id, AS_OF, "sms", body=draft)
        assert r.template_version is None
        assert r.body == "李四：已逾期45天，请于2026年8月22日前还款¥50,000.00。回复TD退订"
        with pytest.raises(Invalid):  # reminder_overdue requires dpd
            service.preview(s, "reminder_overdue", case.account_id, AS_OF, body="{{ amount }}")
    with Session(engine) as s:
        assert s.scalar(select(func.count(MessageTemplate.id))) == 0


def test_accounts_are_found_by_reference(engine: Engine, case: Case) -> None:
    with Session(engine) as s:
        assert service.find_account(s, case.account_ref) == case.account_id
        assert service.find_account(s, str(case.account_id)) == case.account_id
        with pytest.raises(NotFound):
            service.find_account(s, "NOPE")
