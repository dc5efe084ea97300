"""/admin/assessment/stats: consistency and turnaround of assessment over a chosen period
(tables, inline SVG charts, CSV exports), for administrators only. The figures come from
assessment.stats; this module only reads the period and renders."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, Response, abort, render_template, request

from lti_tool.assessment import stats
from lti_tool.web import db
from lti_tool.web.accounts import admin_required
from lti_tool.web.identity import TOKEN_PARAM

blueprint = Blueprint("assessment_stats", __name__, url_prefix="/admin/assessment/stats")

DEFAULT_DAYS = 90
# The dates a period may start and end on: the period is computed with days before and after
# them, which must stay within the calendar Python knows (years 1 to 9999).
EARLIEST = date(1900, 1, 1)
LATEST = date(9998, 12, 31)


def _day(name: str, default: date) -> date:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        abort(400, f"'{raw}' is not a date: give the {name} date as YYYY-MM-DD.")
    if not EARLIEST <= day <= LATEST:
        abort(
            400,
            f"'{raw}' is too far in the past or the future: give the {name} date between "
            f"{EARLIEST.isoformat()} and {LATEST.isoformat()}.",
        )
    return day


def _period() -> tuple[date, date]:
    """From and to (both included), from the query; by default the last 90 days."""
    today = datetime.now(UTC).date()
    last = _day("to", today)
    first = _day("from", last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        abort(400, "The period starts after it ends: choose a 'from' date before the 'to' date.")
    return first, last


def _report() -> tuple[stats.Report, date, date]:
    first, last = _period()
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    return stats.report(db(), start, end), first, last


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def kappa(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}"


def duration(hours: float | None) -> str:
    if hours is None:
        return "—"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _query(first: date, last: date) -> dict:
    query = {"from": first.isoformat(), "to": last.isoformat()}
    token = request.args.get(TOKEN_PARAM)
    if token:
        query[TOKEN_PARAM] = token
    return query


@blueprint.get("/")
@admin_required
def page():
    report, first, last = _report()
    return render_template(
        "admin/assessment_stats.html",
        report=report,
        first=first,
        last=last,
        query=_query(first, last),
        token=request.args.get(TOKEN_PARAM),
        assessor_turnaround=[
            (r.name, r.median_turnaround_hours, duration(r.median_turnaround_hours))
            for r in report.assessors
        ],
        assessor_agreement=[
            (r.name, r.agreement_rate, percent(r.agreement_rate)) for r in report.assessors
        ],
        criterion_kappa={
            c.micro_credential_id: [
                (r.text or r.criterion_key, r.kappa, kappa(r.kappa)) for r in c.criteria
            ]
            for c in report.credentials
        },
        percent=percent,
        kappa=kappa,
        duration=duration,
    )


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


EXPORTS: dict[str, tuple[list[str], Callable[[stats.Report], list], Callable[..., list]]] = {
    "assessors": (
        [
            "assessor_id",
            "name",
            "reviews_done",
            "median_turnaround_hours",
            "paired_marks",
            "agreement_rate",
            "kappa",
            "decided_cases",
            "adjudication_rate",
        ],
        lambda report: report.assessors,
        lambda r: [
            r.assessor_id,
            r.name,
            r.reviews_done,
            _hours(r.median_turnaround_hours),
            r.paired_marks,
            _ratio(r.agreement_rate),
            _ratio(r.kappa),
            r.decided_cases,
            _ratio(r.adjudication_rate),
        ],
    ),
    "micro-credentials": (
        [
            "micro_credential_id",
            "title",
            "cases_decided",
            "median_turnaround_hours",
            "reviews_done",
            "median_review_turnaround_hours",
            "paired_marks",
            "agreement_rate",
            "adjudication_rate",
        ],
        lambda report: report.credentials,
        lambda r: [
            r.micro_credential_id,
            r.title,
            r.cases_decided,
            _hours(r.median_turnaround_hours),
            r.reviews_done,
            _hours(r.median_review_turnaround_hours),
            r.paired_marks,
            _ratio(r.agreement_rate),
            _ratio(r.adjudication_rate),
        ],
    ),
    "criteria": (
        [
            "micro_credential_id",
            "title",
            "part",
            "criterion_key",
            "criterion",
            "pairs",
            "agreement_rate",
            "kappa",
        ],
        lambda report: report.criteria,
        lambda r: [
            r.micro_credential_id,
            r.title,
            r.part,
            r.criterion_key,
            r.text,
            r.pairs,
            _ratio(r.agreement_rate),
            _ratio(r.kappa),
        ],
    ),
}


def _cell(value: object) -> object:
    """Text that a spreadsheet would run as a formula is quoted (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


@blueprint.get("/<table>.csv")
@admin_required
def export(table: str):
    if table not in EXPORTS:
        abort(404, f"There is no table '{table}': choose one of {', '.join(EXPORTS)}.")
    header, rows_of, cells = EXPORTS[table]
    report, first, last = _report()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows_of(report):
        writer.writerow([_cell(value) for value in cells(row)])
    filename = f"assessment-{table}-{first.isoformat()}-to-{last.isoformat()}.csv"
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
