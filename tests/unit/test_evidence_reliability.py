"""Nothing a learner did is lost by a failure half-way: an upload cut off leaves the draft and
its files as they were (and no partial file), a save that fails leaves the previous draft,
and a stale tab is told instead of overwriting."""

from __future__ import annotations

import io

from sqlalchemy import select
from werkzeug.test import EnvironBuilder, encode_multipart

from lti_tool.evidence import service as evidence
from lti_tool.evidence.models import Draft
from tests.unit.evidence_support import PDF
from tests.unit.test_evidence_pages import KEY, course, learner, save, upload  # noqa: F401

BIG = PDF + b"%" * (3 * 1024 * 1024)  # a valid PDF head, several read chunks long


def stored_files(services) -> list:
    return sorted(p.name for p in (services.settings.instance_dir / "evidence").rglob("*")
                  if p.is_file())  # fmt: skip


def draft_files(services) -> list[str]:
    with services.session_factory() as session:
        draft = session.scalars(select(Draft)).one()
        return [f.original_name for f in draft.files]


def cut_off(client, token: str, body: bytes, content_type: str, declared: int, **query):
    """A request whose body stops before its declared length (the connection dropped)."""
    builder = EnvironBuilder(
        path=f"/evidence/{KEY}/files/annotated-transcript",
        method="POST",
        query_string={"lt": token, **query},
        input_stream=io.BytesIO(body),
        content_type=content_type,
        environ_overrides={"CONTENT_LENGTH": str(declared)},
        base_url="https://tool.test",
    )
    return client.open(builder)


def test_an_upload_cut_off_half_way_leaves_the_last_good_state(client, course, canvas,  # noqa: F811
                                                               services):  # fmt: skip
    token = learner(client, canvas)
    assert upload(client, token, "annotated-transcript", "first.pdf", PDF).status_code == 303
    before = stored_files(services)
    boundary, body = encode_multipart({"file": (io.BytesIO(BIG), "second.pdf")})
    half = body[: len(body) // 2]
    content_type = f"multipart/form-data; boundary={boundary}"
    # The connection drops: the body is shorter than its Content-Length.
    dropped = cut_off(client, token, half, content_type, len(body))
    assert dropped.status_code == 400
    # The body ends (no more bytes, no closing boundary) without a declared length.
    truncated = cut_off(client, token, half, content_type, len(half))
    assert truncated.status_code == 400 and "incomplete" in truncated.get_data(as_text=True)
    # A script's raw upload cut off the same way.
    raw = cut_off(client, token, BIG[: len(BIG) // 2], "application/pdf", len(BIG),
                  name="third.pdf")  # fmt: skip
    assert raw.status_code == 400
    assert draft_files(services) == ["first.pdf"]
    assert stored_files(services) == before  # no partial or temporary file left behind
    page = client.get(f"/evidence/{KEY}", query_string={"lt": token}).get_data(as_text=True)
    assert "first.pdf" in page and "second.pdf" not in page


def test_a_failed_save_leaves_the_previous_draft(client, course, canvas, services,  # noqa: F811
                                                 monkeypatch):  # fmt: skip
    token = learner(client, canvas)
    saved = save(client, token, 0, json=True, **{"answer:overview:setting": "good text"})
    revision = saved.json["revision"]

    def broken(*args, **kwargs):
        raise RuntimeError("the database connection dropped")

    monkeypatch.setattr(evidence, "set_state", broken)  # fails after the UPDATE, before commit
    fields = {"answer:overview:setting": "lost?", "plan:overview": "2026-12-24"}
    failed = save(client, token, revision, json=True, **fields)
    assert failed.status_code == 500
    monkeypatch.undo()
    with services.session_factory() as session:
        draft = session.scalars(select(Draft)).one()
        assert draft.answers["overview"]["setting"] == "good text"
        assert draft.revision == revision and draft.plan == {}
    # The page's revision is still the current one: the next autosave goes through.
    retried = save(client, token, revision, json=True, **{"answer:overview:setting": "again"})
    assert retried.status_code == 200 and retried.json["revision"] == revision + 1


def test_the_second_tab_is_told_and_the_first_tabs_text_stays(client, course, canvas,  # noqa: F811
                                                              services):  # fmt: skip
    token = learner(client, canvas)
    # Both tabs open the page before the draft exists (revision 0).
    one = save(client, token, 0, json=True, **{"answer:overview:setting": "tab one"})
    two = save(client, token, 0, json=True, **{"answer:overview:setting": "tab two"})
    assert one.status_code == 200 and two.status_code == 409
    assert "changed in another tab" in two.json["message"]
    with services.session_factory() as session:
        assert session.scalars(select(Draft)).one().answers["overview"]["setting"] == "tab one"
