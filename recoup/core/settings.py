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
    # --- end of outbox and worker -------------------------------------------------------------

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
