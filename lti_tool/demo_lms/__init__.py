"""A small LMS built in for demos: a course, people to launch as, an OIDC endpoint, its own keys.

It is a peer of Canvas and Moodle, registered as an ordinary platform; the tool gives it no
special treatment. Only mounted when the demo setting is on.
"""
