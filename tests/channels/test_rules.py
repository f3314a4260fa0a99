"""Pure rules of message templates: what may be saved (syntax, variables, wording, channels,
required elements, opt-out), what is due now, and how amounts and dates are written."""

from __future__ import annotations

import datetime as dt

import pytest

from recoup.channels import catalog, rules
from recoup.channels.rules import InstalmentLeft, validate_template

D = dt.date


def problems(body: str, **kw: object) -> list[tuple[str, object, str]]:
    args: dict[str, object] = {
        "name": "t",
        "language": "zh",
        "subject": "提醒",
        "body": body,
        "channels": ["letter"],
        "requires": [],
        "kind": "message",
    }
    args.update(kw)
    return [(p.field, p.value, p.code) for p in validate_template(**args)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "language"),
    [(n, lang) for n in sorted(catalog.known_templates()) for lang in rules.LANGUAGES],
)
def test_every_shipped_template_is_valid(name: str, language: str) -> None:
    t = catalog.catalog()[name]
    found = validate_template(
        name,
        language,
        t[language]["subject"],
        t[language]["body"],
        t["channels"],
        t.get("requires", []),
        t.get("kind", "message"),
    )
    assert found == [], [p.why for p in found]


def test_every_template_the_default_strategy_names_is_shipped_in_both_languages() -> None:
    from recoup.strategy import rules as strategy_rules
    from recoup.strategy.service import default_source

    doc = strategy_rules.parse_document(default_source())
    named = {step.template for seg in doc.segments for step in seg.path if step.template}
    assert named, "the default strategy names templates"
    for name in named:
        assert set(rules.LANGUAGES) <= set(catalog.catalog()[name]), name


def test_an_unknown_variable_is_refused_by_name_with_its_line() -> None:
    found = validate_template("t", "zh", "提醒", "您好\n{{ debtor_nam }}，请还款", ["letter"])
    assert [(p.field, p.value, p.code) for p in found] == [
        ("body", "debtor_nam", "unknown_variable")
    ]
    assert "line 2" in found[0].why_en and "第2行" in found[0].why_zh
    assert "debtor_name" in found[0].why_en  # the likely intended one


def test_unknown_variables_in_the_subject_are_named_on_the_subject() -> None:
    assert problems("{{ amount }}", subject="{{ amont }}到期") == [
        ("subject", "amont", "unknown_variable")
    ]


def test_forbidden_wording_is_refused_with_the_phrase_and_the_reason_in_both_languages() -> None:
    found = validate_template(
        "t", "zh", "提醒", "{{ debtor_name }}：\n不还钱就去你单位闹。", ["letter"]
    )
    assert [(p.field, p.code) for p in found] == [("body", "wording.threat")]
    p = found[0]
    assert p.value == "去你单位闹"
    assert "“去你单位闹”" in p.why_en and "Threatens" in p.why_en and "line 2" in p.why_en
    assert "“去你单位闹”" in p.why_zh and "威胁" in p.why_zh


def test_english_wording_is_checked_too() -> None:
    found = validate_template(
        "t", "en", "Notice", "Pay {{ amount }} or we will come to your home.", ["letter"]
    )
    assert [(p.code, p.value) for p in found] == [("wording.threat", "come to your home")]


def test_a_phrase_cannot_hide_behind_a_variable() -> None:
    # "坐{{ x }}牢" reads "坐牢" once the (empty) variable is filled in.
    body = "{{ debtor_name }}，不还就让你坐{{ opt_out }}牢"
    assert ("body", "wording.threat") in [(f, c) for f, _, c in problems(body)]


def test_lawful_wording_passes() -> None:
    body = "如您对债务有异议，您有权向人民法院提起诉讼。委托人可能依法维护其合法权益。{{ amount }}"
    assert problems(body) == []


def test_a_syntax_error_is_refused_with_its_line() -> None:
    found = validate_template("t", "zh", "提醒", "第一行\n{% if dpd %}逾期{{ dpd }}天", ["letter"])
    assert [(p.field, p.code) for p in found] == [("body", "syntax")]
    assert "line 2" in found[0].why_en and "第2行" in found[0].why_zh
    assert found[0].value == "{% if dpd %}逾期{{ dpd }}天"


def test_an_unknown_filter_is_a_syntax_error() -> None:
    assert problems("{{ amount|shout }}") == [("body", "{{ amount|shout }}", "syntax")]


def test_the_sandbox_refuses_attribute_tricks() -> None:
    codes = [c for _, _, c in problems("{{ debtor_name.__class__.__mro__ }}")]
    assert codes == ["render"]


def test_unknown_channels_are_named_by_position() -> None:
    assert problems("{{ amount }}", channels=["letter", "fax"]) == [
        ("channels[1]", "fax", "unknown_channel")
    ]
    assert problems("{{ amount }}", channels=[]) == [("channels", [], "empty")]


def test_sms_and_email_templates_must_carry_the_opt_out() -> None:
    assert problems("请还款{{ amount }}", channels=["sms"]) == [
        ("body", "opt_out", "electronic.opt_out")
    ]
    assert problems("请还款{{ amount }}{{ opt_out }}", channels=["sms"]) == []
    assert problems("请还款{{ amount }}", channels=["letter", "call"]) == []


def test_required_variables_must_be_used() -> None:
    assert problems("逾期{{ dpd }}天", requires=["amount", "dpd"]) == [
        ("body", "amount", "required_element")
    ]
    assert problems("{{ amount }}", requires=["amout"]) == [
        ("requires[0]", "amout", "unknown_variable")
    ]


FORMAL_ZH = (
    "{{ debtor_name }}：您在{{ creditor_name }}的账户已逾期{{ dpd }}天，应还{{ amount }}。"
    "请于{{ deadline }}前还款。如有异议请通过{{ dispute_contact }}提出。"
)


def test_a_formal_notice_without_the_deadline_is_refused() -> None:
    body = FORMAL_ZH.replace("请于{{ deadline }}前还款。", "请尽快还款。")
    assert problems(body, name="formal_notice", requires=list(rules.FORMAL_REQUIRES)) == [
        ("body", "deadline", "required_element")
    ]


def test_a_formal_notice_must_require_every_element() -> None:
    # Dropping an element from `requires` does not get a formal notice through.
    found = problems(FORMAL_ZH, name="formal_notice", requires=["amount", "dpd"])
    assert found == [
        ("requires", ["deadline", "creditor_name", "dispute_contact"], "formal_requires")
    ]
    # A letter of kind formal_notice under another name is held to the same.
    found = problems("{{ amount }}", name="final_demand", kind="formal_notice", requires=[])
    assert ("requires", list(rules.FORMAL_REQUIRES), "formal_requires") in found
    assert {v for f, v, c in found if c == "required_element"} == {
        "dpd", "deadline", "creditor_name", "dispute_contact"
    }  # fmt: skip
    assert problems(FORMAL_ZH, name="formal_notice", requires=list(rules.FORMAL_REQUIRES)) == []


def test_a_lawyer_letter_is_a_formal_letter() -> None:
    assert problems("{{ amount }}", name="lawyer_letter", requires=["amount"])[0][2] == (
        "formal_requires"
    )


def test_subject_rules() -> None:
    assert problems("{{ amount }}", subject="", channels=["email"]) == [
        ("subject", "", "empty"),
        ("body", "opt_out", "electronic.opt_out"),
    ]
    assert problems("{{ amount }}", subject="", channels=["letter"]) == [("subject", "", "empty")]
    assert problems("{{ amount }}{{ opt_out }}", subject="", channels=["sms"]) == []
    assert problems("{{ amount }}", subject="a\nb")[0][2] == "subject_line"


def test_name_language_and_kind_are_checked() -> None:
    found = problems("{{ amount }}", name="Bad Name", language="fr", kind="memo")
    assert [(f, c) for f, _, c in found] == [
        ("name", "name"),
        ("language", "language"),
        ("kind", "kind"),
    ]


def test_every_problem_has_both_languages() -> None:
    found = validate_template(
        "formal_notice", "zh", "", "{{ nope }} 去你单位闹 {% if", ["fax", "email"], ["amont"]
    )
    assert found
    for p in found:
        assert p.why_en and p.why_zh and p.why == f"{p.why_en} / {p.why_zh}"


# --------------------------------------------------------------------------- rendering


def test_rendering_is_strict_and_not_escaped_for_text() -> None:
    ctx = rules.sample_context("zh") | {"debtor_name": "<b>张三</b> & Co"}
    assert rules.render_text("尊敬的{{ debtor_name }}  \n\n", ctx) == "尊敬的<b>张三</b> & Co"
    with pytest.raises(Exception, match="amount"):
        rules.render_text("{{ amount }}", {})


def test_html_environment_escapes_every_value() -> None:
    env = rules.html_environment()
    out = env.from_string("<p>{{ name }}</p>").render(name="<script>x</script>")
    assert out == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


def test_content_hash_changes_with_subject_and_body() -> None:
    h = rules.content_hash("a", "b")
    assert len(h) == 64
    assert h != rules.content_hash("a", "c") != rules.content_hash("b", "b")
    assert h == rules.content_hash("a", "b")


def test_variables_reads_jinja_syntax() -> None:
    assert catalog.variables("{{ amount }} {% if dpd > 30 %}{{ deadline|upper }}{% endif %}") == {
        "amount",
        "dpd",
        "deadline",
    }


def test_templates_with_opt_out_are_the_sms_and_email_ones() -> None:
    with_opt_out = catalog.templates_with_opt_out()
    for name, t in catalog.catalog().items():
        if set(t["channels"]) & {"sms", "email"}:
            assert name in with_opt_out
    assert "lawyer_letter" not in with_opt_out


# --------------------------------------------------------------------------- money, dates


@pytest.mark.parametrize(
    ("minor", "currency", "language", "text"),
    [
        (123456, "CNY", "zh", "¥1,234.56"),
        (123456, "CNY", "en", "CN¥1,234.56"),
        (5, "CNY", "zh", "¥0.05"),
        (100000000001, "CNY", "zh", "¥1,000,000,000.01"),
        (123456, "USD", "en", "$1,234.56"),
        (123456, "USD", "zh", "US$1,234.56"),
        (5000, "JPY", "en", "¥5,000"),
        (12345, "KWD", "en", "KWD12.345"),
        (12345, "XYZ", "en", "XYZ123.45"),  # not in CLDR: two decimals, as Recoup keeps it
    ],
)
def test_amounts_are_exact_with_the_currency_of_the_language(
    minor: int, currency: str, language: str, text: str
) -> None:
    assert rules.format_amount(minor, currency, language).replace("\xa0", " ") == text


def test_dates_in_each_language() -> None:
    assert rules.format_day(D(2026, 11, 30), "zh") == "2026年11月30日"
    assert rules.format_day(D(2026, 11, 30), "en") == "November 30, 2026"
    assert rules.format_day(None, "en") == "—"


@pytest.mark.parametrize(
    ("code", "language"),
    [("zh-CN", "zh"), ("zh", "zh"), ("zh_TW", "zh"), ("en", "en"), ("en-GB", "en"), (None, "zh")],
)
def test_debtor_language_to_template_language(code: str | None, language: str) -> None:
    assert rules.template_language(code) == language
    assert rules.template_language("fr", default="") == ""


def test_opt_out_per_channel_and_language() -> None:
    assert rules.opt_out_text("sms", "zh", "u") == "回复TD退订"
    assert rules.opt_out_text("sms", "en", "u") == "Reply STOP to opt out"
    assert "https://x/u/L1" in rules.opt_out_text("email", "zh", "https://x/u/L1")
    assert "unsubscribe at https://x/u/L1" in rules.opt_out_text("email", "en", "https://x/u/L1")
    assert rules.opt_out_text("letter", "zh", "u") == ""


# --------------------------------------------------------------------------- due now


def test_due_now_is_every_overdue_instalment_plus_penalty_and_late_fees() -> None:
    insts = [
        InstalmentLeft(D(2026, 2, 15), 100_000, 12_000, 500),
        InstalmentLeft(D(2026, 3, 15), 101_000, 11_000, 500),
        InstalmentLeft(D(2026, 4, 15), 102_000, 10_000, 500),
    ]
    due = rules.due_now(insts, penalty=2_600, late_fee=5_000, as_of=D(2026, 4, 1))
    assert (due.principal, due.interest, due.fee) == (201_000, 23_000, 1_000)
    assert due.total == 201_000 + 23_000 + 1_000 + 2_600 + 5_000
    assert due.overdue == due.total
    assert (due.due_date, due.dpd, due.overdue_instalments) == (D(2026, 2, 15), 45, 2)


def test_before_the_due_date_the_next_instalment_is_due() -> None:
    insts = [InstalmentLeft(D(2026, 4, 15), 102_000, 10_000, 0)]
    due = rules.due_now(insts, penalty=0, late_fee=0, as_of=D(2026, 4, 8))
    assert (due.total, due.overdue, due.due_date, due.dpd) == (112_000, 0, D(2026, 4, 15), 0)
    # On the due date itself the instalment is due, not yet overdue (as the daily cycle counts).
    due = rules.due_now(insts, penalty=0, late_fee=0, as_of=D(2026, 4, 15))
    assert (due.total, due.overdue, due.dpd) == (112_000, 0, 0)


def test_nothing_left_means_nothing_due() -> None:
    due = rules.due_now([], penalty=0, late_fee=0, as_of=D(2026, 4, 8))
    assert (due.total, due.due_date, due.dpd) == (0, None, 0)


# --------------------------------------------------------------------------- sender details


def test_sender_details_fall_back_to_marked_defaults() -> None:
    assert rules.sender_value({}, "service_phone", "zh") == ("我司客服热线", True)
    assert rules.sender_value({}, "payment_instructions", "en")[1] is False
    details = {"service_phone": "400-1", "law_firm": {"zh": "示例律师事务所", "en": "Ex LLP"}}
    assert rules.sender_value(details, "service_phone", "en") == ("400-1", False)
    assert rules.sender_value(details, "law_firm", "en") == ("Ex LLP", False)
    # A detail given in one language serves the other rather than a placeholder.
    assert rules.sender_value({"law_firm": {"zh": "示例律师事务所"}}, "law_firm", "en") == (
        "示例律师事务所",
        False,
    )


def test_sender_details_are_checked() -> None:
    found = rules.validate_sender_details(
        {
            "fax": "1",
            "service_phone": 400,
            "self_service_base_url": "pay.example",
            "payment_instructions": "不还钱就去你单位闹",
            "law_firm": {"fr": "x"},
        }
    )
    assert [(p.field, p.code) for p in found] == [
        ("fax", "unknown_key"),
        ("service_phone", "type"),
        ("self_service_base_url", "url"),
        ("payment_instructions", "wording.threat"),
        ("law_firm", "language"),
    ]
