"""Progress: where each learner stands with each micro-credential, and with each stack.

A domain package (no Flask, no LTI). `models` holds the one table, `credential_progress`: one
row per learner (an `lms_users` row, so per platform) and micro-credential, none while the
learner has not started. The evidence and assessment packages move a learner's state through
`service.set_state`; the web layer reads `service.course_progress`, `course_progress_csv` and
`learner_overview`.
"""
