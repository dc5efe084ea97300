"""enrollments by course: an index for a course's learners

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 20:43:19.115570
"""

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain index: no table rebuild on SQLite (a rebuild would cascade deletes to children).
    op.create_index('ix_enrollments_course_id_role', 'enrollments', ['course_id', 'role'])


def downgrade() -> None:
    op.drop_index('ix_enrollments_course_id_role', table_name='enrollments')
