"""Mock-witness tests through a real frontend server on a loopback port: the owner makes a test
of a saved lineup, mock witnesses answer through one-time links with no account, and the
results are the measures of models.fairness. Every answer is checked against
docs/api/frontend.yaml (the Browser helper's response hook)."""
from __future__ import annotations

import csv
import hashlib
import io
import sqlite3
from pathlib import Path

import pytest
import requests

from frontend_server.testing import (Browser, FakeDaemon, Frontend, add_user, fake_faces,
                                    pdf_text, results_dir, validate)
from models import fairness


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    for name in ("alice", "bob"):
        done = add_user(home, name)
        assert done.returncode == 0, done.stderr
    daemon = FakeDaemon()
    server = Frontend(home, daemon.url, LIGAN_WITNESS_RATE_LIMIT="1000/minute",
                      LIGAN_WITNESS_MAX_LINKS="40")
    yield server, home
    server.stop()
    daemon.stop()


class Witness:
    """A mock witness's phone: no account, no cookie, only the link."""

    def __init__(self, url: str, path: str) -> None:
        self.url, self.path = url, path
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.hooks["response"].append(validate)

    def get(self, suffix: str = "", expect: int | None = 200) -> requests.Response:
        resp = self.http.get(self.url + self.path + suffix, timeout=30)
        if expect is not None:
            assert resp.status_code == expect, (resp.status_code, resp.text[:300])
        return resp

    def answer(self, body, expect: int | None = 201, **kw) -> requests.Response:
        kw.setdefault("json", body)
        resp = self.http.post(self.url + self.path, timeout=30, **kw)
        if expect is not None:
            assert resp.status_code == expect, (resp.status_code, resp.text[:300])
        return resp

    def order(self, owner: Browser, test_id: str, size: int) -> list[int]:
        """The saved positions in the order this witness sees them, found by comparing each
        image shown with the owner's images of the frozen lineup."""
        owner_images = {owner.get(f"/web/witness-tests/{test_id}/member/{p}.png").content: p
                        for p in range(1, size + 1)}
        return [owner_images[self.get(f"/member/{i}.png").content] for i in range(1, size + 1)]


def saved_lineup(stack, browser: Browser, size: int = 4, position: int = 2,
                 complete: bool = True) -> dict:
    """A saved lineup of generated faces (the suspect one of them too: no photo needed)."""
    records = fake_faces(results_dir(stack[1], browser), size)
    fillers = [r["id"] for r in records[1:]][: size - 1 if complete else 1]
    return browser.post("/web/lineups", 201, json={
        "name": "Case 19 (confidential)", "size": size, "suspect_position": position,
        "suspect": {"face_id": records[0]["id"]}, "fillers": fillers}).json()


def new_test(browser: Browser, lineup_id: str, expect: int = 201, **body) -> dict:
    body = {"description": "A man in his thirties with a short beard.", "links": 3,
            "traits": {"gender": "male", "beard": "yes", "age_group": "30-39"}} | body
    return browser.post(f"/web/lineups/{lineup_id}/witness-tests", expect, json=body).json()


def database(stack) -> sqlite3.Connection:
    return sqlite3.connect(stack[1] / "frontend" / "ligan.sqlite3")


def test_only_the_owner_makes_and_sees_a_test(stack, alice, bob):
    lineup = saved_lineup(stack, alice)
    path = f"/web/lineups/{lineup['id']}/witness-tests"
    body = {"description": "tall", "links": 2}
    assert bob.post(path, 404, json=body).json()["error"] == "No such lineup."
    bob.get(path, 404)
    anonymous = Browser(stack[0].url)
    anonymous.post(path, 401, json=body)
    made = new_test(alice, lineup["id"], links=5, title="Street robbery, 3 May")
    test, links = made["test"], made["links"]
    assert [l["number"] for l in links] == [1, 2, 3, 4, 5]
    assert len({l["path"] for l in links}) == 5
    assert all(l["url"] == stack[0].url + l["path"] and len(l["path"]) > 40 for l in links)
    assert test["link_counts"]["open"] == 5 and test["lineup_name"] == lineup["name"]
    assert test["traits"] == {"gender": "male", "beard": "yes", "age_group": "30-39"}
    assert test["expires_days"] == 14
    # Another user does not find the test; the owner lists it under the lineup.
    for url in (f"/web/witness-tests/{test['id']}", f"/web/witness-tests/{test['id']}/choices.csv",
                f"/web/witness-tests/{test['id']}/member/1.png"):
        bob.get(url, 404)
    bob.post(f"/web/witness-tests/{test['id']}/revoke", 404)
    assert bob.get("/web/witness-tests").json()["tests"] == []
    assert [t["id"] for t in alice.get(path).json()["tests"]] == [test["id"]]
    # Only a hash of each token is stored.
    token = links[0]["path"].rsplit("/", 1)[1]
    raw = b"".join(p.read_bytes() for p in (stack[1] / "frontend").glob("ligan.sqlite3*"))
    assert token.encode() not in raw
    with database(stack) as db:
        hashes = {r[0] for r in db.execute("SELECT token_hash FROM witness_links")}
    assert hashlib.sha256(token.encode()).hexdigest() in hashes


@pytest.mark.parametrize("body, words", [
    ({"links": 3}, "description must be"),
    ({"description": " ", "links": 3}, "description must be"),
    ({"description": "x"}, "links must be a whole number from 1 to 40"),
    ({"description": "x", "links": 0}, "links must be a whole number from 1 to 40"),
    ({"description": "x", "links": 41}, "links must be a whole number from 1 to 40"),
    ({"description": "x", "links": 2, "expires_days": 0}, "expires_days must be a number"),
    ({"description": "x", "links": 2, "traits": {"hat": "red"}}, "Unknown trait 'hat'"),
    ({"description": "x", "links": 2, "traits": {"hair": "red"}},
     "hair must be one of black, brown"),
    ({"description": "x", "links": 2, "traits": {"gender": "tall"}}, "gender must be one of"),
    ({"description": "x", "links": 2, "confidence_scale": "ten"}, "confidence_scale must be"),
])
def test_a_test_is_checked_before_it_is_made(stack, alice, body, words):
    lineup = saved_lineup(stack, alice, size=2, position=1)
    err = alice.post(f"/web/lineups/{lineup['id']}/witness-tests", 422, json=body).json()
    assert words in err["error"], err


def test_a_draft_lineup_cannot_be_tested(stack, alice):
    draft = saved_lineup(stack, alice, size=4, complete=False)
    assert "draft" in new_test(alice, draft["id"], expect=409)["error"]


def test_a_witness_sees_only_the_description_and_the_faces_and_answers_once(stack, alice):
    lineup = saved_lineup(stack, alice, size=4, position=2)
    made = new_test(alice, lineup["id"], links=2, confidence_scale="five")
    test_id = made["test"]["id"]
    w = Witness(stack[0].url, made["links"][0]["path"])
    page = w.get()
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Referrer-Policy"] == "no-referrer" and "no-store" in \
        page.headers["Cache-Control"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    task = w.get("/lineup").json()
    assert set(task) == {"title", "description", "traits", "confidence_scale", "members",
                         "expires"}
    assert task["title"] is None and task["confidence_scale"] == "five"
    assert task["description"] == "A man in his thirties with a short beard."
    assert [m["index"] for m in task["members"]] == [1, 2, 3, 4]
    text = w.get("/lineup").text
    face_ids = [f["face_id"] for f in lineup["fillers"]] + [lineup["suspect"]["face_id"]]
    assert not any(f in text for f in face_ids) and "Case 19" not in text
    assert "suspect" not in text and lineup["id"] not in text and test_id not in text
    assert "Set-Cookie" not in page.headers and not w.http.cookies
    order = w.order(alice, test_id, 4)
    assert sorted(order) == [1, 2, 3, 4]
    assert w.get("/lineup").json() == task          # a reload shows the same page
    # The witness picks the person shown second; the server records that member's position.
    done = w.answer({"choice": 2, "not_present": False, "confidence": 4}).json()
    assert done["recorded"] is True and "Thank you" in done["message"]
    assert not w.http.cookies
    # The link is used now: the page, the data, the images and another answer are refused.
    assert w.get(expect=410).headers["Content-Type"].startswith("text/html")
    again = w.get("/lineup", 410).json()
    assert "already been used" in again["error"] and again["state"] == "answered"
    w.get("/member/1.png", 410)
    assert "already been used" in w.answer({"choice": 1}, 410).json()["error"]
    result = alice.get(f"/web/witness-tests/{test_id}").json()
    assert result["link_counts"] == {"open": 1, "opened": 0, "answered": 1, "revoked": 0,
                                     "expired": 0}
    counts = [0, 0, 0, 0]
    counts[order[1] - 1] = 1
    assert result["results"]["counts"] == counts and result["results"]["online"] == 1
    rows = list(csv.DictReader(io.StringIO(
        alice.get(f"/web/witness-tests/{test_id}/choices.csv").text)))
    assert len(rows) == 1 and rows[0]["choice"] == str(order[1])
    assert rows[0]["order_shown"] == " ".join(map(str, order))
    assert rows[0]["confidence"] == "4" and rows[0]["source"] == "online"
    assert rows[0]["not_present"] == "no" and rows[0]["time"].endswith("+00:00")


def test_each_witness_gets_an_order_of_their_own(stack, alice):
    lineup = saved_lineup(stack, alice, size=6, position=4)
    made = new_test(alice, lineup["id"], links=8)
    orders = []
    for link in made["links"]:
        w = Witness(stack[0].url, link["path"])
        w.get("/lineup")
        orders.append(tuple(w.order(alice, made["test"]["id"], 6)))
        w.answer({"choice": 1})
    assert len(set(orders)) > 1, orders       # all alike: (1/720)^7
    rows = list(csv.DictReader(io.StringIO(
        alice.get(f"/web/witness-tests/{made['test']['id']}/choices.csv").text)))
    assert [tuple(map(int, r["order_shown"].split())) for r in rows] == orders
    # Each chose the first person shown: recorded as that person's place in the saved lineup.
    assert [int(r["choice"]) for r in rows] == [o[0] for o in orders]


def test_expired_revoked_and_unknown_links(stack, alice):
    lineup = saved_lineup(stack, alice, size=3, position=1)
    made = new_test(alice, lineup["id"], links=4)
    test_id = made["test"]["id"]
    first, second, third, fourth = (Witness(stack[0].url, l["path"]) for l in made["links"])
    for w in (first, second, third):
        w.get("/lineup")
    # Expired: the link's time is set into the past in the store.
    token = first.path.rsplit("/", 1)[1]
    with database(stack) as db:
        db.execute("UPDATE witness_links SET expires = 1 WHERE token_hash = ?",
                   (hashlib.sha256(token.encode()).hexdigest(),))
    assert "expired" in first.get("/lineup", 410).json()["error"]
    first.get(expect=410)
    assert first.answer({"choice": 1}, 410).json()["state"] == "expired"
    # Revoked, one link.
    alice.post(f"/web/witness-tests/{test_id}/links/2/revoke")
    assert second.get("/lineup", 410).json()["state"] == "revoked"
    assert "withdrawn" in second.answer({"choice": 1}, 410).json()["error"]
    second.get("/member/1.png", 410)
    alice.post(f"/web/witness-tests/{test_id}/links/99/revoke", 404)
    # An answered link keeps its answer when the whole test is revoked; the others close.
    third.answer({"choice": 3, "confidence": 80})
    revoked = alice.post(f"/web/witness-tests/{test_id}/revoke").json()
    assert revoked["revoked"] == 1 and revoked["test"]["revoked"] is not None
    assert fourth.get("/lineup", 410).json()["state"] == "revoked"
    states = [l["state"] for l in alice.get(f"/web/witness-tests/{test_id}").json()["links"]]
    assert states == ["expired", "revoked", "answered", "revoked"]
    alice.post(f"/web/witness-tests/{test_id}/links", 409, json={"links": 1})
    # Unknown tokens, well-formed or not.
    for path in ("/w/" + "A" * 43, "/w/short", "/w/" + "x" * 300):
        w = Witness(stack[0].url, path)
        assert "not known" in w.get("/lineup", 404).json()["error"]
        w.get(expect=404)
        w.answer({"choice": 1}, 404)


def test_a_witness_reaches_nothing_else(stack, alice):
    lineup = saved_lineup(stack, alice, size=4, position=3)
    made = new_test(alice, lineup["id"], links=2)
    other = saved_lineup(stack, alice, size=2, position=1)
    w = Witness(stack[0].url, made["links"][0]["path"])
    w.get("/lineup")
    for index in (0, 5, 99):
        w.get(f"/member/{index}.png", 404)
    # The link gives no access to the web UI's API, the lineups or their faces.
    for path in ("/web/lineups", f"/web/lineups/{lineup['id']}",
                 f"/web/lineups/{other['id']}/composite.png",
                 f"/web/witness-tests/{made['test']['id']}",
                 f"/web/witness-tests/{made['test']['id']}/member/1.png",
                 f"/web/files/tasks/tfake/face_{lineup['suspect']['face_id']}.png"):
        resp = w.http.get(stack[0].url + path, timeout=30)
        assert resp.status_code == 401, (path, resp.status_code)
    # Another link of the same test is another witness: its order is drawn on its own, and
    # the first link's answer does not use it up.
    w.answer({"choice": None, "not_present": True})
    other_witness = Witness(stack[0].url, made["links"][1]["path"])
    assert other_witness.get("/lineup").status_code == 200
    results = alice.get(f"/web/witness-tests/{made['test']['id']}").json()["results"]
    assert results["not_present"] == 1 and results["n"] == 0 and results["fairness"] is None
    row = next(csv.DictReader(io.StringIO(
        alice.get(f"/web/witness-tests/{made['test']['id']}/choices.csv").text)))
    assert row["choice"] == "" and row["not_present"] == "yes"


@pytest.mark.parametrize("body, status, words", [
    ({}, 400, "one of the two"),
    ({"choice": 1, "not_present": True}, 400, "one of the two"),
    ({"choice": 0}, 400, "choice must be the number of a person shown, 1 to 3"),
    ({"choice": 4}, 400, "1 to 3"),
    ({"choice": "2"}, 400, "1 to 3"),
    ({"choice": True}, 400, "1 to 3"),
    ({"choice": 1, "not_present": "no"}, 400, "not_present must be true or false"),
    ({"choice": 1, "confidence": 101}, 400, "confidence must be a number from 0 to 100"),
    ({"choice": 1, "confidence": "high"}, 400, "confidence must be"),
    ([1], 400, "JSON object"),
    ("not json", 400, "JSON object"),
    ({"choice": 1, "padding": "x" * 4000}, 413, "too large"),
])
def test_bad_answers_are_refused_in_words(stack, alice, body, status, words):
    lineup = saved_lineup(stack, alice, size=3, position=1)
    made = new_test(alice, lineup["id"], links=1)
    w = Witness(stack[0].url, made["links"][0]["path"])
    w.get("/lineup")
    kw = {"data": body, "headers": {"Content-Type": "application/json"}} \
        if isinstance(body, str) else {}
    err = w.answer(body, status, **kw).json()
    assert words in err["error"], err
    w.answer({"choice": 1, "confidence": 55.5})     # the link is still open after a refusal


def test_answering_before_looking_is_refused(stack, alice):
    lineup = saved_lineup(stack, alice, size=3, position=1)
    made = new_test(alice, lineup["id"], links=1)
    w = Witness(stack[0].url, made["links"][0]["path"])
    assert "Open the link's page first" in w.answer({"choice": 1}, 400).json()["error"]


def test_paper_choices_import_export_and_the_measures(stack, alice, tmp_path):
    lineup = saved_lineup(stack, alice, size=6, position=3)
    made = new_test(alice, lineup["id"], links=6, confidence_scale="percent")
    test_id = made["test"]["id"]
    online = []
    for i, link in enumerate(made["links"][:5]):
        w = Witness(stack[0].url, link["path"])
        w.get("/lineup")
        order = w.order(alice, test_id, 6)
        shown = 1 + i % 3
        w.answer({"choice": shown, "confidence": 10 * i})
        online.append(order[shown - 1])
    # A bad row: named, and nothing of the file is kept.
    bad = "witness,choice,confidence\np1,3,50\np2,7,20\n"
    err = alice.post(f"/web/witness-tests/{test_id}/imports", 400,
                     files={"file": ("paper.csv", bad.encode())}).json()["error"]
    assert err == "paper.csv, row 3: choice 7 is not a position of the lineup (1 to 6)"
    for text, words in (("who,when\na,b\n", "no 'choice' column"), ("choice\nthree\n", "row 2"),
                        ("", "empty")):
        err = alice.post(f"/web/witness-tests/{test_id}/imports", 400,
                         files={"file": ("p.csv", text.encode())}).json()["error"]
        assert words in err and "/tmp" not in err, err
    alice.post(f"/web/witness-tests/{test_id}/imports", 400, data={"x": "1"})
    paper = [3, 3, 1, 2, 3, 6, 5, 3, 4, 3]
    good = "witness,choice,confidence\n" + "".join(
        f"p{i},{c},{i * 5}\n" for i, c in enumerate(paper))
    done = alice.post(f"/web/witness-tests/{test_id}/imports", 201,
                      files={"file": ("paper.csv", good.encode())}).json()
    assert done["imported"] == len(paper)
    detail = alice.get(f"/web/witness-tests/{test_id}").json()
    res = detail["results"]
    assert (res["online"], res["paper"], res["n"]) == (5, 10, 15)
    assert res["counts"] == [a + b for a, b in zip(res["online_counts"], res["paper_counts"])]
    expected = fairness.analyse_choices(online + paper, 6, 3).to_dict()
    assert res["fairness"] == expected
    assert res["fairness"]["verdict"] and "5 online, 10 on paper" in res["in_words"]
    # The export: one row per witness, online first, then paper; readable by
    # models.fairness.read_choices_csv and giving the same measures.
    exported = alice.get(f"/web/witness-tests/{test_id}/choices.csv")
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["source"] for r in rows] == ["online"] * 5 + ["paper"] * 10
    assert [int(r["choice"]) for r in rows] == online + paper
    assert [r["confidence"] for r in rows[:5]] == ["0", "10", "20", "30", "40"]
    assert rows[6]["confidence"] == "5"
    path = Path(tmp_path) / "export.csv"
    path.write_text(exported.text)
    choices, _ = fairness.read_choices_csv(path, size=6)
    assert fairness.analyse_choices(choices, 6, 3).to_dict() == expected
    # The lineup's report carries the description and the real measures with their intervals.
    text = pdf_text(alice.get(f"/web/lineups/{lineup['id']}/report.pdf").content)
    assert made["test"]["description"][:30] in text
    assert "5 online, 10 on paper" in text and expected["verdict"][:40] in text
    low, high = expected["tredoux_e_ci"]
    assert f"Tredoux's E′ {expected['tredoux_e']:.2f} [95 % CI {low:.2f}–{high:.2f}]" in text
    # The paper choices can be taken out again (to import a corrected file).
    assert alice.request("DELETE", f"/web/witness-tests/{test_id}/imports").json() == \
        {"deleted": 10}
    assert alice.get(f"/web/witness-tests/{test_id}").json()["results"]["paper"] == 0


def test_more_links_up_to_the_limit_and_deleting_a_test(stack, alice):
    lineup = saved_lineup(stack, alice, size=2, position=2)
    made = new_test(alice, lineup["id"], links=38, expires_days=0.5)
    test_id = made["test"]["id"]
    more = alice.post(f"/web/witness-tests/{test_id}/links", 201, json={"links": 2}).json()
    assert [l["number"] for l in more["links"]] == [39, 40]
    err = alice.post(f"/web/witness-tests/{test_id}/links", 422, json={"links": 1}).json()
    assert "at most 40 links" in err["error"]
    links = alice.get(f"/web/witness-tests/{test_id}").json()["links"]
    assert all(l["expires"] - l["created"] == pytest.approx(43200, abs=5) for l in links)
    alice.request("DELETE", f"/web/witness-tests/{test_id}")
    alice.get(f"/web/witness-tests/{test_id}", 404)
    Witness(stack[0].url, more["links"][0]["path"]).get("/lineup", 404)


def test_deleting_the_lineup_deletes_its_tests(stack, alice):
    lineup = saved_lineup(stack, alice, size=2, position=1)
    made = new_test(alice, lineup["id"], links=1)
    alice.request("DELETE", f"/web/lineups/{lineup['id']}")
    alice.get(f"/web/witness-tests/{made['test']['id']}", 404)
    Witness(stack[0].url, made["links"][0]["path"]).get("/lineup", 404)


def test_editing_the_lineup_does_not_change_a_running_test(stack, alice):
    lineup = saved_lineup(stack, alice, size=3, position=1)
    made = new_test(alice, lineup["id"], links=1)
    before = [alice.get(f"/web/witness-tests/{made['test']['id']}/member/{p}.png").content
              for p in (1, 2, 3)]
    alice.request("PUT", f"/web/lineups/{lineup['id']}", json={
        "name": "edited", "size": 3, "suspect_position": 3, "suspect": lineup["suspect"],
        "fillers": [f["face_id"] for f in lineup["fillers"]][::-1]})
    test = alice.get(f"/web/witness-tests/{made['test']['id']}").json()
    assert test["suspect_position"] == 1 and test["lineup_name"] == lineup["name"]
    after = [alice.get(f"/web/witness-tests/{made['test']['id']}/member/{p}.png").content
             for p in (1, 2, 3)]
    assert after == before


def test_witness_answers_are_rate_limited(tmp_path):
    add_user(tmp_path, "carol")
    server = Frontend(tmp_path, "", LIGAN_WITNESS_RATE_LIMIT="3/minute")
    try:
        owner = Browser(server.url)
        owner.login("carol")
        lineup = saved_lineup((server, tmp_path), owner, size=2, position=1)
        made = new_test(owner, lineup["id"], links=1)
        w = Witness(server.url, made["links"][0]["path"])
        w.get("/lineup")
        for _ in range(3):
            w.answer({"choice": 9}, 400)
        assert "Too many answers" in w.answer({"choice": 1}, 429).json()["error"]
    finally:
        server.stop()
