"""Why a login or launch was refused, in words an LMS administrator or a learner understands."""

from __future__ import annotations


class LaunchRefused(Exception):
    """A login or launch that the tool refuses. `reason` is a stable code for logs and tests."""

    def __init__(
        self, reason: str, message: str, status: int = 400, retry_url: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        # Where the person can try again (for example the login in a new window), or the
        # login parameters from which the web layer builds that URL.
        self.retry_url = retry_url
        self.retry_params: dict[str, str] | None = None


def refuse(reason: str, message: str, status: int = 400) -> LaunchRefused:
    return LaunchRefused(reason, message, status)
