"""The collector's pages: the worklist, the account page with its logging form and call script,
and the managers' approval queue. Each page is a thin layer over the services the API uses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from recoup.access import rules as access_rules
from recoup.access.deps import require
from recoup.access.service import Principal, audit
from recoup.arrangements import service as arrangements
from recoup.arrangements.rules import PlannedInstalment
from recoup.channels import outbox_admin
from recoup.contacts import service as contacts
from recoup.contacts.schemas import ContactIn
from recoup.core.clock import business_today
from recoup.core.db import utcnow
from recoup.core.errors import DomainError, FieldError, Invalid
from recoup.core.money import to_minor
from recoup.core.settings import get_settings
from recoup.cycle import service as cycle_service
from recoup.ledger import queries
from recoup.ledger.service import get_account, get_creditor, recognise_dues
from recoup.promises import service as promises
from recoup.web import i18n
from recoup.web.deps import get_session
from recoup.web.i18n import N_
from recoup.web.pages import register_labels, render, request_language
from recoup.workspace import rules, service

router = APIRouter(include_in_schema=False)
DB = Annotated[Session, Depends(get_session)]
Reader = Annotated[Principal, Depends(require("workspace:read"))]
Writer = Annotated[Principal, Depends(require("workspace:write"))]
Approver = Annotated[Principal, Depends(require("arrangement:approve"))]


@router.get("/work", response_class=HTMLResponse)
def worklist_page(
    request: Request,
    db: DB,
    user: Reader,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    stage: Annotated[str | None, Query(max_length=16)] = None,
    bucket: Annotated[str | None, Query(max_length=8)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    limit = 50
    filters: dict[str, Any] = {
        "kinds": [kind] if kind else None,
        "stage": stage or None,
        "bucket": bucket or None,
    }
    total, items = service.worklist(
        db, user, utcnow(), limit=limit, offset=(page - 1) * limit, **filters
    )
    return render(
        request,
        "workspace/worklist.html",
        {
            "items": items,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // limit)),
            "kinds": rules.WORK_KINDS,
            "filters": {"kind": kind or "", "stage": stage or "", "bucket": bucket or ""},
            "active_page": "worklist",
        },
    )


@router.get("/work/next")
def next_page(
    db: DB,
    user: Reader,
    skip: Annotated[list[int] | None, Query(max_length=500)] = None,
) -> Response:
    """The next account in one keystroke: the top of the worklist, past the ones just done."""
    item = service.next_account(db, user, utcnow(), skip=skip or [])
    if item is None:
        return RedirectResponse("/work?empty=1", status_code=303)
    return RedirectResponse(f"/work/accounts/{item.account_id}", status_code=303)


def _masked_contacts(points: list[Any], unmasked: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "kind": p.kind,
            "value": p.value if unmasked else access_rules.mask_contact(p.kind, p.value),
            "owner": p.owner,
            "owner_name": p.owner_name,
            "is_verified": p.is_verified,
            "has_consent": p.has_consent,
            "do_not_contact": p.do_not_contact,
            "is_active": p.is_active,
        }
        for p in points
    ]


def _timeline(
    detail: Any, interactions: list[Any], promise_rows: list[Any]
) -> list[dict[str, Any]]:
    """Messages, logged contacts, payments and promises, newest first."""
    events: list[dict[str, Any]] = []
    for i in interactions:
        events.append({"at": i.at, "kind": "interaction", "row": i})
    for p in detail.payments:
        at = dt.datetime.combine(p.value_date, dt.time(12), tzinfo=dt.UTC)
        events.append(
            {
                "at": max(at, p.posted_at) if p.posted_at.date() == p.value_date else at,
                "kind": "payment",
                "row": p,
            }
        )
    for p in promise_rows:
        events.append({"at": p.created_at, "kind": "promise", "row": p})
    events.sort(key=lambda e: e["at"], reverse=True)
    return events


class _Blanks(dict[str, str]):
    """Script placeholders that the page cannot fill stay visible as blanks to complete."""

    def __missing__(self, key: str) -> str:
        return "____"


def _filled_script(script: Any, values: dict[str, str]) -> list[dict[str, Any]]:
    """The script's steps with the account's own values put in ({debtor_name}, {amount}, …)."""

    def fill(text: Any) -> Any:
        if isinstance(text, str):
            try:
                return text.format_map(_Blanks(values))
            except (ValueError, IndexError):  # a stray brace: show the text as written
                return text
        if isinstance(text, list):
            return [fill(t) for t in text]
        return text

    return [{k: fill(v) for k, v in step.items()} for step in script.steps]


def _account_context(
    request: Request, db: Session, user: Principal, account_id: int, unmask: bool
) -> dict[str, Any]:
    service.check_account_access(db, user, account_id)
    run = cycle_service.last_completed_run(db)
    detail = queries.account_detail(
        db, account_id, cycle=(run.as_of, run.started_at) if run is not None else None
    )
    unmasked = unmask and user.can("pii:unmask")
    if unmasked:
        # Every view of unmasked personal data is kept (who, when, which account).
        audit(db, user, "view_unmasked", "debtor", detail.debtor.id, account_id=account_id)
    lang = request_language(request)
    script_lang = "zh" if lang.startswith("zh") else "en"
    reason = request.query_params.get("reason") or None
    script = contacts.script_for(
        db,
        detail.account.stage if detail.account.stage != "current" else "early",
        reason,
        script_lang,
    )
    now = utcnow()
    first_phone = next(
        (p for p in detail.contacts if p.kind == "phone" and p.is_active and not p.do_not_contact),
        None,
    )
    verdict = contacts.contact_check(
        db, user, account_id, "call", first_phone.id if first_phone else None, now
    )
    fmt = i18n.Formats(lang, get_settings().default_timezone)
    a = detail.account
    steps = _filled_script(
        script,
        {
            "debtor_name": detail.debtor.name,
            "collector_name": user.display_name,
            "company": detail.portfolio.name,
            "creditor": get_creditor(db, detail.portfolio.creditor_id).name,
            "dpd": str(a.dpd),
            "amount": fmt.money(a.overdue_amount, a.currency),
            "due_date": fmt.date(a.oldest_unpaid_due) if a.oldest_unpaid_due else "____",
        },
    )
    codes = contacts.contact_codes()
    pick = "zh" if script_lang == "zh" else "en"
    code_labels = {
        kind: {c["code"]: c[pick] for c in codes[kind]}
        for kind in ("outcomes", "reasons", "channels")
    }
    promise_page = promises.list_promises(db, user, account_id=account_id, limit=20)
    promise_rows = list(promise_page.items)
    interactions = outbox_admin.account_timeline(db, account_id, 100)
    return {
        "d": detail,
        "a": detail.account,
        "debtor": detail.debtor,
        "unmasked": unmasked,
        "id_number": (
            detail.debtor.id_number
            if unmasked or not detail.debtor.id_number
            else access_rules.mask_id_number(detail.debtor.id_number)
        ),
        "address": (
            detail.debtor.address
            if unmasked or not detail.debtor.address
            else access_rules.mask_address(detail.debtor.address)
        ),
        "contacts": _masked_contacts(detail.contacts, unmasked),
        "verdict": verdict,
        "verdict_point": first_phone.id if first_phone else None,
        "script": script,
        "steps": steps,
        "code_labels": code_labels,
        "reason": reason or "",
        "codes": codes,
        "promises": promise_rows,
        "open_promises": [p for p in promise_rows if p.status == "open"],
        "arrangements": arrangements.list_for_account(db, user, account_id),
        "timeline": _timeline(detail, interactions, promise_rows),
        "waivable": ("late_fee", "penalty", "interest", "fee", "principal"),
        "form": {},
        "errors": [],
        "notice": request.query_params.get("done"),
        "now_local": now,
        "today": business_today(),
        "active_page": "worklist",
    }


@router.get("/work/accounts/{account_id}", response_class=HTMLResponse)
def account_page(
    request: Request,
    account_id: int,
    db: DB,
    user: Reader,
    unmask: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    return render(
        request, "workspace/account.html", _account_context(request, db, user, account_id, unmask)
    )


def _errors_of(exc: DomainError) -> list[tuple[str, str]]:
    if isinstance(exc, Invalid):
        return [(e.field, e.why) for e in exc.errors]
    return [("", exc.detail)]


def _form_value(form: Any, key: str) -> str | None:
    value = form.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _minor(form: Any, key: str, currency: str, errors: list[FieldError]) -> int | None:
    raw = _form_value(form, key)
    if raw is None:
        return None
    try:
        amount = Decimal(raw.replace(",", ""))
    except InvalidOperation:
        errors.append(FieldError(key, raw, "not an amount / 金额格式无效"))
        return None
    if not amount.is_finite():
        errors.append(FieldError(key, raw, "not an amount / 金额格式无效"))
        return None
    return to_minor(amount, currency)


def _zoned(raw: str | None, field: str, errors: list[FieldError]) -> dt.datetime | None:
    """A datetime-local field, read in the business time zone."""
    if raw is None:
        return None
    from zoneinfo import ZoneInfo

    from recoup.core.settings import get_settings

    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        errors.append(FieldError(field, raw, "not a date and time / 时间格式无效"))
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(get_settings().business_timezone))
    return value


def _rerender(
    request: Request,
    db: Session,
    user: Principal,
    account_id: int,
    form: Any,
    errors: list[tuple[str, str]],
    status: int,
) -> HTMLResponse:
    context = _account_context(request, db, user, account_id, False)
    context["form"] = {k: v for k, v in form.items() if isinstance(v, str)}
    context["errors"] = errors
    return render(request, "workspace/account.html", context, status_code=status)


@router.post("/work/accounts/{account_id}/contacts", response_class=HTMLResponse)
async def log_contact_form(request: Request, account_id: int, db: DB, user: Writer) -> Response:
    form = await request.form()
    account = get_account(db, account_id)
    errors: list[FieldError] = []
    promise = None
    amount = _minor(form, "promise_amount", account.currency, errors)
    if amount is not None or _form_value(form, "promise_date"):
        promise = {
            "amount_minor": amount,
            "due_date": _form_value(form, "promise_date"),
            "channel": _form_value(form, "promise_channel"),
        }
    callback_at = _zoned(_form_value(form, "callback_at"), "callback_at", errors)

    def number(key: str) -> int | None:
        raw = _form_value(form, key)
        return int(raw) if raw is not None and raw.isdigit() else None

    payload = {
        "channel": _form_value(form, "channel") or "call",
        "party": _form_value(form, "party") or "self",
        "contact_point_id": number("contact_point_id"),
        "outcome": _form_value(form, "outcome") or "",
        "reason_code": _form_value(form, "reason_code"),
        "willingness": number("willingness"),
        "ability": number("ability"),
        "notes": _form_value(form, "notes"),
        "collectors": number("collectors") or 1,
        "promise": promise,
        "callback_at": callback_at,
    }
    if errors:
        return _rerender(
            request, db, user, account_id, form, [(e.field, e.why) for e in errors], 422
        )
    try:
        data = ContactIn.model_validate(payload)
    except ValidationError as exc:
        found = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        return _rerender(request, db, user, account_id, form, found, 422)
    try:
        with db.begin_nested():  # a refusal undoes only this
            result = contacts.log_contact(db, user, account_id, data, utcnow())
    except DomainError as exc:
        return _rerender(request, db, user, account_id, form, _errors_of(exc), exc.status)
    if result.is_blocked:
        # The refusal is kept (the guard's block record, committed with the page); nothing
        # was logged.
        g = result.guard
        why = g.reason_zh if request_language(request).startswith("zh") else g.reason_en
        return _rerender(request, db, user, account_id, form, [(g.rule_id or "guard", why)], 409)
    return RedirectResponse(f"/work/accounts/{account_id}?done=logged#timeline", status_code=303)


@router.post("/work/accounts/{account_id}/waivers", response_class=HTMLResponse)
async def propose_waiver(request: Request, account_id: int, db: DB, user: Writer) -> Response:
    form = await request.form()
    account = get_account(db, account_id)
    errors: list[FieldError] = []
    waivers = {}
    for component in ("late_fee", "penalty", "interest", "fee", "principal"):
        value = _minor(form, f"waive_{component}", account.currency, errors)
        if value:
            waivers[component] = value
    if errors:
        return _rerender(
            request, db, user, account_id, form, [(e.field, e.why) for e in errors], 422
        )
    if not waivers:
        return _rerender(
            request,
            db,
            user,
            account_id,
            form,
            [("waive", "enter an amount to waive / 请输入减免金额")],
            422,
        )
    try:
        with db.begin_nested():
            arr = arrangements.propose(
                db,
                user,
                account_id,
                "waiver",
                waivers,
                [],
                0,
                _form_value(form, "reason"),
                business_today(),
            )
    except DomainError as exc:
        return _rerender(request, db, user, account_id, form, _errors_of(exc), exc.status)
    done = "waiver_active" if arr.status in ("active", "completed") else "waiver_queued"
    return RedirectResponse(
        f"/work/accounts/{account_id}?done={done}#arrangements", status_code=303
    )


def _months_after(first: dt.date, n: int) -> dt.date:
    """The same day `n` months after `first` (the month's last day where it has fewer)."""
    import calendar

    month = first.month - 1 + n
    year, month = first.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(first.day, calendar.monthrange(year, month)[1]))


@router.post("/work/accounts/{account_id}/plans", response_class=HTMLResponse)
async def propose_plan(request: Request, account_id: int, db: DB, user: Writer) -> Response:
    """An instalment plan of everything owed, in equal monthly instalments (the last takes the
    remainder) from a first date: the API takes any amounts and dates."""
    form = await request.form()
    errors: list[tuple[str, str]] = []
    count_raw, first_raw = _form_value(form, "instalments"), _form_value(form, "first_due")
    count = int(count_raw) if count_raw and count_raw.isdigit() else 0
    if not 2 <= count <= get_settings().arrangement_max_instalments:
        errors.append(("instalments", "2 or more / 至少2期"))
    try:
        first = dt.date.fromisoformat(first_raw or "")
    except ValueError:
        errors.append(("first_due", "a date / 请输入日期"))
    if errors:
        return _rerender(request, db, user, account_id, form, errors, 422)
    try:
        with db.begin_nested():
            account = get_account(db, account_id)
            today = business_today()
            # What is owed today, interest and fees due by today included, as `propose` sees it.
            recognise_dues(db, account, today)
            total = (
                account.principal_balance
                + account.interest_balance
                + account.fee_balance
                + account.penalty_balance
                + account.late_fee_balance
            )
            each = total // count
            instalments = [
                PlannedInstalment(
                    _months_after(first, i), each if i < count - 1 else total - each * i
                )
                for i in range(count)
            ]
            arr = arrangements.propose(
                db, user, account_id, "instalment_plan", {}, instalments, total,
                _form_value(form, "reason"), today,
            )  # fmt: skip
    except DomainError as exc:
        return _rerender(request, db, user, account_id, form, _errors_of(exc), exc.status)
    done = "plan_active" if arr.status == "active" else "plan_queued"
    return RedirectResponse(
        f"/work/accounts/{account_id}?done={done}#arrangements", status_code=303
    )


@router.get("/work/approvals", response_class=HTMLResponse)
def approvals_page(request: Request, db: DB, user: Approver) -> HTMLResponse:
    queue = arrangements.queue(db, user)
    return render(
        request,
        "workspace/approvals.html",
        {
            "queue": queue,
            "errors": [],
            "notice": request.query_params.get("done"),
            "active_page": "approvals",
        },
    )


@router.post("/work/approvals/{arrangement_id}/{decision}", response_class=HTMLResponse)
async def decide(
    request: Request, arrangement_id: int, decision: str, db: DB, user: Approver
) -> Response:
    form = await request.form()
    note = _form_value(form, "note")
    try:
        with db.begin_nested():
            if decision == "approve":
                arrangements.approve(db, user, arrangement_id, note, business_today())
            elif decision == "reject":
                arrangements.reject(db, user, arrangement_id, note)
            else:
                raise Invalid("decision", decision, "approve or reject")
    except DomainError as exc:
        return render(
            request,
            "workspace/approvals.html",
            {
                "queue": arrangements.queue(db, user),
                "errors": _errors_of(exc),
                "notice": None,
                "active_page": "approvals",
            },
            status_code=exc.status,
        )
    return RedirectResponse(f"/work/approvals?done={decision}", status_code=303)


Supervisor = Annotated[Principal, Depends(require("assignment:manage"))]


@router.get("/work/promises", response_class=HTMLResponse)
def promise_stats_page(
    request: Request,
    db: DB,
    user: Supervisor,
    group_by: Annotated[str, Query(pattern="^(user|team)$")] = "user",
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> HTMLResponse:
    """Promises kept, partly kept and broken per collector or team (承诺兑现率), for the
    promises due in the last `days` days."""
    today = business_today()
    rows = promises.promise_stats(
        db, "user" if group_by == "user" else "team", today - dt.timedelta(days=days), today
    )
    return render(
        request,
        "workspace/promise_stats.html",
        {"rows": rows, "group_by": group_by, "days": days, "active_page": "promises"},
    )


register_labels(
    "work_kind",
    {
        "callback": N_("Callback"),
        "promise_due": N_("Promise due today"),
        "broken_promise": N_("Broken promise"),
        "broken_arrangement": N_("Broken arrangement"),
        "call_task": N_("Call"),
        "field_visit": N_("Field visit"),
        "follow_up": N_("Follow-up"),
    },
)
register_labels(
    "promise_status",
    {
        "open": N_("Open"),
        "kept": N_("Kept"),
        "partly_kept": N_("Partly kept"),
        "broken": N_("Broken"),
        "cancelled": N_("Cancelled"),
    },
)
register_labels(
    "arrangement_kind",
    {
        "waiver": N_("Waiver"),
        "settlement": N_("Settlement"),
        "instalment_plan": N_("Instalment plan"),
        "extension": N_("Extension"),
    },
)
register_labels(
    "arrangement_status",
    {
        "proposed": N_("Awaiting approval"),
        "approved": N_("Approved"),
        "rejected": N_("Rejected"),
        "active": N_("Active"),
        "completed": N_("Completed"),
        "broken": N_("Broken"),
        "cancelled": N_("Cancelled"),
    },
)
