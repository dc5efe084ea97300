"""Grades in the LMS gradebook: the desired AGS score per learner and line item, and its
delivery (ordered, coalesced, idempotent, retried) through the LTI Advantage service client."""
