"""generated schedules stored as they are needed; one index on account fewer

`account.scheduled_through`: NULL when every instalment of the account is stored (all accounts
until now); otherwise the instalments due on or before that date are, and the later ones are
generated from the account's terms when something needs them (recoup.ledger.schedules). A bulk
import of generated loans writes no instalment rows.

The index on account.portfolio_id alone goes: ix_account_portfolio_bucket starts with that
column, and every account written paid for both.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('account', sa.Column('scheduled_through', sa.Date(), nullable=True))
    op.drop_index('ix_account_portfolio_id', table_name='account')


def downgrade() -> None:
    # Store what is not stored before the column that says so goes.
    from recoup.ledger.schedules import store_all

    conn = op.get_bind()
    ids = [r[0] for r in conn.execute(sa.text('SELECT id FROM account WHERE scheduled_through IS NOT NULL'))]
    store_all(conn, ids)
    op.create_index('ix_account_portfolio_id', 'account', ['portfolio_id'], unique=False)
    # Both databases drop a column in place (SQLite since 3.35, which Recoup needs anyway); a
    # batch copy of the table would trip over the rows that refer to it.
    op.execute('ALTER TABLE account DROP COLUMN scheduled_through')
