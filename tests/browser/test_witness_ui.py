"""Mock-witness tests in a real browser (Debian's chromium through Playwright) against the real
master daemon and frontend server: an officer makes a test from a saved lineup, a mock
witness answers on a 390 × 800 phone screen with no account, the used link says so, and the
results page shows the bar chart, the measures and the verdict. No backend is needed: the
lineup is made of face records written the way a backend writes them.

The tests run in order and share one browser page (the officer's) and the links made.
"""
from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from PIL import Image

from frontend_server.testing import fake_faces
from tests.browser.conftest import SHOTS

NAME = "Case 2024-201"
made: dict = {}


def shot(page, name: str) -> None:
    data = page.screenshot(full_page=True)
    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGB").quantize(colors=128).save(SHOTS / f"{name}.png", optimize=True)


def test_officer_makes_a_test_from_a_saved_lineup(page, live):
    page.goto(live.url + "/login")
    page.fill("#name", "officer")
    page.fill("#password", live.password)
    page.click("button[type=submit]")
    page.wait_for_url(live.url + "/")
    user = page.evaluate("() => fetch('/web/me').then((r) => r.json())")
    faces = fake_faces(live.home / "results" / f"user-{user['user']['id']}", 4)
    saved = page.evaluate(
        """async ([csrf, body]) => {
             const r = await fetch('/web/lineups', {method: 'POST', body: JSON.stringify(body),
               headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf}});
             return r.json();
           }""",
        [user["csrf_token"], {"name": NAME, "size": 4, "suspect_position": 3,
                              "suspect": {"face_id": faces[0]["id"]},
                              "fillers": [f["id"] for f in faces[1:]]}])
    assert saved.get("complete"), saved
    made["lineup"] = saved
    # From the saved-lineups list to the lineup's mock-witness page.
    page.click("#open-lineups")
    page.get_by_role("link", name=f"Mock witnesses: {NAME}").click()
    page.wait_for_url(f"{live.url}/witnesses?lineup={saved['id']}")
    page.get_by_text("No tests of this lineup yet.").wait_for()
    assert page.locator("#lineup-select").input_value() == saved["id"]
    page.fill("#description", "Man, about 35, short dark beard, no glasses, grey hoodie.")
    page.select_option("#w-gender", "male")
    page.select_option("#w-age_group", "30-39")
    page.select_option("#w-beard", "yes")
    page.select_option("#w-hair", "black")
    page.select_option("#w-glasses", "no")
    page.fill("#link-count", "3")
    page.fill("#expires-days", "7")
    page.select_option("#confidence-scale", "five")
    page.click("#test-form button[type=submit]")
    page.locator("#new-links").wait_for()
    links = page.locator("#links-text").input_value().split()
    assert len(links) == 3 and len(set(links)) == 3
    assert all(l.startswith(live.url + "/w/") for l in links), links
    made["links"] = [live.url + urlsplit(l).path for l in links]
    # The list as a text file, and the test in the list of the lineup's tests.
    with page.expect_download() as download:
        page.click("#download-links")
    assert download.value.path().read_text().split() == links
    assert "0 answered of 3 links" in page.locator("#test-list").inner_text()
    assert page.locator("#link-rows tr").count() == 3
    assert "No choices yet" in page.locator("#verdict").inner_text()
    assert page.errors == []


@pytest.fixture()
def phone(page):
    """A separate browser context: a 390 × 800 phone with no cookies of the officer's."""
    context = page.context.browser.new_context(viewport={"width": 390, "height": 800},
                                               is_mobile=True, has_touch=True)
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def test_a_witness_picks_a_member_on_a_phone(phone):
    if "links" not in made:
        pytest.skip("the test was not made")
    response = phone.goto(made["links"][0])
    assert response.status == 200
    phone.get_by_text("short dark beard").wait_for()
    assert phone.locator("#traits li").count() == 5
    assert "Hair: black" in phone.locator("#traits").inner_text()
    assert "Case 2024" not in phone.content()               # the lineup's name is not shown
    images = phone.locator(".member img")
    assert images.count() == 4
    phone.wait_for_function("() => [...document.querySelectorAll('.member img')]"
                            ".every((i) => i.complete && i.naturalWidth > 0)")
    width = phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    shot(phone, "witness-phone")
    phone.click("#submit")                                     # nothing chosen yet: told so
    phone.get_by_text("Choose a person").wait_for()
    phone.get_by_text("Person 2", exact=True).click()
    phone.select_option("#confidence-select", "4")
    phone.click("#submit")
    phone.get_by_text("your answer was recorded").wait_for()
    assert phone.locator("#witness-form").is_hidden()
    assert phone.context.cookies() == []                       # no session, no cookie
    assert phone.errors == []


def test_the_link_used_twice_says_so(phone):
    if "links" not in made:
        pytest.skip("the test was not made")
    response = phone.goto(made["links"][0])
    assert response.status == 410
    phone.get_by_text("This link has already been used").wait_for()
    assert phone.locator("#witness-form").is_hidden() and phone.locator(".member").count() == 0
    # A link that does not exist is told apart from a used one.
    assert phone.goto(made["links"][0][:-5] + "xxxxx").status == 404
    phone.get_by_text("This link is not known").wait_for()
    assert phone.errors == []


def test_the_results_show_the_chart_the_measures_and_the_verdict(page, phone):
    if "links" not in made:
        pytest.skip("the test was not made")
    phone.goto(made["links"][1])                               # a second witness: not present
    phone.get_by_label("The person described is not among them").check()
    phone.click("#submit")
    phone.get_by_text("your answer was recorded").wait_for()
    page.click("#refresh")
    page.wait_for_function("() => document.getElementById('results-words').textContent"
                           ".startsWith('1 choice:')")
    counts = page.eval_on_selector_all("#chart g[data-count]",
                                       "(gs) => gs.map((g) => Number(g.dataset.count))")
    assert sorted(counts) == [0, 0, 0, 1]
    words = page.locator("#results-words").inner_text()
    assert "1 online witness answered “not present”" in words
    verdict = page.locator("#verdict").inner_text()
    assert verdict.startswith("Verdict: the suspect was chosen by") and "chance" in verdict
    assert page.locator("#measures").is_visible()
    assert "Functional size" in page.locator("#measures").inner_text()
    assert page.locator("#thumbs img").count() == 4
    # Choices collected on paper join them (kept apart: "on paper").
    page.set_input_files("#import-file", files=[{
        "name": "paper.csv", "mimeType": "text/csv",
        "buffer": b"witness,choice\np1,3\np2,3\np3,1\np4,3\np5,2\n"}])
    page.click("#import-form button[type=submit]")
    page.get_by_text("5 choices imported from paper.csv").wait_for()
    assert page.locator("#results-words").inner_text().startswith("6 choices: 1 online, 5 on paper")
    suspect_bar = page.locator('#chart g[data-position="3"]')
    assert int(suspect_bar.get_attribute("data-count")) >= 3
    assert suspect_bar.locator("rect.bar-suspect").count() == 1
    # A bad file is refused naming its row.
    page.set_input_files("#import-file", files=[{
        "name": "bad.csv", "mimeType": "text/csv", "buffer": b"choice\n1\n9\n"}])
    page.click("#import-form button[type=submit]")
    page.get_by_text("bad.csv, row 3: choice 9 is not a position of the lineup").wait_for()
    # Revoking the last open link: its row says so and the witness is told.
    page.get_by_role("button", name="Revoke link 3").click()
    page.get_by_text("Link 3 revoked.").wait_for()
    assert page.locator('#link-rows tr[data-state="revoked"]').count() == 1
    shot(page, "witness-results")
    assert phone.goto(made["links"][2]).status == 410
    phone.get_by_text("withdrawn").wait_for()
    assert page.errors == [] and phone.errors == []
