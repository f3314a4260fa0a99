"""Use cases of message templates (消息模板): save a template as a new version (checked first:
an invalid template stores nothing), read the active version of a name and language (the
shipped catalogue when none is stored), the history of a template, the sender details of a
creditor or portfolio, and rendering a template for an account.

`render` is what a sender calls: it renders the active template for an account on a date and
channel and returns the subject, the body, the template version and the sha256 of what was
rendered, and which variables still hold a placeholder. `preview` renders the same way for a
person looking at it, a draft text included; neither writes anything.

Amounts are those the ledger holds (penalty and late fees as accrued by the last daily cycle),
written with Babel in the debtor's language from integer minor units (never float).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import babel
import jinja2
import polars as pl
from babel.dates import format_date
from babel.numbers import get_currency_precision
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from recoup.channels import catalog, rules
from recoup.channels.models import MessageTemplate, SenderProfile
from recoup.compliance import wording
from recoup.core.db import utcnow
from recoup.core.errors import Blocked, Conflict, DomainError, FieldError, Invalid, NotFound
from recoup.core.money import exponent
from recoup.core.settings import get_settings
from recoup.ledger import service as ledger
from recoup.ledger.models import Account, ContactPoint, Creditor, Debtor, Instalment, Portfolio
from recoup.strategy import rules as strategy_rules

SHIPPED = 0  # the version number of the catalogue's default


@dataclass(frozen=True)
class Template:
    """One version of a template in one language: stored (version >= 1) or shipped (0)."""

    name: str
    language: str
    version: int
    kind: str
    subject: str
    body: str
    channels: tuple[str, ...]
    requires: tuple[str, ...]
    is_active: bool
    checksum: str
    created_by: str | None = None
    created_at: dt.datetime | None = None
    note: str | None = None

    @property
    def source(self) -> str:
        return "catalog" if self.version == SHIPPED else "stored"


@dataclass(frozen=True)
class Rendered:
    """A template rendered for one account: what is sent, and how to prove it later.

    `sha256` is rules.content_hash(subject, body). `placeholders` are the variables the text
    uses whose value is a stand-in (a sender detail nobody has set, such as the service phone or
    the self-service link): a sender may refuse to send while there are any."""

    name: str
    language: str
    channel: str
    template_version: int | None  # None: a draft (preview of unsaved text)
    subject: str
    body: str
    sha256: str
    placeholders: tuple[str, ...] = ()


@dataclass
class MessageContext:
    """The variables for one account, the placeholders among them, and what letters also
    need (the amount by component, unformatted)."""

    values: dict[str, str]
    placeholders: set[str]
    language: str
    due: rules.DueNow
    currency: str
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- templates


def _checksum(
    kind: str, subject: str, body: str, channels: Sequence[str], req: Sequence[str]
) -> str:
    data = json.dumps([kind, subject, body, list(channels), list(req)], ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


def _shipped(name: str, language: str) -> Template | None:
    entry = catalog.catalog().get(name)
    if entry is None or language not in entry:
        return None
    kind = entry.get("kind", "message")
    subject, body = entry[language].get("subject", ""), entry[language]["body"]
    channels = tuple(entry.get("channels") or ())
    requires = tuple(entry.get("requires") or ())
    return Template(
        name=name,
        language=language,
        version=SHIPPED,
        kind=kind,
        subject=subject,
        body=body,
        channels=channels,
        requires=requires,
        is_active=True,
        checksum=_checksum(kind, subject, body, channels, requires),
    )


def _stored(row: MessageTemplate) -> Template:
    return Template(
        name=row.name,
        language=row.language,
        version=row.version,
        kind=row.kind,
        subject=row.subject,
        body=row.body,
        channels=tuple(row.channels),
        requires=tuple(row.requires or ()),
        is_active=row.is_active,
        checksum=row.checksum,
        created_by=row.created_by,
        created_at=row.created_at,
        note=row.note,
    )


def _check_language(language: str) -> str:
    if language not in rules.LANGUAGES:
        raise Invalid("language", language, f"must be one of {', '.join(rules.LANGUAGES)}")
    return language


def _active_row(session: Session, name: str, language: str) -> MessageTemplate | None:
    return session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.name == name,
            MessageTemplate.language == language,
            MessageTemplate.is_active.is_(True),
        )
    )


def get_template(session: Session, name: str, language: str) -> Template:
    """The active version of a template: the latest saved (or restored) one, else the shipped
    default."""
    _check_language(language)
    row = _active_row(session, name, language)
    if row is not None:
        return _stored(row)
    shipped = _shipped(name, language)
    if shipped is None:
        raise NotFound(f"no template {name!r} in {language} / 没有模板 {name!r}（{language}）")
    return shipped


def template_names(session: Session) -> list[str]:
    stored = session.scalars(select(MessageTemplate.name).distinct())
    return sorted(set(catalog.known_templates()) | set(stored))


def list_templates(session: Session) -> list[Template]:
    """The active version of every template in every language it exists in."""
    rows = {
        (r.name, r.language): r
        for r in session.scalars(select(MessageTemplate).where(MessageTemplate.is_active))
    }
    out = []
    for name in template_names(session):
        for language in rules.LANGUAGES:
            row = rows.get((name, language))
            found = _stored(row) if row is not None else _shipped(name, language)
            if found is not None:
                out.append(found)
    return out


def template_history(session: Session, name: str, language: str | None = None) -> list[Template]:
    """Every saved version, newest first, then the shipped default (version 0)."""
    languages = [_check_language(language)] if language else list(rules.LANGUAGES)
    rows = session.scalars(
        select(MessageTemplate)
        .where(MessageTemplate.name == name, MessageTemplate.language.in_(languages))
        .order_by(MessageTemplate.language.desc(), MessageTemplate.version.desc())
    ).all()
    out = [_stored(r) for r in rows]
    any_active = {r.language for r in rows if r.is_active}
    for lang in languages:
        shipped = _shipped(name, lang)
        if shipped is not None:
            out.append(replace(shipped, is_active=lang not in any_active))
    if not out:
        raise NotFound(f"no template {name!r} / 没有模板 {name!r}")
    return out


def _invalid(problems: Sequence[rules.Problem]) -> Invalid:
    return Invalid(errors=[FieldError(p.field, p.value, p.why) for p in problems])


def save_template(
    session: Session,
    name: str,
    language: str,
    subject: str,
    body: str,
    channels: Sequence[str],
    requires: Sequence[str],
    user: str,
    note: str | None = None,
    kind: str | None = None,
) -> Template:
    """Check a template and store it as the next version of its name and language, which
    becomes the active one. Refused (Invalid, every problem named by field with its reason in
    English and Chinese) and nothing stored when the check fails. Saving the text of the active
    version again stores nothing and returns it. `kind` defaults to that of the active version
    (or message)."""
    if kind is None:
        try:
            kind = get_template(session, name, language).kind
        except (NotFound, Invalid):
            kind = "message"
    channels, requires = list(channels), list(requires)
    problems = rules.validate_template(name, language, subject, body, channels, requires, kind)
    if problems:
        raise _invalid(problems)
    digest = _checksum(kind, subject, body, channels, requires)
    active = _active_row(session, name, language)
    if active is not None and active.checksum == digest:
        return _stored(active)
    latest = session.scalar(
        select(func.max(MessageTemplate.version)).where(
            MessageTemplate.name == name, MessageTemplate.language == language
        )
    )
    session.execute(
        update(MessageTemplate)
        .where(MessageTemplate.name == name, MessageTemplate.language == language)
        .values(is_active=False)
    )
    row = MessageTemplate(
        name=name,
        language=language,
        version=(latest or 0) + 1,
        kind=kind,
        subject=subject,
        body=body,
        channels=channels,
        requires=requires,
        is_active=True,
        checksum=digest,
        created_by=user,
        created_at=utcnow(),
        note=note,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # another save of the same name and language won the race
        raise Conflict(
            f"template {name!r} ({language}) was saved by someone else at the same time; "
            f"try again / 模板 {name!r}（{language}）刚被他人保存，请重试"
        ) from exc
    return _stored(row)


# --------------------------------------------------------------------------- sender details


def _owner(
    session: Session, creditor: str | int | None, portfolio: str | int | None
) -> tuple[Any, int]:
    """The column and id of a sender profile's owner: a creditor or a portfolio, by id or
    code."""
    if (creditor is None) == (portfolio is None):
        raise Invalid("owner", None, "give a creditor or a portfolio / 请指定债权人或资产包")
    model: type[Creditor] | type[Portfolio] = Creditor if creditor is not None else Portfolio
    value = creditor if creditor is not None else portfolio
    what = "creditor" if creditor is not None else "portfolio"
    ident = None
    if isinstance(value, str):
        ident = session.scalar(select(model.id).where(model.code == value))
        if ident is None and value.isascii() and value.isdigit():
            value = int(value)
    if ident is None and isinstance(value, int) and 0 < value <= ledger.MAX_ID:
        ident = session.scalar(select(model.id).where(model.id == value))
    if ident is None:
        raise NotFound(f"no {what} {value!r} / 没有{'债权人' if creditor else '资产包'} {value!r}")
    column = SenderProfile.creditor_id if creditor is not None else SenderProfile.portfolio_id
    return column, int(ident)


def get_sender_profile(
    session: Session, *, creditor: str | int | None = None, portfolio: str | int | None = None
) -> SenderProfile | None:
    """The sender details set for a creditor or a portfolio (by id or code), if any."""
    column, ident = _owner(session, creditor, portfolio)
    return session.scalar(select(SenderProfile).where(column == ident))


def set_sender_profile(
    session: Session,
    details: Mapping[str, Any],
    user: str,
    *,
    creditor: str | int | None = None,
    portfolio: str | int | None = None,
) -> SenderProfile:
    """Set the sender details of a creditor or of one portfolio (by id or code), replacing
    what was set: the texts messages and letters quote (service phone, how to dispute, how to
    pay, the law firm …). Checked first, wording included; nothing is stored on error."""
    column, ident = _owner(session, creditor, portfolio)
    problems = rules.validate_sender_details(details)
    if problems:
        raise _invalid(problems)
    row = session.scalar(select(SenderProfile).where(column == ident))
    if row is None:
        row = (
            SenderProfile(creditor_id=ident)
            if creditor is not None
            else SenderProfile(portfolio_id=ident)
        )
        session.add(row)
    row.details = dict(details)
    row.updated_by = user
    row.updated_at = utcnow()
    session.flush()
    return row


def sender_details(session: Session, portfolio: Portfolio) -> dict[str, Any]:
    """The creditor's details overlaid with the portfolio's."""
    rows = session.scalars(
        select(SenderProfile).where(
            (SenderProfile.creditor_id == portfolio.creditor_id)
            | (SenderProfile.portfolio_id == portfolio.id)
        )
    ).all()
    out: dict[str, Any] = {}
    for row in sorted(rows, key=lambda r: r.portfolio_id is not None):
        out.update(row.details or {})
    return out


# --------------------------------------------------------------------------- context


def find_account(session: Session, ref: str) -> int:
    """An account's external reference (or its id) -> its id."""
    ident = session.scalar(select(Account.id).where(Account.external_ref == ref))
    if ident is None and ref.isascii() and ref.isdigit() and 0 < int(ref) <= ledger.MAX_ID:
        ident = session.scalar(select(Account.id).where(Account.id == int(ref)))
    if ident is None:
        raise NotFound(f"no account {ref!r} / 没有账户 {ref!r}")
    return int(ident)


def channel_of(action: str | None) -> str | None:
    """A strategy action (call_task, lawyer_letter …) or a channel -> the channel."""
    if action is None or action in rules.CHANNELS:
        return action
    if action in strategy_rules.ACTIONS:
        return strategy_rules.ACTIONS[action][0]
    raise Invalid(
        "channel", action, f"must be one of {', '.join(rules.CHANNELS)} or a strategy action"
    )


def address_points(session: Session, debtor_ids: Iterable[int]) -> dict[int, tuple[int, str]]:
    """Each debtor's best usable postal address contact point, in one query: its own, active,
    not marked do-not-contact; verified first, then the oldest. Point id and text."""
    ids = set(debtor_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(ContactPoint.debtor_id, ContactPoint.id, ContactPoint.value)
        .where(
            ContactPoint.debtor_id.in_(ids),
            ContactPoint.kind == "address",
            ContactPoint.owner == "self",
            ContactPoint.is_active.is_(True),
            ContactPoint.do_not_contact.is_(False),
        )
        .order_by(ContactPoint.is_verified.desc(), ContactPoint.id)
    ).all()
    out: dict[int, tuple[int, str]] = {}
    for debtor_id, point_id, value in rows:
        out.setdefault(int(debtor_id), (int(point_id), str(value)))
    return out


def _debtor_address(session: Session, debtor: Debtor) -> str | None:
    if debtor.address:
        return debtor.address
    point = address_points(session, [debtor.id]).get(debtor.id)
    return point[1] if point else None


def build_context(
    session: Session,
    account_id: int,
    as_of: dt.date,
    action: str | None = None,
    language: str | None = None,
    *,
    deadline_days: int = rules.DEFAULT_DEADLINE_DAYS,
) -> MessageContext:
    """The variables of an account on a date, in the debtor's language unless one is given,
    for a channel (or strategy action): the opt-out instruction depends on it."""
    if deadline_days < 0:
        raise Invalid("deadline_days", deadline_days, "must not be negative / 不能为负数")
    channel = channel_of(action)
    account = ledger.get_account(session, account_id)
    debtor = ledger.get_debtor(session, account.debtor_id)
    portfolio = ledger.get_portfolio(session, account.portfolio_id)
    creditor: Creditor = ledger.get_creditor(session, portfolio.creditor_id)
    lang = _language_code(language) if language else rules.template_language(debtor.language)
    left = [
        rules.InstalmentLeft(
            i.due_date,
            i.principal_due - i.principal_paid,
            i.interest_due - i.interest_paid,
            i.fee_due - i.fee_paid,
        )
        for i in ledger.instalments_of(session, account.id)
        if not i.is_paid
    ]
    details = sender_details(session, portfolio)
    address = _debtor_address(session, debtor)
    return _context_of(
        account,
        debtor,
        portfolio,
        creditor,
        left,
        details,
        address,
        as_of,
        channel,
        lang,
        deadline_days,
        rules.format_amount,
        rules.format_day,
    )


def _context_of(
    account: Any,
    debtor: Any,
    portfolio: Any,
    creditor: Any,
    left: list[rules.InstalmentLeft],
    details: Mapping[str, Any],
    address: str | None,
    as_of: dt.date,
    channel: str | None,
    lang: str,
    deadline_days: int,
    format_amount: Callable[[int, str, str], str],
    format_day: Callable[[dt.date | None, str], str],
) -> MessageContext:
    """The variables of an account from what was read of it (ORM objects or rows with the same
    attribute names): one place for `build_context` and `render_batch`."""
    due = rules.due_now(left, account.penalty_balance, account.late_fee_balance, as_of)
    currency = account.currency

    def money(minor: int) -> str:
        return format_amount(minor, currency, lang)

    balance = (
        account.principal_balance
        + account.interest_balance
        + account.fee_balance
        + account.penalty_balance
        + account.late_fee_balance
        - account.credit_balance
    )
    placeholders: set[str] = set()

    def detail(key: str) -> str:
        value, is_placeholder = rules.sender_value(details, key, lang)
        if is_placeholder:
            placeholders.add(key)
        return value

    ref = quote(account.external_ref, safe="")
    self_service = f"{detail('self_service_base_url').rstrip('/')}/{ref}"
    if "self_service_base_url" in placeholders:
        placeholders.add("self_service_link")
    opt_out = ""
    if channel is not None:
        unsubscribe = f"{detail('unsubscribe_base_url').rstrip('/')}/{ref}"
        if "unsubscribe_base_url" in placeholders:
            # No link of the creditor's own: Recoup's unsubscribe page, signed for the account.
            placeholders.discard("unsubscribe_base_url")
            settings = get_settings()
            token = rules.unsubscribe_token(settings.secret_key, "a", account.id)
            unsubscribe = f"{settings.public_base_url.rstrip('/')}/unsubscribe/{token}"
        opt_out = rules.opt_out_text(channel, lang, unsubscribe)
    if not address:
        placeholders.add("debtor_address")
    values = {
        "debtor_name": debtor.name,
        "debtor_address": address or "—",
        "account_ref": account.external_ref,
        "currency": currency,
        "amount": money(due.total),
        "amount_principal": money(due.principal),
        "amount_interest": money(due.interest),
        "amount_fees": money(due.fee),
        "amount_penalty": money(due.penalty),
        "amount_late_fee": money(due.late_fee),
        "overdue_amount": money(due.overdue),
        "balance": money(balance),
        "due_date": format_day(due.due_date, lang),
        "dpd": str(due.dpd),
        "overdue_instalments": str(due.overdue_instalments),
        "deadline": format_day(as_of + dt.timedelta(days=deadline_days), lang),
        "today": format_day(as_of, lang),
        "creditor_name": creditor.name,
        "creditor_address": detail("creditor_address"),
        "portfolio_name": portfolio.name,
        "service_phone": detail("service_phone"),
        "dispute_contact": detail("dispute_contact"),
        "payment_instructions": detail("payment_instructions"),
        "self_service_link": self_service,
        "opt_out": opt_out,
        "collector_name": detail("collector_name"),
        "law_firm": detail("law_firm"),
    }
    assert set(values) == set(rules.VARIABLES), "every variable has a value"
    placeholders &= set(rules.VARIABLES)
    return MessageContext(values, placeholders, lang, due, currency)


def message_context(
    session: Session,
    account_id: int,
    as_of: dt.date,
    action: str | None = None,
    language: str | None = None,
    *,
    deadline_days: int = rules.DEFAULT_DEADLINE_DAYS,
) -> dict[str, str]:
    """Every template variable of an account on a date, written in the debtor's language."""
    return build_context(
        session, account_id, as_of, action, language, deadline_days=deadline_days
    ).values


# --------------------------------------------------------------------------- rendering


def _render(template: Template, ctx: MessageContext, channel: str, version: int | None) -> Rendered:
    subject = rules.render_text(template.subject, ctx.values)
    body = rules.render_text(template.body, ctx.values)
    # The guard checks the text as it goes out, too: a sender detail or a name could carry
    # wording the template itself does not.
    finding = wording.first_finding(f"{subject}\n{body}")
    if finding is not None:
        raise Blocked(
            finding.rule_id,
            f"“{finding.matched}”: {finding.reason_en} / {finding.reason_zh}",
        )
    used = rules.template_variables(template.subject) | rules.template_variables(template.body)
    return Rendered(
        name=template.name,
        language=ctx.language,
        channel=channel,
        template_version=version,
        subject=subject,
        body=body,
        sha256=rules.content_hash(subject, body),
        placeholders=tuple(sorted(ctx.placeholders & used)),
    )


def _language_code(language: str) -> str:
    lang = rules.template_language(language, default="")
    if not lang:
        raise Invalid("language", language, f"must be one of {', '.join(rules.LANGUAGES)}")
    return lang


def _language(session: Session, account_id: int, language: str | None) -> str:
    if language:
        return _language_code(language)
    account = ledger.get_account(session, account_id)
    return rules.template_language(ledger.get_debtor(session, account.debtor_id).language)


def _check_channel(template: Template, channel: str | None) -> str:
    chosen = channel_of(channel) if channel else template.channels[0]
    if chosen not in template.channels:
        raise Invalid(
            "channel",
            channel,
            f"template {template.name!r} is written for {', '.join(template.channels)}"
            f" / 模板 {template.name!r} 适用于 {'、'.join(template.channels)}",
        )
    assert chosen is not None
    return chosen


def require_law_firm(template: Template, ctx: MessageContext) -> None:
    """A lawyer letter goes out only in the name of a law firm the creditor has instructed
    (seeds 004 §4.1: 通过律师发出律师函); one without is the fake 律师函 of seeds 003 #24."""
    if template.kind == "lawyer_letter" and "law_firm" in ctx.placeholders:
        raise Invalid(
            "law_firm",
            None,
            "no law firm is set for this creditor or portfolio; set law_firm in its sender"
            " details before sending a lawyer letter / 该债权人或资产包未设置受托律师事务所"
            "（发件方资料 law_firm），不能发送律师函",
        )


def render_with_context(
    session: Session,
    name: str,
    account_id: int,
    as_of: dt.date,
    channel: str | None,
    language: str | None = None,
    *,
    deadline_days: int = rules.DEFAULT_DEADLINE_DAYS,
    strict: bool = True,
    subject: str | None = None,
    body: str | None = None,
) -> tuple[Template, MessageContext, Rendered]:
    """`render` (strict) or `preview` (not strict, optionally of draft text), returning the
    template and the variables too (the letter layouts need them)."""
    lang = _language(session, account_id, language)
    try:
        template = get_template(session, name, lang)
    except NotFound:
        if strict or (subject is None and body is None):
            raise
        template = Template(name, lang, SHIPPED, "message", "", "", rules.CHANNELS, (), True, "")
    version: int | None = template.version
    if not strict and (subject is not None or body is not None):
        draft_subject = template.subject if subject is None else subject
        draft_body = template.body if body is None else body
        problems = rules.validate_template(
            name,
            lang,
            draft_subject,
            draft_body,
            template.channels,
            template.requires,
            template.kind,
        )
        if problems:
            raise _invalid(problems)
        template = replace(template, subject=draft_subject, body=draft_body)
        version = None
    chosen = _check_channel(template, channel)
    ctx = build_context(session, account_id, as_of, chosen, lang, deadline_days=deadline_days)
    if strict:
        require_law_firm(template, ctx)
    return template, ctx, _render(template, ctx, chosen, version)


def render(
    session: Session,
    name: str,
    account_id: int,
    as_of: dt.date,
    channel: str,
    language: str | None = None,
    *,
    deadline_days: int = rules.DEFAULT_DEADLINE_DAYS,
) -> Rendered:
    """Render the active version of a template for an account, to be sent on `channel` (a
    channel or a strategy action), in the debtor's language unless one is given. Refused when
    the template is not written for the channel, and for a lawyer letter without a law firm;
    Blocked when the rendered text carries forbidden wording. Writes nothing."""
    return render_with_context(
        session, name, account_id, as_of, channel, language, deadline_days=deadline_days
    )[2]


def preview(
    session: Session,
    name: str,
    account_id: int,
    as_of: dt.date,
    channel: str | None = None,
    language: str | None = None,
    *,
    subject: str | None = None,
    body: str | None = None,
    deadline_days: int = rules.DEFAULT_DEADLINE_DAYS,
) -> Rendered:
    """What `render` would produce, for a person to look at: the channel defaults to the
    template's first, placeholders are allowed (a lawyer letter without a law firm shows the
    stand-in), and with `subject`/`body` a draft not saved yet is checked like a save and
    rendered (template_version None). Writes nothing."""
    return render_with_context(
        session,
        name,
        account_id,
        as_of,
        channel,
        language,
        deadline_days=deadline_days,
        strict=False,
        subject=subject,
        body=body,
    )[2]


# --------------------------------------------------------------------------- batches
#
# The outbox renders a whole batch of messages at once: what `render` reads with about eight
# queries per message is read here with one query per table for the batch, Jinja templates are
# compiled once, Babel's locales are parsed once, and the wording guard checks the batch's
# texts in one vectorised pass. Same results as `render`, message by message (a test holds
# them to it).


@dataclass(frozen=True)
class RenderRequest:
    """One message of a batch: template `name` for an account, to be sent on `channel`."""

    name: str
    account_id: int
    channel: str


@functools.lru_cache(maxsize=8)
def _babel_locale(language: str) -> babel.Locale:
    return babel.Locale.parse(rules.LOCALES[language])


def _plain_amount(minor: int, exp: int) -> str:
    """|minor| in major units with its `exp` decimals, thousands grouped: 1,234,567.89."""
    return f"{Decimal(abs(minor)).scaleb(-exp):,.{exp}f}"


@functools.lru_cache(maxsize=256)
def _amount_shape(currency: str, language: str) -> tuple[str, str, str, str] | None:
    """What Babel writes around the digits of an amount in this currency and language (the
    prefix and suffix of positive and of negative amounts), learnt from two probes, when
    Babel writes every amount as the digits grouped by three with exactly the currency's
    decimals (its decimals are Recoup's, and the probes show the grouping); else None."""
    exp = exponent(currency)
    if get_currency_precision(currency) != exp:
        return None
    shape: list[str] = []
    for probe in (123_456_789_012, -123_456_789_012):
        written = rules.format_amount(probe, currency, language)
        digits = _plain_amount(probe, exp)
        if written.count(digits) != 1:
            return None
        shape.extend(written.split(digits))
    return shape[0], shape[1], shape[2], shape[3]


@functools.lru_cache(maxsize=65_536)
def _batch_amount(minor: int, currency: str, language: str) -> str:
    """rules.format_amount, without asking Babel for each amount (a tenth of a millisecond
    each, eight amounts a message) where the currency's shape is known."""
    shape = _amount_shape(currency, language)
    if shape is None:
        return rules.format_amount(minor, currency, language)
    before, after = (shape[0], shape[1]) if minor >= 0 else (shape[2], shape[3])
    return f"{before}{_plain_amount(minor, exponent(currency))}{after}"


@functools.lru_cache(maxsize=4096)
def _batch_day(day: dt.date | None, language: str) -> str:
    if day is None:
        return rules.format_day(None, language)
    return format_date(day, "long", locale=_babel_locale(language))


@functools.lru_cache(maxsize=512)
def _compiled(source: str) -> jinja2.Template:
    return rules.text_environment().from_string(source)


@functools.lru_cache(maxsize=512)
def _variables(source: str) -> frozenset[str]:
    return frozenset(rules.template_variables(source))


def _render_text(source: str, values: Mapping[str, str]) -> str:
    # rules.render_text with the compiled template kept.
    text = _compiled(source).render(dict(values))
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _rows_by_id(session: Session, table: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {r.id: r for r in session.execute(select(table).where(table.c.id.in_(ids)))}


def render_batch(
    session: Session,
    requests: Sequence[RenderRequest],
    as_of: dt.date,
    *,
    deadline_days: int = rules.DEFAULT_DEADLINE_DAYS,
) -> list[Rendered | DomainError]:
    """`render(session, r.name, r.account_id, as_of, r.channel)` for every request, in order:
    the rendering, or the error `render` would raise for that one (NotFound, Invalid, Blocked).
    Writes nothing."""
    if deadline_days < 0:
        raise Invalid("deadline_days", deadline_days, "must not be negative / 不能为负数")
    accounts = _rows_by_id(session, Account.__table__, {r.account_id for r in requests})
    debtors = _rows_by_id(session, Debtor.__table__, {a.debtor_id for a in accounts.values()})
    portfolios = _rows_by_id(
        session, Portfolio.__table__, {a.portfolio_id for a in accounts.values()}
    )
    creditors = _rows_by_id(
        session, Creditor.__table__, {p.creditor_id for p in portfolios.values()}
    )
    left: dict[int, list[rules.InstalmentLeft]] = {a: [] for a in accounts}
    if accounts:
        ledger.store_schedules(session, list(accounts))
        i = Instalment.__table__.c
        for row in session.execute(
            select(
                i.account_id,
                i.due_date,
                i.principal_due - i.principal_paid,
                i.interest_due - i.interest_paid,
                i.fee_due - i.fee_paid,
            )
            .where(i.account_id.in_(set(accounts)), i.is_paid.is_(False))
            .order_by(i.account_id, i.seq)
        ):
            left[row[0]].append(rules.InstalmentLeft(row[1], row[2], row[3], row[4]))
    details = _sender_details_of(session, portfolios)
    addresses = _addresses_of(session, [d for d in debtors.values() if not d.address])
    templates: dict[tuple[str, str], Template | DomainError] = {}
    contexts: dict[tuple[int, str], MessageContext] = {}
    out: list[Rendered | DomainError] = []
    for request in requests:
        try:
            out.append(
                _render_one(
                    session,
                    request,
                    as_of,
                    deadline_days,
                    accounts,
                    debtors,
                    portfolios,
                    creditors,
                    left,
                    details,
                    addresses,
                    templates,
                    contexts,
                )
            )
        except DomainError as exc:
            out.append(exc)
    return _check_wording(out)


def _render_one(
    session: Session,
    request: RenderRequest,
    as_of: dt.date,
    deadline_days: int,
    accounts: Mapping[int, Any],
    debtors: Mapping[int, Any],
    portfolios: Mapping[int, Any],
    creditors: Mapping[int, Any],
    left: Mapping[int, list[rules.InstalmentLeft]],
    details: Mapping[int, dict[str, Any]],
    addresses: Mapping[int, str],
    templates: dict[tuple[str, str], Template | DomainError],
    contexts: dict[tuple[int, str], MessageContext],
) -> Rendered:
    account = accounts.get(request.account_id)
    if account is None:
        raise NotFound(f"account {request.account_id} does not exist")
    debtor = debtors.get(account.debtor_id)
    if debtor is None:
        raise NotFound(f"debtor {account.debtor_id} does not exist")
    lang = rules.template_language(debtor.language)
    key = (request.name, lang)
    if key not in templates:
        try:
            templates[key] = get_template(session, request.name, lang)
        except DomainError as exc:
            templates[key] = exc
    found = templates[key]
    if isinstance(found, DomainError):
        raise found
    chosen = _check_channel(found, request.channel)
    ctx = contexts.get((account.id, chosen))
    if ctx is None:
        portfolio = portfolios[account.portfolio_id]
        ctx = _context_of(
            account,
            debtor,
            portfolio,
            creditors[portfolio.creditor_id],
            left[account.id],
            details[portfolio.id],
            debtor.address or addresses.get(debtor.id),
            as_of,
            chosen,
            lang,
            deadline_days,
            _batch_amount,
            _batch_day,
        )
        contexts[(account.id, chosen)] = ctx
    require_law_firm(found, ctx)
    subject = _render_text(found.subject, ctx.values)
    body = _render_text(found.body, ctx.values)
    used = _variables(found.subject) | _variables(found.body)
    return Rendered(
        name=found.name,
        language=ctx.language,
        channel=chosen,
        template_version=found.version,
        subject=subject,
        body=body,
        sha256=rules.content_hash(subject, body),
        placeholders=tuple(sorted(ctx.placeholders & used)),
    )


def _check_wording(out: list[Rendered | DomainError]) -> list[Rendered | DomainError]:
    """The wording guard on every rendered text, as `_render` asks it: one vectorised pass
    finds the texts with a finding, the scalar check names it."""
    texts = [(n, f"{r.subject}\n{r.body}") for n, r in enumerate(out) if isinstance(r, Rendered)]
    if not texts:
        return out
    found = wording.check_texts(pl.Series([t for _, t in texts], dtype=pl.String))["rule_id"]
    for (n, text), rule_id in zip(texts, found.to_list(), strict=True):
        if rule_id is None:
            continue
        finding = wording.first_finding(text)
        if finding is not None:
            out[n] = Blocked(
                finding.rule_id,
                f"“{finding.matched}”: {finding.reason_en} / {finding.reason_zh}",
            )
    return out


def _sender_details_of(
    session: Session, portfolios: Mapping[int, Any]
) -> dict[int, dict[str, Any]]:
    """`sender_details` of each portfolio, in one query."""
    if not portfolios:
        return {}
    creditor_ids = {p.creditor_id for p in portfolios.values()}
    rows = session.execute(
        select(SenderProfile.creditor_id, SenderProfile.portfolio_id, SenderProfile.details).where(
            SenderProfile.creditor_id.in_(creditor_ids)
            | SenderProfile.portfolio_id.in_(set(portfolios))
        )
    ).all()
    by_creditor = {r.creditor_id: r.details for r in rows if r.creditor_id is not None}
    by_portfolio = {r.portfolio_id: r.details for r in rows if r.portfolio_id is not None}
    out: dict[int, dict[str, Any]] = {}
    for pid, portfolio in portfolios.items():
        merged: dict[str, Any] = {}
        merged.update(by_creditor.get(portfolio.creditor_id) or {})
        merged.update(by_portfolio.get(pid) or {})
        out[pid] = merged
    return out


def _addresses_of(session: Session, debtors: Sequence[Any]) -> dict[int, str]:
    """`_debtor_address` of debtors without an address of their own, in one query."""
    points = address_points(session, [d.id for d in debtors])
    return {debtor_id: value for debtor_id, (_, value) in points.items()}
