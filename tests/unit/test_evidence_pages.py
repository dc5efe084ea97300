"""The learner's workspace pages: what they show, saving (button and autosave, conflicts),
streamed uploads and links, the checks, submitting, withdrawing, feedback and the next
attempt; and who may see each page."""

from __future__ import annotations

import dataclasses
import html
import io
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from lti_tool.catalog import mapping
from lti_tool.db import transaction
from lti_tool.evidence import outcomes
from lti_tool.evidence import service as evidence
from lti_tool.evidence.models import REVISE, Attempt, AttemptNotes, Draft
from lti_tool.roster.models import Course, LmsUser
from tests.conftest import BASE_URL
from tests.support.platform import INSTRUCTOR, launch
from tests.unit.catalog_support import SAMPLE, import_paths
from tests.unit.evidence_support import PDF, words

KEY = "active-listening"
ANSWERS = {
    "answer:overview:setting": words(260),
    "answer:overview:listening-habit": words(160),
    "answer:overview:paraphrase-vs-agreement": words(160),
    "answer:reflection:impact": words(210, "impact"),
    "answer:reflection:next-steps": words(160, "next"),
}
EXE = b"MZ\x90\x00" + b"\x00" * 9000


def token_of(response) -> str:
    return parse_qs(urlsplit(response.headers["Location"]).query)["lt"][0]


@pytest.fixture
def course(client, services, canvas):
    """The sample catalog, a Canvas course mapped to the collaboration stack, an educator."""
    import_paths(services, SAMPLE)
    educator = launch(client, canvas, BASE_URL, "canvas", roles=[INSTRUCTOR], sub="teacher-1")
    with transaction(services.session_factory) as session:
        course_id = session.scalars(select(Course.id)).one()
        mapping.map_course_to_stack(session, course_id, "collaboration")
    return {"id": course_id, "educator": token_of(educator)}


def learner(client, canvas, sub: str = "learner-1") -> str:
    return token_of(launch(client, canvas, BASE_URL, "canvas", sub=sub))


def user_id(services, sub: str) -> int:
    with services.session_factory() as session:
        return session.scalars(select(LmsUser.id).where(LmsUser.subject == sub)).one()


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def page(client, token: str, path: str = f"/evidence/{KEY}", status: int = 200) -> str:
    response = client.get(path, query_string={"lt": token})
    assert response.status_code == status, response.get_data(as_text=True)[:600]
    return response.get_data(as_text=True)


def revision_of(body: str) -> int:
    return int(re.search(r'name="revision" value="(\d+)"', body).group(1))


def save(client, token: str, revision: int, json: bool = False, **fields):
    headers = {"Accept": "application/json"} if json else {}
    return client.post(f"/evidence/{KEY}/save", data={"lt": token, "revision": revision,
                       **fields}, headers=headers)  # fmt: skip


def upload(client, token: str, requirement: str, name: str, content: bytes, **kw):
    return client.post(
        f"/evidence/{KEY}/files/{requirement}",
        query_string={"lt": token},
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
        **kw,
    )


def complete(client, token: str, **extra) -> None:
    assert save(client, token, 0, **ANSWERS, **extra).status_code == 303
    assert upload(client, token, "annotated-transcript", "transcript.pdf", PDF).status_code == 303
    added = client.post(f"/evidence/{KEY}/links/conversation-recording",
                        data={"lt": token, "url": "https://video.example/v/42"})  # fmt: skip
    assert added.status_code == 303


# -- what the learner sees -----------------------------------------------------------------------
def test_the_landing_page_links_each_micro_credential_to_its_workspace(client, course, canvas):
    token = learner(client, canvas)
    home = client.get("/home", query_string={"lt": token}).get_data(as_text=True)
    links = re.findall(r'href="(/evidence/[^"?]+)\?lt=([^"]+)" class="workspace-link"', home)
    assert [path for path, _ in links] == [
        "/evidence/active-listening", "/evidence/effective-leadership",
        "/evidence/productive-teamwork", "/evidence/resolving-conflicts",
    ]  # fmt: skip
    # The educator's landing page has no workspace links.
    educator = client.get("/home", query_string={"lt": course["educator"]}).get_data(as_text=True)
    assert "workspace-link" not in educator


def test_the_workspace_shows_everything_the_learner_needs(client, course, canvas):
    body = html.unescape(page(client, learner(client, canvas)))
    for expected in (
        "listens to a colleague in a professional conversation",  # competency
        "Reflective listening in a one-to-one professional conversation",  # key method
        "Paraphrasing: the listener restates",  # a component
        "Rogers, C. R., & Farson, R. E. (1957)",  # research
        "Julian Treasure",  # resources
        "Part 1: Overview questions", "Part 2: Artifacts", "Part 3: Reflection",
        "Describe the professional conversations you take part in",  # a prompt
        "Suggested length: 250–300 words",
        "All three criteria must be met.",  # passing
        "The answer names at least two recurring conversation types",  # rubric
        "Recording of the conversation", "Colleague's feedback (optional)",
        "Reviewers must be able to open the link without signing in",
        "Your target date for this part", "Was this work collaborative?",
        "never shown to assessors",
    ):  # fmt: skip
        assert expected in body, expected
    assert revision_of(body) == 0
    assert 'enctype="multipart/form-data"' in body and "fetch(form.action" in body


def test_save_stores_text_as_typed_and_shows_it_escaped(client, course, canvas, services):
    token = learner(client, canvas)
    attack = '<script>alert("x")</script> & </textarea><b>'
    response = save(client, token, 0, **{"answer:overview:setting": attack,
                                         "plan:overview": "2026-12-24"})  # fmt: skip
    assert response.status_code == 303 and "notice=saved" in response.headers["Location"]
    with services.session_factory() as session:
        draft = session.scalars(select(Draft)).one()
        assert draft.answers["overview"]["setting"] == attack
        assert draft.plan["overview"] == "2026-12-24"
    body = page(client, token)
    assert "<script>alert" not in body and "</textarea><b>" not in body
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;/textarea&gt;&lt;b&gt;"
    assert escaped in body
    assert 'value="2026-12-24"' in body
    assert revision_of(body) == 2


def test_autosave_answers_json_and_a_second_tab_is_told(client, course, canvas, services):
    token = learner(client, canvas)
    first = save(client, token, 0, json=True, **{"answer:overview:setting": "tab one"})
    assert first.status_code == 200 and first.json["revision"] == 2
    # The other tab still has revision 0: refused, told, and the saved text is untouched.
    stale = save(client, token, 0, json=True, **{"answer:overview:setting": "tab two"})
    assert stale.status_code == 409
    assert "changed in another tab" in stale.json["message"] and stale.json["revision"] == 2
    # Without JavaScript: the page comes back with the learner's text kept, and saving again
    # (now on the current revision) replaces the other version, as the message says.
    again = save(client, token, 0, **{"answer:overview:setting": "tab two, no script"})
    body = again.get_data(as_text=True)
    assert again.status_code == 409 and "changed in another tab" in html.unescape(body)
    assert "tab two, no script</textarea>" in body and revision_of(body) == 2
    assert save(client, token, 2, **{"answer:overview:setting": "tab two wins"}).status_code == 303
    with services.session_factory() as session:
        assert session.scalars(select(Draft)).one().answers["overview"]["setting"] == (
            "tab two wins"
        )


def test_a_bad_save_keeps_the_text_and_says_why(client, course, canvas):
    token = learner(client, canvas)
    refused = save(client, token, 0, **{"answer:overview:setting": "my long text",
                                        "plan:reflection": "soon"})  # fmt: skip
    assert refused.status_code == 400
    body = text_of(refused)
    assert "not a date like 2026-12-31" in body and "my long text</textarea>" in body
    assert client.post(f"/evidence/{KEY}/save", data={"revision": 0}).status_code in (401, 403)


@pytest.mark.parametrize("typo", ["0202-12-10", "9999-12-31", "1999-12-31", "2100-01-01"])
def test_a_target_date_with_a_mistyped_year_is_refused(client, course, canvas, services, typo):
    token = learner(client, canvas)
    refused = save(client, token, 0, **{"plan:overview": typo, "answer:overview:setting": "kept"})
    assert refused.status_code == 400
    body = text_of(refused)
    assert f"{typo}, is not between 2000 and 2099: check its year" in body
    assert "kept</textarea>" in body
    with services.session_factory() as session:
        assert session.scalars(select(Draft)).one_or_none() is None
    planned = save(client, token, 0, **{"plan:overview": "2099-12-31"})
    assert planned.status_code == 303
    # The browser's date picker offers only those years in the first place.
    page = text_of(client.get(planned.headers["Location"]))
    assert 'value="2099-12-31" min="2000-01-01" max="2099-12-31"' in page


def test_uploads_stream_without_the_form_parser(client, course, canvas, services, monkeypatch):
    from werkzeug import formparser

    def never(*args, **kwargs):
        raise AssertionError("the upload went through Werkzeug's form parser")

    monkeypatch.setattr(formparser.MultiPartParser, "parse", never)
    token = learner(client, canvas)
    response = client.post(
        f"/evidence/{KEY}/files/annotated-transcript",
        query_string={"lt": token},
        data={"file": [(io.BytesIO(PDF), "transcript.pdf"), (io.BytesIO(PDF + b"2"), "b.pdf")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    body = page(client, token)
    assert "transcript.pdf" in body and "b.pdf" in body
    # A script sends the raw body, named in the URL.
    raw = client.post(f"/evidence/{KEY}/files/colleague-feedback",
                      query_string={"lt": token, "name": "note.pdf"}, data=PDF,
                      content_type="application/pdf",
                      headers={"Accept": "application/json"})  # fmt: skip
    assert raw.status_code == 200 and raw.json == {"added": 1}
    with services.session_factory() as session:
        names = sorted(f.original_name for f in session.scalars(select(Draft)).one().files)
    assert names == ["b.pdf", "note.pdf", "transcript.pdf"]


def test_wrong_uploads_get_clear_4xx_messages(client, course, canvas, services, monkeypatch):
    token = learner(client, canvas)
    wrong = upload(client, token, "annotated-transcript", "report.pdf", EXE)
    assert wrong.status_code == 415
    assert "not recognised as a PDF" in text_of(wrong) or "not a PDF" in text_of(wrong)
    empty = upload(client, token, "annotated-transcript", "empty.pdf", b"")
    assert empty.status_code == 400 and "This file is empty." in text_of(empty)
    nothing = upload(client, token, "annotated-transcript", "", b"")
    assert nothing.status_code == 400
    unknown = upload(client, token, "no-such-artifact", "a.pdf", PDF)
    assert unknown.status_code == 404
    no_token = client.post(f"/evidence/{KEY}/files/annotated-transcript",
                           data={"file": (io.BytesIO(PDF), "a.pdf")},
                           content_type="multipart/form-data")  # fmt: skip
    assert no_token.status_code in (401, 403)
    # Above the size limit: refused while streaming, nothing kept.
    smaller = dataclasses.replace(services.storage.policy, max_bytes=len(PDF) - 1)
    monkeypatch.setattr(services.storage, "policy", smaller)
    big = upload(client, token, "annotated-transcript", "big.pdf", PDF)
    assert big.status_code == 413 and "the limit for uploads" in text_of(big)
    with services.session_factory() as session:
        draft = session.scalars(select(Draft)).first()
        assert draft is None or draft.files == []
    stored = list((services.settings.instance_dir / "evidence").rglob("*"))
    assert not [p for p in stored if p.is_file()]


def test_links_are_validated_with_a_message(client, course, canvas):
    token = learner(client, canvas)
    bad = client.post(f"/evidence/{KEY}/links/conversation-recording",
                      data={"lt": token, "url": "javascript:alert(1)"})  # fmt: skip
    assert bad.status_code == 400 and "must start with https://" in text_of(bad)
    assert 'value="javascript:alert(1)"' in bad.get_data(as_text=True)  # kept to fix
    link = {"lt": token, "url": "https://video.example/v/1", "title": "Talk"}
    good = client.post(f"/evidence/{KEY}/links/conversation-recording", data=link)
    assert good.status_code == 303
    body = text_of(client.get(good.headers["Location"]))
    assert 'href="https://video.example/v/1"' in body and "Check that reviewers can open it" in body


# -- checking and submitting ---------------------------------------------------------------------
def test_the_check_lists_missing_parts_and_blocks_submitting(client, course, canvas):
    token = learner(client, canvas)
    save(client, token, 0, **{"answer:overview:setting": words(20)})
    review = text_of(client.get(f"/evidence/{KEY}/submit", query_string={"lt": token}))
    assert "Question 2 has no answer yet." in review
    assert "“Recording of the conversation”: add a file or a link." in review
    assert "20 words, below the suggested 250–300 words." in review
    assert 'id="submit"' not in review
    refused = client.post(f"/evidence/{KEY}/submit", data={"lt": token})
    assert refused.status_code == 400 and "Some required parts are missing" in text_of(refused)


def test_names_are_listed_with_their_place_before_submitting(client, course, canvas, services):
    token = learner(client, canvas)  # the launch says the learner is Jane Teacher
    answers = dict(ANSWERS)
    answers["answer:overview:listening-habit"] = "I, Jane Teacher, talked. " + words(150)
    complete(client, token)
    save(client, token, revision_of(page(client, token)), **answers)
    upload(client, token, "colleague-feedback", "jane-teacher-note.pdf", PDF)
    review = text_of(client.get(f"/evidence/{KEY}/submit", query_string={"lt": token}))
    start = review.index('id="hits-to-edit"')
    edit = review[start : review.index("</ul>", start)]
    assert "Part 1, question 2, word 2: “Jane Teacher” (your own full name)" in edit
    automatic = review[review.index('id="hits-automatic"'):]
    assert "file name jane-teacher-note.pdf" in automatic
    assert 'id="submit"' in review  # never blocking


def test_submit_then_withdraw_then_submit_again(client, course, canvas, services):
    token = learner(client, canvas)
    complete(client, token)
    submitted = client.post(f"/evidence/{KEY}/submit", data={"lt": token})
    assert submitted.status_code == 303
    attempt_page = text_of(client.get(submitted.headers["Location"]))
    assert "Your evidence is submitted" in attempt_page and "a decision is due by" in attempt_page
    body = text_of_page(client, token)
    assert 'id="state">Submitted' in body and "A decision is due by" in body
    assert "<textarea" not in body  # nothing to edit while submitted
    assert words(160, "next") in body  # what was submitted, read-only
    with services.session_factory() as session:
        attempt = session.scalars(select(Attempt)).one()
        assert attempt.course_id == course["id"] and attempt.resource_link_id is not None
    withdrawn = client.post(f"/evidence/attempts/{attempt.id}/withdraw", data={"lt": token})
    assert withdrawn.status_code == 303
    body = text_of(client.get(withdrawn.headers["Location"]))
    assert "Your submission was withdrawn" in body and "transcript.pdf" in body
    assert client.post(f"/evidence/{KEY}/submit", data={"lt": token}).status_code == 303
    with services.session_factory() as session:
        numbers = evidence.attempts_of(session, attempt.user_id, attempt.micro_credential_id)
        assert [a.number for a in numbers] == [2, 1]


def text_of_page(client, token: str) -> str:
    return html.unescape(page(client, token))


def test_feedback_per_criterion_and_the_next_attempt(client, course, canvas, services):
    token = learner(client, canvas)
    complete(client, token)
    client.post(f"/evidence/{KEY}/submit", data={"lt": token})
    with services.session_factory() as session:
        first = session.scalars(select(Attempt)).one().id
    feedback = [{"part": "overview", "criterion_key": "setting-described",
                 "criterion": "The answer names at least two recurring conversation types.",
                 "comments": [{"assessor": "Assessor 1", "text": "Name a <decision>."},
                              {"assessor": "Assessor 2", "text": "Which meetings?"}]}]  # fmt: skip
    with transaction(services.session_factory) as session:
        outcomes.record_decision(session, first, REVISE, feedback, datetime.now(UTC))
    body = page(client, token)
    assert "Assessor 1:</strong>" in body and "Name a &lt;decision&gt;." in body
    assert "Assessor 2:</strong>" in body and "recurring conversation types" in body
    started = client.post(f"/evidence/{KEY}/next", data={"lt": token})
    assert started.status_code == 303
    body = text_of(client.get(started.headers["Location"]))
    assert "Your next attempt is ready" in body and "transcript.pdf" in body
    assert words(160, "next") + "</textarea>" in body  # prefilled
    earlier = text_of(client.get(f"/evidence/attempts/{first}", query_string={"lt": token}))
    assert "attempt 1" in earlier and "Which meetings?" in earlier


# -- who may see what ----------------------------------------------------------------------------
def test_a_learner_sees_only_their_own_work(client, course, canvas, services):
    mine = learner(client, canvas, "learner-a")
    complete(client, mine)
    client.post(f"/evidence/{KEY}/submit", data={"lt": mine})
    with services.session_factory() as session:
        attempt = session.scalars(select(Attempt)).one()
        file_id = attempt.files[0].id
    theirs = learner(client, canvas, "learner-b")
    assert upload(client, theirs, "annotated-transcript", "b.pdf", PDF).status_code == 303
    with services.session_factory() as session:
        their_file = session.scalars(select(Draft)).one().files[0].id
    for path in (f"/evidence/attempts/{attempt.id}",
                 f"/evidence/attempts/{attempt.id}/files/{file_id}"):  # fmt: skip
        assert client.get(path, query_string={"lt": theirs}).status_code == 404
    assert client.post(f"/evidence/attempts/{attempt.id}/withdraw",
                       data={"lt": theirs}).status_code == 404  # fmt: skip
    # Learner A cannot read or remove learner B's draft file.
    assert client.get(f"/evidence/{KEY}/files/{their_file}",
                      query_string={"lt": mine}).status_code == 404  # fmt: skip
    assert client.post(f"/evidence/{KEY}/files/{their_file}/remove",
                       data={"lt": mine}).status_code == 404  # fmt: skip
    # Each sees their own: B's file downloads for B, A's attempt for A.
    own = client.get(f"/evidence/{KEY}/files/{their_file}", query_string={"lt": theirs})
    assert own.status_code == 200 and own.data == PDF
    own_attempt = client.get(f"/evidence/attempts/{attempt.id}", query_string={"lt": mine})
    assert own_attempt.status_code == 200
    # B's workspace shows nothing of A's.
    assert "transcript.pdf" not in page(client, theirs)


def test_pages_refuse_anonymous_people_other_roles_and_foreign_credentials(client, course, canvas):
    anonymous = client.application.test_client()
    assert anonymous.get(f"/evidence/{KEY}").status_code == 401
    assert anonymous.get(f"/evidence/{KEY}", query_string={"lt": "forged"}).status_code == 401
    educator = course["educator"]
    assert client.get(f"/evidence/{KEY}", query_string={"lt": educator}).status_code == 403
    token = learner(client, canvas)
    assert client.get("/evidence/no-such-thing", query_string={"lt": token}).status_code == 404


def test_a_credential_outside_the_course_is_not_found(client, services, canvas):
    import_paths(services, SAMPLE)  # no stack mapped to the course
    token = learner(client, canvas)
    assert client.get(f"/evidence/{KEY}", query_string={"lt": token}).status_code == 404


def test_educators_see_evidence_only_when_the_setting_allows(client, course, canvas, services,
                                                             monkeypatch):  # fmt: skip
    token = learner(client, canvas, "learner-a")
    complete(client, token)
    learner_id = user_id(services, "learner-a")
    path = f"/course/learners/{learner_id}/evidence/{KEY}"
    educator = course["educator"]
    refused = client.get(path, query_string={"lt": educator})
    assert refused.status_code == 403 and "not their evidence" in text_of(refused)
    grid = client.get("/course/progress", query_string={"lt": educator}).get_data(as_text=True)
    assert "evidence-link" not in grid
    settings = services.settings.replace(educators_see_evidence=True)
    monkeypatch.setattr(services, "settings", settings)
    grid = client.get("/course/progress", query_string={"lt": educator}).get_data(as_text=True)
    assert f'href="{path}?lt=' in grid  # the draft's state links to it; not started: no link
    shown = client.get(path, query_string={"lt": educator})
    assert shown.status_code == 200
    body = text_of(shown)
    assert "Read-only view" in body and "<textarea" not in body and words(260) in body
    assert "transcript.pdf" in body and f'href="/evidence/{KEY}/files/' not in body
    # The educator reads the files too, through their own read-only route.
    found = re.search(rf'href="({path}/files/\d+)\?lt=', body)
    assert found, "the educator's view links the file"
    download = client.get(found.group(1), query_string={"lt": educator})
    assert download.status_code == 200 and download.data.startswith(b"%PDF")
    assert client.get(found.group(1), query_string={"lt": token}).status_code == 403
    monkeypatch.setattr(services, "settings", settings.replace(educators_see_evidence=False))
    assert client.get(found.group(1), query_string={"lt": educator}).status_code == 403
    monkeypatch.setattr(services, "settings", settings)
    assert client.post(f"/evidence/{KEY}/submit", data={"lt": token}).status_code in (302, 303)
    with services.session_factory() as session:
        attempt_id = session.scalars(select(Attempt.id)).one()
    attempt_page = text_of(client.get(f"/course/learners/{learner_id}/attempts/{attempt_id}",
                                      query_string={"lt": educator}))  # fmt: skip
    found = re.search(rf'href="(/course/learners/{learner_id}/attempts/{attempt_id}/files/\d+)',
                      attempt_page)  # fmt: skip
    assert found and client.get(found.group(1), query_string={"lt": educator}).status_code == 200
    # A learner cannot use the educator's view, and a stranger to the course is not found.
    assert client.get(path, query_string={"lt": token}).status_code == 403
    with services.session_factory() as session:
        stranger = session.scalars(select(LmsUser.id).order_by(LmsUser.id.desc())).first() + 1
    outsider = client.get(f"/course/learners/{stranger}/evidence/{KEY}",
                          query_string={"lt": educator})  # fmt: skip
    assert outsider.status_code == 404


def test_notes_keep_collaborators_out_of_the_snapshot(client, course, canvas, services):
    token = learner(client, canvas)
    complete(client, token, collaborative="yes", with_whom="Carla Diaz", how="We co-planned.")
    review = text_of(client.get(f"/evidence/{KEY}/submit", query_string={"lt": token}))
    assert "Your reflection is your own" in review
    client.post(f"/evidence/{KEY}/submit", data={"lt": token})
    with services.session_factory() as session:
        attempt = session.scalars(select(Attempt)).one()
        assert "Carla" not in str(attempt.snapshot)
        assert attempt.snapshot["collaboration"] == {"collaborative": True,
                                                     "how": "We co-planned."}  # fmt: skip
        notes = session.scalars(select(AttemptNotes)).one()
        assert notes.collaborators == "Carla Diaz" and notes.fingerprint["format"] == 1


def test_a_launch_of_a_mapped_link_offers_its_workspace(client, course, canvas, services):
    with transaction(services.session_factory) as session:
        from lti_tool.roster.models import ResourceLink

        link = session.scalars(select(ResourceLink)).one()  # the educator's launch recorded it
        mapping.map_link(session, link.id, course["id"], KEY)
    token = learner(client, canvas)
    home = client.get("/home", query_string={"lt": token}).get_data(as_text=True)
    found = re.search(r'id="launched-workspace" href="([^"]+)">Work on Active Listening<', home)
    assert found and html.unescape(found.group(1)).startswith(f"/evidence/{KEY}?lt=")


def test_learner_actions_refuse_educators_and_requests_without_the_token(client, course, canvas):
    token = learner(client, canvas)
    actions = [
        f"/evidence/{KEY}/save", f"/evidence/{KEY}/files/annotated-transcript",
        f"/evidence/{KEY}/files/1/remove", f"/evidence/{KEY}/links/conversation-recording",
        f"/evidence/{KEY}/links/conversation-recording/remove", f"/evidence/{KEY}/submit",
        f"/evidence/{KEY}/next", "/evidence/attempts/1/withdraw",
    ]  # fmt: skip
    for path in actions:
        assert client.post(path, data={"lt": course["educator"]}).status_code == 403, path
        # A learner's cookie alone (no token in the form, as a cross-site form would send).
        assert client.post(path, data={}).status_code in (401, 403), path
    for path in (f"/evidence/{KEY}/submit", f"/evidence/{KEY}/files/1", "/evidence/attempts/1",
                 "/evidence/attempts/1/files/1"):  # fmt: skip
        assert client.get(path, query_string={"lt": course["educator"]}).status_code == 403
        assert client.get(path, query_string={"lt": token}).status_code in (302, 303, 404), path
