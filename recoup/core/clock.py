"""The business date: what day it is where the business is (settings.business_timezone), the
date a promise, an arrangement or a day's work belongs to."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from recoup.core.settings import Settings, get_settings


def business_today(now: dt.datetime | None = None, settings: Settings | None = None) -> dt.date:
    """The business date at the instant `now` (default: the current time)."""
    settings = settings or get_settings()
    if now is not None and now.tzinfo is None:
        raise ValueError("naive datetime given where a zone-aware one is required")
    instant = now or dt.datetime.now(dt.UTC)
    return instant.astimezone(ZoneInfo(settings.business_timezone)).date()
