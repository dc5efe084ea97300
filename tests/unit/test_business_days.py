"""Business-day arithmetic: weekends, national and regional holidays, extra closing days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from lti_tool.business_days import BusinessCalendar, calendar_from_settings, decision_due
from lti_tool.settings import SettingsError, load_settings


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def test_weekends_do_not_count():
    weekends_only = BusinessCalendar()
    # Friday + 1 business day = Monday; the time of day is kept.
    assert weekends_only.add(at("2026-12-04", 15), 1) == at("2026-12-07", 15)
    # A Saturday submission counts from Monday: 14 business days later is Thursday 24 Dec.
    assert weekends_only.add(at("2026-12-05"), 14) == at("2026-12-24")


def test_national_holidays_are_skipped():
    us = BusinessCalendar("US")
    # Wed 25 Nov 2026 + 1: Thursday 26 is Thanksgiving, so Friday 27.
    assert us.add(at("2026-11-25"), 1) == at("2026-11-27")
    # 14 business days from Tue 15 Dec 2026 skip Christmas (Fri 25) and New Year (Fri 1 Jan).
    assert us.add(at("2026-12-15"), 14) == at("2027-01-06")
    assert us.between(at("2026-12-15"), at("2027-01-06")) == 14


def test_regional_and_extra_holidays():
    bavaria = BusinessCalendar("DE", "BY")
    assert not bavaria.is_business_day(date(2026, 1, 6))  # Epiphany in Bavaria
    assert BusinessCalendar("DE", "BE").is_business_day(date(2026, 1, 6))  # not in Berlin
    closed = BusinessCalendar(extra_holidays=frozenset({date(2026, 12, 7)}))
    assert closed.add(at("2026-12-04"), 1) == at("2026-12-08")


def test_settings_give_the_calendar_and_refuse_nonsense():
    settings = load_settings(holiday_country="us", extra_holidays="2026-11-27")
    # Thanksgiving (26) and the extra day (27) skipped: Mon 30 Nov is day 1, Thu 17 Dec day 14.
    assert decision_due(settings, at("2026-11-25")) == at("2026-12-17")
    with pytest.raises(SettingsError, match="not a date like"):
        calendar_from_settings(load_settings(extra_holidays="next friday"))
    with pytest.raises(SettingsError, match="HOLIDAY_COUNTRY"):
        load_settings(holiday_country="XX").check()
