"""the debtor's consent to contact at night, and the date an account's debt becomes time-barred

The compliance guard reads both: the CN rule set lifts the night window for a debtor who agreed
to it (recorded, with who and when, in the change log like any profile field), and no contact
may threaten suit on a debt whose limitation period has run out (诉讼时效届满).

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('debtor') as batch:
        batch.add_column(
            sa.Column(
                'night_contact_consent', sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table('account') as batch:
        batch.add_column(sa.Column('time_barred_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('account') as batch:
        batch.drop_column('time_barred_on')
    with op.batch_alter_table('debtor') as batch:
        batch.drop_column('night_contact_consent')
