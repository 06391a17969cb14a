"""The Research area in a real browser (Debian's chromium through Playwright) against the real
master daemon, frontend server and a local backend with the tiny untrained bundle of
tests/browser/conftest.py (its faces are noise; the workflow is what is tested).

The tests run in order and share one page, as the user ``admin`` (so that the lineup tests'
faces of ``officer`` are not in this gallery): log in → Research → 6 random faces in the
gallery → the attribute features say the model has none → pick A and B, transition → style
mix grid → search the gallery (a slow answer never replaces a newer one) → screenshot
docs/screenshots/research.png → 30 000 random faces, progress, cancel, the partial faces paged
in the gallery.
"""
from __future__ import annotations

import io

from PIL import Image

from tests.browser.conftest import READY_TIMEOUT, SHOTS, TASK_TIMEOUT

def wait_done(pg, what: str, timeout: int = TASK_TIMEOUT) -> None:
    """Wait until the job ends ("done" in the progress text) and say what the screen shows
    if it does not."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        pg.wait_for_function(
            "() => document.getElementById('cancel').disabled"
            " && document.getElementById('progress-text').textContent.endsWith('· done')"
            " || document.getElementById('error').textContent.length > 0", timeout=timeout)
    except PlaywrightTimeout:
        pass
    screen = {k: pg.locator(k).inner_text() for k in ("#error", "#progress-text",
                                                        "#backend-state", "#result-note")}
    assert not screen["#error"] and screen["#progress-text"].endswith("· done"), (what, screen)


def gallery_count(pg, count: int) -> None:
    pg.wait_for_function("n => document.querySelectorAll('#gallery-faces li').length === n",
                         arg=count)


def gallery_settled(pg) -> int:
    """Wait until no gallery load is on its way and the note counts faces; return the count."""
    pg.wait_for_function("() => document.getElementById('gallery-faces')"
                         ".getAttribute('aria-busy') === 'false'"
                         " && /^\\d+ faces/.test(document.getElementById('gallery-note')"
                         ".textContent)")
    return int(pg.locator("#gallery-note").inner_text().split()[0])


def select(pg, index: int, use: str) -> None:
    """Click the gallery's face ``index`` (details open), then a "Use as …" button."""
    face = pg.locator("#gallery-faces .face").nth(index)
    face_id = face.get_attribute("data-face-id")
    face.click()
    pg.wait_for_function("id => document.querySelector('#details-list dd') &&"
                         " document.querySelector('#details-list dd').textContent === id",
                         arg=face_id)
    pg.get_by_role("button", name=use).click()


def test_open_research_and_make_random_faces(page, live):
    page.goto(live.url + "/login")
    page.fill("#name", "admin")
    page.fill("#password", live.password)
    page.click("button[type=submit]")
    page.wait_for_url(live.url + "/")
    page.get_by_role("link", name="Research").click()
    page.wait_for_url(live.url + "/research")
    page.get_by_text("No faces yet").wait_for()
    page.wait_for_selector('#backend-state[data-state="ready"]', timeout=READY_TIMEOUT)
    page.fill("#random-amount", "6")
    page.fill("#random-psi", "0.8")
    page.fill("#random-seed", "7")
    page.get_by_role("button", name="Make random faces").click()
    wait_done(page, "random faces")
    assert "6 random faces made (seed 7)" in page.locator("#result-note").inner_text()
    gallery_count(page, 6)
    assert page.locator("#gallery-note").inner_text().startswith("6 faces")
    assert page.locator("#progress").evaluate("p => p.value") == 100
    # the gallery's images load (served from the user's results folder)
    page.wait_for_function("() => [...document.querySelectorAll('#gallery-faces img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")


def test_attribute_features_say_the_model_has_none(page):
    note = page.locator("#attr-filter-box .attr-note")
    page.locator("#attr-filter-box summary").click()
    page.wait_for_function("() => document.querySelector('#attr-filter-box .attr-note')"
                           ".textContent.includes('no attribute model')")
    assert "This model has no attribute model" in note.inner_text()
    assert page.locator("#attr-filter-box button[type=submit]").is_disabled()
    page.locator("#attr-edit-box summary").click()
    assert "no attribute model" in page.locator("#attr-edit-box .attr-note").inner_text()
    assert page.locator("#attr-edit-box button[type=submit]").is_disabled()
    page.locator("#attr-filter-box summary").click()
    page.locator("#attr-edit-box summary").click()


def test_transition_between_two_gallery_faces(page):
    select(page, 0, "Use as A")
    select(page, 1, "Use as B")
    assert page.locator("#pick-a-label").inner_text() != "none"
    page.fill("#transition-amount", "4")
    page.locator("#transition-distance").fill("0.5")
    page.get_by_role("button", name="Make the transition").click()
    wait_done(page, "transition")
    assert "Transition: 4 faces at distance 0.5" in page.locator("#result-note").inner_text()
    assert page.locator("#result-body .strip figure").count() == 6   # A, 4 frames, B
    gallery_count(page, 10)
    # a frame is a face of the gallery: its parents are A and B, shown as links
    page.locator("#result-body .strip .face").nth(2).click()
    page.wait_for_function("() => [...document.querySelectorAll('#details-list dd')]"
                           ".some(d => d.textContent === 'transition')")
    assert page.locator("#details-list a").count() == 2


def test_style_mix_grid(page):
    page.locator("#search-operation").select_option("generate")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("() => document.getElementById('gallery-note').textContent"
                           ".includes('6 faces match')")
    select(page, 2, "Use as mix target")
    select(page, 3, "Add as mix source")
    select(page, 4, "Add as mix source")
    page.locator("#mix-box input[value=fine]").uncheck()
    page.get_by_role("button", name="Mix styles").click()
    wait_done(page, "style mix")
    assert "4 of 4 mixes" in page.locator("#result-note").inner_text()
    grid = page.locator("#result-body table.mix-grid")
    assert grid.locator("tr").count() == 3                     # header + 2 sources
    assert grid.locator("td .face").count() == 4               # 2 sources × coarse, middle
    page.wait_for_function("() => [...document.querySelectorAll('.mix-grid img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")


def test_gallery_search_and_filters(page):
    page.locator("#search-operation").select_option("style_mix")
    page.get_by_role("button", name="Search").click()
    gallery_count(page, 4)
    page.get_by_role("button", name="Reset").click()
    gallery_count(page, 14)
    first_id = page.locator("#gallery-faces .face").nth(5).get_attribute("data-face-id")
    page.fill("#search-q", first_id[:12])
    page.get_by_role("button", name="Search").click()
    gallery_count(page, 1)
    page.fill("#search-q", "")
    page.fill("#search-where", "men, purple hair")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("unknown filter phrase 'purple hair'").wait_for()
    page.fill("#search-where", "men, 40-49, beard, no glasses, not smiling")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("No face matches this search").wait_for()
    assert "no attribute model" in page.locator("#gallery-note").inner_text()
    page.get_by_role("button", name="Reset").click()
    gallery_count(page, 14)


def test_a_slow_gallery_answer_never_replaces_a_newer_one(page):
    # Hold the answer to a search, Reset meanwhile, then let the old answer through: the
    # gallery keeps showing what was asked for last.
    held = []
    search = "**/web/research/faces?*operation=style_mix*"

    def hold(route) -> None:
        held.append(route)

    page.route(search, hold)
    page.locator("#search-operation").select_option("style_mix")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("() => document.getElementById('gallery-faces')"
                           ".getAttribute('aria-busy') === 'true'")
    page.get_by_role("button", name="Reset").click()
    assert gallery_settled(page) == 14
    assert len(held) == 1, held
    with page.expect_response(lambda r: "operation=style_mix" in r.url):
        held[0].continue_()
    page.evaluate("() => new Promise((r) => setTimeout(r, 300))")   # the answer is read
    page.unroute(search)
    assert gallery_settled(page) == 14
    gallery_count(page, 14)


def test_keyboard_and_screenshot(page):
    # A face is a button: Tab to it and press Enter to see its details.
    page.locator("#gallery-faces .face").first.focus()
    page.keyboard.press("Enter")
    page.locator("#details").wait_for()
    assert not page.locator("#details").is_hidden()
    page.evaluate("window.scrollTo(0, 0)")
    data = page.screenshot(full_page=True)      # the result grid, gallery and forms at once
    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGB").quantize(colors=128).save(SHOTS / "research.png", optimize=True)
    assert not page.errors, page.errors


def test_random_faces_show_progress_and_can_be_cancelled(page):
    before = gallery_settled(page)
    page.fill("#random-amount", "30000")
    page.fill("#random-seed", "")
    page.get_by_role("button", name="Make random faces").click()
    # progress from the event stream, then Cancel
    page.wait_for_function("() => { const p = document.getElementById('progress').value;"
                           " return p > 0 && p < 100; }", timeout=TASK_TIMEOUT)
    assert page.locator("#cancel").is_enabled()
    page.click("#cancel")
    page.wait_for_function("() => document.getElementById('progress-text').textContent"
                           ".endsWith('· cancelled')", timeout=60_000)
    assert page.locator("#cancel").is_disabled()
    assert page.get_by_role("button", name="Make random faces").is_enabled()
    # The faces made before the cancel are in the gallery, and the note says how many. The
    # gallery was loaded during the job too: wait for the load made after the task ended.
    total = gallery_settled(page)
    made = total - before
    assert 0 < made < 30000, (before, total)
    assert page.locator("#result-note").inner_text().startswith(
        f"{made} random faces made before the task stopped")
    pages = -(-total // 24)
    assert page.locator("#page-label").inner_text() == f"Page 1 of {pages}"
    if pages > 1:            # cancelled after the first chunk or later: usually many pages
        page.click("#next-page")
        page.get_by_text(f"Page 2 of {pages}").wait_for()
        gallery_settled(page)
        gallery_count(page, min(24, total - 24))
    assert not page.errors, page.errors


def test_a_large_result_keeps_the_page_within_the_window(page):
    """The page used to grow to 1,935 px wide after a task of more than about 10 faces, with the
    selected-face panel and the pager off-screen."""
    page.fill("#random-amount", "16")
    page.fill("#random-seed", "3")
    page.get_by_role("button", name="Make random faces").click()
    wait_done(page, "random faces")
    gallery_settled(page)
    box = page.evaluate("""() => ({
        width: window.innerWidth, scroll: document.documentElement.scrollWidth,
        details: document.getElementById('details-title').getBoundingClientRect().right,
        pager: document.getElementById('next-page').getBoundingClientRect().right})""")
    assert box["scroll"] <= box["width"], box
    assert box["details"] <= box["width"] and box["pager"] <= box["width"], box
    assert not page.errors, page.errors
