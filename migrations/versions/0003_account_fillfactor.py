"""account: leave room in each page for the daily cycle's updates (PostgreSQL)

The daily cycle updates every delinquent account every day (DPD, balances, watermarks) without
touching an indexed column; bucket and status, which are indexed, are written only when they
change. With free space in the page PostgreSQL keeps such an update on the same page (a HOT
update) and writes no index entries at all. SQLite has no such setting: nothing to do there.

Revision ID: 0003
Revises: 0002
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE account SET (fillfactor = 80)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE account RESET (fillfactor)')
