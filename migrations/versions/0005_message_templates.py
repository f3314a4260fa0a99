"""message templates

Stored versions of the message templates (one row per name, language and version; the active
one is used, the shipped catalogue when a name has none) and the sender details of a creditor
or a portfolio that messages and letters quote.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import recoup.core.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('message_template',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('requires', sa.JSON(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', recoup.core.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_template')),
    sa.UniqueConstraint('name', 'language', 'version', name='uq_message_template_version')
    )
    with op.batch_alter_table('message_template', schema=None) as batch_op:
        batch_op.create_index('ix_message_template_active', ['name', 'language', 'is_active'], unique=False)

    op.create_table('sender_profile',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('creditor_id', sa.Integer(), nullable=True),
    sa.Column('portfolio_id', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=100), nullable=False),
    sa.Column('updated_at', recoup.core.db.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(creditor_id IS NULL) <> (portfolio_id IS NULL)', name=op.f('ck_sender_profile_one_owner')),
    sa.ForeignKeyConstraint(['creditor_id'], ['creditor.id'], name=op.f('fk_sender_profile_creditor_id_creditor')),
    sa.ForeignKeyConstraint(['portfolio_id'], ['portfolio.id'], name=op.f('fk_sender_profile_portfolio_id_portfolio')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sender_profile')),
    sa.UniqueConstraint('creditor_id', name=op.f('uq_sender_profile_creditor_id')),
    sa.UniqueConstraint('portfolio_id', name=op.f('uq_sender_profile_portfolio_id'))
    )


def downgrade() -> None:
    op.drop_table('sender_profile')
    with op.batch_alter_table('message_template', schema=None) as batch_op:
        batch_op.drop_index('ix_message_template_active')

    op.drop_table('message_template')
