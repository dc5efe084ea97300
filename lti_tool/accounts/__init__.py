"""People who sign in to the tool itself rather than through an LMS launch: external
assessors and the tool's administrators, and the organisations they belong to."""
