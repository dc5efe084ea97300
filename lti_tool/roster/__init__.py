"""Who is where: LMS users, courses, resource links and enrolments, as launches report them.

Independent of LTI's wire format so that the domain packages can refer to learners and
courses without importing the LMS edge.
"""
