"""Sign-in: the nonce that makes a pending sign-in single-use

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08

Accounts start without one: a sign-in half done before this runs starts again.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sign_in_nonce', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('sign_in_nonce')
