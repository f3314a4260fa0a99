"""JSON API of the ledger: debtors, contact points, flags, accounts, schedules, payments.

Thin handlers: validate with a schema, call a service function, return a schema. Errors are
domain errors turned into RFC 9457 problem details by recoup.web.app.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from recoup.access.deps import current_principal, require
from recoup.access.rules import mask_value
from recoup.access.service import Principal, audit
from recoup.ledger import service
from recoup.ledger.schemas import (
    CONFLICT,
    INVALID,
    MAX_ID,
    NOT_FOUND,
    AccountIn,
    AccountOut,
    AccountQuery,
    BalanceCheckOut,
    BalancesOut,
    ChangeOut,
    ContactPointIn,
    ContactPointOut,
    ContactPointPatch,
    CreditorIn,
    CreditorOut,
    CreditorQuery,
    DebtorIn,
    DebtorOut,
    DebtorPatch,
    DebtorQuery,
    FlagClear,
    FlagIn,
    FlagOut,
    FlagQuery,
    InstalmentOut,
    LedgerEntryOut,
    LedgerQuery,
    Page,
    PageQuery,
    PaymentIn,
    PaymentOut,
    PortfolioIn,
    PortfolioOut,
    PortfolioQuery,
    ProductIn,
    ProductOut,
    ProductQuery,
    ReverseIn,
    ScheduleOut,
    TimeBarIn,
)
from recoup.web.deps import get_session

router = APIRouter(responses=INVALID)

# scope="function": the transaction commits before the response is sent, so a client never
# sees 201 for a write that then fails to commit.
DB = Annotated[Session, Depends(get_session, scope="function")]


async def _actor(request: Request) -> str:
    """Who is acting, recorded in history: the signed-in user."""
    principal = await current_principal(request)
    return principal.username if principal is not None else "api"


Actor = Annotated[str, Depends(_actor)]


class PersonalData:
    """Masks ID numbers, addresses and contact values for a role without `pii:unmask`; for a
    role with it, records the view in the audit log."""

    def __init__(self, principal: Principal | None) -> None:
        self.principal = principal
        self.unmasked = principal is not None and principal.can("pii:unmask")

    def debtor(self, out: DebtorOut) -> DebtorOut:
        if self.unmasked:
            return out
        return out.model_copy(
            update={
                "id_number": mask_value("id_number", out.id_number),
                "address": mask_value("address", out.address),
            }
        )

    def contact(self, out: ContactPointOut) -> ContactPointOut:
        if self.unmasked:
            return out
        return out.model_copy(update={"value": mask_value(out.kind, out.value)})

    def change(self, out: ChangeOut) -> ChangeOut:
        if self.unmasked or out.field not in ("value", "address", "id_number"):
            return out
        kind = "id_number" if out.field == "id_number" else "contact"
        return out.model_copy(
            update={
                "old_value": mask_value(kind, out.old_value),
                "new_value": mask_value(kind, out.new_value),
            }
        )

    def seen(self, db: Session, debtor_ids: list[int]) -> None:
        if self.unmasked and self.principal is not None and debtor_ids:
            audit(
                db,
                self.principal,
                "view_unmasked",
                "debtor",
                debtor_ids[0] if len(debtor_ids) == 1 else None,
                detail={"debtor_ids": debtor_ids[:500], "via": "api"},
            )


async def _personal_data(request: Request) -> PersonalData:
    return PersonalData(await current_principal(request))


Pii = Annotated[PersonalData, Depends(_personal_data)]
CreditorId = Annotated[int, Path(ge=1, le=MAX_ID)]
PortfolioId = Annotated[int, Path(ge=1, le=MAX_ID)]
ProductId = Annotated[int, Path(ge=1, le=MAX_ID)]
DebtorId = Annotated[int, Path(ge=1, le=MAX_ID)]
FlagId = Annotated[int, Path(ge=1, le=MAX_ID)]
ContactPointId = Annotated[int, Path(ge=1, le=MAX_ID)]
AccountId = Annotated[int, Path(ge=1, le=MAX_ID)]
PaymentId = Annotated[int, Path(ge=1, le=MAX_ID)]

CREATED = status.HTTP_201_CREATED


# --------------------------------------------------------------------------- reference data


@router.post(
    "/creditors",
    status_code=CREATED,
    tags=["creditors"],
    summary="Create a creditor / 新建债权人",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def create_creditor(body: CreditorIn, db: DB) -> CreditorOut:
    return CreditorOut.model_validate(service.create_creditor(db, **body.model_dump()))


@router.get(
    "/creditors",
    tags=["creditors"],
    summary="List creditors / 债权人列表",
    dependencies=[Depends(require("ledger:read"))],
)
def list_creditors(q: Annotated[CreditorQuery, Query()], db: DB) -> Page[CreditorOut]:
    page = service.list_creditors(db, limit=q.limit, offset=q.offset)
    return Page.of(page, [CreditorOut.model_validate(r) for r in page.items])


@router.get(
    "/creditors/{creditor_id}",
    tags=["creditors"],
    summary="Get a creditor / 债权人",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def get_creditor(creditor_id: CreditorId, db: DB) -> CreditorOut:
    return CreditorOut.model_validate(service.get_creditor(db, creditor_id))


@router.post(
    "/portfolios",
    status_code=CREATED,
    tags=["portfolios"],
    summary="Create a portfolio / 新建资产包",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def create_portfolio(body: PortfolioIn, db: DB) -> PortfolioOut:
    return PortfolioOut.of(service.create_portfolio(db, **body.to_service()))


@router.get(
    "/portfolios",
    tags=["portfolios"],
    summary="List portfolios / 资产包列表",
    dependencies=[Depends(require("ledger:read"))],
)
def list_portfolios(q: Annotated[PortfolioQuery, Query()], db: DB) -> Page[PortfolioOut]:
    page = service.list_portfolios(db, creditor_id=q.creditor_id, limit=q.limit, offset=q.offset)
    return Page.of(page, [PortfolioOut.of(r) for r in page.items])


@router.get(
    "/portfolios/{portfolio_id}",
    tags=["portfolios"],
    summary="Get a portfolio / 资产包",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def get_portfolio(portfolio_id: PortfolioId, db: DB) -> PortfolioOut:
    return PortfolioOut.of(service.get_portfolio(db, portfolio_id))


@router.post(
    "/products",
    status_code=CREATED,
    tags=["products"],
    summary="Create a product / 新建产品",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def create_product(body: ProductIn, db: DB) -> ProductOut:
    return ProductOut.of(service.create_product(db, **body.to_service()))


@router.get(
    "/products",
    tags=["products"],
    summary="List products / 产品列表",
    dependencies=[Depends(require("ledger:read"))],
)
def list_products(q: Annotated[ProductQuery, Query()], db: DB) -> Page[ProductOut]:
    page = service.list_products(db, portfolio_id=q.portfolio_id, limit=q.limit, offset=q.offset)
    return Page.of(page, [ProductOut.of(r) for r in page.items])


@router.get(
    "/products/{product_id}",
    tags=["products"],
    summary="Get a product / 产品",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def get_product(product_id: ProductId, db: DB) -> ProductOut:
    return ProductOut.of(service.get_product(db, product_id))


# --------------------------------------------------------------------------- debtors


@router.post(
    "/debtors",
    status_code=CREATED,
    tags=["debtors"],
    summary="Create a debtor / 新建债务人",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def create_debtor(body: DebtorIn, db: DB, by: Actor) -> DebtorOut:
    return DebtorOut.model_validate(service.create_debtor(db, by=by, **body.to_service()))


@router.get(
    "/debtors",
    tags=["debtors"],
    summary="List debtors by kind, region, name / 债务人列表",
    dependencies=[Depends(require("ledger:read"))],
)
def list_debtors(q: Annotated[DebtorQuery, Query()], db: DB, pii: Pii) -> Page[DebtorOut]:
    page = service.list_debtors(
        db,
        kind=q.kind,
        region=q.region,
        name=q.name,
        external_ref=q.external_ref,
        limit=q.limit,
        offset=q.offset,
    )
    pii.seen(db, [r.id for r in page.items])
    return Page.of(page, [pii.debtor(DebtorOut.model_validate(r)) for r in page.items])


@router.get(
    "/debtors/{debtor_id}",
    tags=["debtors"],
    summary="Get a debtor's profile / 客户档案",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def get_debtor(debtor_id: DebtorId, db: DB, pii: Pii) -> DebtorOut:
    out = DebtorOut.model_validate(service.get_debtor(db, debtor_id))
    pii.seen(db, [debtor_id])
    return pii.debtor(out)


@router.patch(
    "/debtors/{debtor_id}",
    tags=["debtors"],
    summary="Update a debtor's profile, keeping history / 更新客户档案",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def update_debtor(debtor_id: DebtorId, body: DebtorPatch, db: DB, by: Actor) -> DebtorOut:
    return DebtorOut.model_validate(service.update_debtor(db, debtor_id, body.changes(), by=by))


@router.get(
    "/debtors/{debtor_id}/history",
    tags=["debtors"],
    summary="Profile and contact changes, newest first / 档案变更记录",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def debtor_history(
    debtor_id: DebtorId, q: Annotated[PageQuery, Query()], db: DB, pii: Pii
) -> Page[ChangeOut]:
    page = service.debtor_history(db, debtor_id, limit=q.limit, offset=q.offset)
    pii.seen(db, [debtor_id])
    return Page.of(page, [pii.change(ChangeOut.model_validate(r)) for r in page.items])


@router.post(
    "/debtors/{debtor_id}/flags",
    status_code=CREATED,
    tags=["flags"],
    summary="Set a stop flag / 设置停催标记",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def set_flag(debtor_id: DebtorId, body: FlagIn, db: DB, by: Actor) -> FlagOut:
    return FlagOut.of(service.set_flag(db, debtor_id, body.flag, body.reason, by=by))


@router.get(
    "/debtors/{debtor_id}/flags",
    tags=["flags"],
    summary="A debtor's flags, set and cleared / 标记列表",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def list_flags(debtor_id: DebtorId, q: Annotated[FlagQuery, Query()], db: DB) -> Page[FlagOut]:
    page = service.list_flags(db, debtor_id, active=q.active, limit=q.limit, offset=q.offset)
    return Page.of(page, [FlagOut.of(r) for r in page.items])


@router.post(
    "/flags/{flag_id}/clear",
    tags=["flags"],
    summary="Clear a flag / 解除标记",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def clear_flag(flag_id: FlagId, body: FlagClear, db: DB, by: Actor) -> FlagOut:
    return FlagOut.of(service.clear_flag(db, flag_id, body.reason, by=by))


@router.post(
    "/debtors/{debtor_id}/contact-points",
    status_code=CREATED,
    tags=["contact points"],
    summary="Add a contact point / 新增联系方式",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def add_contact_point(
    debtor_id: DebtorId, body: ContactPointIn, db: DB, by: Actor
) -> ContactPointOut:
    row = service.add_contact_point(db, debtor_id, by=by, **body.model_dump())
    return ContactPointOut.model_validate(row)


@router.get(
    "/debtors/{debtor_id}/contact-points",
    tags=["contact points"],
    summary="A debtor's contact points / 联系方式列表",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def list_contact_points(
    debtor_id: DebtorId, q: Annotated[PageQuery, Query()], db: DB, pii: Pii
) -> Page[ContactPointOut]:
    page = service.list_contact_points(db, debtor_id, limit=q.limit, offset=q.offset)
    pii.seen(db, [debtor_id])
    return Page.of(page, [pii.contact(ContactPointOut.model_validate(r)) for r in page.items])


@router.patch(
    "/contact-points/{contact_point_id}",
    tags=["contact points"],
    summary="Update a contact point, keeping history / 更新联系方式",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def update_contact_point(
    contact_point_id: ContactPointId, body: ContactPointPatch, db: DB, by: Actor
) -> ContactPointOut:
    row = service.update_contact_point(db, contact_point_id, body.changes(), by=by)
    return ContactPointOut.model_validate(row)


# --------------------------------------------------------------------------- accounts


@router.post(
    "/accounts",
    status_code=CREATED,
    tags=["accounts"],
    summary="Open a loan or an invoice / 新建账户",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def create_account(body: AccountIn, db: DB) -> AccountOut:
    return AccountOut.of(service.create_account(db, **body.to_service()))


@router.get(
    "/accounts",
    tags=["accounts"],
    summary="List accounts by bucket, DPD, status, portfolio, creditor, debtor / 账户列表",
    dependencies=[Depends(require("ledger:read"))],
)
def list_accounts(q: Annotated[AccountQuery, Query()], db: DB) -> Page[AccountOut]:
    page = service.list_accounts(
        db,
        bucket=q.bucket,
        dpd_min=q.dpd_min,
        dpd_max=q.dpd_max,
        status=q.status,
        portfolio=q.portfolio,
        creditor=q.creditor,
        debtor_id=q.debtor_id,
        limit=q.limit,
        offset=q.offset,
    )
    return Page.of(page, [AccountOut.of(r) for r in page.items])


@router.get(
    "/accounts/{account_id}",
    tags=["accounts"],
    summary="An account: terms, state, balances / 账户详情",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def get_account(account_id: AccountId, db: DB) -> AccountOut:
    return AccountOut.of(service.get_account(db, account_id))


@router.put(
    "/accounts/{account_id}/time-bar",
    tags=["accounts"],
    summary="Set or clear the day the debt becomes time-barred / 设置诉讼时效届满日",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:write"))],
)
def set_time_bar(account_id: AccountId, body: TimeBarIn, db: DB, by: Actor) -> AccountOut:
    return AccountOut.of(service.set_time_bar(db, account_id, body.time_barred_on, by=by))


@router.get(
    "/accounts/{account_id}/schedule",
    tags=["accounts"],
    summary="The account's instalments / 还款计划",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def get_schedule(account_id: AccountId, db: DB) -> ScheduleOut:
    account = service.get_account(db, account_id)
    items = [InstalmentOut.of(i) for i in service.instalments_of(db, account_id)]
    return ScheduleOut(account_id=account.id, currency=account.currency, items=items)


@router.get(
    "/accounts/{account_id}/ledger",
    tags=["accounts"],
    summary="The account's ledger entries, oldest first / 账户流水",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def list_ledger(
    account_id: AccountId, q: Annotated[LedgerQuery, Query()], db: DB
) -> Page[LedgerEntryOut]:
    page = service.list_ledger_entries(db, account_id, limit=q.limit, offset=q.offset)
    return Page.of(page, [LedgerEntryOut.of(r) for r in page.items])


@router.get(
    "/accounts/{account_id}/balances",
    tags=["accounts"],
    summary="Cached balances against balances derived from the ledger / 余额核对",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def check_balances(account_id: AccountId, db: DB) -> BalanceCheckOut:
    account = service.get_account(db, account_id)
    cached = service.cached_balances(account)
    derived = service.derive_balances(db, account_id)
    return BalanceCheckOut(
        account_id=account.id,
        currency=account.currency,
        cached=BalancesOut.of(cached),
        derived=BalancesOut.of(derived),
        is_consistent=cached == derived,
    )


@router.get(
    "/accounts/{account_id}/payments",
    tags=["payments"],
    summary="The account's payments, newest first / 还款记录",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def list_payments(
    account_id: AccountId, q: Annotated[PageQuery, Query()], db: DB
) -> Page[PaymentOut]:
    page = service.list_payments(db, account_id, limit=q.limit, offset=q.offset)
    return Page.of(page, [PaymentOut.of(r) for r in page.items])


# --------------------------------------------------------------------------- payments


@router.post(
    "/payments",
    status_code=CREATED,
    tags=["payments"],
    summary="Post a payment once per external_ref / 入账（幂等）",
    description="201 when posted; 200 with the first payment when the same `external_ref` "
    "arrives again with the same details; 409 when it arrives with different details.",
    responses={
        **NOT_FOUND,
        **CONFLICT,
        200: {"model": PaymentOut, "description": "already posted: the first payment"},
    },
    dependencies=[Depends(require("ledger:write"))],
)
def post_payment(body: PaymentIn, response: Response, db: DB) -> PaymentOut:
    payment, created = service.post_payment(db, **body.to_service())
    if not created:
        response.status_code = status.HTTP_200_OK
    return PaymentOut.of(payment)


@router.get(
    "/payments/{payment_id}",
    tags=["payments"],
    summary="Get a payment / 还款",
    responses=NOT_FOUND,
    dependencies=[Depends(require("ledger:read"))],
)
def get_payment(payment_id: PaymentId, db: DB) -> PaymentOut:
    return PaymentOut.of(service.get_payment(db, payment_id))


@router.post(
    "/payments/{payment_id}/reverse",
    tags=["payments"],
    summary="Reverse a payment, restoring balances / 冲正",
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[Depends(require("ledger:write"))],
)
def reverse_payment(payment_id: PaymentId, body: ReverseIn, db: DB, by: Actor) -> PaymentOut:
    return PaymentOut.of(service.reverse_payment(db, payment_id, body.reason, by=by))
