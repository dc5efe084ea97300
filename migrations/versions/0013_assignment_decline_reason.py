"""the reason an assessor gives when declining a case

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 22:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assessment_assignments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decline_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('assessment_assignments', schema=None) as batch_op:
        batch_op.drop_column('decline_reason')
