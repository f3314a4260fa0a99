"""outbox and interactions

The outbox (every message to send, written in the transaction of the decision that causes it,
with its idempotency key, attempts, lease and outcome) and the interactions of each account's
timeline (every message sent with its content and hash, replies, opt-outs).

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
import recoup.core.db


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbox_message',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('idempotency_key', sa.String(length=100), nullable=False),
        sa.Column('planned_action_id', sa.BigInteger(), nullable=True),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('debtor_id', sa.Integer(), nullable=False),
        sa.Column('portfolio_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('template', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', recoup.core.db.UtcDateTime(), nullable=False),
        sa.Column('locked_by', sa.String(length=64), nullable=True),
        sa.Column('locked_until', recoup.core.db.UtcDateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('rule_id', sa.String(length=64), nullable=True),
        sa.Column('contact_point_id', sa.Integer(), nullable=True),
        sa.Column('recipient', sa.String(length=300), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=True),
        sa.Column('template_version', sa.Integer(), nullable=True),
        sa.Column('subject', sa.Text(), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('content_sha256', sa.String(length=64), nullable=True),
        sa.Column('provider_id', sa.String(length=200), nullable=True),
        sa.Column('batch_date', sa.Date(), nullable=True),
        sa.Column('sent_at', recoup.core.db.UtcDateTime(), nullable=True),
        sa.Column('delivered_at', recoup.core.db.UtcDateTime(), nullable=True),
        sa.Column('created_at', recoup.core.db.UtcDateTime(), nullable=False),
        sa.Column('updated_at', recoup.core.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('idempotency_key'),
    )
    op.create_index(
        'ix_outbox_message_status_next', 'outbox_message', ['status', 'next_attempt_at']
    )
    op.create_index('ix_outbox_message_provider', 'outbox_message', ['provider_id'])
    op.create_table(
        'interaction',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=True),
        sa.Column('debtor_id', sa.Integer(), nullable=True),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('at', recoup.core.db.UtcDateTime(), nullable=False),
        sa.Column('party', sa.String(length=16), nullable=False),
        sa.Column('contact_point_id', sa.Integer(), nullable=True),
        sa.Column('address', sa.String(length=300), nullable=True),
        sa.Column('template', sa.String(length=64), nullable=True),
        sa.Column('subject', sa.Text(), nullable=True),
        sa.Column('content', sa.Text(), nullable=True),
        sa.Column('content_sha256', sa.String(length=64), nullable=True),
        sa.Column('provider_id', sa.String(length=200), nullable=True),
        sa.Column('delivery_status', sa.String(length=16), nullable=True),
        sa.Column('outbox_message_id', sa.BigInteger(), nullable=True),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', recoup.core.db.UtcDateTime(), nullable=False),
        sa.Column('updated_at', recoup.core.db.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('outbox_message_id'),
    )
    op.create_index('ix_interaction_account_at', 'interaction', ['account_id', 'at'])


def downgrade() -> None:
    op.drop_index('ix_interaction_account_at', table_name='interaction')
    op.drop_table('interaction')
    op.drop_index('ix_outbox_message_provider', table_name='outbox_message')
    op.drop_index('ix_outbox_message_status_next', table_name='outbox_message')
    op.drop_table('outbox_message')
