"""Business days: the assessment decision is due 14 business days after submission.

Weekends and the public holidays of the programme's country (and region) do not count, plus
any closing days the programme lists. Holidays come from the `holidays` package (kept up to
date for some 200 countries), never from a list of our own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property

import holidays

from lti_tool.settings import Settings, SettingsError


@dataclass(frozen=True)
class BusinessCalendar:
    country: str = ""  # ISO 3166 code ("US", "GB", "DE"); empty: weekends only
    subdivision: str = ""  # a state or region of the country ("CA", "BY"), optional
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    @cached_property
    def _public_holidays(self) -> holidays.HolidayBase | None:
        if not self.country:
            return None
        return holidays.country_holidays(self.country, subdiv=self.subdivision or None)

    def is_business_day(self, day: date) -> bool:
        if day.weekday() >= 5 or day in self.extra_holidays:
            return False
        return self._public_holidays is None or day not in self._public_holidays

    def add(self, start: datetime, days: int) -> datetime:
        """The same time of day `days` business days after `start` (a start on a weekend or
        holiday counts from the next business day)."""
        current = start
        remaining = days
        while remaining > 0:
            current += timedelta(days=1)
            if self.is_business_day(current.date()):
                remaining -= 1
        return current

    def between(self, start: datetime, end: datetime) -> int:
        """Business days after `start`'s day up to and including `end`'s day (0 if end is
        not later); `between(s, add(s, n)) == n`."""
        count = 0
        day = start.date()
        while day < end.date():
            day += timedelta(days=1)
            if self.is_business_day(day):
                count += 1
        return count


def calendar_from_settings(settings: Settings) -> BusinessCalendar:
    """The programme's calendar from LTI_TOOL_HOLIDAY_COUNTRY / _SUBDIVISION / EXTRA_HOLIDAYS."""
    extra: set[date] = set()
    for item in filter(None, (part.strip() for part in settings.extra_holidays.split(","))):
        try:
            extra.add(date.fromisoformat(item))
        except ValueError:
            raise SettingsError(
                f"LTI_TOOL_EXTRA_HOLIDAYS: {item!r} is not a date like 2026-12-24"
            ) from None
    calendar = BusinessCalendar(
        settings.holiday_country.upper(), settings.holiday_subdivision.upper(), frozenset(extra)
    )
    if calendar.country:
        try:
            calendar._public_holidays  # noqa: B018 - an unknown country fails here, not later
        except NotImplementedError as exc:
            raise SettingsError(f"LTI_TOOL_HOLIDAY_COUNTRY / _SUBDIVISION: {exc}") from None
    return calendar


def decision_due(settings: Settings, submitted_at: datetime) -> datetime:
    """When the assessment decision of an attempt submitted at `submitted_at` is due."""
    return calendar_from_settings(settings).add(submitted_at, settings.decision_business_days)
