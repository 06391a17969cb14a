"""The web UI in a real browser (Debian's chromium through Playwright) against the real master
daemon, frontend server and a local backend with a tiny untrained bundle (its faces are noise;
the workflow is what is tested). Screenshots of the main screens go to docs/screenshots/.

The tests run in order and share one browser page: log in → upload → generate → page → select
fillers → save and download → refine → interpolate → reopen.
"""
from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from pathlib import Path

from PIL import Image

from tests.browser.conftest import LONDON, READY_TIMEOUT, SHOTS, TASK_TIMEOUT
from tests.conftest import SHARED


def shot(page, name: str, show: str | None = None) -> None:
    """A 1280 × 800 screenshot from the top of the page (or scrolled so that ``show`` is in
    view), stored as a small palette PNG."""
    page.evaluate("() => window.scrollTo(0, 0)")
    if show:
        page.locator(show).scroll_into_view_if_needed()
    data = page.screenshot()
    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGB").quantize(colors=128).save(SHOTS / f"{name}.png", optimize=True)


def wait_results(page, note: str, count: int, timeout: int = TASK_TIMEOUT) -> None:
    """Wait for a page of results; on failure say what the screen shows instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "([note, count]) => document.getElementById('results-note').textContent"
            ".includes(note) && document.querySelectorAll('#faces li').length === count"
            " || document.getElementById('error').textContent.length > 0",
            arg=[note, count], timeout=timeout)
    except PlaywrightTimeout:
        pass
    screen = {k: page.locator(k).inner_text() for k in ("#error", "#progress-text",
                                                          "#backend-state", "#results-note")}
    assert not screen["#error"] and note in screen["#results-note"], screen
    assert page.locator("#faces li").count() == count


def face_action(page, index: int, action: str) -> None:
    page.locator("#faces .face").nth(index).click()
    page.get_by_role("menuitem", name=action).click()


def test_login(page, live):
    page.goto(live.url + "/")
    try:
        page.wait_for_selector("#login-form")              # not logged in: sent to /login
    except Exception:
        raise AssertionError(f"no login form at {page.url}: {page.content()[:2000]}") from None
    page.fill("#name", "officer")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    page.get_by_text("Wrong user name or password").wait_for()
    page.fill("#password", live.password)
    shot(page, "login")
    page.click("button[type=submit]")
    page.wait_for_url(live.url + "/")
    page.get_by_text("officer").wait_for()
    assert page.locator("#admin-link").is_hidden()          # not an administrator


def drop_file(page, selector: str, path, mime: str = "image/jpeg") -> None:
    """Drag-and-drop of a file onto ``selector``, as a user dragging it from the desktop."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([data, name, mime]) => {
             const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
             const dt = new DataTransfer();
             dt.items.add(new File([bytes], name, { type: mime }));
             return dt;
           }""", [data, path.name, mime])
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_upload_shows_the_face_and_no_face_is_explained(page):
    slot = page.locator('[data-slot="suspect"]')
    slot.locator(".file-input").set_input_files(str(SHARED / "faces" / "no_face" / "fox.jpg"))
    slot.get_by_text("No face was found").wait_for()
    # Two faces: both boxes are shown and the user picks one.
    two = Image.new("RGB", (1024, 512))
    two.paste(Image.open(LONDON / "001_03.jpg").convert("RGB"), (0, 0))
    two.paste(Image.open(LONDON / "005_03.jpg").convert("RGB"), (512, 0))
    buf = io.BytesIO()
    two.save(buf, "PNG")
    slot.locator(".file-input").set_input_files(
        {"name": "two.png", "mimeType": "image/png", "buffer": buf.getvalue()})
    slot.get_by_text("2 faces found").wait_for()
    slot.get_by_role("button", name="Use face 2").click()
    slot.get_by_text("face 2 is used").wait_for()
    assert slot.get_by_role("button", name="Use face 2").get_attribute("aria-pressed") == "true"
    # Only the face in use is marked as picked (the first box kept its mark before) …
    picked = slot.locator(".face-box.picked")
    assert picked.count() == 1 and picked.inner_text() == "2"
    # … and the lineup panel shows that face, not the photo's centre: the thumbnail is cut
    # around face 2, in the right half of this photo.
    thumb = page.locator("#selected .suspect img")
    thumb.wait_for()
    assert thumb.get_attribute("data-face-index") == "1"
    frame = page.locator("#selected .suspect .thumb").bounding_box()
    shown = thumb.bounding_box()
    assert shown["width"] > 2 * frame["width"]                   # zoomed onto one face
    assert shown["x"] + shown["width"] / 2 < frame["x"]          # the photo's right half shown
    # The suspect's photo, dragged onto the drop zone.
    drop_file(page, '[data-slot="suspect"] .dropzone', LONDON / "001_03.jpg")
    slot.get_by_text("One face found.").wait_for()
    assert slot.locator(".face-box").count() == 1
    page.locator("#selected .suspect").wait_for()          # the suspect joins the lineup


def test_generate_waits_for_the_backend_then_shows_fillers(page):
    page.wait_for_selector('#backend-state[data-state="ready"]', timeout=READY_TIMEOUT)
    assert page.locator("#restart").is_hidden()
    page.click(".advanced summary")
    page.fill("#per-page", "6")
    page.fill("#steps", "5")
    page.click(".advanced summary")
    generate = page.locator("#generate")
    assert generate.is_enabled()
    # A trait set from the witness's description goes with the request; this tiny bundle has
    # no attribute model to read it, and the backend's reason reaches the user.
    page.select_option("#trait-gender", "female")
    generate.click()
    page.locator("#error", has_text="no attribute model to read gender").wait_for(
        timeout=60_000)
    page.select_option("#trait-gender", "auto")
    generate.click()
    wait_results(page, "Fillers, page 1", 6)
    assert page.locator("#progress").evaluate("p => p.value") == 100
    page.locator("#faces .face").first.hover()
    assert "Distance to suspect" in page.locator("#details").inner_text()
    shot(page, "results")
    ids = "() => [...document.querySelectorAll('#faces .face')].map((b) => b.dataset.faceId)"
    first = page.evaluate(ids)
    page.click("#next-page")
    wait_results(page, "Fillers, page 2", 6)
    assert page.locator("#page-label").inner_text() == "Page 2"
    second = page.evaluate(ids)
    assert not set(first) & set(second)
    # Previous shows page 1 again as it was (it used to be made anew under new face ids).
    page.click("#prev-page")
    wait_results(page, "Fillers, page 1", 6)
    assert page.evaluate(ids) == first and page.locator("#details").is_hidden()
    page.click("#next-page")
    wait_results(page, "Fillers, page 2", 6)
    assert page.evaluate(ids) == second


def test_faces_are_usable_from_the_keyboard(page):
    page.locator("#faces .face").first.focus()
    assert "Distance to suspect" in page.locator("#details").inner_text()
    page.keyboard.press("Enter")
    menu = page.locator("#face-menu")
    assert menu.is_visible()
    assert page.evaluate("document.activeElement.textContent") == "Select as filler"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.textContent") == "More similar to this"
    page.keyboard.press("Escape")
    assert menu.is_hidden()
    assert page.evaluate("document.activeElement.classList.contains('face')")


def test_select_fillers_save_and_download(page):
    for i in range(5):
        face_action(page, i, "Select as filler")
    assert page.locator("#lineup-count").inner_text() == "5 of 5 fillers selected"
    assert page.locator("#selected li").count() == 6
    # The default model is for research only, and the page says so.
    assert page.locator("#research-notice").inner_text().startswith("RESEARCH ONLY")
    # The simulated witnesses follow the picks, labelled as a simulation.
    page.locator("#fairness-panel").wait_for()
    page.wait_for_function("document.querySelector('#fairness-summary').textContent.includes('E′')")
    assert page.locator("#fairness-label").inner_text().startswith("Simulation, not evidence")
    face_action(page, 5, "Select as filler")               # one too many: told why
    assert "room for 5 fillers" in page.locator("#error").inner_text()
    # Removing one and adding another.
    page.locator("#selected .filler .remove").first.click()
    assert page.locator("#lineup-count").inner_text() == "4 of 5 fillers selected"
    face_action(page, 5, "Select as filler")
    page.fill("#lineup-name", "Case 117")
    page.select_option("#suspect-position", "3")
    page.check("#present-normalise")
    page.click("#save")
    page.get_by_text("the suspect is number 3").wait_for()
    assert page.locator("#error").inner_text() == ""        # the old error no longer applies
    # The presentation check of the saved lineup: warnings, or a line saying none stands out.
    page.locator("#parity-warnings li").first.wait_for()
    shot(page, "lineup-saved")
    with page.expect_download() as download:
        page.click("#download-png")
    with Image.open(download.value.path()) as im:
        # A 3 × 2 grid of 256-px faces, with the research-only notice under it.
        assert im.size[0] == 16 + 3 * 272 and im.size[1] > 16 + 2 * 316
    with page.expect_download() as download:
        page.click("#download-zip")
    with zipfile.ZipFile(download.value.path()) as zf:
        names = set(zf.namelist())
        record = json.loads(zf.read("lineup.json"))
    assert {"composite.png", "lineup.json", "NOTICE.txt"} <= names and len(names) == 9
    assert record["presentation"] == {"normalise": True, "grayscale": False}
    with page.expect_download() as download:
        page.click("#download-report")
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")


def test_interpolation_between_the_photo_and_a_face(page):
    face_action(page, 0, "Use as interpolation input #2")
    assert page.locator("#mode-interpolate").get_attribute("aria-selected") == "true"
    page.click(".advanced summary")
    page.fill("#interp-count", "4")
    page.click(".advanced summary")
    page.click("#generate")
    wait_results(page, "Interpolation", 4)
    shot(page, "interpolation")


def test_refine_shows_a_new_page(page):
    page.fill("#refine-seconds", "60")
    assert page.locator("#refine-value").inner_text() == "60"
    page.click("#refine")
    page.wait_for_selector("#cancel:not([disabled])")        # the task runs
    # The bar moves with the clock and says, in words, what is done and how long is left (it
    # sat at 0 % through the first, compiling steps, then counted encoder and generator steps).
    page.wait_for_function("() => document.getElementById('progress').value > 0 && document"
                           ".getElementById('progress-text').textContent.includes(' s left')",
                           timeout=45_000)
    words = page.locator("#progress-text").inner_text()
    assert re.fullmatch(r"\d+% · (Preparing a private copy of the model|Fitting the photo to "
                        r"the model|Adapting the model to the photo): about \d+ s left",
                        words), words
    shot(page, "refining", show=".refine")
    page.reload()                         # the running task is picked up again after a reload
    page.wait_for_selector("#cancel:not([disabled])")
    wait_results(page, "refined model", 6, timeout=300_000)


def test_reopen_a_saved_lineup(page):
    page.click("#new-lineup")
    assert page.locator("#selected li").count() == 0
    assert page.locator("#downloads").is_hidden() and page.locator("#faces li").count() == 0
    # A new lineup starts afresh: no old name, and a random suspect position again.
    assert page.locator("#suspect-position").input_value() == ""
    assert page.locator("#lineup-name").input_value() == ""
    page.click("#open-lineups")
    page.get_by_role("button", name=re.compile("Case 117")).click()
    page.get_by_text("Opened “Case 117”").wait_for()
    assert page.locator("#lineup-count").inner_text() == "5 of 5 fillers selected"
    assert page.locator("#suspect-position").input_value() == "3"
    assert page.locator("#download-zip").is_visible()
    page.click("#open-lineups")
    shot(page, "saved-lineups")
    page.keyboard.press("Escape")


def test_an_administrator_creates_an_account(page, live):
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 800})
    admin = context.new_page()
    try:
        admin.goto(live.url + "/login")
        admin.fill("#name", "admin")
        admin.fill("#password", live.password)
        admin.click("button[type=submit]")
        admin.wait_for_url(live.url + "/")
        admin.click("#admin-link")
        admin.wait_for_url(live.url + "/admin")
        admin.fill("#new-name", "detective")
        admin.fill("#new-password", "short")
        admin.click("button[type=submit]")
        admin.locator("#user-message").get_by_text("at least 8 characters").wait_for()
        admin.fill("#new-password", "a long enough password")
        admin.click("button[type=submit]")
        admin.get_by_text("Created detective.").wait_for()
        # the list is fetched again after the message: wait for it rather than read it at once
        admin.locator("#user-list").get_by_text("detective").wait_for()
        shot(admin, "accounts")
    finally:
        context.close()


def _logged_in(page, live, name: str, password: str | None = None):
    """A page of a fresh browser context logged in as ``name`` (and the context)."""
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.set_default_timeout(30_000)
    pg.goto(live.url + "/login")
    pg.fill("#name", name)
    pg.fill("#password", password or live.password)
    pg.click("button[type=submit]")
    pg.wait_for_url(live.url + "/")
    return context, pg


def test_officers_are_told_that_only_administrators_manage_accounts(page, live):
    context, officer = _logged_in(page, live, "officer")
    try:
        officer.goto(live.url + "/admin")
        officer.get_by_text("Only administrators manage accounts").wait_for()
        assert officer.locator("#admin-area").is_hidden()
        assert officer.locator("#own-password").is_visible()   # their own password, though
        assert officer.errors == []
    finally:
        context.close()


def test_an_administrator_disables_resets_and_deletes_an_account(page, live):
    from frontend_server.testing import add_user

    assert add_user(live.home, "constable").returncode == 0
    context, admin = _logged_in(page, live, "admin")
    try:
        admin.goto(live.url + "/admin")
        admin.locator("#user-list").get_by_text("constable").wait_for()
        assert admin.get_by_role("button", name="Disable: admin").count() == 0   # oneself
        admin.get_by_role("button", name="Disable: constable").click()
        admin.get_by_text("constable is disabled and logged out.").wait_for()
        other = admin.context.browser.new_context()
        try:
            login = other.new_page()
            login.goto(live.url + "/login")
            login.fill("#name", "constable")
            login.fill("#password", live.password)
            login.click("button[type=submit]")
            login.get_by_text("This account is disabled").wait_for()
        finally:
            other.close()
        admin.get_by_role("button", name="Enable: constable").click()
        admin.get_by_text("constable may log in again.").wait_for()
        admin.get_by_role("button", name="Reset password: constable").click()
        admin.fill("#reset-password", "password")
        admin.click("#reset-form button[type=submit]")
        admin.locator("#reset-message").get_by_text("too weak").wait_for()
        admin.fill("#reset-password", "quiet harbour lamps at dusk")
        admin.click("#reset-form button[type=submit]")
        admin.get_by_text("The password of constable was reset").wait_for()
        admin.once("dialog", lambda dialog: dialog.dismiss())
        admin.get_by_role("button", name="Delete: constable").click()
        assert admin.locator("#user-list").get_by_text("constable").count() == 1
        admin.once("dialog", lambda dialog: dialog.accept())
        admin.get_by_role("button", name="Delete: constable").click()
        admin.get_by_text("Deleted constable.").wait_for()
        admin.wait_for_function("() => !document.getElementById('user-list')"
                                ".textContent.includes('constable')")
        assert admin.errors == []
    finally:
        context.close()


FACE_IDS = "() => [...document.querySelectorAll('#faces .face')].map((b) => b.dataset.faceId)"
DRAFTS = ("() => Object.keys(sessionStorage).filter((k) => k.startsWith('ligan-draft-'))"
          ".map((k) => sessionStorage.getItem(k)).join(' ')")


def _answer(pg, accept: bool) -> list[str]:
    """Answer the next dialog; the list gets its question."""
    asked: list[str] = []
    pg.once("dialog", lambda d: (asked.append(d.message), d.accept() if accept else d.dismiss()))
    return asked


def _started(pg) -> None:
    """Wait until the lineup page has started (its draft, if any, restored)."""
    pg.wait_for_selector("body[data-started]")


def _log_in_again(pg, live, name: str) -> None:
    """The same tab, another login (the old one's cookie dropped, not logged out). The page is
    left first, so that no answer to one of its requests still in flight brings the old
    session cookie back after it was dropped."""
    pg.goto("about:blank")
    pg.context.clear_cookies()
    pg.goto(live.url + "/login")
    pg.fill("#name", name)
    pg.fill("#password", live.password)
    pg.click("button[type=submit]")
    pg.wait_for_url(live.url + "/")
    _started(pg)
    assert pg.locator("#user-name").inner_text() == name


def test_a_draft_survives_reload_and_research_and_is_not_discarded_unasked(page, live):
    """Unsaved work (the suspect, the pages, the picks, the settings) is kept in the tab's
    session storage: a reload or a visit to Research loses none of it, New lineup and logging
    out ask before they discard it, and another user of the tab never sees it."""
    context, pg = _logged_in(page, live, "officer")
    suspect = pg.locator('[data-slot="suspect"]')
    try:
        suspect.locator(".file-input").set_input_files(str(LONDON / "005_03.jpg"))
        suspect.get_by_text("One face found.").wait_for()
        pg.wait_for_selector('#backend-state[data-state="ready"]', timeout=READY_TIMEOUT)
        pg.click(".advanced summary")
        pg.fill("#per-page", "6")
        pg.fill("#steps", "5")
        pg.click("#generate")
        wait_results(pg, "Fillers, page 1", 6)
        first = pg.evaluate(FACE_IDS)
        pg.click("#next-page")
        wait_results(pg, "Fillers, page 2", 6)
        face_action(pg, 1, "Select as filler")
        face_action(pg, 3, "Select as filler")
        pg.fill("#lineup-name", "Draft case")
        second = pg.evaluate(FACE_IDS)

        def kept() -> None:
            _started(pg)
            suspect.get_by_text("One face found.").wait_for()
            assert pg.locator("#lineup-count").inner_text() == "2 of 5 fillers selected"
            assert pg.locator("#selected li").count() == 3      # the suspect and two fillers
            assert pg.evaluate(FACE_IDS) == second               # page 2, shown once
            assert pg.locator("#faces .face.chosen").count() == 2
            assert pg.locator("#page-label").inner_text() == "Page 2"
            assert pg.locator("#results-note").inner_text().startswith("Fillers, page 2")
            assert pg.locator("#per-page").input_value() == "6"  # the settings too
            assert pg.locator("#lineup-name").input_value() == "Draft case"

        pg.reload()
        kept()
        pg.click("#research-link")
        pg.wait_for_url(live.url + "/research")
        pg.click("#lineup-link")
        pg.wait_for_url(live.url + "/")
        kept()
        pg.click("#prev-page")                 # page 1 as it was, from the draft: no new task
        wait_results(pg, "Fillers, page 1", 6)
        assert pg.evaluate(FACE_IDS) == first
        # New lineup asks first; no: nothing is lost.
        asked = _answer(pg, accept=False)
        pg.click("#new-lineup")
        assert asked == ["Start a new lineup and discard the one you have not saved?"]
        assert pg.locator("#lineup-count").inner_text() == "2 of 5 fillers selected"
        # Once saved it asks no more, and the new, empty lineup is what a reload shows.
        pg.click("#save")
        pg.get_by_text("Saved “Draft case”").wait_for()
        asked = []
        record = lambda d: (asked.append(d.message), d.accept())  # noqa: E731
        pg.on("dialog", record)
        pg.click("#new-lineup")
        pg.remove_listener("dialog", record)
        assert asked == [] and pg.locator("#selected li").count() == 0
        pg.reload()
        _started(pg)
        assert pg.locator("#selected li").count() == 0 and pg.locator("#faces li").count() == 0
        # Another user logging in in this tab sees nothing of it: the draft is gone.
        suspect.locator(".file-input").set_input_files(str(LONDON / "005_03.jpg"))
        pg.locator("#selected .suspect").wait_for()
        assert "upload_id" in pg.evaluate(DRAFTS)
        _log_in_again(pg, live, "admin")
        assert pg.locator("#selected li").count() == 0
        assert suspect.get_by_text("One face found.").count() == 0
        assert "upload_id" not in pg.evaluate(DRAFTS)
        _log_in_again(pg, live, "officer")
        assert pg.locator("#selected li").count() == 0
        # Logging out asks before it discards unsaved picks, and leaves no draft behind.
        suspect.locator(".file-input").set_input_files(str(LONDON / "005_03.jpg"))
        pg.locator("#selected .suspect").wait_for()
        asked = _answer(pg, accept=False)
        pg.click("#logout")
        assert asked == ["Log out and discard the lineup you have not saved?"]
        assert pg.url == live.url + "/"
        asked = _answer(pg, accept=True)
        pg.click("#logout")
        pg.wait_for_url(live.url + "/login")
        assert asked and pg.evaluate(DRAFTS) == ""
        assert pg.errors == []
    finally:
        context.close()


def test_no_script_errors(page):
    assert page.errors == [], "\n".join(page.errors)
