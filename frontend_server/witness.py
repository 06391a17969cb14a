"""Mock-witness tests of a saved lineup: one-time links for people who never saw the culprit,
their answers, and the lineup's fairness measured from them (``models.fairness``).

The lineup's owner writes the culprit's description as the witness gave it and makes a test:
N links ``/w/<token>``, each with an unguessable token (only its SHA-256 is stored), an expiry,
and revocable one by one or all together. A mock witness needs no account: the link's page shows
the description and the lineup's members in an order drawn for that witness (and recorded), and
takes one answer. The witness routes (blueprint ``witness_bp``, under ``/w/``) read no session
and set no cookie; they show no face ids, no suspect position and no lineup name unless the owner
gave the witnesses a title. Member images are served by the link and the witness's own order
(``/w/<token>/member/<i>.png``), only while the link is open.

The owner's routes (``bp``, under ``/web/``) list, revoke and delete tests, add links, show the
results (counts per member, every measure of ``models.fairness``), export the raw answers as CSV
and import choices collected on paper (a CSV that ``models.fairness.read_choices_csv`` reads).
Paper and online choices are kept apart and analysed together.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import math
import re
import secrets
import tempfile
import time
from pathlib import Path

from flask import Blueprint, Response, jsonify, request
from flask_limiter.util import get_remote_address

from frontend_server import export
from frontend_server.accounts import json_body
from frontend_server.context import current_user, frontend, login_required
from frontend_server.errors import ApiError
from frontend_server.limits import limiter
from frontend_server.lineups import bundle_presentation
from frontend_server.store import StoreError
from models import fairness
from models.filler_traits import MATCHED_TRAITS, requestable_values
from setup.strict_json import loads_strict

bp = Blueprint("witness_tests", __name__, url_prefix="/web")
witness_bp = Blueprint("witness", __name__, url_prefix="/w")
WEB_UI = Path(__file__).resolve().parent.parent / "web_ui"

#: The traits a description may name, with the vocabulary of the fillers' matching.
TRAIT_VALUES: dict[str, tuple[str, ...]] = {t: requestable_values(t) for t in MATCHED_TRAITS}
CONFIDENCE_SCALES = ("percent", "five", "none")
MAX_DESCRIPTION = 5000
MAX_TITLE = 200
MAX_EXPIRY_DAYS = 365
#: A witness's answer is a tiny JSON object; anything bigger is refused before it is parsed.
MAX_ANSWER_BYTES = 2048
MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_ROWS = 10_000
TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")
TEST_ID = re.compile(r"[0-9a-f]{16}")
CSV_COLUMNS = ("source", "witness", "choice", "not_present", "order_shown", "confidence",
               "confidence_scale", "time")

UNKNOWN = ("This link is not known. Check that the whole link was copied, or ask whoever sent "
           "it for a new one.")
USED = ("This link has already been used: the answer given with it was recorded. Thank you — "
        "each link takes one answer only.")
EXPIRED = "This link has expired. Ask whoever sent it for a new one if you still want to take part."
REVOKED = "This link was withdrawn by whoever runs the test; it takes no more answers."
GONE = {"answered": USED, "expired": EXPIRED, "revoked": REVOKED}


def token_hash(token: str) -> str:
    """What the database keeps of a link's token."""
    return hashlib.sha256(token.encode()).hexdigest()


def link_state(link: dict, now: float | None = None) -> str:
    """``open`` (not looked at yet), ``opened``, ``answered``, ``revoked`` or ``expired``."""
    now = time.time() if now is None else now
    if link["answered"] is not None:
        return "answered"
    if link["revoked"] is not None:
        return "revoked"
    if link["expires"] <= now:
        return "expired"
    if link["test"]["revoked"] is not None:
        return "revoked"
    return "opened" if link["shown"] else "open"


# -- checking the administrator's input ------------------------------------------------------

def _number(body: dict, key: str, default, low, high, whole: bool = False):
    value = body.get(key, default)
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise ApiError(422, f"{key} must be {kind} from {low:g} to {high:g}, got {value!r}.")
    return value


def check_traits(value) -> dict[str, str]:
    """The description's structured traits: trait → value of :data:`TRAIT_VALUES` (``any``,
    empty or null leave a trait out)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(422, "traits must be an object such as {\"gender\": \"male\"}.")
    out = {}
    for trait, chosen in value.items():
        if trait not in TRAIT_VALUES:
            raise ApiError(422, f"Unknown trait {trait!r}; the traits are "
                                f"{', '.join(TRAIT_VALUES)}.")
        if chosen in (None, "", "any"):
            continue
        if chosen not in TRAIT_VALUES[trait]:
            raise ApiError(422, f"{trait} must be one of {', '.join(TRAIT_VALUES[trait])} (or "
                                f"any), got {chosen!r}.")
        out[trait] = chosen
    return out


def check_test(body: dict, settings) -> dict:
    """The new test's description, traits, witness title, confidence scale, link count and
    expiry from the owner's JSON (422 naming what is wrong)."""
    description = body.get("description")
    if not isinstance(description, str) or not description.strip() \
            or len(description) > MAX_DESCRIPTION:
        raise ApiError(422, f"description must be the culprit's description as the witness "
                            f"gave it (1 to {MAX_DESCRIPTION} characters).")
    title = body.get("title") or ""
    if not isinstance(title, str) or len(title) > MAX_TITLE:
        raise ApiError(422, f"title (what the mock witnesses see as the heading; empty for none) "
                            f"must be text of at most {MAX_TITLE} characters.")
    scale = body.get("confidence_scale", "percent")
    if scale not in CONFIDENCE_SCALES:
        raise ApiError(422, f"confidence_scale must be one of {', '.join(CONFIDENCE_SCALES)}, "
                            f"got {scale!r}.")
    return {"description": description.strip(), "title": title.strip(),
            "traits": check_traits(body.get("traits")), "confidence_scale": scale,
            "links": _number(body, "links", None, 1, settings.witness_max_links, whole=True),
            "expires_days": _number(body, "expires_days", settings.witness_link_days, 0.001,
                                    MAX_EXPIRY_DAYS)}


# -- the owner's routes -------------------------------------------------------------------------

def _own_test(test_id: str) -> dict:
    test = frontend().store.witness_test(current_user()["id"], test_id) \
        if TEST_ID.fullmatch(test_id) else None
    if test is None:
        raise ApiError(404, "No such mock-witness test.")
    return test


def _new_links(test: dict, count: int, days: float) -> list[dict]:
    """``count`` fresh links of the test: number, path and full URL (the only time a token is
    seen: the database keeps its hash)."""
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    settings = frontend().settings
    try:
        numbers = frontend().store.add_witness_links(
            test["id"], [token_hash(t) for t in tokens], time.time() + days * 86400,
            settings.witness_max_links)
    except StoreError as exc:
        raise ApiError(422, str(exc)) from None
    # Behind the daemon the scheme and host are LIGAN_PUBLIC_URL's: its proxy sets them in
    # X-Forwarded-* (never passing on a client's own), and ProxyFix applies them here.
    base = request.host_url.rstrip("/")
    return [{"number": n, "path": f"/w/{t}", "url": f"{base}/w/{t}"}
            for n, t in zip(numbers, tokens)]


def summary(test: dict, links: list[dict] | None = None) -> dict:
    """The test as its owner sees it: description, lineup, links by state (no tokens)."""
    store = frontend().store
    links = store.witness_links(test["id"]) if links is None else links
    now = time.time()
    rows, counts = [], dict.fromkeys(("open", "opened", "answered", "revoked", "expired"), 0)
    for link in links:
        state = link_state({**link, "test": test}, now)
        counts[state] += 1
        rows.append({k: link[k] for k in ("number", "created", "expires", "opened",
                                          "answered")} | {"state": state})
    keys = ("id", "lineup_id", "lineup_name", "description", "title", "traits",
            "confidence_scale", "expires_days", "size", "suspect_position", "created",
            "revoked")
    return {**{k: test.get(k) for k in keys}, "link_counts": counts, "links": rows}


def results(test: dict, links: list[dict], imports: list[dict]) -> dict:
    """Counts per member (online, paper, both), the "not present" answers and every fairness
    measure of ``models.fairness`` from online and paper choices together."""
    size, suspect = test["size"], test["suspect_position"]
    online = [l["choice"] for l in links if l["answered"] is not None and l["choice"]]
    paper = [r["choice"] for r in imports]
    not_present = sum(1 for l in links if l["answered"] is not None and l["not_present"])

    def counts(choices):
        return [sum(1 for c in choices if c == p) for p in range(1, size + 1)]

    choices = online + paper
    measures, note = None, None
    if choices:
        measures = fairness.analyse_choices(choices, size, suspect).to_dict()
    else:
        note = "No choices yet: the measures need at least one mock witness's choice."
    return {"online": len(online), "paper": len(paper), "not_present": not_present,
            "n": len(choices), "counts": counts(choices), "online_counts": counts(online),
            "paper_counts": counts(paper), "fairness": measures, "note": note,
            "in_words": (f"{len(choices)} choice{'s' if len(choices) != 1 else ''}: "
                         f"{len(online)} online, {len(paper)} on paper"
                         f"; {not_present} online witness{'es' if not_present != 1 else ''} "
                         f"answered “not present” (left out of the measures).")}


@bp.get("/witness-tests")
@login_required
def list_all():
    """Every test of the user (of one lineup with ``?lineup=<id>``), newest first."""
    lineup_id = request.args.get("lineup")
    tests = frontend().store.witness_tests(current_user()["id"], lineup_id)
    return jsonify(tests=[summary(t) | {"links": []} for t in tests])


@bp.get("/lineups/<lineup_id>/witness-tests")
@login_required
def list_tests(lineup_id: str):
    user = current_user()
    if frontend().store.lineup(user["id"], lineup_id) is None:
        raise ApiError(404, "No such lineup.")
    tests = frontend().store.witness_tests(user["id"], lineup_id)
    return jsonify(tests=[summary(t) | {"links": []} for t in tests])


@bp.post("/lineups/<lineup_id>/witness-tests")
@login_required
def create_test(lineup_id: str):
    """A new test of the user's saved lineup with its first links (shown only in this answer).
    The members' images, size and suspect position are frozen now."""
    ctx, user = frontend(), current_user()
    lineup = ctx.store.lineup(user["id"], lineup_id)
    if lineup is None:
        raise ApiError(404, "No such lineup.")
    spec = check_test(json_body(), ctx.settings)
    if not lineup.get("complete"):
        raise ApiError(409, "This lineup is a draft: choose all its fillers and save it before "
                            "testing it with mock witnesses.")
    shown = bundle_presentation()
    positions = export.lineup_faces(lineup, ctx.results_dir(user), shown.framing,
                                    shown.resolution)
    images = {p["position"]: export.png_bytes(p["image"]) for p in positions}
    members = [{"position": p["position"], "role": p["role"],
                **{k: p["entry"][k] for k in ("face_id", "upload_id") if k in p["entry"]}}
               for p in positions]
    data = {k: spec[k] for k in ("description", "title", "traits", "confidence_scale",
                                 "expires_days")}
    data |= {"lineup_name": lineup["name"], "size": lineup["size"],
             "suspect_position": lineup["suspect_position"], "members": members}
    test_id = ctx.store.create_witness_test(user["id"], lineup_id, data, images)
    test = ctx.store.witness_test(user["id"], test_id)
    links = _new_links(test, spec["links"], spec["expires_days"])
    return jsonify(test=summary(test), links=links), 201


@bp.get("/witness-tests/<test_id>")
@login_required
def get_test(test_id: str):
    """The test, its links by state and its results so far."""
    test = _own_test(test_id)
    store = frontend().store
    links = store.witness_links(test_id)
    return jsonify(summary(test, links) | {
        "results": results(test, links, store.witness_imports(test_id))})


@bp.delete("/witness-tests/<test_id>")
@login_required
def delete_test(test_id: str):
    """Delete the test with its links and answers (its links stop working)."""
    _own_test(test_id)
    frontend().store.delete_witness_test(current_user()["id"], test_id)
    return jsonify(deleted=test_id)


@bp.post("/witness-tests/<test_id>/links")
@login_required
def add_links(test_id: str):
    """``{links, expires_days?}``: more links for the test (shown only in this answer)."""
    test = _own_test(test_id)
    if test["revoked"] is not None:
        raise ApiError(409, "This test was revoked; make a new test instead.")
    body = json_body()
    settings = frontend().settings
    count = _number(body, "links", None, 1, settings.witness_max_links, whole=True)
    days = _number(body, "expires_days", test.get("expires_days") or settings.witness_link_days,
                   0.001, MAX_EXPIRY_DAYS)
    return jsonify(links=_new_links(test, count, days)), 201


@bp.post("/witness-tests/<test_id>/revoke")
@login_required
def revoke_test(test_id: str):
    """Revoke the whole test: no link takes an answer any more (answers given are kept)."""
    _own_test(test_id)
    revoked = frontend().store.revoke_witness_links(test_id)
    return jsonify(revoked=revoked, test=summary(_own_test(test_id)))


@bp.post("/witness-tests/<test_id>/links/<int:number>/revoke")
@login_required
def revoke_link(test_id: str, number: int):
    """Revoke one link (an answered one keeps its answer and is left as it is)."""
    test = _own_test(test_id)
    store = frontend().store
    if not any(l["number"] == number for l in store.witness_links(test_id)):
        raise ApiError(404, f"This test has no link number {number}.")
    revoked = store.revoke_witness_links(test_id, number)
    return jsonify(revoked=revoked, test=summary(test))


@bp.get("/witness-tests/<test_id>/member/<int:position>.png")
@login_required
def owner_member(test_id: str, position: int):
    """A member's image as the test froze it, by its position in the saved lineup."""
    png = frontend().store.witness_member_png(_own_test(test_id)["id"], position)
    if png is None:
        raise ApiError(404, "The lineup of this test has no such position.")
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=300"})


def _iso(t: float | None) -> str:
    if t is None:
        return ""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="seconds")


@bp.get("/witness-tests/<test_id>/choices.csv")
@login_required
def export_csv(test_id: str):
    """The raw answers, one row per witness: ``choice`` is the member's position in the saved
    lineup (empty for "not present"), ``order_shown`` the positions in the order that witness
    saw them, online answers first, then those imported from paper."""
    test = _own_test(test_id)
    store = frontend().store
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    scale = test["confidence_scale"]
    for link in store.witness_links(test_id):
        if link["answered"] is None:
            continue
        writer.writerow(["online", link["number"], link["choice"] or "",
                         "yes" if link["not_present"] else "no",
                         " ".join(str(p) for p in link["shown"] or []),
                         _plain(link["confidence"]), scale, _iso(link["answered"])])
    for row in store.witness_imports(test_id):
        writer.writerow(["paper", f"{row['batch']}-{row['row']}", row["choice"], "no", "",
                         _plain(row["confidence"]), "", _iso(row["imported"])])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="mock-witnesses-{test_id}.csv"',
        "Cache-Control": "no-store"})


def _plain(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@bp.post("/witness-tests/<test_id>/imports")
@login_required
def import_csv(test_id: str):
    """Choices collected on paper: a CSV upload (form field ``file``) with a header row naming a
    ``choice`` column (the member's position in the saved lineup, 1 to K) and one row per mock
    witness, as ``ligan lineup analyse`` reads it; an optional ``confidence`` column is kept. A
    bad file is a 400 naming its row, and nothing of it is imported."""
    test = _own_test(test_id)
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "Send the CSV file as the form field 'file'.")
    name = _display_name(upload.filename)
    data = upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise ApiError(413, f"{name} is over {MAX_IMPORT_BYTES // (1024 * 1024)} MB; a file of "
                            "choices is a few kilobytes.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "choices.csv"
        path.write_bytes(data)
        try:
            choices, rows = fairness.read_choices_csv(path, size=test["size"])
        except ValueError as exc:
            raise ApiError(400, str(exc).replace(str(path), name)) from None
    if len(choices) > MAX_IMPORT_ROWS:
        raise ApiError(400, f"{name} has {len(choices)} choices; at most {MAX_IMPORT_ROWS} can "
                            "be imported at once.")
    entries = []
    for i, (choice, row) in enumerate(zip(choices, rows), start=1):
        confidence = next((v for k, v in row.items() if k.strip().lower() == "confidence"), "")
        try:
            value = float(confidence) if confidence.strip() else None
        except ValueError:
            value = None
        if value is not None and not math.isfinite(value):
            value = None
        entries.append({"row": i, "choice": choice, "confidence": value,
                        "data": {k: v[:200] for k, v in list(row.items())[:20]}})
    batch = frontend().store.import_witness_choices(test_id, entries)
    return jsonify(imported=len(entries), batch=batch), 201


@bp.delete("/witness-tests/<test_id>/imports")
@login_required
def delete_imports(test_id: str):
    """Forget every choice imported from paper (to import a corrected file)."""
    _own_test(test_id)
    return jsonify(deleted=frontend().store.delete_witness_imports(test_id))


def _display_name(filename: str | None) -> str:
    """The uploaded file's name as error messages show it (its last part, printable, short)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = "".join(c for c in base if c.isprintable())[:100]
    return base or "the CSV file"


# -- the mock witness's routes (no account, no cookie) ----------------------------------------

def _link(token: str, *, open_only: bool = True) -> tuple[dict, str]:
    """The link of ``token`` and its state; 404 for an unknown one and, with ``open_only``,
    410 for one used, expired or revoked."""
    link = frontend().store.witness_link(token_hash(token)) if TOKEN.fullmatch(token) else None
    if link is None:
        raise ApiError(404, UNKNOWN)
    state = link_state(link)
    if open_only and state in GONE:
        raise ApiError(410, GONE[state], state=state)
    return link, state


def _order(token: str, link: dict) -> list[int]:
    """The saved positions in the order this witness sees them, drawn at the first look."""
    if link["shown"]:
        return link["shown"]
    order = list(range(1, link["test"]["size"] + 1))
    secrets.SystemRandom().shuffle(order)
    return frontend().store.show_witness_link(token_hash(token), order)


def _private(resp: Response) -> Response:
    """A witness page or answer: never cached, never leaking its URL (the token) onwards."""
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Robots-Tag"] = "noindex, nofollow"
    return resp


@witness_bp.get("/<token>")
def witness_page(token: str):
    """The witness's page (web_ui/witness.html); its status says whether the link is open
    (200), unknown (404) or used, expired or revoked (410); the script shows why."""
    try:
        _link(token)
        status = 200
    except ApiError as exc:
        status = exc.status
    return _private(Response((WEB_UI / "witness.html").read_bytes(), status=status,
                             mimetype="text/html"))


@witness_bp.get("/<token>/lineup")
def witness_lineup(token: str):
    """What the witness may see: the description, an optional title, the members (as images
    in the witness's own order) and the confidence scale."""
    link, _ = _link(token)
    test = link["test"]
    order = _order(token, link)
    return _private(jsonify(
        title=test.get("title") or None, description=test["description"],
        traits=test.get("traits") or {}, confidence_scale=test["confidence_scale"],
        members=[{"index": i, "image": f"/w/{token}/member/{i}.png"}
                 for i in range(1, len(order) + 1)],
        expires=link["expires"]))


@witness_bp.get("/<token>/member/<int:index>.png")
def witness_member(token: str, index: int):
    """The member shown ``index``-th to this witness (1-based), while the link is open."""
    link, _ = _link(token)
    order = _order(token, link)
    if not 1 <= index <= len(order):
        raise ApiError(404, "No such member.")
    png = frontend().store.witness_member_png(link["test_id"], order[index - 1])
    if png is None:
        raise ApiError(404, "No such member.")
    return _private(Response(png, mimetype="image/png"))


@witness_bp.post("/<token>")
@limiter.limit(lambda: frontend().settings.witness_rate_limit, key_func=get_remote_address,
               error_message="Too many answers from this address. Wait a minute and try again.")
def witness_answer(token: str):
    """``{choice: <the member's number as shown> | null, not_present: bool, confidence}``:
    the witness's one answer (201); 400 for a malformed one, 410 once the link is used,
    expired or revoked."""
    if (request.content_length or 0) > MAX_ANSWER_BYTES:
        raise ApiError(413, "The answer is too large; it is a small JSON object.")
    raw = request.stream.read(MAX_ANSWER_BYTES + 1)
    if len(raw) > MAX_ANSWER_BYTES:
        raise ApiError(413, "The answer is too large; it is a small JSON object.")
    link, _ = _link(token)
    try:
        body = loads_strict(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "Send the answer as a JSON object.")
    if not link["shown"]:
        raise ApiError(400, "Open the link's page first: the members are shown in an order "
                            "drawn for you.")
    order = link["shown"]
    choice, not_present = body.get("choice"), body.get("not_present", False)
    if not isinstance(not_present, bool):
        raise ApiError(400, "not_present must be true or false.")
    if not_present == (choice is not None):
        raise ApiError(400, "Choose the person who best fits the description, or answer that "
                            "the person is not present — one of the two.")
    if choice is not None and (isinstance(choice, bool) or not isinstance(choice, int)
                               or not 1 <= choice <= len(order)):
        raise ApiError(400, f"choice must be the number of a person shown, 1 to {len(order)}.")
    confidence = _confidence(body.get("confidence"), link["test"]["confidence_scale"])
    position = order[choice - 1] if choice is not None else None
    if not frontend().store.answer_witness_link(token_hash(token), position, not_present,
                                                confidence):
        _link(token)  # raced with another answer, the expiry or a revocation: say which
        raise ApiError(410, USED, state="answered")
    return _private(jsonify(recorded=True, message="Thank you: your answer was recorded. You "
                                                   "may close this page.")), 201


def _confidence(value, scale: str) -> float | None:
    if value is None:
        return None
    if scale == "none":
        raise ApiError(400, "This test asks for no confidence; leave it out.")
    low, high, whole = (0, 100, False) if scale == "percent" else (1, 5, True)
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise ApiError(400, f"confidence must be {'a whole number' if whole else 'a number'} "
                            f"from {low} to {high} (or left out).")
    return float(value)
