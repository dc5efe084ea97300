"""evidence drafts, draft files, attempt notes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 18:55:00
"""

from alembic import op
import sqlalchemy as sa
import lti_tool.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('evidence_drafts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('micro_credential_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('links', sa.JSON(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('collaboration', sa.JSON(), nullable=False),
    sa.Column('previous_attempt_id', sa.Integer(), nullable=True),
    sa.Column('course_id', sa.Integer(), nullable=True),
    sa.Column('resource_link_id', sa.Integer(), nullable=True),
    sa.Column('created_at', lti_tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', lti_tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_evidence_drafts_course_id_courses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['micro_credential_id'], ['micro_credentials.id'], name=op.f('fk_evidence_drafts_micro_credential_id_micro_credentials'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['previous_attempt_id'], ['evidence_attempts.id'], name=op.f('fk_evidence_drafts_previous_attempt_id_evidence_attempts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['resource_link_id'], ['resource_links.id'], name=op.f('fk_evidence_drafts_resource_link_id_resource_links'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['lms_users.id'], name=op.f('fk_evidence_drafts_user_id_lms_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['micro_credential_versions.id'], name=op.f('fk_evidence_drafts_version_id_micro_credential_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evidence_drafts')),
    sa.UniqueConstraint('user_id', 'micro_credential_id', name=op.f('uq_evidence_drafts_user_id_micro_credential_id'))
    )
    with op.batch_alter_table('evidence_drafts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_drafts_micro_credential_id'), ['micro_credential_id'], unique=False)

    op.create_table('evidence_draft_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('draft_id', sa.Integer(), nullable=False),
    sa.Column('requirement_key', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('original_name', sa.String(length=500), nullable=False),
    sa.Column('storage_key', sa.String(length=500), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=200), nullable=False),
    sa.Column('document', sa.JSON(), nullable=True),
    sa.Column('uploaded_at', lti_tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['draft_id'], ['evidence_drafts.id'], name=op.f('fk_evidence_draft_files_draft_id_evidence_drafts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evidence_draft_files'))
    )
    with op.batch_alter_table('evidence_draft_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_draft_files_draft_id'), ['draft_id'], unique=False)

    op.create_table('evidence_attempt_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('collaborators', sa.Text(), nullable=False),
    sa.Column('similar_attempts', sa.JSON(), nullable=False),
    sa.Column('confidentiality', sa.JSON(), nullable=False),
    sa.Column('documents', sa.JSON(), nullable=False),
    sa.Column('fingerprint', sa.JSON(), nullable=False),
    sa.Column('created_at', lti_tool.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['evidence_attempts.id'], name=op.f('fk_evidence_attempt_notes_attempt_id_evidence_attempts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evidence_attempt_notes')),
    sa.UniqueConstraint('attempt_id', name=op.f('uq_evidence_attempt_notes_attempt_id'))
    )


def downgrade() -> None:
    op.drop_table('evidence_attempt_notes')
    with op.batch_alter_table('evidence_draft_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evidence_draft_files_draft_id'))

    op.drop_table('evidence_draft_files')
    with op.batch_alter_table('evidence_drafts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evidence_drafts_micro_credential_id'))

    op.drop_table('evidence_drafts')
