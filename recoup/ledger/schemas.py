"""Pydantic models at the edge of the ledger API.

Input rules, the same on every route (so malformed input is a 422 naming the field, never a
500 from the database):

- money is integer minor units in fields named `*_minor` (a string of digits is accepted too,
  for clients whose numbers are doubles); where natural a decimal string in major units is
  accepted instead (`amount: "12.34"` with a `currency`). A JSON number with a fraction is never
  money: it is refused, not rounded.
- rates are decimal strings of percent a year ("18.25"), converted exactly to parts per million
  (as stored); at most 4 decimals, at most 100 %.
- dates are strings YYYY-MM-DD between 1900-01-01 and 2199-12-31.
- ids fit the 32-bit INTEGER columns; strings fit their columns and hold no NUL character or
  lone surrogate (PostgreSQL cannot store either).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from recoup.core.errors import Invalid
from recoup.core.money import exponent
from recoup.ledger import rules
from recoup.ledger.service import GivenInstalment

T = TypeVar("T")
MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns
# Largest amount in minor units (10 billion yuan): the bound ledger.service puts on principal,
# which keeps the daily cycle's integer products inside 64 bits.
MAX_MINOR = 10**12
MAX_PPM = rules.PPM  # 100 % a year
MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2199, 12, 31)
MAX_OFFSET = 10**9

_DIGITS = re.compile(r"-?[0-9]{1,19}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL = re.compile(r"[0-9]{1,16}(\.[0-9]{1,12})?")


# --------------------------------------------------------------------------- value types


def _minor_units(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("money_type", "money must be integer minor units, not a boolean")
    if isinstance(value, float):
        raise PydanticCustomError(
            "money_float",
            "a number with a fraction is never money: send integer minor units (1234 for 12.34)",
        )
    if isinstance(value, str):
        text = value.strip()
        if not _DIGITS.fullmatch(text):
            raise PydanticCustomError(
                "money_parsing", "minor units must be a whole number such as 1234"
            )
        return int(text)
    if isinstance(value, int):
        return value
    raise PydanticCustomError("money_type", "money must be integer minor units such as 1234")


_MINOR_SCHEMA = WithJsonSchema(
    {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_MINOR,
        "description": "integer minor units (fen, cent); a string of digits is accepted too",
    }
)
MinorUnits = Annotated[int, BeforeValidator(_minor_units), Field(ge=0, le=MAX_MINOR), _MINOR_SCHEMA]
PositiveMinorUnits = Annotated[
    int, BeforeValidator(_minor_units), Field(gt=0, le=MAX_MINOR), _MINOR_SCHEMA
]


def _decimal_string(value: Any) -> Any:
    if isinstance(value, float | bool) or not isinstance(value, str):
        raise PydanticCustomError(
            "decimal_type", 'send a decimal string such as "12.34", not a JSON number'
        )
    text = value.strip()
    if not _DECIMAL.fullmatch(text):
        raise PydanticCustomError(
            "decimal_parsing", 'must be a non-negative decimal such as "12.34"'
        )
    return Decimal(text)


MajorAmount = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{1,16}(\.[0-9]{1,12})?$",
            "examples": ["12000.00"],
            "description": "decimal string in major units (yuan, dollars); needs `currency`",
        }
    ),
]


def _percent_to_ppm(value: Any) -> Any:
    """Percent a year ("18.25") -> parts per million (182500), exactly."""
    if isinstance(value, bool | float):
        raise PydanticCustomError(
            "rate_type", 'send the rate as a decimal string of percent a year, such as "18.25"'
        )
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise PydanticCustomError("rate_type", 'a rate is a decimal string such as "18.25"')
    if not _DECIMAL.fullmatch(text):
        raise PydanticCustomError("rate_parsing", 'must be a percent a year such as "18.25"')
    try:
        ppm = Decimal(text).scaleb(4)
    except InvalidOperation as exc:  # pragma: no cover - the pattern rules it out
        raise PydanticCustomError("rate_parsing", "not a decimal") from exc
    if ppm != ppm.to_integral_value():
        raise PydanticCustomError("rate_precision", "at most 4 decimals (1 ppm)")
    if ppm > MAX_PPM:
        raise PydanticCustomError("rate_range", "at most 100 (percent a year)")
    return int(ppm)


RatePpm = Annotated[
    int,
    BeforeValidator(_percent_to_ppm),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{1,3}(\.[0-9]{1,4})?$",
            "examples": ["18.25"],
            "description": "percent a year as a decimal string, at most 4 decimals, 0 to 100",
        }
    ),
]


def percent(ppm: int) -> str:
    """182500 ppm -> "18.25" (percent a year): two decimals, more only when needed."""
    value = Decimal(ppm).scaleb(-4).normalize()
    if value == value.quantize(Decimal("0.01")):
        value = value.quantize(Decimal("0.01"))
    return format(value, "f")


def percent_or_none(ppm: int | None) -> str | None:
    return None if ppm is None else percent(ppm)


def _iso_date(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        return value.strip()
    raise PydanticCustomError("date_format", "a date is a string YYYY-MM-DD")


def _date_range(value: dt.date) -> dt.date:
    if not MIN_DATE <= value <= MAX_DATE:
        raise PydanticCustomError(
            "date_range",
            "must be between {lo} and {hi}",
            {"lo": MIN_DATE.isoformat(), "hi": MAX_DATE.isoformat()},
        )
    return value


BusinessDate = Annotated[dt.date, BeforeValidator(_iso_date), AfterValidator(_date_range)]


def _storable(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("string_nul", "must not contain the NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError("string_unicode", "not valid Unicode text") from exc
    return value


_STORABLE = AfterValidator(_storable)
STORABLE = _STORABLE  # for other capabilities' schemas


def _text(min_length: int, max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


# Strings that fit their columns and that both databases can store.
Code = Annotated[str, _text(1, 64), _STORABLE]
Name = Annotated[str, _text(1, 200), _STORABLE]
Reason = Annotated[str, _text(1, 2000), _STORABLE]
Ref = Annotated[str, _text(1, 100), _STORABLE]
Word = Annotated[str, _text(1, 32), _STORABLE]
Tag = Annotated[str, _text(1, 8), _STORABLE]
ContactValue = Annotated[str, _text(1, 300), _STORABLE]
Str16 = Annotated[str, _text(0, 16), _STORABLE]
Str32 = Annotated[str, _text(0, 32), _STORABLE]
Str64 = Annotated[str, _text(0, 64), _STORABLE]
Str200 = Annotated[str, _text(0, 200), _STORABLE]
Str2000 = Annotated[str, _text(0, 2000), _STORABLE]
Notes = Annotated[str, _text(0, 10_000), _STORABLE]
Currency = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$"),
    Field(examples=["CNY"], description="ISO 4217 code"),
]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

CreditorKind = Literal["lender", "company"]
Jurisdiction = Literal["CN", "US"]
CapPreset = Literal["cn_private_lending", "annual_rate", "none"]
Component = Literal["late_fee", "penalty", "fee", "interest", "principal"]
AccountKind = Literal["loan", "invoice"]
Method = Literal["annuity", "equal_principal", "bullet", "interest_only"]
DebtorKind = Literal["person", "company"]
Language = Literal["zh-CN", "en"]
ContactKind = Literal["phone", "email", "address"]
ContactOwner = Literal["self", "spouse", "relative", "employer", "guarantor", "emergency"]
StopFlag = Literal[
    "dispute", "cease_communication", "bankrupt", "deceased", "litigation_hold", "vulnerable"
]
Status = Literal[
    "current", "delinquent", "in_arrangement", "placed", "legal", "settled", "written_off"
]


class Input(BaseModel):
    """Request bodies: unknown fields are an error (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --------------------------------------------------------------------------- shared


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="rows matching the filters, counted in SQL")
    limit: int
    offset: int

    @classmethod
    def of(cls, page: Any, items: list[T]) -> Page[T]:
        return cls(items=items, total=page.total, limit=page.limit, offset=page.offset)


class PageQuery(Input):
    limit: int = Field(50, ge=1, le=500, description="rows per page, 1 to 500")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="rows to skip")


class FieldProblem(BaseModel):
    field: str
    value: Any = None
    why: str
    row: int | None = None


class Problem(BaseModel):
    """RFC 9457 problem details (media type application/problem+json)."""

    type: str = Field(examples=["https://recoup.dev/problems/invalid"])
    title: str = Field(examples=["Invalid input / 输入无效"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["principal_minor: Input should be greater than 0"])
    errors: list[FieldProblem] | None = None


def problem_response(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for a problem-details error (shared by every router)."""
    return {
        "model": Problem,
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


INVALID: dict[int | str, dict[str, Any]] = {
    422: problem_response("Invalid input, naming the field / 输入无效")
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_response("Not found / 未找到")}
CONFLICT: dict[int | str, dict[str, Any]] = {409: problem_response("Conflict / 冲突")}


# --------------------------------------------------------------------------- reference data


class CreditorIn(Input):
    code: Code
    name: Name
    kind: CreditorKind = "lender"


class CreditorOut(Output):
    id: int
    code: str
    name: str
    kind: str
    created_at: dt.datetime


class PortfolioIn(Input):
    code: Code
    name: Name
    creditor_id: Id
    currency: Currency = "CNY"
    jurisdiction: Jurisdiction = "CN"
    cap_preset: CapPreset = Field(
        "cn_private_lending",
        description="cap on interest + penalty + fees: 4 x one-year LPR at the contract date "
        "(cn_private_lending), cap_rate a year (annual_rate) or none",
    )
    cap_rate: RatePpm | None = None
    waterfall: list[Component] | None = Field(
        None,
        max_length=5,
        description="allocation order of a payment; default late_fee, penalty, fee, interest, "
        "principal",
    )

    def to_service(self) -> dict[str, Any]:
        out = self.model_dump(exclude={"cap_rate", "waterfall"})
        out["cap_rate_ppm"] = self.cap_rate
        if self.waterfall is not None:
            out["waterfall"] = self.waterfall
        return out


class PortfolioOut(Output):
    id: int
    code: str
    name: str
    creditor_id: int
    currency: str
    jurisdiction: str
    cap_preset: str
    cap_rate: str | None
    waterfall: list[str]
    created_at: dt.datetime

    @classmethod
    def of(cls, row: Any) -> PortfolioOut:
        return cls(
            id=row.id,
            code=row.code,
            name=row.name,
            creditor_id=row.creditor_id,
            currency=row.currency,
            jurisdiction=row.jurisdiction,
            cap_preset=row.cap_preset,
            cap_rate=percent_or_none(row.cap_rate_ppm),
            waterfall=list(row.waterfall),
            created_at=row.created_at,
        )


class ProductIn(Input):
    code: Code
    name: Name
    portfolio_id: Id
    kind: AccountKind
    interest_rate: RatePpm = 0
    penalty_rate: RatePpm = 0
    late_fee_fixed_minor: MinorUnits = 0
    late_fee_rate: RatePpm = 0
    grace_days: int = Field(0, ge=0, le=365)
    method: Method = "annuity"
    term: int | None = Field(None, ge=1, le=600, description="months")

    def to_service(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "portfolio_id": self.portfolio_id,
            "kind": self.kind,
            "interest_rate_ppm": self.interest_rate,
            "penalty_rate_ppm": self.penalty_rate,
            "late_fee_fixed": self.late_fee_fixed_minor,
            "late_fee_rate_ppm": self.late_fee_rate,
            "grace_days": self.grace_days,
            "method": self.method,
            "term": self.term,
        }


class ProductOut(Output):
    id: int
    code: str
    name: str
    portfolio_id: int
    kind: str
    interest_rate: str
    penalty_rate: str
    late_fee_fixed_minor: int
    late_fee_rate: str
    grace_days: int
    method: str
    term: int | None

    @classmethod
    def of(cls, row: Any) -> ProductOut:
        return cls(
            id=row.id,
            code=row.code,
            name=row.name,
            portfolio_id=row.portfolio_id,
            kind=row.kind,
            interest_rate=percent(row.interest_rate_ppm),
            penalty_rate=percent(row.penalty_rate_ppm),
            late_fee_fixed_minor=row.late_fee_fixed,
            late_fee_rate=percent(row.late_fee_rate_ppm),
            grace_days=row.grace_days,
            method=row.method,
            term=row.term,
        )


class CreditorQuery(PageQuery):
    pass


class PortfolioQuery(PageQuery):
    creditor_id: Id | None = None


class ProductQuery(PageQuery):
    portfolio_id: Id | None = None


# --------------------------------------------------------------------------- debtors


class ProfileFields(Input):
    kind: DebtorKind | None = None
    name: Name | None = None
    id_number: Str64 | None = None
    birth_date: BusinessDate | None = Field(
        None, description="date of birth of a person, of registration of a company"
    )
    employer: Str200 | None = None
    income_band: Str32 | None = None
    address: Str2000 | None = None
    region: Str64 | None = None
    timezone: Str64 | None = Field(None, examples=["Asia/Shanghai"])
    language: Language | None = None
    notes: Notes | None = None
    credit_rating: Str16 | None = None
    night_contact_consent: bool | None = Field(
        None,
        description="the debtor agreed to be contacted outside the usual hours (CN: 22:00-08:00)",
    )


class DebtorIn(ProfileFields):
    external_ref: Code
    name: Name
    kind: DebtorKind = "person"

    def to_service(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


# Columns that are NOT NULL: a PATCH may change them but not empty them.
_REQUIRED_PROFILE = ("kind", "name", "timezone", "language", "night_contact_consent")


class DebtorPatch(ProfileFields):
    """Only the fields sent are changed; `null` empties an optional field."""

    def changes(self) -> dict[str, Any]:
        out = self.model_dump(exclude_unset=True)
        for name in _REQUIRED_PROFILE:
            if name in out and out[name] is None:
                raise Invalid(name, None, "cannot be emptied")
        return out


class DebtorOut(Output):
    id: int
    external_ref: str
    kind: str
    name: str
    id_number: str | None
    birth_date: dt.date | None
    employer: str | None
    income_band: str | None
    address: str | None
    region: str | None
    timezone: str
    language: str
    notes: str | None
    credit_rating: str | None
    night_contact_consent: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class DebtorQuery(PageQuery):
    kind: DebtorKind | None = None
    region: Code | None = None
    name: Name | None = Field(None, description="part of the name, case-insensitive")
    external_ref: Code | None = None


class ChangeOut(Output):
    id: int
    entity: str
    entity_id: int
    field: str
    old_value: str | None
    new_value: str | None
    changed_by: str
    changed_at: dt.datetime


class FlagIn(Input):
    flag: StopFlag
    reason: Reason


class FlagClear(Input):
    reason: Reason


class FlagOut(Output):
    id: int
    debtor_id: int
    flag: str
    reason: str
    set_by: str
    set_at: dt.datetime
    cleared_by: str | None
    cleared_at: dt.datetime | None
    clear_reason: str | None
    is_active: bool

    @classmethod
    def of(cls, row: Any) -> FlagOut:
        return cls(
            id=row.id,
            debtor_id=row.debtor_id,
            flag=row.flag,
            reason=row.reason,
            set_by=row.set_by,
            set_at=row.set_at,
            cleared_by=row.cleared_by,
            cleared_at=row.cleared_at,
            clear_reason=row.clear_reason,
            is_active=row.cleared_at is None,
        )


class FlagQuery(PageQuery):
    active: bool | None = Field(None, description="true: set now; false: cleared; absent: all")


class ContactPointIn(Input):
    kind: ContactKind
    value: ContactValue
    owner: ContactOwner = "self"
    owner_name: Str200 | None = None
    is_verified: bool = False
    has_consent: bool = False
    do_not_contact: bool = False
    is_active: bool = True


_REQUIRED_CONTACT = (
    "kind",
    "value",
    "owner",
    "is_verified",
    "has_consent",
    "do_not_contact",
    "is_active",
)


class ContactPointPatch(Input):
    """Only the fields sent are changed."""

    kind: ContactKind | None = None
    value: ContactValue | None = None
    owner: ContactOwner | None = None
    owner_name: Str200 | None = None
    is_verified: bool | None = None
    has_consent: bool | None = None
    do_not_contact: bool | None = None
    is_active: bool | None = None

    def changes(self) -> dict[str, Any]:
        out = self.model_dump(exclude_unset=True)
        for name in _REQUIRED_CONTACT:
            if name in out and out[name] is None:
                raise Invalid(name, None, "cannot be emptied")
        return out


class ContactPointOut(Output):
    id: int
    debtor_id: int
    kind: str
    value: str
    owner: str
    owner_name: str | None
    is_verified: bool
    has_consent: bool
    do_not_contact: bool
    is_active: bool
    created_at: dt.datetime
    updated_at: dt.datetime


# --------------------------------------------------------------------------- accounts


def _to_minor(
    minor: int | None, major: Decimal | None, currency: str | None, field: str, *, required: bool
) -> int | None:
    """Exactly one of `<field>_minor` and `<field>` (major units, which needs the currency)."""
    if minor is not None and major is not None:
        raise Invalid(field, str(major), f"give either {field}_minor or {field}, not both")
    if major is None:
        if minor is None and required:
            raise Invalid(f"{field}_minor", None, "required (or a decimal string in " + field + ")")
        return minor
    if currency is None:
        raise Invalid("currency", None, f"required when {field} is given in major units")
    places = exponent(currency)
    scaled = major.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise Invalid(field, str(major), f"{currency} has {places} decimals")
    value = int(scaled)
    if value > MAX_MINOR:
        raise Invalid(field, str(major), f"at most {MAX_MINOR} minor units")
    return value


class GivenInstalmentIn(Input):
    due_date: BusinessDate
    principal_minor: MinorUnits
    interest_minor: MinorUnits = 0
    fee_minor: MinorUnits = 0


class AccountIn(Input):
    """A loan with a generated schedule (principal, rate, term, method), a loan with a given
    schedule, or an invoice with a due date. Terms not given come from the product."""

    external_ref: Code
    debtor_id: Id
    portfolio_id: Id
    product_id: Id | None = None
    kind: AccountKind
    currency: Currency | None = Field(
        None, description="must be the portfolio's; needed with a major-unit `principal`"
    )
    principal_minor: PositiveMinorUnits | None = None
    principal: MajorAmount | None = None
    start_date: BusinessDate = Field(description="contract date of a loan, date of an invoice")
    term: int | None = Field(None, ge=1, le=600, description="months (generated schedule)")
    method: Method | None = None
    due_date: BusinessDate | None = Field(None, description="an invoice's due date")
    schedule: list[GivenInstalmentIn] | None = Field(None, min_length=1, max_length=600)
    interest_rate: RatePpm | None = None
    penalty_rate: RatePpm | None = None
    late_fee_fixed_minor: MinorUnits | None = None
    late_fee_rate: RatePpm | None = None
    grace_days: int | None = Field(None, ge=0, le=365)
    time_barred_on: BusinessDate | None = Field(
        None,
        description="the day the limitation period ends (诉讼时效届满日); from then on no "
        "contact may threaten suit",
    )

    def to_service(self) -> dict[str, Any]:
        principal = _to_minor(
            self.principal_minor, self.principal, self.currency, "principal", required=True
        )
        if principal == 0:
            raise Invalid("principal", str(self.principal), "must be positive")
        schedule = (
            None
            if self.schedule is None
            else [
                GivenInstalment(i.due_date, i.principal_minor, i.interest_minor, i.fee_minor)
                for i in self.schedule
            ]
        )
        return {
            "external_ref": self.external_ref,
            "debtor_id": self.debtor_id,
            "portfolio_id": self.portfolio_id,
            "product_id": self.product_id,
            "kind": self.kind,
            "currency": self.currency,
            "principal": principal,
            "start_date": self.start_date,
            "term": self.term,
            "method": self.method,
            "due_date": self.due_date,
            "schedule": schedule,
            "interest_rate_ppm": self.interest_rate,
            "penalty_rate_ppm": self.penalty_rate,
            "late_fee_fixed": self.late_fee_fixed_minor,
            "late_fee_rate_ppm": self.late_fee_rate,
            "grace_days": self.grace_days,
            "time_barred_on": self.time_barred_on,
        }


class TermsOut(BaseModel):
    principal_minor: int
    start_date: dt.date
    method: str
    term: int
    interest_rate: str
    penalty_rate: str
    late_fee_fixed_minor: int
    late_fee_rate: str
    grace_days: int
    cap_rate: str | None = Field(description="annual cap on charges; null when uncapped")


class StateOut(BaseModel):
    status: str
    status_since: dt.date | None
    dpd: int
    bucket: str
    stage: str
    oldest_unpaid_due: dt.date | None
    overdue_minor: int
    recognised_through: dt.date | None
    accrued_through: dt.date | None


class BalancesOut(BaseModel):
    """What the debtor owes by component; `credit_minor` is negative (owed to the debtor)."""

    late_fee_minor: int
    penalty_minor: int
    fee_minor: int
    interest_minor: int
    principal_minor: int
    credit_minor: int
    total_minor: int

    @classmethod
    def of(cls, balances: dict[str, int]) -> BalancesOut:
        fields = {f"{name}_minor": int(balances.get(name, 0)) for name in rules.COMPONENTS}
        fields["credit_minor"] = int(balances.get("credit", 0))
        return cls(**fields, total_minor=sum(fields.values()))


class TimeBarIn(Input):
    time_barred_on: BusinessDate | None = Field(
        description="the day the limitation period ends (诉讼时效届满日); null: not known to be "
        "time-barred"
    )


class AccountOut(BaseModel):
    id: int
    external_ref: str
    debtor_id: int
    portfolio_id: int
    product_id: int | None
    kind: str
    currency: str
    terms: TermsOut
    state: StateOut
    balances: BalancesOut
    time_barred_on: dt.date | None = Field(
        description="the day the limitation period ends, if the creditor set it"
    )
    created_at: dt.datetime

    @classmethod
    def of(cls, row: Any) -> AccountOut:
        return cls(
            id=row.id,
            external_ref=row.external_ref,
            debtor_id=row.debtor_id,
            portfolio_id=row.portfolio_id,
            product_id=row.product_id,
            kind=row.kind,
            currency=row.currency,
            terms=TermsOut(
                principal_minor=row.principal,
                start_date=row.start_date,
                method=row.method,
                term=row.term,
                interest_rate=percent(row.interest_rate_ppm),
                penalty_rate=percent(row.penalty_rate_ppm),
                late_fee_fixed_minor=row.late_fee_fixed,
                late_fee_rate=percent(row.late_fee_rate_ppm),
                grace_days=row.grace_days,
                cap_rate=percent_or_none(row.cap_rate_ppm),
            ),
            state=StateOut(
                status=row.status,
                status_since=row.status_since,
                dpd=row.dpd,
                bucket=row.bucket,
                stage=row.stage,
                oldest_unpaid_due=row.oldest_unpaid_due,
                overdue_minor=row.overdue_amount,
                recognised_through=row.recognised_through,
                accrued_through=row.accrued_through,
            ),
            balances=BalancesOut.of(
                {
                    "late_fee": row.late_fee_balance,
                    "penalty": row.penalty_balance,
                    "fee": row.fee_balance,
                    "interest": row.interest_balance,
                    "principal": row.principal_balance,
                    "credit": -row.credit_balance,
                }
            ),
            time_barred_on=row.time_barred_on,
            created_at=row.created_at,
        )


class AccountQuery(PageQuery):
    bucket: Tag | None = Field(
        None, description='M0 … M7+ (send the plus sign as %2B; "M7" is read as "M7+")'
    )
    dpd_min: int | None = Field(None, ge=0, le=MAX_ID)
    dpd_max: int | None = Field(None, ge=0, le=MAX_ID)
    status: Status | None = None
    portfolio: Code | None = Field(None, description="portfolio id or code")
    creditor: Code | None = Field(None, description="creditor id or code")
    debtor_id: Id | None = None


class InstalmentOut(BaseModel):
    seq: int
    due_date: dt.date
    principal_due_minor: int
    interest_due_minor: int
    fee_due_minor: int
    principal_paid_minor: int
    interest_paid_minor: int
    fee_paid_minor: int
    outstanding_minor: int
    is_paid: bool

    @classmethod
    def of(cls, row: Any) -> InstalmentOut:
        due = row.principal_due + row.interest_due + row.fee_due
        paid = row.principal_paid + row.interest_paid + row.fee_paid
        return cls(
            seq=row.seq,
            due_date=row.due_date,
            principal_due_minor=row.principal_due,
            interest_due_minor=row.interest_due,
            fee_due_minor=row.fee_due,
            principal_paid_minor=row.principal_paid,
            interest_paid_minor=row.interest_paid,
            fee_paid_minor=row.fee_paid,
            outstanding_minor=due - paid,
            is_paid=row.is_paid,
        )


class ScheduleOut(BaseModel):
    account_id: int
    currency: str
    items: list[InstalmentOut]


class LedgerEntryOut(BaseModel):
    id: int
    entry_date: dt.date
    kind: str = Field(description="disbursement | recognise | accrual | payment | reversal")
    component: str
    amount_minor: int = Field(description="positive: owed more; negative: owed less")
    instalment_seq: int | None
    payment_id: int | None
    created_at: dt.datetime

    @classmethod
    def of(cls, row: Any) -> LedgerEntryOut:
        return cls(
            id=row.id,
            entry_date=row.entry_date,
            kind=row.kind,
            component=row.component,
            amount_minor=row.amount,
            instalment_seq=row.instalment_seq,
            payment_id=row.payment_id,
            created_at=row.created_at,
        )


class BalanceCheckOut(BaseModel):
    account_id: int
    currency: str
    cached: BalancesOut = Field(description="the balances kept on the account")
    derived: BalancesOut = Field(description="the same summed from the ledger alone")
    is_consistent: bool


# --------------------------------------------------------------------------- payments


class PaymentIn(Input):
    """Posted once per `external_ref`: the same reference again returns the first payment."""

    account_id: Id
    external_ref: Ref
    amount_minor: PositiveMinorUnits | None = None
    amount: MajorAmount | None = None
    value_date: BusinessDate
    currency: Currency | None = Field(
        None, description="must be the account's; needed with a major-unit `amount`"
    )
    channel: Word | None = Field(None, examples=["bank_transfer"])

    def to_service(self) -> dict[str, Any]:
        amount = _to_minor(self.amount_minor, self.amount, self.currency, "amount", required=True)
        if amount == 0:
            raise Invalid("amount", str(self.amount), "must be positive")
        return {
            "account_id": self.account_id,
            "external_ref": self.external_ref,
            "amount": amount,
            "value_date": self.value_date,
            "currency": self.currency,
            "channel": self.channel,
        }


class ReverseIn(Input):
    reason: Reason


class AllocationOut(BaseModel):
    component: str
    instalment_seq: int | None
    amount_minor: int


class PaymentOut(BaseModel):
    id: int
    account_id: int
    external_ref: str
    amount_minor: int
    currency: str
    value_date: dt.date
    channel: str | None
    status: str = Field(description="posted | reversed")
    posted_at: dt.datetime
    reversed_at: dt.datetime | None
    reversal_reason: str | None
    allocation: list[AllocationOut]

    @classmethod
    def of(cls, row: Any) -> PaymentOut:
        parts = (row.allocation or {}).get("parts", [])
        return cls(
            id=row.id,
            account_id=row.account_id,
            external_ref=row.external_ref,
            amount_minor=row.amount,
            currency=row.currency,
            value_date=row.value_date,
            channel=row.channel,
            status=row.status,
            posted_at=row.posted_at,
            reversed_at=row.reversed_at,
            reversal_reason=row.reversal_reason,
            allocation=[
                AllocationOut(component=c, instalment_seq=s, amount_minor=a) for c, s, a in parts
            ],
        )


class LedgerQuery(PageQuery):
    pass
