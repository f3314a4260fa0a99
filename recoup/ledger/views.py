"""Web pages of the ledger: portfolio overview, account list and account page (Jinja2 + HTMX)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from recoup.access.deps import require
from recoup.access.service import Principal, audit
from recoup.core.clock import business_today
from recoup.core.errors import FieldError, Forbidden, Invalid
from recoup.core.settings import Settings, get_settings
from recoup.cycle import service as cycle_service
from recoup.ledger import queries, rules
from recoup.web.deps import get_session
from recoup.web.i18n import N_
from recoup.web.pages import is_htmx, register_labels, render

router = APIRouter(include_in_schema=False)

register_labels(
    "status",
    {
        "current": N_("Current"),
        "delinquent": N_("Delinquent"),
        "in_arrangement": N_("In arrangement"),
        "placed": N_("Placed with agency"),
        "legal": N_("Legal"),
        "settled": N_("Settled"),
        "written_off": N_("Written off"),
    },
)
register_labels(
    "stage",
    {
        "current": N_("Not in collection"),
        "early": N_("Early (reminders)"),
        "negotiation": N_("Negotiation"),
        "hard": N_("Hard collection"),
        "recovery": N_("Recovery (agency / legal)"),
    },
)
register_labels(
    "flag",
    {
        "dispute": N_("Dispute"),
        "cease_communication": N_("Cease communication"),
        "bankrupt": N_("Bankrupt"),
        "deceased": N_("Deceased"),
        "litigation_hold": N_("Litigation hold"),
        "vulnerable": N_("Vulnerable"),
    },
)
register_labels(
    "contact_kind", {"phone": N_("Phone"), "email": N_("Email"), "address": N_("Address")}
)
register_labels(
    "owner",
    {
        "self": N_("Self"),
        "spouse": N_("Spouse"),
        "relative": N_("Relative"),
        "employer": N_("Employer"),
        "guarantor": N_("Guarantor"),
        "emergency": N_("Emergency contact"),
    },
)
register_labels("debtor_kind", {"person": N_("Person"), "company": N_("Company")})
register_labels("account_kind", {"loan": N_("Loan"), "invoice": N_("Invoice")})
register_labels(
    "method",
    {
        "annuity": N_("Equal instalments (annuity)"),
        "equal_principal": N_("Equal principal"),
        "bullet": N_("Bullet (all at maturity)"),
        "interest_only": N_("Interest only, principal at maturity"),
        "given": N_("Agreed schedule"),
        "invoice": N_("Single due date"),
    },
)
register_labels(
    "component",
    {
        "principal": N_("Principal"),
        "interest": N_("Interest"),
        "fee": N_("Fees"),
        "penalty": N_("Penalty interest"),
        "late_fee": N_("Late fees"),
        "credit": N_("Credit (overpaid)"),
    },
)
register_labels("payment_status", {"posted": N_("Posted"), "reversed": N_("Reversed")})
register_labels(
    "instalment_state",
    {
        "paid": N_("Paid"),
        "overdue": N_("Overdue"),
        "part_paid": N_("Partly paid"),
        "not_due": N_("Not yet due"),
    },
)
register_labels(
    "entity",
    {"debtor": N_("Profile"), "contact_point": N_("Contact point"), "account": N_("Account")},
)
register_labels(
    "field",
    {
        "kind": N_("Kind"),
        "name": N_("Name"),
        "id_number": N_("ID number"),
        "birth_date": N_("Date of birth / registration"),
        "employer": N_("Employer"),
        "income_band": N_("Income band"),
        "address": N_("Address"),
        "region": N_("Region"),
        "timezone": N_("Time zone"),
        "language": N_("Language"),
        "notes": N_("Notes"),
        "credit_rating": N_("Credit rating"),
        "night_contact_consent": N_("Consent to contact at night"),
        "time_barred_on": N_("Time-barred from"),
        "value": N_("Value"),
        "owner": N_("Owner"),
        "owner_name": N_("Owner's name"),
        "is_verified": N_("Verified"),
        "has_consent": N_("Consent"),
        "do_not_contact": N_("Do not contact"),
        "is_active": N_("Active"),
    },
)
register_labels("language", {"zh-CN": N_("Chinese"), "en": N_("English")})
register_labels("run_status", {"running": N_("Running"), "completed": N_("Completed")})
register_labels(
    "cycle_count",
    {
        "accounts": N_("Accounts in the book"),
        "touched": N_("Accounts aged"),
        "delinquent": N_("Delinquent accounts"),
        "newly_delinquent": N_("Newly delinquent"),
        "cured": N_("Cured (back to current)"),
        "capped": N_("Stopped at the legal cap"),
        "penalty_accrued": N_("Penalty interest accrued"),
        "late_fees_charged": N_("Late fees charged"),
        "interest_recognised": N_("Interest fallen due"),
        "fees_recognised": N_("Fees fallen due"),
    },
)
# How the account page lists balances: the order people read a statement in.
BALANCE_ORDER = ("principal", "interest", "fee", "penalty", "late_fee", "credit")
CYCLE_AMOUNT_COUNTS = cycle_service.AMOUNT_KEYS
CYCLE_COUNT_ORDER = (
    "accounts",
    "touched",
    "delinquent",
    "newly_delinquent",
    "cured",
    "capped",
)


def cycle_amounts(counts: Mapping[str, int]) -> list[tuple[str, list[tuple[str, int]]]]:
    """The run's amounts, each as its (currency, minor units) in currency order."""
    by_name: dict[str, list[tuple[str, int]]] = {}
    for key, value in counts.items():
        amount = cycle_service.split_amount_key(key)
        if amount is not None:
            by_name.setdefault(amount[0], []).append((amount[1], int(value)))
    return [(name, sorted(by_name[name])) for name in CYCLE_AMOUNT_COUNTS if name in by_name]


@dataclass(frozen=True)
class BucketRange:
    """A bucket and its DPD range, for its description (upper None: open-ended)."""

    name: str
    lower: int
    upper: int | None


def bucket_ranges(settings: Settings) -> list[BucketRange]:
    bounds = settings.bucket_bounds
    names = settings.bucket_names
    ranges = [BucketRange(names[0], 0, 0)]
    ranges += [BucketRange(names[i], bounds[i - 1] + 1, bounds[i]) for i in range(1, len(bounds))]
    ranges.append(BucketRange(names[-1], bounds[-1] + 1, None))
    return ranges


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request,
    user: Annotated[Principal, Depends(require("self"))],
    session: Session = Depends(get_session),
) -> Response:
    # Every signed-in user lands here; a collector or an agency goes on to the worklist.
    if not user.can("ledger:read"):
        if user.can("workspace:read"):
            return RedirectResponse("/work", status_code=303)
        raise Forbidden("the overview needs ledger:read / 无权查看总览")
    settings = get_settings()
    portfolios, totals = queries.portfolio_overview(session, settings.bucket_names)
    runs = cycle_service.list_runs(session, limit=1)
    per_currency = Counter(p.currency for p in portfolios)
    return render(
        request,
        "ledger/overview.html",
        {
            "portfolios": portfolios,
            "totals": totals,
            "shared_currencies": {c for c, n in per_currency.items() if n > 1},
            "bucket_info": {r.name: r for r in bucket_ranges(settings)},
            "last_run": runs[0] if runs else None,
            "count_order": CYCLE_COUNT_ORDER,
            "run_amounts": cycle_amounts(runs[0].counts) if runs else [],
        },
    )


def _whole(name: str, value: str | None, errors: list[FieldError]) -> int | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        errors.append(FieldError(name, value, "not a whole number"))
        return None


@router.get(
    "/accounts", response_class=HTMLResponse, dependencies=[Depends(require("ledger:read"))]
)
def accounts(
    request: Request,
    portfolio: str | None = None,
    bucket: str | None = None,
    status: str | None = None,
    dpd_min: str | None = None,
    dpd_max: str | None = None,
    q: str | None = None,
    after: str | None = None,
    before: str | None = None,
    session: Session = Depends(get_session),
) -> HTMLResponse:
    # Parameters arrive as text because an empty form field ("portfolio=") means "any".
    errors: list[FieldError] = []
    flt = queries.AccountFilter(
        portfolio_id=_whole("portfolio", portfolio, errors),
        bucket=(bucket or "").strip() or None,
        status=(status or "").strip() or None,
        dpd_min=_whole("dpd_min", dpd_min, errors),
        dpd_max=_whole("dpd_max", dpd_max, errors),
        q=(q or "").strip()[:100] or None,
    )
    cursor_after = _whole("after", after, errors)
    cursor_before = _whole("before", before, errors)
    if errors:
        raise Invalid(errors=errors)
    page = queries.list_accounts(session, flt, after=cursor_after, before=cursor_before)
    settings = get_settings()
    context = {
        "page": page,
        "filters": flt,
        "portfolios": queries.portfolio_choices(session),
        "bucket_names": settings.bucket_names,
        "statuses": rules.STATUSES,
    }
    template = "ledger/accounts_fragment.html" if is_htmx(request) else "ledger/accounts.html"
    return render(request, template, context)


@router.get(
    "/accounts/{account_id}",
    response_class=HTMLResponse,
)
def account_page(
    request: Request,
    account_id: int,
    user: Annotated[Principal, Depends(require("ledger:read"))],
    session: Session = Depends(get_session),
    unmask: bool = False,
) -> HTMLResponse:
    run = cycle_service.last_completed_run(session)
    detail = queries.account_detail(
        session,
        account_id,
        cycle=(run.as_of, run.started_at) if run is not None else None,
    )
    # Personal data is masked unless asked for by a role that may see it; that view is kept.
    unmasked = unmask and user.can("pii:unmask")
    if unmasked:
        audit(session, user, "view_unmasked", "debtor", detail.debtor.id, account_id=account_id)
    return render(
        request,
        "ledger/account.html",
        {
            "d": detail,
            "components": BALANCE_ORDER,
            "unmasked": unmasked,
            "today": business_today(),
        },
    )
