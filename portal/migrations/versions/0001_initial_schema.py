"""Initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23

Generated with autogenerate, then reviewed: UTC datetimes are plain DateTime columns (the
UTC handling is on the Python side), and the queue's two partial, expression-based indexes
were added by hand (autogenerate cannot see them on SQLite).
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

OPEN_SQL = "status IN ('received', 'in_assessment', 'action_taken')"


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('target_type', sa.String(length=30), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hash')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_log_target', ['target_type', 'target_id'], unique=False)

    op.create_table('items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('url_hash', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(), nullable=False),
    sa.Column('report_count', sa.Integer(), nullable=False),
    sa.Column('last_outcome', sa.String(length=30), nullable=True),
    sa.Column('national_country', sa.String(length=2), nullable=True),
    sa.Column('category', sa.String(length=20), nullable=True),
    sa.Column('age_group', sa.String(length=20), nullable=True),
    sa.Column('last_assessed_at', sa.DateTime(), nullable=True),
    sa.Column('last_assessed_by', sa.Integer(), nullable=True),
    sa.Column('trace_addresses', sa.String(length=500), nullable=True),
    sa.Column('trace_country', sa.String(length=2), nullable=True),
    sa.Column('trace_asn', sa.String(length=20), nullable=True),
    sa.Column('trace_network', sa.String(length=200), nullable=True),
    sa.Column('trace_cdn', sa.String(length=100), nullable=True),
    sa.Column('trace_error', sa.String(length=30), nullable=True),
    sa.Column('traced_at', sa.DateTime(), nullable=True),
    sa.Column('trace_corrected', sa.Boolean(), nullable=False),
    sa.Column('notice_due_at', sa.DateTime(), nullable=True),
    sa.Column('law_enforcement_needed', sa.Boolean(), nullable=False),
    sa.Column('removed_at', sa.DateTime(), nullable=True),
    sa.Column('removal_seconds', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('url_hash')
    )
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_items_removed_at'), ['removed_at'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['next_attempt_at', 'created_at'], unique=False)

    op.create_table('receipt_status',
    sa.Column('receipt_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('receipt_hash')
    )
    op.create_table('reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('envelope_id', sa.String(length=36), nullable=False),
    sa.Column('portal', sa.String(length=40), nullable=False),
    sa.Column('lang', sa.String(length=12), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.Column('content_type', sa.String(length=20), nullable=False),
    sa.Column('where_found', sa.String(length=20), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('contact_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('receipt_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assigned_to', sa.Integer(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('envelope_id')
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_assigned_to'), ['assigned_to'], unique=False)
        batch_op.create_index('ix_reports_portal_received', ['portal', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_reports_receipt_hash'), ['receipt_hash'], unique=False)
        batch_op.create_index('ix_reports_received', ['received_at'], unique=False)
        batch_op.create_index('ix_reports_status_received', ['status', 'received_at'], unique=False)
    op.create_index('ix_reports_open_queue', 'reports',
                    [sa.text('urgent DESC'), 'received_at', 'id'],
                    postgresql_where=sa.text(OPEN_SQL), sqlite_where=sa.text(OPEN_SQL))
    op.create_index('ix_reports_open_portal_queue', 'reports',
                    ['portal', sa.text('urgent DESC'), 'received_at', 'id'],
                    postgresql_where=sa.text(OPEN_SQL), sqlite_where=sa.text(OPEN_SQL))

    op.create_table('status_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('receipt_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('summary_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal', sa.String(length=40), nullable=False),
    sa.Column('period', sa.String(length=30), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('portal', 'period', 'channel', 'target')
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('language', sa.String(length=12), nullable=False),
    sa.Column('portals', sa.String(length=500), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('must_change_password', sa.Boolean(), nullable=False),
    sa.Column('totp_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('totp_enrolled', sa.Boolean(), nullable=False),
    sa.Column('totp_last_step', sa.Integer(), nullable=False),
    sa.Column('recovery_codes', sa.Text(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('session_version', sa.Integer(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_table('work_days',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('seconds', sa.Integer(), nullable=False),
    sa.Column('stretch_seconds', sa.Integer(), nullable=False),
    sa.Column('last_activity_at', sa.DateTime(), nullable=True),
    sa.Column('breaks', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'day')
    )
    op.create_table('actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('analyst_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_actions_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_actions_item_id'), ['item_id'], unique=False)

    op.create_table('assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('analyst_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=30), nullable=False),
    sa.Column('national_country', sa.String(length=2), nullable=True),
    sa.Column('category', sa.String(length=20), nullable=True),
    sa.Column('age_group', sa.String(length=20), nullable=True),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assessments_item_id'), ['item_id'], unique=False)

    op.create_table('report_items',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'item_id')
    )
    with op.batch_alter_table('report_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_items_item_id'), ['item_id'], unique=False)

    op.create_table('report_urls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('report_urls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_urls_report_id'), ['report_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('report_urls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_urls_report_id'))

    op.drop_table('report_urls')
    with op.batch_alter_table('report_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_items_item_id'))

    op.drop_table('report_items')
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assessments_item_id'))

    op.drop_table('assessments')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_actions_item_id'))
        batch_op.drop_index(batch_op.f('ix_actions_at'))

    op.drop_table('actions')
    op.drop_table('work_days')
    op.drop_table('users')
    op.drop_table('summary_deliveries')
    op.drop_table('status_outbox')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_status_received')
        batch_op.drop_index('ix_reports_received')
        batch_op.drop_index(batch_op.f('ix_reports_receipt_hash'))
        batch_op.drop_index('ix_reports_portal_received')
        batch_op.drop_index(batch_op.f('ix_reports_assigned_to'))

    op.drop_table('reports')
    op.drop_table('receipt_status')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')

    op.drop_table('outbox')
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_items_removed_at'))

    op.drop_table('items')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_target')
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')
