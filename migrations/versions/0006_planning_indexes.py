"""planning reads by due date and by cycle date per range of accounts

Planning finds the accounts with an instalment falling due within the longest reminder lead
by reading the unpaid instalments by due date (a partial index beside the one by account), and
the compliance guard and the stage transitions read the day's planned actions per range of
account ids: the index by cycle date gains the account id. The guard counts the debtor's usable
contact points of each kind from the index by debtor alone, which now covers those columns.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_instalment_unpaid_due',
        'instalment',
        ['due_date', 'account_id'],
        unique=False,
        postgresql_where=sa.text('NOT is_paid'),
        sqlite_where=sa.text('is_paid = 0'),
    )
    op.drop_index('ix_planned_action_cycle_date', table_name='planned_action')
    op.drop_index('ix_contact_point_debtor_id', table_name='contact_point')
    op.create_index(
        'ix_contact_point_debtor',
        'contact_point',
        ['debtor_id', 'kind', 'owner', 'is_active', 'do_not_contact'],
        unique=False,
    )
    op.create_index(
        'ix_planned_action_cycle_account',
        'planned_action',
        ['cycle_date', 'account_id'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index('ix_contact_point_debtor', table_name='contact_point')
    op.create_index('ix_contact_point_debtor_id', 'contact_point', ['debtor_id'], unique=False)
    op.drop_index('ix_planned_action_cycle_account', table_name='planned_action')
    op.create_index('ix_planned_action_cycle_date', 'planned_action', ['cycle_date'], unique=False)
    op.drop_index('ix_instalment_unpaid_due', table_name='instalment')
