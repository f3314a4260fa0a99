"""Tables of the portfolio and ledger: creditors, portfolios, products, debtors and their
contact points and flags, accounts, instalments, payments and ledger entries.

Money columns are BIGINT minor units. Rates are annual, in parts per million (ppm): 18.25 % a year
(万分之五 a day) is 182500. The cached balances on `account` and `instalment` are derived data:
every one of them can be recomputed from `ledger_entry` (see ledger.service.derive_balances).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from recoup.core.db import Base, UtcDateTime, utcnow


class Creditor(Base):
    __tablename__ = "creditor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="lender")  # lender | company
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Portfolio(Base):
    __tablename__ = "portfolio"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditor.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    jurisdiction: Mapped[str] = mapped_column(String(8), default="CN")
    # Cap on interest + penalty + fees: "cn_private_lending" (4 x one-year LPR at the contract
    # date), "annual_rate" (cap_rate_ppm a year) or "none".
    cap_preset: Mapped[str] = mapped_column(String(32), default="cn_private_lending")
    cap_rate_ppm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Payment waterfall: components in allocation order, oldest instalment first within each.
    waterfall: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["late_fee", "penalty", "fee", "interest", "principal"]
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Product(Base):
    """Default contract terms; an account inherits them unless it carries its own."""

    __tablename__ = "product"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolio.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # loan | invoice
    interest_rate_ppm: Mapped[int] = mapped_column(Integer, default=0)
    penalty_rate_ppm: Mapped[int] = mapped_column(Integer, default=0)
    late_fee_fixed: Mapped[int] = mapped_column(BigInteger, default=0)
    late_fee_rate_ppm: Mapped[int] = mapped_column(Integer, default=0)
    grace_days: Mapped[int] = mapped_column(Integer, default=0)
    method: Mapped[str] = mapped_column(String(24), default="annuity")
    term: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Debtor(Base):
    __tablename__ = "debtor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_ref: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="person")  # person | company
    name: Mapped[str] = mapped_column(String(200))
    id_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Date of birth for a person, date of registration for a company.
    birth_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    employer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    income_band: Mapped[str | None] = mapped_column(String(32), nullable=True)
    address: Mapped[str | None] = mapped_column(Text, nullable=True)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    language: Mapped[str] = mapped_column(String(16), default="zh-CN")
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    credit_rating: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The debtor agreed to be contacted outside the usual hours (CN: 22:00-08:00 only with the
    # debtor's consent). Set and withdrawn like any profile field: the change log keeps who and
    # when. The rule set decides whether it lifts the window (night_consent_allows).
    night_contact_consent: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class ContactPoint(Base):
    __tablename__ = "contact_point"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtor.id"))
    kind: Mapped[str] = mapped_column(String(16))  # phone | email | address
    value: Mapped[str] = mapped_column(String(300))
    # self | spouse | relative | employer | guarantor | emergency
    owner: Mapped[str] = mapped_column(String(16), default="self")
    owner_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    has_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        # By debtor, covering what the compliance guard counts for each planned action (the
        # debtor's own usable points of a kind), so it reads no table rows.
        Index(
            "ix_contact_point_debtor", "debtor_id", "kind", "owner", "is_active", "do_not_contact"
        ),
    )


class DebtorFlag(Base):
    """A stop flag with who set it, when and why; clearing keeps the row (history)."""

    __tablename__ = "debtor_flag"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtor.id"), index=True)
    # dispute | cease_communication | bankrupt | deceased | litigation_hold | vulnerable
    flag: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    cleared_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    clear_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ChangeLog(Base):
    """History of profile and contact-point changes (seeds: 定期更新客户档案)."""

    __tablename__ = "change_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))  # debtor | contact_point | account
    entity_id: Mapped[int] = mapped_column(Integer)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtor.id"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    new_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Account(Base):
    """One loan or one receivable. Terms are copied from the product at creation unless given."""

    __tablename__ = "account"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_ref: Mapped[str] = mapped_column(String(64), unique=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("debtor.id"), index=True)
    # Looked up by ix_account_portfolio_bucket, whose first column it is.
    portfolio_id: Mapped[int] = mapped_column(ForeignKey("portfolio.id"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # loan | invoice
    currency: Mapped[str] = mapped_column(String(3))
    principal: Mapped[int] = mapped_column(BigInteger)
    start_date: Mapped[dt.date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(24))  # annuity|equal_principal|bullet|given|invoice
    term: Mapped[int] = mapped_column(Integer, default=1)
    interest_rate_ppm: Mapped[int] = mapped_column(Integer, default=0)
    penalty_rate_ppm: Mapped[int] = mapped_column(Integer, default=0)
    late_fee_fixed: Mapped[int] = mapped_column(BigInteger, default=0)
    late_fee_rate_ppm: Mapped[int] = mapped_column(Integer, default=0)
    grace_days: Mapped[int] = mapped_column(Integer, default=0)
    # Annual cap on interest + penalty + fees, resolved at creation (e.g. 4 x LPR at contract
    # date); NULL means uncapped.
    cap_rate_ppm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The day the limitation period ends (诉讼时效届满; statute of limitations): from then on the
    # debt is time-barred and no contact may threaten suit. Set by the creditor, who knows the
    # law that applies and what restarted the period; NULL means not known to be time-barred.
    time_barred_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # Which instalments are stored (recoup.ledger.schedules): NULL, all of them; a date, those
    # due on or before it, the later ones being generated from the terms above when needed.
    scheduled_through: Mapped[dt.date | None] = mapped_column(Date, nullable=True)

    # --- state maintained by payments and the daily cycle (derived, see module docstring) ---
    status: Mapped[str] = mapped_column(String(16), default="current")
    dpd: Mapped[int] = mapped_column(Integer, default=0)
    bucket: Mapped[str] = mapped_column(String(8), default="M0")
    stage: Mapped[str] = mapped_column(String(16), default="current")
    oldest_unpaid_due: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    principal_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    interest_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    penalty_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    late_fee_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    overdue_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # Everything ever charged besides principal (interest, fees, penalty, late fees): the cap base.
    charges_total: Mapped[int] = mapped_column(BigInteger, default=0)
    # Instalments due on or before this date have had interest and fees recognised as owed.
    recognised_through: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # Penalty and late fees accrued up to and including this date (the cycle's watermark).
    accrued_through: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    status_since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # Date the account entered its current stage (the anchor of stage-relative strategy steps).
    stage_since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # Segmentation inputs of the strategy engine: a risk band (from scoring or imported) and
    # the state of the latest promise to pay: none | pending | kept | broken.
    risk_band: Mapped[str | None] = mapped_column(String(16), nullable=True)
    promise_state: Mapped[str] = mapped_column(
        String(16), default="none", server_default=text("'none'")
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    # On PostgreSQL the table keeps 20% of each page free (migration 0003) so that the daily
    # cycle's updates, which leave the indexed columns alone, stay on their page (HOT).
    __table_args__ = (
        Index("ix_account_portfolio_bucket", "portfolio_id", "bucket"),
        Index("ix_account_status", "status"),
    )


class AccountTag(Base):
    """Free labels on an account (e.g. "vip", "complaint", "b2b-key"), used by strategy segments."""

    __tablename__ = "account_tag"
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Instalment(Base):
    """An amount due on a date, by component, with what has been paid and waived of it."""

    __tablename__ = "instalment"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    seq: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[dt.date] = mapped_column(Date)
    principal_due: Mapped[int] = mapped_column(BigInteger)
    interest_due: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_due: Mapped[int] = mapped_column(BigInteger, default=0)
    principal_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    interest_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    is_paid: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("account_id", "seq", name="uq_instalment_account_seq"),
        # The cycle reads, per range of account ids, only unpaid instalments due by its date.
        Index(
            "ix_instalment_unpaid",
            "account_id",
            "due_date",
            postgresql_where=text("NOT is_paid"),
            sqlite_where=text("is_paid = 0"),
        ),
        # Planning reads the instalments falling due in the next few days by due date.
        Index(
            "ix_instalment_unpaid_due",
            "due_date",
            "account_id",
            postgresql_where=text("NOT is_paid"),
            sqlite_where=text("is_paid = 0"),
        ),
    )


class Payment(Base):
    __tablename__ = "payment"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    # Idempotency: the same external reference is the same payment.
    external_ref: Mapped[str] = mapped_column(String(100), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    value_date: Mapped[dt.date] = mapped_column(Date)
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="posted")  # posted | reversed
    reversed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reversal_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    allocation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    posted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class LedgerEntry(Base):
    """Append-only. Positive amounts increase what the debtor owes, negative decrease it.

    kind: disbursement | recognise (interest/fee falling due) | accrual (penalty, late fee)
          | payment | reversal | credit (overpayment, component "credit", negative)
    """

    __tablename__ = "ledger_entry"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    instalment_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    entry_date: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))
    component: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
