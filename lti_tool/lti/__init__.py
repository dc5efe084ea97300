"""The LMS edge: platform registry, tool keys, OIDC login and launch, LTI services."""
