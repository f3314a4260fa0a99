"""instalment: the unpaid partial index leads with account_id

The daily cycle works partition by partition (ranges of account ids) on unpaid instalments due by
the run date. Leading with account_id lets each partition read only its own unpaid instalments,
with the due date checked in the index, instead of every instalment of the partition's accounts.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instalment', schema=None) as batch_op:
        batch_op.drop_index('ix_instalment_unpaid_due', postgresql_where=sa.text('NOT is_paid'), sqlite_where=sa.text('is_paid = 0'))
        batch_op.create_index('ix_instalment_unpaid', ['account_id', 'due_date'], unique=False, postgresql_where=sa.text('NOT is_paid'), sqlite_where=sa.text('is_paid = 0'))


def downgrade() -> None:
    with op.batch_alter_table('instalment', schema=None) as batch_op:
        batch_op.drop_index('ix_instalment_unpaid', postgresql_where=sa.text('NOT is_paid'), sqlite_where=sa.text('is_paid = 0'))
        batch_op.create_index('ix_instalment_unpaid_due', ['due_date', 'account_id'], unique=False, postgresql_where=sa.text('NOT is_paid'), sqlite_where=sa.text('is_paid = 0'))
