"""External double-blind assessment: assessors, blind cases, assignment, reviews, decisions."""
