"""A valid Canvas-shaped and Moodle-shaped launch land on the page for the person's role."""

from tests.conftest import BASE_URL
from tests.support.platform import INSTRUCTOR, launch


def test_canvas_learner_launch_lands_on_learner_page(client, canvas):
    response = launch(client, canvas, BASE_URL, "canvas")
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Your micro-credentials" in text
    assert "Jane Teacher" in text


def test_moodle_instructor_launch_lands_on_educator_page(client, moodle):
    response = launch(client, moodle, BASE_URL, "moodle", roles=[INSTRUCTOR])
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get(response.headers["Location"])
    assert "Course overview for educators" in page.get_data(as_text=True)
    assert "Micro-credentials 101" in page.get_data(as_text=True)
