"""Pure rules of message templates (消息模板): which variables a template may use, whether a
template may be saved, how it is rendered, and how amounts and dates are written in the
debtor's language.

A template is Jinja2 text (a subject and a body, in Chinese or English) rendered in a sandbox
with strict undefined variables: a template can only name the variables listed in `VARIABLES`,
and rendering fails rather than print an empty gap. Text messages are rendered without
escaping; letters are laid out in HTML (recoup.channels.letters), where every value is escaped.

`validate_template` returns every problem at once, each naming its field (subject, body,
channels, requires, kind) with a reason in English and Chinese:

- Jinja2 syntax errors, with the line;
- variables that are not in `VARIABLES`, by name;
- wording the compliance guard forbids (recoup.compliance.wording), with the phrase matched;
- channels that are not Recoup's channels;
- required elements: every variable in `requires` must appear in the body, and a formal notice
  or a lawyer letter must require (and so state) the amount, the days overdue, the deadline,
  the creditor and how to dispute;
- an SMS or email template without the opt-out instruction (`{{ opt_out }}`).

No database, no clock: the date of a message is passed in.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jinja2
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from recoup.compliance import wording
from recoup.core.money import to_major
from recoup.ledger import rules as ledger_rules
from recoup.strategy import rules as strategy_rules

LANGUAGES: Final = ("zh", "en")
# Babel locale of each template language.
LOCALES: Final = {"zh": "zh_CN", "en": "en"}
# The channels a template can be written for: those of the strategy's actions (sms, email,
# voice, call, letter, visit). Call and visit templates are scripts for the collector.
CHANNELS: Final[tuple[str, ...]] = tuple(
    dict.fromkeys(channel for channel, _ in strategy_rules.ACTIONS.values() if channel)
)
# Electronic messages must tell the recipient how to opt out (compliance rule electronic.opt_out).
ELECTRONIC: Final = ("sms", "email")
# message: any text; formal_notice: 催收函 (a formal demand letter); lawyer_letter: 律师函.
KINDS: Final = ("message", "formal_notice", "lawyer_letter")
FORMAL_KINDS: Final = ("formal_notice", "lawyer_letter")
# What a formal notice or a lawyer letter must state: the amount, the days overdue, the
# deadline, the creditor and how to dispute the debt.
FORMAL_REQUIRES: Final = ("amount", "dpd", "deadline", "creditor_name", "dispute_contact")
NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # as strategy steps name templates
MAX_SUBJECT: Final = 200
MAX_BODY: Final = 20_000
DEFAULT_DEADLINE_DAYS: Final = 7


# --------------------------------------------------------------------------- variables


@dataclass(frozen=True)
class Variable:
    """One template variable: what it holds, in both languages, and an example value."""

    name: str
    en: str
    zh: str
    example_en: str
    example_zh: str


def _v(name: str, en: str, zh: str, example_en: str, example_zh: str | None = None) -> Variable:
    return Variable(name, en, zh, example_en, example_en if example_zh is None else example_zh)


_VARIABLES: Final = (
    _v("debtor_name", "the debtor's name", "债务人姓名或名称", "Zhang San", "张三"),
    _v(
        "debtor_address",
        "the debtor's postal address",
        "债务人通讯地址",
        "1 Renmin Road, Shanghai",
        "上海市人民路1号",
    ),
    _v("account_ref", "the account's reference", "账户编号", "L100234"),
    _v("currency", "the account's currency (ISO code)", "币种（ISO代码）", "CNY"),
    _v(
        "amount",
        "the total due now, with currency: the overdue amount (overdue instalments, penalty"
        " interest and late fees); before the due date, the next instalment",
        "当前应还总额（含币种）：逾期金额（逾期期供、罚息、滞纳金）；未逾期时为下一期应还金额",
        "CN¥1,230.00",
        "¥1,230.00",
    ),
    _v(
        "amount_principal",
        "principal within the amount",
        "应还总额中的本金",
        "CN¥1,000.00",
        "¥1,000.00",
    ),
    _v("amount_interest", "interest within the amount", "应还总额中的利息", "CN¥100.00", "¥100.00"),
    _v("amount_fees", "fees within the amount", "应还总额中的费用", "CN¥0.00", "¥0.00"),
    _v(
        "amount_penalty",
        "penalty interest within the amount",
        "应还总额中的罚息",
        "CN¥80.00",
        "¥80.00",
    ),
    _v(
        "amount_late_fee", "late fees within the amount", "应还总额中的滞纳金", "CN¥50.00", "¥50.00"
    ),
    _v(
        "overdue_amount",
        "the overdue amount: overdue instalments plus penalty interest and late fees",
        "逾期金额：逾期期供加罚息和滞纳金",
        "CN¥1,230.00",
        "¥1,230.00",
    ),
    _v(
        "balance",
        "everything owed, including principal not yet due",
        "全部欠款余额（含未到期本金）",
        "CN¥9,870.00",
        "¥9,870.00",
    ),
    _v(
        "due_date",
        "the oldest unpaid due date; before it, the next due date",
        "最早未还到期日；未逾期时为下一到期日",
        "March 15, 2026",
        "2026年3月15日",
    ),
    _v("dpd", "days past due (a number)", "逾期天数（数字）", "45"),
    _v(
        "overdue_instalments",
        "how many instalments are overdue (a number)",
        "逾期期数（数字）",
        "2",
    ),
    _v(
        "deadline",
        "the date to pay or answer by (the message date plus a number of days)",
        "还款或答复期限（消息日期加若干天）",
        "May 6, 2026",
        "2026年5月6日",
    ),
    _v("today", "the date of the message", "消息日期", "April 29, 2026", "2026年4月29日"),
    _v("creditor_name", "the creditor's name", "债权人名称", "Eastern Bank", "东方银行"),
    _v(
        "creditor_address",
        "the creditor's postal address",
        "债权人通讯地址",
        "8 Bund Road, Shanghai",
        "上海市外滩路8号",
    ),
    _v("portfolio_name", "the portfolio's name", "资产包名称", "Cards 2026", "信用卡2026"),
    _v("service_phone", "the customer service phone number", "客服电话", "400-000-0000"),
    _v(
        "dispute_contact",
        "how to dispute the debt (phone, address or email)",
        "提出异议的途径（电话、地址或邮箱）",
        "400-000-0000 or disputes@bank.example",
        "400-000-0000或disputes@bank.example",
    ),
    _v(
        "payment_instructions",
        "how and where to pay",
        "还款方式与账户",
        "Pay into your usual repayment account.",
        "请通过原还款账户还款。",
    ),
    _v(
        "self_service_link",
        "the debtor's self-service payment link",
        "自助还款链接",
        "https://pay.example/s/L100234",
    ),
    _v(
        "opt_out",
        "the opt-out instruction of the channel (empty for letters and calls)",
        "本渠道的退订方式（信函和电话为空）",
        "Reply STOP to opt out",
        "回复TD退订",
    ),
    _v(
        "collector_name",
        "who signs for the creditor (team or collector)",
        "代表债权人署名的团队或催收员",
        "Customer Service",
        "客户服务部",
    ),
    _v(
        "law_firm",
        "the law firm acting for the creditor (lawyer letters)",
        "受债权人委托的律师事务所（律师函）",
        "Example & Partners LLP",
        "示例律师事务所",
    ),
)
VARIABLES: Final[dict[str, Variable]] = {v.name: v for v in _VARIABLES}


def sample_context(language: str) -> dict[str, str]:
    """Every variable with its example value in the language (for checks and docs)."""
    return {v.name: v.example_zh if language == "zh" else v.example_en for v in _VARIABLES}


# --------------------------------------------------------------------------- languages


def template_language(code: str | None, default: str = "zh") -> str:
    """A debtor's language ("zh-CN", "zh", "en", "en-GB" …) -> the template language."""
    if not code:
        return default
    base = code.strip().replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else default


def format_amount(minor: int, currency: str, language: str) -> str:
    """Integer minor units -> the amount with its currency, written as the language writes it
    (¥1,234.50 in Chinese, CN¥1,234.50 in English). Exact: through Decimal, never float."""
    # decimal_quantization off: never round to CLDR's digits where they are fewer than the
    # minor unit Recoup keeps (recoup.core.money.exponent).
    return format_currency(
        to_major(minor, currency), currency, locale=LOCALES[language], decimal_quantization=False
    )


def format_day(day: dt.date | None, language: str) -> str:
    """2026年11月30日 / November 30, 2026; a dash when there is no date."""
    if day is None:
        return "—"
    return format_date(day, "long", locale=LOCALES[language])


# --------------------------------------------------------------------------- what is due now


@dataclass(frozen=True)
class InstalmentLeft:
    """What is left to pay of one unpaid instalment, by component (minor units)."""

    due_date: dt.date
    principal: int
    interest: int
    fee: int


@dataclass(frozen=True)
class DueNow:
    """What the debtor is asked to pay on a date, by component (minor units)."""

    principal: int
    interest: int
    fee: int
    penalty: int
    late_fee: int
    overdue: int  # the overdue amount: overdue instalments, penalty and late fees
    due_date: dt.date | None
    dpd: int
    overdue_instalments: int

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.fee + self.penalty + self.late_fee


def due_now(
    instalments: Iterable[InstalmentLeft], penalty: int, late_fee: int, as_of: dt.date
) -> DueNow:
    """The amount due on `as_of`: every instalment due before it (overdue, as the daily cycle
    counts them), or — when none is — the next instalment; penalty and late fees on top."""
    unpaid = sorted(instalments, key=lambda i: i.due_date)
    overdue = [i for i in unpaid if i.due_date < as_of]
    asked = overdue or [i for i in unpaid if i.due_date >= as_of][:1]
    principal = sum(i.principal for i in asked)
    interest = sum(i.interest for i in asked)
    fee = sum(i.fee for i in asked)
    oldest = overdue[0].due_date if overdue else None
    overdue_total = (
        sum(i.principal + i.interest + i.fee for i in overdue) + penalty + late_fee
        if overdue
        else penalty + late_fee
    )
    return DueNow(
        principal=principal,
        interest=interest,
        fee=fee,
        penalty=penalty,
        late_fee=late_fee,
        overdue=overdue_total,
        due_date=asked[0].due_date if asked else None,
        dpd=ledger_rules.days_past_due(oldest, as_of),
        overdue_instalments=len(overdue),
    )


# --------------------------------------------------------------------------- opt-out


def opt_out_text(channel: str, language: str, unsubscribe_url: str) -> str:
    """The opt-out instruction of a channel (短信: 回复TD退订); empty where there is none."""
    if channel == "sms":
        return "回复TD退订" if language == "zh" else "Reply STOP to opt out"
    if channel == "email":
        if language == "zh":
            return f"如不希望再收到此类邮件，请访问 {unsubscribe_url} 退订。"
        return f"To stop receiving these emails, unsubscribe at {unsubscribe_url}"
    return ""


# --------------------------------------------------------------------------- Jinja2


def text_environment() -> SandboxedEnvironment:
    """Text messages: sandboxed, strict (an unknown or missing variable is an error), not
    escaped."""
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False
    )


def html_environment(loader: jinja2.BaseLoader | None = None) -> SandboxedEnvironment:
    """HTML letters: sandboxed, strict, every value escaped."""
    return SandboxedEnvironment(loader=loader, undefined=jinja2.StrictUndefined, autoescape=True)


_ENV = text_environment()


def template_variables(source: str) -> set[str]:
    """The variables a template reads (raises jinja2.TemplateSyntaxError on bad syntax)."""
    return set(meta.find_undeclared_variables(_ENV.parse(source)))


def render_text(source: str, context: Mapping[str, Any]) -> str:
    """Render one template text: lines stripped at the end, blank ends removed."""
    text = _ENV.from_string(source).render(dict(context))
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def content_hash(subject: str, body: str) -> str:
    """sha256 of a rendered message: what was sent can be proved later."""
    return hashlib.sha256(f"{subject}\n\n{body}".encode()).hexdigest()


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    """Why a template cannot be saved: the field, the value at fault (a variable name, a
    phrase, the offending line), and the reason in both languages."""

    field: str
    value: Any
    code: str
    why_en: str
    why_zh: str

    @property
    def why(self) -> str:
        return f"{self.why_en} / {self.why_zh}"


def _excerpt(text: str, limit: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line_of(source: str, pattern: re.Pattern[str]) -> int | None:
    for n, line in enumerate(source.splitlines(), start=1):
        if pattern.search(line):
            return n
    return None


_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def _where(line: int | None) -> tuple[str, str]:
    return (f"line {line}: ", f"第{line}行：") if line else ("", "")


def _check_text(field: str, source: str, language: str) -> tuple[list[Problem], set[str] | None]:
    """Syntax, unknown variables, and wording of one text; returns the variables it uses
    (None when it cannot be parsed)."""
    problems: list[Problem] = []
    try:
        ast = _ENV.parse(source)
        _ENV.compile(ast)  # unknown filters and tests are found here
    except jinja2.TemplateSyntaxError as exc:
        line = exc.lineno or 1
        lines = source.splitlines()
        text = lines[line - 1] if 0 < line <= len(lines) else source
        en, zh = _where(line)
        return [
            Problem(
                field,
                _excerpt(text),
                "syntax",
                f"{en}template syntax error: {exc.message}",
                f"{zh}模板语法错误：{exc.message}",
            )
        ], None
    used = set(meta.find_undeclared_variables(ast))
    for name in sorted(used - set(VARIABLES)):
        en, zh = _where(_line_of(source, re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}\b")))
        close = difflib.get_close_matches(name, VARIABLES, n=1)
        hint_en = f"did you mean {close[0]!r}? " if close else ""
        hint_zh = f"是否应为 {close[0]!r}？" if close else ""
        problems.append(
            Problem(
                field,
                name,
                "unknown_variable",
                f"{en}unknown variable {name!r}; {hint_en}(list: `recoup template variables`)",
                f"{zh}未知变量 {name!r}；{hint_zh}（变量列表：`recoup template variables`）",
            )
        )
    # Wording is checked on the source (with its line) and on the text as a debtor reads it,
    # variables filled with neutral examples, so that a phrase cannot hide behind a variable.
    context: dict[str, Any] = dict.fromkeys(used - set(VARIABLES), "")
    context.update(sample_context(language))
    try:
        rendered = render_text(source, context)
    except Exception as exc:  # the sandbox refuses, a filter fails on a string …
        problems.append(
            Problem(
                field,
                _excerpt(source),
                "render",
                f"cannot be rendered: {exc}",
                f"无法渲染：{exc}",
            )
        )
        rendered = ""
    findings: list[tuple[wording.Finding, int | None]] = []
    # A variable can be empty (opt_out in a letter), so the text without its variables too.
    bare = _EXPRESSION.sub("", source)
    for text, with_line in ((source, True), (rendered, False), (bare, False)):
        for finding in wording.check_text(text):
            at = _finding_line(text, finding.rule_id) if with_line else None
            findings.append((finding, at))
    for finding, at in _distinct(findings):
        en, zh = _where(at)
        problems.append(
            Problem(
                field,
                finding.matched,
                finding.rule_id,
                f"{en}forbidden wording “{finding.matched}” ({finding.rule_id}): "
                f"{finding.reason_en}",
                f"{zh}禁用措辞“{finding.matched}”（{finding.rule_id}）：{finding.reason_zh}",
            )
        )
    return problems, used


def _finding_line(text: str, rule_id: str) -> int | None:
    for n, part in enumerate(text.splitlines(), start=1):
        if any(f.rule_id == rule_id for f in wording.check_text(part)):
            return n
    return None


def _distinct(
    findings: list[tuple[wording.Finding, int | None]],
) -> list[tuple[wording.Finding, int | None]]:
    """One finding per phrase: "坐牢" is not reported again inside "让你坐牢", and a phrase
    found in the source is not reported again in the rendered text."""
    out: list[tuple[wording.Finding, int | None]] = []
    for finding, line in findings:
        if any(
            f.rule_id == finding.rule_id and finding.matched in f.matched
            for f, _ in findings
            if f.matched != finding.matched
        ):
            continue
        if any(f.rule_id == finding.rule_id and f.matched == finding.matched for f, _ in out):
            continue
        out.append((finding, line))
    return out


def validate_template(
    name: str,
    language: str,
    subject: str,
    body: str,
    channels: Sequence[str],
    requires: Sequence[str] = (),
    kind: str = "message",
) -> list[Problem]:
    """Every reason the template cannot be saved (empty: it can be)."""
    problems: list[Problem] = []
    if not NAME_PATTERN.fullmatch(name or ""):
        problems.append(
            Problem(
                "name",
                name,
                "name",
                "a template name is lower case letters, digits and _ (up to 64), starting"
                " with a letter",
                "模板名称须为小写字母、数字和下划线（最多64个字符），以字母开头",
            )
        )
    if language not in LANGUAGES:
        problems.append(
            Problem(
                "language",
                language,
                "language",
                f"must be one of {', '.join(LANGUAGES)}",
                f"须为 {'、'.join(LANGUAGES)} 之一",
            )
        )
    if kind not in KINDS:
        problems.append(
            Problem(
                "kind",
                kind,
                "kind",
                f"must be one of {', '.join(KINDS)}",
                f"须为 {'、'.join(KINDS)} 之一",
            )
        )
    problems += _check_channels(channels)
    if not body.strip():
        problems.append(Problem("body", "", "empty", "the body is empty", "正文为空"))
    if len(body) > MAX_BODY:
        problems.append(
            Problem(
                "body",
                _excerpt(body),
                "too_long",
                f"longer than {MAX_BODY} characters",
                f"超过{MAX_BODY}个字符",
            )
        )
    if len(subject) > MAX_SUBJECT or "\n" in subject.strip():
        problems.append(
            Problem(
                "subject",
                _excerpt(subject),
                "subject_line",
                f"a subject is one line of at most {MAX_SUBJECT} characters",
                f"标题须为一行，最多{MAX_SUBJECT}个字符",
            )
        )
    if not subject.strip() and {"email", "letter"} & set(channels):
        problems.append(
            Problem(
                "subject",
                "",
                "empty",
                "emails and letters need a subject",
                "电子邮件和信函须有标题",
            )
        )
    lang = language if language in LANGUAGES else "zh"
    subject_problems, _ = _check_text("subject", subject, lang)
    body_problems, used = _check_text("body", body, lang)
    problems += subject_problems + body_problems
    body_parsed = used is not None
    used = used or set()
    problems += _check_requires(name, kind, requires, used, body_ok=body_parsed)
    if body_parsed and body.strip() and set(channels) & set(ELECTRONIC) and "opt_out" not in used:
        problems.append(
            Problem(
                "body",
                "opt_out",
                "electronic.opt_out",
                "an SMS or email template must include {{ opt_out }}, the opt-out instruction",
                "短信或电子邮件模板须包含退订方式 {{ opt_out }}",
            )
        )
    return problems


def _check_channels(channels: Sequence[str]) -> list[Problem]:
    problems: list[Problem] = []
    if not channels:
        problems.append(
            Problem(
                "channels",
                [],
                "empty",
                f"give at least one of {', '.join(CHANNELS)}",
                f"至少选择一个渠道：{'、'.join(CHANNELS)}",
            )
        )
    for i, channel in enumerate(channels):
        if channel not in CHANNELS:
            problems.append(
                Problem(
                    f"channels[{i}]",
                    channel,
                    "unknown_channel",
                    f"unknown channel; the channels are {', '.join(CHANNELS)}",
                    f"未知渠道；可用渠道：{'、'.join(CHANNELS)}",
                )
            )
    if len(set(channels)) != len(channels):
        problems.append(
            Problem(
                "channels", list(channels), "duplicate", "a channel is listed twice", "渠道重复"
            )
        )
    return problems


def is_formal(name: str, kind: str) -> bool:
    """A formal notice or lawyer letter, by kind or by the name strategies give it."""
    return kind in FORMAL_KINDS or name in FORMAL_KINDS


def _check_requires(
    name: str, kind: str, requires: Sequence[str], used: set[str], body_ok: bool
) -> list[Problem]:
    problems: list[Problem] = []
    for i, var in enumerate(requires):
        if var not in VARIABLES:
            problems.append(
                Problem(
                    f"requires[{i}]",
                    var,
                    "unknown_variable",
                    f"unknown variable {var!r} (list: `recoup template variables`)",
                    f"未知变量 {var!r}（变量列表：`recoup template variables`）",
                )
            )
    if is_formal(name, kind):
        missing = [v for v in FORMAL_REQUIRES if v not in requires]
        if missing:
            problems.append(
                Problem(
                    "requires",
                    missing,
                    "formal_requires",
                    "a formal notice or lawyer letter must state the amount, the days overdue,"
                    " the deadline, the creditor and how to dispute; add to requires: "
                    + ", ".join(missing),
                    "催收函或律师函须载明欠款金额、逾期天数、还款期限、债权人及异议途径；"
                    "请在 requires 中加入：" + "、".join(missing),
                )
            )
    if body_ok:
        for var in dict.fromkeys([*requires, *(FORMAL_REQUIRES if is_formal(name, kind) else ())]):
            if var in VARIABLES and var not in used:
                problems.append(
                    Problem(
                        "body",
                        var,
                        "required_element",
                        f"the template requires {{{{ {var} }}}} but the body does not use it",
                        f"本模板要求载明 {{{{ {var} }}}}，但正文未使用",
                    )
                )
    return problems


# --------------------------------------------------------------------------- sender details

# What a creditor or portfolio can set about itself; each maps to the variable of that name
# except the two base URLs, from which self_service_link and the email opt-out link are made.
SENDER_KEYS: Final = (
    "service_phone",
    "dispute_contact",
    "payment_instructions",
    "collector_name",
    "creditor_address",
    "law_firm",
    "self_service_base_url",
    "unsubscribe_base_url",
)
MAX_SENDER_VALUE: Final = 500


@dataclass(frozen=True)
class Default:
    """The value used when a creditor has not set one. A placeholder must be replaced before
    real messages go out: a rendered message lists the placeholders it contains."""

    zh: str
    en: str
    is_placeholder: bool


SENDER_DEFAULTS: Final[dict[str, Default]] = {
    "service_phone": Default("我司客服热线", "our customer service line", True),
    "dispute_contact": Default(
        "我司客服热线或书面异议函", "our customer service line or in writing", True
    ),
    # Sensible as it stands: a debtor is never asked to pay into anyone's personal account.
    "payment_instructions": Default(
        "请通过原还款账户或我司官方还款渠道还款，请勿向任何个人账户转账。",
        "Please pay into your usual repayment account or through our official payment"
        " channels; never pay into a personal account.",
        False,
    ),
    "collector_name": Default("客户服务部", "Customer Service", False),
    "creditor_address": Default("—", "—", True),
    "law_firm": Default("（受托律师事务所）", "(the law firm instructed)", True),
    "self_service_base_url": Default("https://pay.example/s", "https://pay.example/s", True),
    "unsubscribe_base_url": Default(
        "https://pay.example/unsubscribe", "https://pay.example/unsubscribe", True
    ),
}


def sender_value(details: Mapping[str, Any], key: str, language: str) -> tuple[str, bool]:
    """The value of a sender detail in a language and whether it is a placeholder. A detail is
    one text for both languages or {"zh": …, "en": …}."""
    value = details.get(key)
    if isinstance(value, Mapping):
        value = value.get(language) or next((v for v in value.values() if v), None)
    if isinstance(value, str) and value.strip():
        return value.strip(), False
    default = SENDER_DEFAULTS[key]
    return (default.zh if language == "zh" else default.en), default.is_placeholder


def validate_sender_details(details: Mapping[str, Any]) -> list[Problem]:
    """Unknown keys, values that are not text (or {zh, en} text), too long, not a URL where a
    URL is expected, or wording the compliance guard forbids."""
    problems: list[Problem] = []
    for key, value in details.items():
        if key not in SENDER_KEYS:
            problems.append(
                Problem(
                    key,
                    value,
                    "unknown_key",
                    f"unknown sender detail; the details are {', '.join(SENDER_KEYS)}",
                    f"未知的发件方资料项；可设置：{'、'.join(SENDER_KEYS)}",
                )
            )
            continue
        texts: dict[str, Any]
        if isinstance(value, Mapping):
            texts = {f"{key}.{lang}": v for lang, v in value.items()}
            bad_langs = [lang for lang in value if lang not in LANGUAGES]
            if bad_langs:
                problems.append(
                    Problem(
                        key,
                        bad_langs,
                        "language",
                        f"languages are {', '.join(LANGUAGES)}",
                        f"语言须为 {'、'.join(LANGUAGES)}",
                    )
                )
                continue
        else:
            texts = {key: value}
        for field, text in texts.items():
            if not isinstance(text, str):
                problems.append(Problem(field, text, "type", "must be text", "须为文本"))
                continue
            if len(text) > MAX_SENDER_VALUE:
                problems.append(
                    Problem(
                        field,
                        _excerpt(text),
                        "too_long",
                        f"longer than {MAX_SENDER_VALUE} characters",
                        f"超过{MAX_SENDER_VALUE}个字符",
                    )
                )
            if key.endswith("_url") and not re.fullmatch(r"https?://[^\s]+", text.strip()):
                problems.append(
                    Problem(
                        field,
                        text,
                        "url",
                        "must be an http(s) URL",
                        "须为 http(s) 网址",
                    )
                )
            finding = wording.first_finding(text)
            if finding is not None:
                problems.append(
                    Problem(
                        field,
                        finding.matched,
                        finding.rule_id,
                        f"forbidden wording “{finding.matched}” ({finding.rule_id}): "
                        f"{finding.reason_en}",
                        f"禁用措辞“{finding.matched}”（{finding.rule_id}）：{finding.reason_zh}",
                    )
                )
    return problems


def unsubscribe_token(secret: str, subject: str, ident: int) -> str:
    """A signed token for an unsubscribe link: `<id>.<mac>` for one message (subject "m"),
    `a<id>.<mac>` for an account's emails (subject "a", the link in an email's text)."""
    scope = "unsubscribe" if subject == "m" else f"unsubscribe-{subject}"
    mac = hmac.new(secret.encode(), f"{scope}:{ident}".encode(), hashlib.sha256)
    return f"{'' if subject == 'm' else subject}{ident}.{mac.hexdigest()[:32]}"


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, int] | None:
    """(subject, id) of a valid token; None for a forged or malformed one."""
    head, _, _mac = token.partition(".")
    subject = "a" if head.startswith("a") else "m"
    digits = head[1:] if subject == "a" else head
    if not token.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    if not hmac.compare_digest(unsubscribe_token(secret, subject, int(digits)), token):
        return None
    return subject, int(digits)
