"""The transactional outbox: how one package asks another (or the outside world) to act.

A package that changes state and needs something done about it (assess this attempt, post
this grade, issue this badge) writes an outbox message in the same database transaction as
the change. After that transaction commits the message is delivered by a job, which calls the
handler listed for its kind in `service.HANDLERS`. A message whose handler fails stays in the
database and is retried with backoff; the sweep re-enqueues whatever is due, so a Redis flush
or a killed worker delays a message but never loses it.

Kinds (the contract between packages):

| kind | payload | posted by | handled by |
|---|---|---|---|
| assessment.requested | {attempt_id} | evidence, on submit | assessment: blind copy, assign |
| assessment.withdrawn | {attempt_id} | evidence, on withdraw | assessment: cancel the case |
| grade.submitted | {attempt_id} | evidence, on submit | gradebook: Submitted/Pending |
| grade.withdrawn | {attempt_id} | evidence, on withdraw | gradebook: clear the pending score |
| grade.decided | {attempt_id} | assessment (revise); credentials (earned, issued) | gradebook |
| badge.requested | {attempt_id} | assessment, on an earned decision | credentials: badges |
| assessment.reminder | {assignment_id} | assessment (e-mail on) | assessment: mail it |
| assessment.assigned | {assessor_id, case_ids} | assessment (e-mail on) | assessment: mail it |
| grade.stack_earned | {user_id, stack_id, credential_id} | credentials | gradebook |
"""
