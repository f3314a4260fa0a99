"""Ledger use cases: debtors, contact points, flags, accounts, payments and reversals.

Every function takes an open `Session` and leaves committing to the caller's transaction
(`recoup.core.db.transaction`), so one decision and everything it writes commit together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import available_timezones

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from recoup.core.db import utcnow
from recoup.core.errors import Conflict, FieldError, Invalid, NotFound
from recoup.core.settings import Settings, get_settings
from recoup.ledger import rules, schedules
from recoup.ledger.models import (
    Account,
    ChangeLog,
    ContactPoint,
    Creditor,
    Debtor,
    DebtorFlag,
    Instalment,
    LedgerEntry,
    Payment,
    Portfolio,
    Product,
)

PROFILE_FIELDS = (
    "kind",
    "name",
    "id_number",
    "birth_date",
    "employer",
    "income_band",
    "address",
    "region",
    "timezone",
    "language",
    "notes",
    "credit_rating",
    "night_contact_consent",
)
CONTACT_FIELDS = (
    "kind",
    "value",
    "owner",
    "owner_name",
    "is_verified",
    "has_consent",
    "do_not_contact",
    "is_active",
)
LANGUAGES = ("zh-CN", "en")
# Bounds that keep every product of the cycle's integer arithmetic inside 64 bits.
MAX_AMOUNT = 10**12  # minor units: 10 billion yuan
MAX_RATE_PPM = rules.PPM  # 100% a year
_ZONES: set[str] | None = None


def _zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones()
    return _ZONES


def _get(session: Session, model: type[Any], ident: int, what: str) -> Any:
    obj = session.get(model, ident)
    if obj is None:
        raise NotFound(f"{what} {ident} does not exist")
    return obj


# --------------------------------------------------------------------------- reference data


def create_creditor(session: Session, code: str, name: str, kind: str = "lender") -> Creditor:
    if kind not in ("lender", "company"):
        raise Invalid("kind", kind, "must be 'lender' or 'company'")
    if session.scalar(select(Creditor.id).where(Creditor.code == code)) is not None:
        raise Conflict(f"creditor {code!r} already exists")
    obj = Creditor(code=code, name=name, kind=kind)
    session.add(obj)
    session.flush()
    return obj


def create_portfolio(
    session: Session,
    code: str,
    name: str,
    creditor_id: int,
    *,
    currency: str = "CNY",
    jurisdiction: str = "CN",
    cap_preset: str = "cn_private_lending",
    cap_rate_ppm: int | None = None,
    waterfall: Sequence[str] = rules.DEFAULT_WATERFALL,
) -> Portfolio:
    errors: list[FieldError] = []
    if jurisdiction not in ("CN", "US"):
        errors.append(FieldError("jurisdiction", jurisdiction, "must be CN or US"))
    if cap_preset not in ("cn_private_lending", "annual_rate", "none"):
        errors.append(
            FieldError("cap_preset", cap_preset, "must be cn_private_lending, annual_rate or none")
        )
    if cap_preset == "annual_rate" and (cap_rate_ppm is None or cap_rate_ppm <= 0):
        errors.append(FieldError("cap_rate", cap_rate_ppm, "required and positive for annual_rate"))
    if sorted(waterfall) != sorted(rules.COMPONENTS):
        errors.append(
            FieldError(
                "waterfall", list(waterfall), f"must order exactly: {', '.join(rules.COMPONENTS)}"
            )
        )
    if len(currency) != 3 or not currency.isalpha():
        errors.append(FieldError("currency", currency, "must be an ISO 4217 code such as CNY"))
    if errors:
        raise Invalid(errors=errors)
    _get(session, Creditor, creditor_id, "creditor")
    if session.scalar(select(Portfolio.id).where(Portfolio.code == code)) is not None:
        raise Conflict(f"portfolio {code!r} already exists")
    obj = Portfolio(
        code=code,
        name=name,
        creditor_id=creditor_id,
        currency=currency.upper(),
        jurisdiction=jurisdiction,
        cap_preset=cap_preset,
        cap_rate_ppm=cap_rate_ppm,
        waterfall=list(waterfall),
    )
    session.add(obj)
    session.flush()
    return obj


def create_product(
    session: Session, code: str, name: str, portfolio_id: int, kind: str, **terms: Any
) -> Product:
    if kind not in ("loan", "invoice"):
        raise Invalid("kind", kind, "must be 'loan' or 'invoice'")
    _get(session, Portfolio, portfolio_id, "portfolio")
    if session.scalar(select(Product.id).where(Product.code == code)) is not None:
        raise Conflict(f"product {code!r} already exists")
    obj = Product(code=code, name=name, portfolio_id=portfolio_id, kind=kind, **terms)
    session.add(obj)
    session.flush()
    return obj


# --------------------------------------------------------------------------- debtors


def validate_profile(values: Mapping[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    if "kind" in values and values["kind"] not in ("person", "company"):
        errors.append(FieldError("kind", values["kind"], "must be 'person' or 'company'"))
    if "name" in values and not (values["name"] or "").strip():
        errors.append(FieldError("name", values["name"], "must not be empty"))
    tz = values.get("timezone")
    if tz is not None and tz not in _zones():
        errors.append(FieldError("timezone", tz, "not an IANA time zone such as Asia/Shanghai"))
    lang = values.get("language")
    if lang is not None and lang not in LANGUAGES:
        errors.append(FieldError("language", lang, f"must be one of {', '.join(LANGUAGES)}"))
    consent = values.get("night_contact_consent")
    if consent is not None and not isinstance(consent, bool):
        errors.append(FieldError("night_contact_consent", consent, "must be true or false"))
    return errors


def create_debtor(
    session: Session, external_ref: str, name: str, *, by: str = "system", **profile: Any
) -> Debtor:
    unknown = set(profile) - set(PROFILE_FIELDS)
    if unknown:
        raise Invalid(errors=[FieldError(f, profile[f], "unknown field") for f in sorted(unknown)])
    values = {"name": name, **profile}
    errors = validate_profile(values)
    if errors:
        raise Invalid(errors=errors)
    if session.scalar(select(Debtor.id).where(Debtor.external_ref == external_ref)) is not None:
        raise Conflict(f"debtor {external_ref!r} already exists")
    settings = get_settings()
    values.setdefault("timezone", settings.default_timezone)
    values.setdefault("language", settings.default_language)
    debtor = Debtor(external_ref=external_ref, **values)
    session.add(debtor)
    session.flush()
    return debtor


def _log_changes(
    session: Session,
    entity: str,
    entity_id: int,
    debtor_id: int,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    by: str,
) -> int:
    now = utcnow()
    n = 0
    for key, value in new.items():
        if old.get(key) != value:
            session.add(
                ChangeLog(
                    entity=entity,
                    entity_id=entity_id,
                    debtor_id=debtor_id,
                    field=key,
                    old_value=_text(old.get(key)),
                    new_value=_text(value),
                    changed_by=by,
                    changed_at=now,
                )
            )
            n += 1
    return n


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def update_debtor(
    session: Session, debtor_id: int, changes: Mapping[str, Any], *, by: str
) -> Debtor:
    """Change profile fields; every changed field is kept in the change log with who and when."""
    debtor: Debtor = _get(session, Debtor, debtor_id, "debtor")
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise Invalid(errors=[FieldError(f, changes[f], "unknown field") for f in sorted(unknown)])
    errors = validate_profile(changes)
    if errors:
        raise Invalid(errors=errors)
    old = {k: getattr(debtor, k) for k in changes}
    if _log_changes(session, "debtor", debtor.id, debtor.id, old, changes, by):
        for key, value in changes.items():
            setattr(debtor, key, value)
        debtor.updated_at = utcnow()
    session.flush()
    return debtor


def validate_contact(values: Mapping[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    kind = values.get("kind")
    if "kind" in values and kind not in rules.CONTACT_KINDS:
        errors.append(FieldError("kind", kind, f"must be one of {', '.join(rules.CONTACT_KINDS)}"))
    owner = values.get("owner")
    if "owner" in values and owner not in rules.CONTACT_OWNERS:
        errors.append(
            FieldError("owner", owner, f"must be one of {', '.join(rules.CONTACT_OWNERS)}")
        )
    value = values.get("value")
    if "value" in values:
        text = (value or "").strip()
        if not text:
            errors.append(FieldError("value", value, "must not be empty"))
        elif kind == "email" and ("@" not in text or text.startswith("@") or text.endswith("@")):
            errors.append(FieldError("value", value, "not an email address"))
        elif kind == "phone":
            digits = [c for c in text if c.isdigit()]
            if len(digits) < 5 or any(c not in "0123456789+-() " for c in text):
                errors.append(FieldError("value", value, "not a phone number"))
    return errors


def add_contact_point(
    session: Session,
    debtor_id: int,
    kind: str,
    value: str,
    *,
    owner: str = "self",
    by: str = "system",
    **extra: Any,
) -> ContactPoint:
    _get(session, Debtor, debtor_id, "debtor")
    values = {"kind": kind, "value": value, "owner": owner, **extra}
    unknown = set(values) - set(CONTACT_FIELDS)
    if unknown:
        raise Invalid(errors=[FieldError(f, values[f], "unknown field") for f in sorted(unknown)])
    errors = validate_contact(values)
    if errors:
        raise Invalid(errors=errors)
    cp = ContactPoint(debtor_id=debtor_id, **values)
    session.add(cp)
    session.flush()
    _log_changes(
        session, "contact_point", cp.id, debtor_id, {}, {"value": value, "owner": owner}, by
    )
    return cp


def update_contact_point(
    session: Session, contact_id: int, changes: Mapping[str, Any], *, by: str
) -> ContactPoint:
    cp: ContactPoint = _get(session, ContactPoint, contact_id, "contact point")
    unknown = set(changes) - set(CONTACT_FIELDS)
    if unknown:
        raise Invalid(errors=[FieldError(f, changes[f], "unknown field") for f in sorted(unknown)])
    errors = validate_contact({"kind": cp.kind, **changes})
    if errors:
        raise Invalid(errors=errors)
    old = {k: getattr(cp, k) for k in changes}
    if _log_changes(session, "contact_point", cp.id, cp.debtor_id, old, changes, by):
        for key, value in changes.items():
            setattr(cp, key, value)
        cp.updated_at = utcnow()
    session.flush()
    return cp


def set_flag(session: Session, debtor_id: int, flag: str, reason: str, *, by: str) -> DebtorFlag:
    _get(session, Debtor, debtor_id, "debtor")
    if flag not in rules.STOP_FLAGS:
        raise Invalid("flag", flag, f"must be one of {', '.join(rules.STOP_FLAGS)}")
    if not reason.strip():
        raise Invalid("reason", reason, "say why the flag is set")
    active = session.scalar(
        select(DebtorFlag).where(
            DebtorFlag.debtor_id == debtor_id,
            DebtorFlag.flag == flag,
            DebtorFlag.cleared_at.is_(None),
        )
    )
    if active is not None:
        raise Conflict(f"flag {flag} is already set on debtor {debtor_id}")
    row = DebtorFlag(debtor_id=debtor_id, flag=flag, reason=reason, set_by=by, set_at=utcnow())
    session.add(row)
    session.flush()
    return row


def clear_flag(session: Session, flag_id: int, reason: str, *, by: str) -> DebtorFlag:
    row: DebtorFlag = _get(session, DebtorFlag, flag_id, "flag")
    if row.cleared_at is not None:
        raise Conflict(f"flag {flag_id} was already cleared")
    if not reason.strip():
        raise Invalid("reason", reason, "say why the flag is cleared")
    row.cleared_at, row.cleared_by, row.clear_reason = utcnow(), by, reason
    session.flush()
    return row


def active_flags(session: Session, debtor_id: int) -> list[DebtorFlag]:
    return list(
        session.scalars(
            select(DebtorFlag)
            .where(DebtorFlag.debtor_id == debtor_id, DebtorFlag.cleared_at.is_(None))
            .order_by(DebtorFlag.id)
        )
    )


# --------------------------------------------------------------------------- accounts


@dataclass
class GivenInstalment:
    due_date: dt.date
    principal: int
    interest: int = 0
    fee: int = 0


def lpr_table(settings: Settings | None = None) -> list[tuple[dt.date, int]]:
    settings = settings or get_settings()
    return [(r.effective, r.rate_bp) for r in settings.lpr]


def create_account(
    session: Session,
    *,
    external_ref: str,
    debtor_id: int,
    portfolio_id: int,
    kind: str,
    principal: int,
    start_date: dt.date,
    product_id: int | None = None,
    term: int | None = None,
    method: str | None = None,
    due_date: dt.date | None = None,
    schedule: Sequence[GivenInstalment] | None = None,
    interest_rate_ppm: int | None = None,
    penalty_rate_ppm: int | None = None,
    late_fee_fixed: int | None = None,
    late_fee_rate_ppm: int | None = None,
    grace_days: int | None = None,
    currency: str | None = None,
    time_barred_on: dt.date | None = None,
) -> Account:
    """Open a loan (schedule generated or given) or an invoice (one due date).

    Terms not given are inherited from the product; the cap is resolved from the portfolio at
    the contract (start) date and stored on the account.
    """
    portfolio: Portfolio = _get(session, Portfolio, portfolio_id, "portfolio")
    _get(session, Debtor, debtor_id, "debtor")
    product: Product | None = None
    if product_id is not None:
        product = _get(session, Product, product_id, "product")
        if product.portfolio_id != portfolio_id:
            raise Invalid("product_id", product_id, "belongs to another portfolio")

    def term_of(name: str, given: Any, default: Any) -> Any:
        if given is not None:
            return given
        if product is not None:
            return getattr(product, name)
        return default

    interest = term_of("interest_rate_ppm", interest_rate_ppm, 0)
    terms = {
        "interest_rate_ppm": interest,
        "penalty_rate_ppm": term_of("penalty_rate_ppm", penalty_rate_ppm, 0),
        "late_fee_fixed": term_of("late_fee_fixed", late_fee_fixed, 0),
        "late_fee_rate_ppm": term_of("late_fee_rate_ppm", late_fee_rate_ppm, 0),
        "grace_days": term_of("grace_days", grace_days, 0),
    }
    errors: list[FieldError] = []
    if currency is not None and currency.upper() != portfolio.currency:
        errors.append(FieldError("currency", currency, f"the portfolio is in {portfolio.currency}"))
    if kind not in ("loan", "invoice"):
        errors.append(FieldError("kind", kind, "must be 'loan' or 'invoice'"))
    if principal <= 0:
        errors.append(FieldError("principal", principal, "must be positive"))
    elif principal > MAX_AMOUNT:
        errors.append(FieldError("principal", principal, f"at most {MAX_AMOUNT} minor units"))
    for name, value in terms.items():
        if value < 0:
            errors.append(FieldError(name, value, "must not be negative"))
        elif name.endswith("_ppm") and value > MAX_RATE_PPM:
            errors.append(FieldError(name, value, "at most 100% a year"))
        elif name == "late_fee_fixed" and value > MAX_AMOUNT:
            errors.append(FieldError(name, value, f"at most {MAX_AMOUNT} minor units"))
    if terms["grace_days"] > 365:
        errors.append(FieldError("grace_days", terms["grace_days"], "at most 365"))
    if terms["late_fee_rate_ppm"] > rules.PPM:
        errors.append(FieldError("late_fee_rate", terms["late_fee_rate_ppm"], "at most 100%"))
    try:
        cap = rules.resolve_cap(
            portfolio.cap_preset, portfolio.cap_rate_ppm, start_date, lpr_table()
        )
    except ValueError as exc:
        errors.append(FieldError("start_date", start_date.isoformat(), str(exc)))
        cap = None
    if cap is not None and interest > cap:
        errors.append(
            FieldError(
                "interest_rate",
                interest,
                f"exceeds the portfolio's cap of {cap / 10_000:.2f}% a year at the contract date",
            )
        )

    plan: list[rules.ScheduledInstalment] = []
    chosen_method = method or (product.method if product is not None and kind == "loan" else None)
    if kind == "invoice":
        if due_date is None:
            errors.append(FieldError("due_date", None, "an invoice needs a due date"))
        elif due_date < start_date:
            errors.append(FieldError("due_date", due_date.isoformat(), "before the invoice date"))
        else:
            plan = [rules.ScheduledInstalment(1, due_date, principal, 0)]
        chosen_method = "invoice"
    elif schedule is not None:
        chosen_method = "given"
        plan = [
            rules.ScheduledInstalment(i, g.due_date, g.principal, g.interest, g.fee)
            for i, g in enumerate(sorted(schedule, key=lambda g: g.due_date), start=1)
        ]
        if not plan:
            errors.append(FieldError("schedule", [], "must have at least one instalment"))
        elif sum(p.principal for p in plan) != principal:
            errors.append(
                FieldError(
                    "schedule",
                    sum(p.principal for p in plan),
                    f"instalment principal must add up to {principal}",
                )
            )
        for p in plan:
            if min(p.principal, p.interest, p.fee) < 0:
                errors.append(FieldError("schedule", p.seq, "amounts must not be negative"))
    elif kind == "loan":
        the_term = term if term is not None else (product.term if product is not None else None)
        if the_term is None:
            errors.append(FieldError("term", None, "a loan needs a term in months"))
        elif chosen_method is None:
            errors.append(FieldError("method", None, "a loan needs a repayment method"))
        else:
            try:
                plan = rules.generate_schedule(
                    principal, interest, the_term, chosen_method, start_date
                )
            except ValueError as exc:
                field_name = "method" if "method" in str(exc) else "term"
                errors.append(
                    FieldError(
                        field_name, chosen_method if field_name == "method" else the_term, str(exc)
                    )
                )
    if time_barred_on is not None and time_barred_on < start_date:
        errors.append(
            FieldError("time_barred_on", time_barred_on.isoformat(), "before the start date")
        )
    if errors:
        raise Invalid(errors=errors)
    if session.scalar(select(Account.id).where(Account.external_ref == external_ref)) is not None:
        raise Conflict(f"account {external_ref!r} already exists")

    account = Account(
        external_ref=external_ref,
        debtor_id=debtor_id,
        portfolio_id=portfolio_id,
        product_id=product_id,
        kind=kind,
        currency=portfolio.currency,
        principal=principal,
        start_date=start_date,
        method=chosen_method or "given",
        term=len(plan),
        cap_rate_ppm=cap,
        time_barred_on=time_barred_on,
        principal_balance=principal,
        status="current",
        **terms,
    )
    session.add(account)
    session.flush()
    session.add_all(
        Instalment(
            account_id=account.id,
            seq=p.seq,
            due_date=p.due_date,
            principal_due=p.principal,
            interest_due=p.interest,
            fee_due=p.fee,
        )
        for p in plan
    )
    session.add(
        LedgerEntry(
            account_id=account.id,
            entry_date=start_date,
            kind="disbursement",
            component="principal",
            amount=principal,
        )
    )
    session.flush()
    return account


def get_account(session: Session, account_id: int) -> Account:
    result: Account = _get(session, Account, account_id, "account")
    return result


def store_schedules(session: Session, account_ids: Iterable[int]) -> None:
    """Store the instalments of the accounts generated from their terms and not written yet
    (recoup.ledger.schedules), before their schedules are read or changed."""
    schedules.store_all(session.connection(), account_ids)


def store_schedule(session: Session, account_id: int) -> None:
    store_schedules(session, [account_id])


def instalments_of(session: Session, account_id: int) -> list[Instalment]:
    store_schedule(session, account_id)
    return list(
        session.scalars(
            select(Instalment).where(Instalment.account_id == account_id).order_by(Instalment.seq)
        )
    )


# --------------------------------------------------------------------------- recognition


def recognise_dues(session: Session, account: Account, through: dt.date) -> None:
    """Interest and fees of instalments falling due by `through` become owed (scalar form of the
    cycle's recognition step). Idempotent through `account.recognised_through`."""
    if account.recognised_through is not None and account.recognised_through >= through:
        return
    store_schedule(session, account.id)
    stmt = select(Instalment).where(
        Instalment.account_id == account.id,
        Instalment.due_date <= through,
        Instalment.is_paid.is_(False),
    )
    if account.recognised_through is not None:
        stmt = stmt.where(Instalment.due_date > account.recognised_through)
    for inst in session.scalars(stmt.order_by(Instalment.seq)):
        for component, amount in (("interest", inst.interest_due), ("fee", inst.fee_due)):
            if amount:
                session.add(
                    LedgerEntry(
                        account_id=account.id,
                        instalment_seq=inst.seq,
                        entry_date=inst.due_date,
                        kind="recognise",
                        component=component,
                        amount=amount,
                    )
                )
        account.interest_balance += inst.interest_due
        account.fee_balance += inst.fee_due
        account.charges_total += inst.interest_due + inst.fee_due
    account.recognised_through = through


# --------------------------------------------------------------------------- payments


def _due_items(
    account: Account, instalments: Iterable[Instalment], value_date: dt.date
) -> tuple[list[rules.DueItem], list[rules.DueItem]]:
    due: list[rules.DueItem] = []
    future: list[rules.DueItem] = []
    epoch = dt.date.min
    if account.late_fee_balance:
        due.append(rules.DueItem("late_fee", None, epoch, account.late_fee_balance))
    if account.penalty_balance:
        due.append(rules.DueItem("penalty", None, epoch, account.penalty_balance))
    for inst in instalments:
        if inst.is_paid:
            continue
        p_left = inst.principal_due - inst.principal_paid
        if inst.due_date <= value_date:
            due.append(rules.DueItem("fee", inst.seq, inst.due_date, inst.fee_due - inst.fee_paid))
            due.append(
                rules.DueItem(
                    "interest", inst.seq, inst.due_date, inst.interest_due - inst.interest_paid
                )
            )
            due.append(rules.DueItem("principal", inst.seq, inst.due_date, p_left))
        else:
            future.append(rules.DueItem("principal", inst.seq, inst.due_date, p_left))
    return due, future


_BALANCE = {
    "principal": "principal_balance",
    "interest": "interest_balance",
    "fee": "fee_balance",
    "penalty": "penalty_balance",
    "late_fee": "late_fee_balance",
    "credit": "credit_balance",
}


def _apply(
    account: Account,
    instalments: Mapping[int, Instalment],
    component: str,
    seq: int | None,
    amount: int,
) -> None:
    """Reduce what is owed by `amount` (negative amount restores it)."""
    if component == "credit":
        account.credit_balance += amount
        return
    attr = _BALANCE[component]
    setattr(account, attr, getattr(account, attr) - amount)
    if seq is not None:
        inst = instalments[seq]
        paid_attr = f"{component}_paid"
        setattr(inst, paid_attr, getattr(inst, paid_attr) + amount)
        inst.is_paid = (
            inst.principal_paid == inst.principal_due
            and inst.interest_paid == inst.interest_due
            and inst.fee_paid == inst.fee_due
        )


def refresh_state(
    session: Session, account: Account, as_of: dt.date, settings: Settings | None = None
) -> None:
    """Recompute DPD, bucket, stage, overdue amount and status of one account (scalar form of
    the cycle's state step), e.g. right after a payment so the UI shows it at once."""
    settings = settings or get_settings()
    unpaid = [i for i in instalments_of(session, account.id) if not i.is_paid]
    overdue = [i for i in unpaid if i.due_date < as_of]
    oldest = min((i.due_date for i in overdue), default=None)
    dpd = rules.days_past_due(oldest, as_of)
    account.oldest_unpaid_due = oldest
    account.dpd = dpd
    account.bucket = rules.bucket_for(dpd, settings.bucket_bounds)
    stage = rules.stage_after(account.stage, dpd, settings.stage_thresholds)
    if stage != account.stage:
        account.stage = stage
        account.stage_since = as_of
    account.overdue_amount = (
        sum(
            (i.principal_due - i.principal_paid)
            + (i.interest_due - i.interest_paid)
            + (i.fee_due - i.fee_paid)
            for i in overdue
        )
        + account.penalty_balance
        + account.late_fee_balance
    )
    fully_paid = (
        not unpaid
        and account.principal_balance == 0
        and all(
            getattr(account, a) == 0
            for a in ("interest_balance", "fee_balance", "penalty_balance", "late_fee_balance")
        )
    )
    new = rules.next_status(account.status, dpd, fully_paid)
    if new == "current" and account.status == "settled":
        new = "settled"
    if new != account.status:
        account.status = new
        account.status_since = as_of


def post_payment(
    session: Session,
    *,
    account_id: int,
    external_ref: str,
    amount: int,
    value_date: dt.date,
    currency: str | None = None,
    channel: str | None = None,
) -> tuple[Payment, bool]:
    """Post a payment once. Returns (payment, created); the same external reference again
    returns the first payment unchanged (created False) if it matches, else a Conflict."""
    existing = session.scalar(select(Payment).where(Payment.external_ref == external_ref))
    if existing is not None:
        if (
            existing.account_id != account_id
            or existing.amount != amount
            or existing.value_date != value_date
            or (currency is not None and currency.upper() != existing.currency)
        ):
            raise Conflict(
                f"payment reference {external_ref!r} was already posted with different details "
                f"(account {existing.account_id}, amount {existing.amount} {existing.currency}, "
                f"value date {existing.value_date.isoformat()})"
            )
        return existing, False
    account = session.scalar(select(Account).where(Account.id == account_id).with_for_update())
    if account is None:
        raise NotFound(f"account {account_id} does not exist")
    if amount <= 0:
        raise Invalid("amount", amount, "must be positive")
    if currency is not None and currency.upper() != account.currency:
        raise Invalid("currency", currency, f"the account is in {account.currency}")
    if value_date < account.start_date:
        raise Invalid("value_date", value_date.isoformat(), "before the account was opened")
    portfolio: Portfolio = _get(session, Portfolio, account.portfolio_id, "portfolio")

    recognise_dues(session, account, value_date)
    insts = {i.seq: i for i in instalments_of(session, account.id)}
    due, future = _due_items(account, insts.values(), value_date)
    result = rules.allocate(amount, due, portfolio.waterfall, future)

    payment = Payment(
        account_id=account.id,
        external_ref=external_ref,
        amount=amount,
        currency=account.currency,
        value_date=value_date,
        channel=channel,
        status="posted",
    )
    session.add(payment)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent post of the same reference won the race
        raise Conflict(f"payment reference {external_ref!r} is being posted concurrently") from exc
    parts = [(a.component, a.seq, a.amount) for a in result.allocations]
    if result.credit:
        parts.append(("credit", None, result.credit))
    for component, seq, part in parts:
        _apply(account, insts, component, seq, part)
        session.add(
            LedgerEntry(
                account_id=account.id,
                instalment_seq=seq,
                entry_date=value_date,
                kind="payment",
                component=component,
                amount=-part,
                payment_id=payment.id,
            )
        )
    payment.allocation = {"parts": [list(p) for p in parts]}
    refresh_state(session, account, max(value_date, account.accrued_through or value_date))
    session.flush()
    return payment, True


def reverse_payment(
    session: Session, payment_id: int, reason: str, *, by: str = "system"
) -> Payment:
    """Undo a payment exactly: every ledger line of it is mirrored and balances restored."""
    payment = session.scalar(select(Payment).where(Payment.id == payment_id).with_for_update())
    if payment is None:
        raise NotFound(f"payment {payment_id} does not exist")
    if payment.status == "reversed":
        raise Conflict(f"payment {payment_id} is already reversed")
    if not reason.strip():
        raise Invalid("reason", reason, "say why the payment is reversed")
    account: Account = _get(session, Account, payment.account_id, "account")
    insts = {i.seq: i for i in instalments_of(session, account.id)}
    entries = session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.payment_id == payment.id, LedgerEntry.kind == "payment"
        )
    )
    today = max(payment.value_date, account.accrued_through or payment.value_date)
    for entry in list(entries):
        _apply(account, insts, entry.component, entry.instalment_seq, entry.amount)
        session.add(
            LedgerEntry(
                account_id=account.id,
                instalment_seq=entry.instalment_seq,
                entry_date=today,
                kind="reversal",
                component=entry.component,
                amount=-entry.amount,
                payment_id=payment.id,
            )
        )
    payment.status = "reversed"
    payment.reversed_at = utcnow()
    payment.reversal_reason = f"{reason} (by {by})"
    if account.status == "settled":
        account.status = "current"
    refresh_state(session, account, today)
    session.flush()
    return payment


# --------------------------------------------------------------------------- derivation


def derive_balances(session: Session, account_id: int) -> dict[str, int]:
    """Balances by component summed from the ledger alone (credit is negative: owed to the
    debtor). The cached columns on the account must always equal these."""
    rows = session.execute(
        select(LedgerEntry.component, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.account_id == account_id)
        .group_by(LedgerEntry.component)
    )
    out = dict.fromkeys((*rules.COMPONENTS, "credit"), 0)
    for component, total in rows:
        out[component] = int(total or 0)
    return out


def cached_balances(account: Account) -> dict[str, int]:
    out = {c: getattr(account, _BALANCE[c]) for c in rules.COMPONENTS}
    out["credit"] = -account.credit_balance
    return out


# --------------------------------------------------------------------------- reads
# One page of rows plus the total. Every filter is a SQL WHERE clause and the total a COUNT in
# SQL, so a page costs the same with 1,000,000 accounts loaded as with ten.

MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns


@dataclass
class Page:
    items: list[Any]
    total: int
    limit: int
    offset: int


def _page(
    session: Session,
    model: type[Any],
    where: Sequence[Any],
    order_by: Sequence[Any],
    limit: int,
    offset: int,
) -> Page:
    total = session.scalar(select(func.count()).select_from(model).where(*where))
    rows = session.scalars(
        select(model).where(*where).order_by(*order_by).limit(limit).offset(offset)
    )
    return Page(list(rows), int(total or 0), limit, offset)


def _resolve(session: Session, model: type[Any], value: str, field_name: str) -> int:
    """An id or a code (the code wins when a code is all digits) -> the row's id."""
    ident = session.scalar(select(model.id).where(model.code == value))
    if ident is None and value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID:
        ident = session.scalar(select(model.id).where(model.id == int(value)))
    if ident is None:
        raise Invalid(field_name, value, f"no {model.__tablename__} with this id or code")
    return int(ident)


def get_creditor(session: Session, creditor_id: int) -> Creditor:
    result: Creditor = _get(session, Creditor, creditor_id, "creditor")
    return result


def list_creditors(session: Session, *, limit: int = 50, offset: int = 0) -> Page:
    return _page(session, Creditor, [], [Creditor.id], limit, offset)


def get_portfolio(session: Session, portfolio_id: int) -> Portfolio:
    result: Portfolio = _get(session, Portfolio, portfolio_id, "portfolio")
    return result


def list_portfolios(
    session: Session, *, creditor_id: int | None = None, limit: int = 50, offset: int = 0
) -> Page:
    where = [] if creditor_id is None else [Portfolio.creditor_id == creditor_id]
    return _page(session, Portfolio, where, [Portfolio.id], limit, offset)


def get_product(session: Session, product_id: int) -> Product:
    result: Product = _get(session, Product, product_id, "product")
    return result


def list_products(
    session: Session, *, portfolio_id: int | None = None, limit: int = 50, offset: int = 0
) -> Page:
    where = [] if portfolio_id is None else [Product.portfolio_id == portfolio_id]
    return _page(session, Product, where, [Product.id], limit, offset)


def get_debtor(session: Session, debtor_id: int) -> Debtor:
    result: Debtor = _get(session, Debtor, debtor_id, "debtor")
    return result


def list_debtors(
    session: Session,
    *,
    kind: str | None = None,
    region: str | None = None,
    name: str | None = None,
    external_ref: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Debtors by kind, region (indexed), external reference (unique) and a case-insensitive
    part of the name."""
    where: list[Any] = []
    if kind is not None:
        where.append(Debtor.kind == kind)
    if region is not None:
        where.append(Debtor.region == region)
    if external_ref is not None:
        where.append(Debtor.external_ref == external_ref)
    if name:
        where.append(Debtor.name.icontains(name, autoescape=True))
    return _page(session, Debtor, where, [Debtor.id], limit, offset)


def debtor_history(session: Session, debtor_id: int, *, limit: int = 50, offset: int = 0) -> Page:
    """Profile and contact-point changes of a debtor, newest first."""
    _get(session, Debtor, debtor_id, "debtor")
    return _page(
        session,
        ChangeLog,
        [ChangeLog.debtor_id == debtor_id],
        [ChangeLog.changed_at.desc(), ChangeLog.id.desc()],
        limit,
        offset,
    )


def list_flags(
    session: Session,
    debtor_id: int,
    *,
    active: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Flags of a debtor, set and cleared (the history), or only the active or cleared ones."""
    _get(session, Debtor, debtor_id, "debtor")
    where: list[Any] = [DebtorFlag.debtor_id == debtor_id]
    if active is True:
        where.append(DebtorFlag.cleared_at.is_(None))
    elif active is False:
        where.append(DebtorFlag.cleared_at.is_not(None))
    return _page(session, DebtorFlag, where, [DebtorFlag.id], limit, offset)


def list_contact_points(
    session: Session, debtor_id: int, *, limit: int = 50, offset: int = 0
) -> Page:
    _get(session, Debtor, debtor_id, "debtor")
    return _page(
        session,
        ContactPoint,
        [ContactPoint.debtor_id == debtor_id],
        [ContactPoint.id],
        limit,
        offset,
    )


def set_time_bar(
    session: Session, account_id: int, time_barred_on: dt.date | None, *, by: str
) -> Account:
    """Set (or clear) the day the account's limitation period ends. The creditor decides it
    (the law that applies, what interrupted the period); the change is audited by the caller's
    request and kept in the change log of the debtor's records."""
    account: Account = _get(session, Account, account_id, "account")
    if time_barred_on is not None and time_barred_on < account.start_date:
        raise Invalid("time_barred_on", time_barred_on.isoformat(), "before the start date")
    _log_changes(
        session,
        "account",
        account.id,
        account.debtor_id,
        {"time_barred_on": account.time_barred_on},
        {"time_barred_on": time_barred_on},
        by,
    )
    account.time_barred_on = time_barred_on
    session.flush()
    return account


def list_accounts(
    session: Session,
    *,
    bucket: str | None = None,
    dpd_min: int | None = None,
    dpd_max: int | None = None,
    status: str | None = None,
    portfolio: str | None = None,
    creditor: str | None = None,
    debtor_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Accounts by bucket, DPD range, status, portfolio or creditor (id or code) and debtor,
    in id order. Portfolio and creditor codes are resolved to ids first so that the account
    indexes (portfolio_id, bucket), (status), (debtor_id) serve the WHERE clause."""
    where: list[Any] = []
    if bucket is not None:
        names = get_settings().bucket_names
        # "M7+" arrives as "M7 " when a client forgets to percent-encode the plus sign.
        wanted = bucket.strip()
        if wanted not in names and f"{wanted}+" in names:
            wanted = f"{wanted}+"
        if wanted not in names:
            raise Invalid("bucket", bucket, f"must be one of {', '.join(names)}")
        where.append(Account.bucket == wanted)
    if dpd_min is not None and dpd_max is not None and dpd_min > dpd_max:
        raise Invalid("dpd_max", dpd_max, f"must not be below dpd_min ({dpd_min})")
    if dpd_min is not None:
        where.append(Account.dpd >= dpd_min)
    if dpd_max is not None:
        where.append(Account.dpd <= dpd_max)
    if status is not None:
        if status not in rules.STATUSES:
            raise Invalid("status", status, f"must be one of {', '.join(rules.STATUSES)}")
        where.append(Account.status == status)
    if portfolio is not None:
        where.append(Account.portfolio_id == _resolve(session, Portfolio, portfolio, "portfolio"))
    if creditor is not None:
        creditor_id = _resolve(session, Creditor, creditor, "creditor")
        where.append(
            Account.portfolio_id.in_(
                select(Portfolio.id).where(Portfolio.creditor_id == creditor_id)
            )
        )
    if debtor_id is not None:
        where.append(Account.debtor_id == debtor_id)
    return _page(session, Account, where, [Account.id], limit, offset)


def list_ledger_entries(
    session: Session, account_id: int, *, limit: int = 50, offset: int = 0
) -> Page:
    """The account's ledger in the order it was written."""
    _get(session, Account, account_id, "account")
    return _page(
        session,
        LedgerEntry,
        [LedgerEntry.account_id == account_id],
        [LedgerEntry.id],
        limit,
        offset,
    )


def get_payment(session: Session, payment_id: int) -> Payment:
    result: Payment = _get(session, Payment, payment_id, "payment")
    return result


def list_payments(session: Session, account_id: int, *, limit: int = 50, offset: int = 0) -> Page:
    """Payments of an account, newest value date first."""
    _get(session, Account, account_id, "account")
    return _page(
        session,
        Payment,
        [Payment.account_id == account_id],
        [Payment.value_date.desc(), Payment.id.desc()],
        limit,
        offset,
    )


# --------------------------------------------------------------------------- waivers
# A waiver (减免) forgives amounts owed: ledger entries of kind "waiver", negative, by component,
# applied to the account's balances and, for instalment components, to the instalments' paid
# columns ("paid or forgiven"), oldest instalment first, so balances stay derivable from the
# ledger and the cycle no longer sees a forgiven instalment as overdue.


def _waive(
    session: Session,
    account: Account,
    insts: Mapping[int, Instalment],
    component: str,
    amount: int,
    entry_date: dt.date,
) -> None:
    parts: list[tuple[int | None, int]] = []
    if component in ("principal", "interest", "fee"):
        left = amount
        for inst in sorted(insts.values(), key=lambda i: (i.due_date, i.seq)):
            if left <= 0:
                break
            # Interest and fees are owed (in the balance) only once recognised.
            if component != "principal" and (
                account.recognised_through is None or inst.due_date > account.recognised_through
            ):
                continue
            outstanding = getattr(inst, f"{component}_due") - getattr(inst, f"{component}_paid")
            part = min(left, outstanding)
            if part > 0:
                parts.append((inst.seq, part))
                left -= part
        if left > 0:  # not attributable to an instalment; still off the balance
            parts.append((None, left))
    else:
        parts.append((None, amount))
    for seq, part in parts:
        _apply(account, insts, component, seq, part)
        session.add(
            LedgerEntry(
                account_id=account.id,
                instalment_seq=seq,
                entry_date=entry_date,
                kind="waiver",
                component=component,
                amount=-part,
            )
        )


def post_waiver(
    session: Session,
    account_id: int,
    by_component: Mapping[str, int],
    entry_date: dt.date,
) -> dict[str, int]:
    """Forgive amounts by component now (e.g. an approved arrangement's waivers). Refuses,
    writing nothing, a component unknown, a negative amount or more than its balance.
    Returns what was waived by component."""
    account = session.scalar(select(Account).where(Account.id == account_id).with_for_update())
    if account is None:
        raise NotFound(f"account {account_id} does not exist")
    errors: list[FieldError] = []
    for component, amount in by_component.items():
        if component not in rules.COMPONENTS:
            errors.append(FieldError(component, amount, f"one of {', '.join(rules.COMPONENTS)}"))
        elif amount < 0:
            errors.append(FieldError(component, amount, "must not be negative"))
        elif amount > getattr(account, _BALANCE[component]):
            errors.append(
                FieldError(
                    component,
                    amount,
                    f"more than the balance of {getattr(account, _BALANCE[component])}",
                )
            )
    if errors:
        raise Invalid(errors=errors)
    insts = {i.seq: i for i in instalments_of(session, account.id)}
    done: dict[str, int] = {}
    for component in rules.COMPONENTS:
        amount = by_component.get(component, 0)
        if amount > 0:
            _waive(session, account, insts, component, amount, entry_date)
            done[component] = amount
    refresh_state(session, account, max(entry_date, account.accrued_through or entry_date))
    session.flush()
    return done


def waive_remaining(session: Session, account_id: int, entry_date: dt.date) -> dict[str, int]:
    """Forgive everything the account still owes (a settlement paid in full). Interest and fees
    of instalments not yet due were never recognised, so they are marked forgiven on the
    instalment without a ledger entry (there is nothing in the ledger to offset)."""
    account = session.scalar(select(Account).where(Account.id == account_id).with_for_update())
    if account is None:
        raise NotFound(f"account {account_id} does not exist")
    for inst in instalments_of(session, account.id):
        if inst.is_paid or (
            account.recognised_through is not None and inst.due_date <= account.recognised_through
        ):
            continue
        inst.interest_paid, inst.fee_paid = inst.interest_due, inst.fee_due
        inst.is_paid = inst.principal_paid == inst.principal_due
    by_component = {c: getattr(account, _BALANCE[c]) for c in rules.COMPONENTS}
    return post_waiver(
        session, account_id, {c: a for c, a in by_component.items() if a > 0}, entry_date
    )
