"""A learner launches the tool inside the demo LMS's iframe, in headless Chromium.

The LMS page is https://localhost:PORT and the tool https://127.0.0.1:PORT: two sites, so the
tool's frame is a real third party (see conftest.py for why HTTPS, and how cookies get blocked).
Three browsers: one as shipped (the tool's partitioned state cookie comes back), one that blocks
the tool's cookies in the LMS frame while the LMS offers platform storage (the launch goes
through lti.put_data / lti.get_data), and one that blocks them where the LMS offers no storage,
as Moodle 4.5 (the tool shows the page that opens it in a new window, and that works).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import SCREENSHOTS, DemoWorld

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the fixtures skip (or fail under CI=true) with the reason
    Page = expect = None  # type: ignore[assignment,misc]

pytestmark = pytest.mark.browser

TOOL_FRAME = "tool-frame"


def launch_in_frame(page: Page, world: DemoWorld, person: str, storage: str = "parent"):
    """Open the demo course page and click "In the course frame" for one person."""
    page.goto(world.course_page(storage))
    page.locator(f"a[data-launch={person}]").click()
    return page.frame_locator(f"iframe[name={TOOL_FRAME}]")


def tool_location(page: Page) -> str:
    frame = page.frame(name=TOOL_FRAME)
    assert frame is not None
    return frame.evaluate("location.href")


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def expect_learner_page(tool, name: str) -> None:
    expect(tool.get_by_role("heading", name="Your micro-credentials")).to_be_visible()
    facts = tool.locator("dl.facts")
    expect(facts).to_contain_text(name)
    expect(facts).to_contain_text("learner")
    expect(facts).to_contain_text("Collaboration in Schools (demo course)")


def test_learner_launches_inside_the_lms_iframe(demo_world, open_browser):
    context = open_browser()
    page = context.pages[0]
    before = len(demo_world.recorder.seen)

    tool = launch_in_frame(page, demo_world, "lee")

    expect_learner_page(tool, "Lee Marsh")
    assert tool_location(page).startswith(f"{demo_world.tool_url}/home?lt=")
    # The browser sent the tool's (partitioned, SameSite=None; Secure) state cookie back
    # from inside the cross-site frame: one launch POST, tied to the login by the cookie.
    launches = demo_world.recorder.seen[before:]
    assert len(launches) == 1
    assert launches[0].had_state_cookie
    screenshot(page, "learner-in-iframe")


@pytest.mark.parametrize("storage", ["parent", "frame"])
def test_launch_with_cookies_blocked_goes_through_platform_storage(
    demo_world, open_browser, storage
):
    context = open_browser(block_cookies_of=demo_world.tool_url, embedded_in=demo_world.lms_url)
    page = context.pages[0]
    before = len(demo_world.recorder.seen)

    tool = launch_in_frame(page, demo_world, "sam", storage)

    expect_learner_page(tool, "Sam Rivera")
    # Landed through the signed token: no cookie of the tool exists in this browser at all.
    assert tool_location(page).startswith(f"{demo_world.tool_url}/home?lt=")
    assert context.cookies(demo_world.tool_url) == []
    # The tool saw no state cookie; its second launch POST carried the secret that the login
    # page had put in the platform's storage and the launch page read back from it.
    launches = demo_world.recorder.seen[before:]
    assert [launch.had_state_cookie for launch in launches] == [False, False]
    assert "lti_storage_secret" not in launches[0].fields
    assert "lti_storage_secret" in launches[1].fields
    # ... through the LMS's storage, from the tool's origin, as the spec shapes the messages.
    keeper = page if storage == "parent" else page.frame(name="demo-lms-storage")
    log = keeper.evaluate("window.demoLmsStorage.log")
    assert {entry["origin"] for entry in log} == {demo_world.tool_url}
    assert sorted((entry["subject"], entry["outcome"]) for entry in log) == [
        ("lti.get_data", "found"),
        ("lti.get_data", "found"),
        ("lti.put_data", "stored"),
        ("lti.put_data", "stored"),
    ]
    screenshot(page, f"learner-in-iframe-cookies-blocked-{storage}")


def test_cookies_blocked_without_platform_storage_offers_a_new_window(demo_world, open_browser):
    context = open_browser(block_cookies_of=demo_world.tool_url, embedded_in=demo_world.lms_url)
    page = context.pages[0]
    before = len(demo_world.recorder.seen)

    tool = launch_in_frame(page, demo_world, "lee", storage="none")

    expect(tool.get_by_role("heading", name="This launch could not be accepted")).to_be_visible()
    expect(tool.get_by_role("alert")).to_contain_text("cookies_blocked")
    new_window = tool.get_by_role("link", name="Open the tool in a new window")
    expect(new_window).to_be_visible()
    launches = demo_world.recorder.seen[before:]
    assert [launch.had_state_cookie for launch in launches] == [False]
    screenshot(page, "cookies-blocked-no-storage")

    # In a window of its own the tool is a first party: its cookie works, and so does the launch.
    with context.expect_page() as opened:
        new_window.click()
    window = opened.value
    expect_learner_page(window, "Lee Marsh")
    assert window.url.startswith(f"{demo_world.tool_url}/home?lt=")
    assert demo_world.recorder.seen[-1].had_state_cookie


def test_demo_lms_answers_storage_messages_as_the_spec_shapes_them(demo_world, open_browser):
    context = open_browser()
    page = context.pages[0]
    page.goto(demo_world.course_page())
    # Put a page of the tool's origin in the course frame, and talk to the LMS from there.
    page.evaluate(
        "url => { document.querySelector('iframe[name=tool-frame]').src = url }",
        f"{demo_world.tool_url}/health",
    )
    expect(page.frame_locator(f"iframe[name={TOOL_FRAME}]").locator("body")).to_contain_text("ok")
    frame = page.frame(name=TOOL_FRAME)
    assert frame is not None
    ask = """async ([message, origin]) => new Promise(resolve => {
        window.addEventListener("message", function answer(event) {
            const data = event.data || {};
            if (data.subject === message.subject + ".response"
                && data.message_id === message.message_id) {
                window.removeEventListener("message", answer);
                resolve({origin: event.origin, data: event.data});
            }
        });
        window.parent.postMessage(message, origin);
        setTimeout(() => resolve(null), 3000);
    })"""

    def send(message, window=frame):
        return window.evaluate(ask, [message, demo_world.lms_url])

    capabilities = send({"subject": "lti.capabilities", "message_id": "c1"})
    assert capabilities["origin"] == demo_world.lms_url
    assert capabilities["data"]["subject"] == "lti.capabilities.response"
    supported = {m["subject"] for m in capabilities["data"]["supported_messages"]}
    assert {"lti.put_data", "lti.get_data"} <= supported

    put = send({"subject": "lti.put_data", "message_id": "p1", "key": "k", "value": "v"})
    assert put["data"] == {
        "subject": "lti.put_data.response",
        "message_id": "p1",
        "key": "k",
        "value": "v",
    }
    got = send({"subject": "lti.get_data", "message_id": "g1", "key": "k"})
    assert got["data"]["value"] == "v"
    old_spelling = send({"subject": "org.imsglobal.lti.get_data", "message_id": "g2", "key": "k"})
    assert old_spelling["data"]["subject"] == "org.imsglobal.lti.get_data.response"
    assert old_spelling["data"]["value"] == "v"
    cleared = send({"subject": "lti.put_data", "message_id": "p2", "key": "k"})
    assert "error" not in cleared["data"]
    gone = send({"subject": "lti.get_data", "message_id": "g3", "key": "k"})
    assert gone["data"]["value"] is None

    def error_of(message, window=frame):
        return send(message, window)["data"]["error"]["code"]

    assert error_of({"subject": "lti.get_data", "message_id": "e1"}) == "bad_request"
    assert error_of({"subject": "lti.put_data", "key": "k", "value": "v"}) == "bad_request"
    too_big = {"subject": "lti.put_data", "message_id": "e3", "key": "k", "value": "x" * 5000}
    assert error_of(too_big) == "storage_exhaustion"
    assert error_of({"subject": "lti.frobnicate", "message_id": "e4"}) == "unsupported_subject"
    # Only the tool's origin may use the storage: the LMS's own page is refused.
    from_lms = {"subject": "lti.get_data", "message_id": "e5", "key": "k"}
    assert error_of(from_lms, page) == "wrong_origin"


# Runs in the LMS page before its own scripts: acknowledges every lti.put_data and keeps
# nothing, as if the login had happened in another browser.
FORGETFUL_LMS = """
window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (data.subject !== "lti.put_data") return;
    event.stopImmediatePropagation();
    event.source.postMessage({subject: "lti.put_data.response", message_id: data.message_id,
                              key: data.key, value: data.value}, event.origin);
});
"""


def test_launch_the_platform_storage_cannot_confirm_is_refused(demo_world, open_browser):
    context = open_browser(block_cookies_of=demo_world.tool_url, embedded_in=demo_world.lms_url)
    page = context.pages[0]
    page.add_init_script(FORGETFUL_LMS)
    before = len(demo_world.recorder.seen)

    tool = launch_in_frame(page, demo_world, "lee")

    status = tool.get_by_role("status")
    expect(status).to_have_text(
        "This launch was not started in this browser. Start it again from your course."
    )
    expect(tool.get_by_role("link", name="Open the tool in a new window")).to_be_visible()
    # Only the first leg reached the tool: nothing was posted again without the secret.
    launches = demo_world.recorder.seen[before:]
    assert [launch.had_state_cookie for launch in launches] == [False]


def test_storage_target_the_platform_page_lacks_falls_back_to_the_platform(
    demo_world, open_browser
):
    """A named frame that is not there must not stall the login (reading it cross-origin throws)."""
    context = open_browser(block_cookies_of=demo_world.tool_url, embedded_in=demo_world.lms_url)
    page = context.pages[0]
    page.goto(demo_world.course_page())
    link = page.locator("a[data-launch=lee]")
    href = link.get_attribute("href")
    assert href is not None and "lti_storage_target=_parent" in href
    link.evaluate(
        "(a, url) => { a.href = url }",
        href.replace("lti_storage_target=_parent", "lti_storage_target=no-such-frame"),
    )
    link.click()

    tool = page.frame_locator(f"iframe[name={TOOL_FRAME}]")
    expect(tool.get_by_role("heading", name="Your micro-credentials")).to_be_visible()
    expect(tool.locator("dl.facts")).to_contain_text("Lee Marsh")
