"""when the case assignment followed a daily run

The worker assigns cases (分案) after the daily cycle, in a transaction of its own; the time it
did so is kept on the run, so that a worker that stopped between the two assigns at its next
round instead of never.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

import recoup.core.db


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cycle_run') as batch:
        batch.add_column(sa.Column('assigned_at', recoup.core.db.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cycle_run') as batch:
        batch.drop_column('assigned_at')
