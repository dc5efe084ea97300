"""LTI 1.3 tool for micro-credentials."""

__version__ = "0.1.0"
