"""Evidence: submissions, attempts, evidence items and their files (no Flask here)."""
