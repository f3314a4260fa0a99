"""Typed settings: the only place that reads the environment.

Sources, highest first: environment variables `RECOUP_*`, then `recoup.toml` in the working
directory (or the file named by `RECOUP_CONFIG`), then the defaults, which give embedded mode.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class LprRate(BaseModel):
    """One-year Loan Prime Rate (一年期LPR) in force from `effective` on, in basis points."""

    effective: dt.date
    rate_bp: int


# Published one-year LPR values (全国银行间同业拆借中心公布).
# This is data, not logic: override or extend it with `[[lpr]]` tables in recoup.toml
# when a new value is published.
DEFAULT_LPR = [
    LprRate(effective=dt.date(2019, 8, 20), rate_bp=425),
    LprRate(effective=dt.date(2019, 9, 20), rate_bp=420),
    LprRate(effective=dt.date(2019, 11, 20), rate_bp=415),
    LprRate(effective=dt.date(2020, 2, 20), rate_bp=405),
    LprRate(effective=dt.date(2020, 4, 20), rate_bp=385),
    LprRate(effective=dt.date(2021, 12, 20), rate_bp=380),
    LprRate(effective=dt.date(2022, 1, 20), rate_bp=370),
    LprRate(effective=dt.date(2022, 8, 22), rate_bp=365),
    LprRate(effective=dt.date(2023, 6, 20), rate_bp=355),
    LprRate(effective=dt.date(2023, 8, 21), rate_bp=345),
    LprRate(effective=dt.date(2024, 7, 22), rate_bp=335),
    LprRate(effective=dt.date(2024, 10, 21), rate_bp=310),
    LprRate(effective=dt.date(2025, 5, 20), rate_bp=300),
]


# Estimated cost of one action of each type, in major units of the portfolio's currency.
DEFAULT_ACTION_COSTS = {
    "sms": Decimal("0.05"),
    "email": Decimal("0.01"),
    "voice": Decimal("0.20"),
    "call_task": Decimal("3.00"),
    "letter": Decimal("5.00"),
    "field_visit": Decimal("150.00"),
    "lawyer_letter": Decimal("300.00"),
    "agency_placement": Decimal("0"),
    "legal_review": Decimal("200.00"),
    "write_off_proposal": Decimal("0"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECOUP_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = Field(
        default="sqlite:///recoup.db",
        description="SQLAlchemy URL. SQLite file (embedded) or postgresql+psycopg://…",
    )
    default_currency: str = "CNY"
    default_timezone: str = "Asia/Shanghai"
    default_language: str = "zh-CN"
    # Upper DPD bound of each bucket: M0 is dpd <= 0, M1 is 1..30, …, the last bucket is open.
    bucket_bounds: list[int] = Field(default=[0, 30, 60, 90, 120, 150, 180])
    # Stage entered at each DPD threshold (inclusive lower bound), in escalation order.
    stage_thresholds: dict[str, int] = Field(
        default={"early": 1, "negotiation": 31, "hard": 91, "recovery": 151}
    )
    lpr: list[LprRate] = Field(default_factory=lambda: list(DEFAULT_LPR))
    cycle_partitions: int = Field(default=8, ge=1, le=4096)
    # PostgreSQL: partitions of the daily cycle done at the same time, each on its own
    # connection (SQLite has one writer: always 1). More than the server's cores gains nothing.
    cycle_workers: int = Field(default=2, ge=1, le=64)
    # An import of at least this many rows has its references checked by the database in bulk
    # (recoup.core.bulk.load_transaction): on PostgreSQL the tables it writes are locked until
    # it commits. Set it higher to keep big imports from locking out other sessions.
    import_bulk_rows: int = Field(default=50_000, ge=1)
    # Strategy steps whose date was missed (the cycle did not run) are planned when it runs
    # again, for at most this many days back.
    plan_catch_up_days: int = Field(default=7, ge=1, le=60)
    # Estimated cost of one action of each type, in major units of the portfolio's currency
    # (the strategy dry run's cost column). Set in recoup.toml under [action_costs].
    action_costs: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_ACTION_COSTS))
    secret_key: str = "change-me-in-production"
    host: str = "127.0.0.1"
    port: int = 8000

    # --- Channel providers (recoup.channels.adapters) -------------------------------------
    # Which adapter sends each channel: console/file for development, smtp/http in production.
    # The adapters check what they need (e.g. smtp_host) when built, naming the missing setting.
    email_adapter: Literal["console", "file", "smtp"] = "console"
    sms_adapter: Literal["console", "file", "http"] = "console"
    # Directory of the file adapter: one .eml (email) or .json (sms) per idempotency key.
    outbox_dir: Path = Path("var/outbox")
    smtp_host: str | None = None
    # None: the port of the security mode (587 starttls, 465 tls, 25 none).
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # From header of every email, e.g. "Recoup <billing@example.com>"; required for smtp.
    smtp_from: str | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # A CA bundle (PEM) to trust instead of the system's, e.g. for an internal relay.
    smtp_ca_file: Path | None = None
    # Development only: False skips certificate and host name checks.
    smtp_verify: bool = True
    sms_gateway_url: str | None = None
    # Shared secret of the HMAC signature of requests to the gateway and of its webhooks.
    sms_gateway_secret: SecretStr | None = None
    # Sender name or signature (短信签名) the gateway puts on each SMS.
    sms_sender: str = "Recoup"
    sms_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Where the gateway posts delivery receipts (sent with each SMS when set).
    sms_callback_url: str | None = None
    # --- end of channel providers -----------------------------------------------------------
    # --- Outbox and worker (recoup.channels.outbox, recoup.channels.tasks) ---------------------
    # Messages claimed by one worker at a time, and how long a claim holds: a worker that dies
    # mid-batch loses its claim after the lease and another sends the messages again with the
    # same idempotency key (the provider drops the duplicate).
    outbox_batch_size: int = Field(default=200, ge=1, le=10_000)
    outbox_lease_seconds: int = Field(default=120, ge=1, le=86_400)
    # Retries after a provider error or timeout: base * 2^(attempt-1), capped, +-20 % jitter;
    # after max attempts the message is failed (kept, never dropped).
    outbox_retry_base_seconds: float = Field(default=30.0, ge=0, le=86_400)
    outbox_retry_max_seconds: float = Field(default=3600.0, ge=0, le=7 * 86_400)
    outbox_max_attempts: int = Field(default=8, ge=1, le=100)
    # Where the daily print file of letters is written.
    letters_dir: Path = Path("var/letters")
    # The address at which debtors reach this server (unsubscribe links in emails).
    public_base_url: str = "http://127.0.0.1:8000"
    # The worker: the daily cycle at this local time (business_timezone), the dispatch loop
    # polling every poll seconds when idle. With queue_url (redis://…) several workers share
    # the work through Huey; without it the worker runs everything in its own process.
    cycle_time: dt.time = dt.time(2, 0)
    business_timezone: str = "Asia/Shanghai"
    worker_poll_seconds: float = Field(default=2.0, gt=0, le=3600)
    queue_url: str | None = None

    # --- access and the workspace ---
    # Browser sessions last this long; sign-in locks after this many failures in a row, for
    # this long. Cookies are Secure when the site is served over HTTPS (set it in production).
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_lock_minutes: int = Field(default=15, ge=1, le=24 * 60)
    cookie_secure: bool = False
    # Where attachments of logged contacts (recordings, photos) are stored, by SHA-256.
    attachments_dir: Path = Path("var/attachments")
    attachment_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    # --- end of outbox and worker -------------------------------------------------------------

    # --- worklist ---
    # Expected value of working an account (seeds: 轻重缓急): overdue amount x probability of
    # payment (by risk band until a model exists; "default" for an account without one) x
    # stage weight / expected effort of the kind of work.
    worklist_probability: dict[str, float] = Field(
        default={"A": 0.6, "B": 0.45, "C": 0.3, "D": 0.15, "E": 0.05, "default": 0.25}
    )
    worklist_stage_weight: dict[str, float] = Field(
        default={"early": 1.0, "negotiation": 1.2, "hard": 1.4, "recovery": 0.8}
    )
    worklist_effort: dict[str, float] = Field(
        default={
            "callback": 0.8,
            "promise_due": 0.7,
            "broken_promise": 1.0,
            "broken_arrangement": 1.0,
            "follow_up": 1.0,
            "call_task": 1.0,
            "field_visit": 4.0,
        }
    )

    @field_validator("worklist_probability", "worklist_stage_weight", "worklist_effort")
    @classmethod
    def _worklist_factors(cls, v: dict[str, float]) -> dict[str, float]:
        # A zero or negative effort would divide by zero or flip the order of the worklist.
        if any(not (x > 0) for x in v.values()):
            raise ValueError("worklist factors must be positive numbers")
        return v

    # --- end of worklist ---

    # --- promises ---
    # A promise to pay (承诺还款) falls due at most this many days after the day it is made; it
    # is broken (or partly kept) when not paid in full by its due date plus the grace days.
    promise_max_days: int = Field(default=30, ge=1, le=366)
    promise_grace_days: int = Field(default=1, ge=0, le=60)
    # Local time (business_timezone), on the day after the check, of the follow-up task of a
    # broken promise.
    promise_follow_up_time: dt.time = dt.time(9, 0)
    # --- end of promises ---

    # --- contacts ---
    # Extra reasons for delinquency (逾期原因) offered when logging a contact, code ->
    # {"zh": …, "en": …}; may also relabel a shipped code.
    delinquency_reasons_extra: dict[str, dict[str, str]] = Field(default_factory=dict)
    # A manual contact outside the contact hours or over a frequency cap, by jurisdiction:
    # "block" refuses it, "warn" logs it with the rule as a warning. Stop flags and
    # do-not-contact always block.
    manual_contact_guard: dict[str, Literal["block", "warn"]] = Field(
        default={"CN": "block", "US": "block"}
    )
    # --- end of contacts ---

    # --- arrangements ---
    # How much of each component's balance (at proposal time), in percent, a role may waive
    # (减免审批权限). Above the proposer's limit an arrangement waits in the approval queue for a
    # role that may approve it; above every limit it is refused.
    approval_limits: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {
            "collector": {"late_fee": 20, "penalty": 20, "interest": 0, "fee": 0, "principal": 0},
            "agency": {"late_fee": 0, "penalty": 0, "interest": 0, "fee": 0, "principal": 0},
            "manager": {
                "late_fee": 100,
                "penalty": 100,
                "interest": 100,
                "fee": 100,
                "principal": 10,
            },
            "admin": dict.fromkeys(("late_fee", "penalty", "interest", "fee", "principal"), 100),
        }
    )
    # An arrangement instalment not paid in full this many days after its due date breaks it.
    arrangement_grace_days: int = Field(default=3, ge=0, le=60)
    arrangement_max_instalments: int = Field(default=60, ge=1, le=600)
    # Local time (business_timezone), on the day after the check, of the follow-up task of a
    # broken arrangement.
    arrangement_follow_up_time: dt.time = dt.time(9, 0)

    @field_validator("approval_limits")
    @classmethod
    def _approval_limits(cls, v: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        known = {"late_fee", "penalty", "interest", "fee", "principal"}
        for role, limits in v.items():
            unknown = set(limits) - known
            if unknown:
                raise ValueError(f"approval_limits.{role}: unknown components {sorted(unknown)}")
            if any(not 0 <= pct <= 100 for pct in limits.values()):
                raise ValueError(f"approval_limits.{role}: percentages must be 0 to 100")
        return v

    # --- end of arrangements ---

    @field_validator("bucket_bounds")
    @classmethod
    def _ascending(cls, v: list[int]) -> list[int]:
        if not v or v[0] != 0 or any(b <= a for a, b in pairwise(v)):
            raise ValueError("bucket_bounds must start at 0 and be strictly ascending")
        return v

    @field_validator("action_costs")
    @classmethod
    def _costs(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        # A recoup.toml table names only what it changes; the rest keep their defaults.
        unknown = set(v) - set(DEFAULT_ACTION_COSTS)
        if unknown:
            raise ValueError(f"unknown action types: {', '.join(sorted(unknown))}")
        if any(c < 0 for c in v.values()):
            raise ValueError("costs cannot be negative")
        return {**DEFAULT_ACTION_COSTS, **v}

    @field_validator("stage_thresholds")
    @classmethod
    def _stages(cls, v: dict[str, int]) -> dict[str, int]:
        values = list(v.values())
        if not values or values[0] < 1 or any(b <= a for a, b in pairwise(values)):
            raise ValueError("stage_thresholds must be ascending DPD values starting at 1 or more")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("RECOUP_CONFIG", "recoup.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def bucket_names(self) -> list[str]:
        return [f"M{i}" for i in range(len(self.bucket_bounds))] + [f"M{len(self.bucket_bounds)}+"]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
