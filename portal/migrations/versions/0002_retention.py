"""Retention: when a report was closed, stored sponsor figures, indexes for portal purge

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Reports already finished when this runs get today as their closing time: the contact
retention then starts now, never earlier than it would have.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

CONTACT_SQL = "contact_sealed IS NOT NULL"


def upgrade() -> None:
    op.create_table('period_figures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal', sa.String(length=40), nullable=False),
    sa.Column('period', sa.String(length=30), nullable=False),
    sa.Column('tz', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('portal', 'period')
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(), nullable=True))
    now = datetime.now(UTC).replace(tzinfo=None)  # UTC, stored without zone like every column
    op.execute(sa.text("UPDATE reports SET closed_at = :now WHERE status IN ('no_action', 'closed')")
               .bindparams(now=now))
    op.create_index('ix_reports_contact_closed', 'reports', ['closed_at'], unique=False,
                    postgresql_where=sa.text(CONTACT_SQL), sqlite_where=sa.text(CONTACT_SQL))
    op.create_index('ix_receipt_status_updated_at', 'receipt_status', ['updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_receipt_status_updated_at', table_name='receipt_status')
    op.drop_index('ix_reports_contact_closed', table_name='reports')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
    op.drop_table('period_figures')
