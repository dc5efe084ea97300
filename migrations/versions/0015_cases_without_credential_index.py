"""assessment cases: drop the index on micro_credential_id, which no query reads

Every assignment run rewrites the row of each case it staffs (its status changes, so the update
is never HOT and every index of the table gets a new entry): one index fewer is about a sixth
less of that work. No query selects cases by micro-credential (statistics group them in
Python), and micro-credentials are never deleted, so the foreign key's cascade has nothing to
find.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 22:10:00
"""

from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain index: no table rebuild on SQLite (a rebuild would cascade deletes to children).
    op.drop_index('ix_assessment_cases_micro_credential_id', table_name='assessment_cases')


def downgrade() -> None:
    op.create_index(
        'ix_assessment_cases_micro_credential_id', 'assessment_cases', ['micro_credential_id']
    )
