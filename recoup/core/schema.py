"""The whole schema: every capability's models, and migrating a database to the latest version."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

import recoup.access.models
import recoup.arrangements.models
import recoup.channels.models
import recoup.compliance.models
import recoup.contacts.models
import recoup.cycle.models
import recoup.ledger.models
import recoup.promises.models
import recoup.strategy.models
import recoup.workspace.models
from recoup.core.db import Base

metadata = Base.metadata
_ = (
    recoup.access.models,
    recoup.workspace.models,
    recoup.arrangements.models,
    recoup.contacts.models,
    recoup.promises.models,
    recoup.channels.models,
    recoup.cycle.models,
    recoup.compliance.models,
    recoup.strategy.models,
)

MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["url"] = engine.url.render_as_string(hide_password=False)
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the database to the latest migration (creates it from nothing)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
