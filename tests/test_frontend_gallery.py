"""The Research area's API (frontend_server/gallery.py) through a real frontend server on a
loopback port, over results folders written the way the backend writes them: face records in
``records.jsonl`` files indexed in ``faces.index`` by the backend's own FaceStore.

Listing, paging, id search, operation and attribute filters (and a malformed filter), a face's
record with parents and children, isolation between users, research task forwarding and its
400/404 answers (shape and ownership; value ranges are the backend's), the attribute
capability, and the speed of a listing over thousands of faces.
The daemon is the stand-in of frontend_server/testing.py (FakeDaemon).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from frontend_server.testing import Browser, FakeDaemon, Frontend, add_user
from models.facestore import FaceStore
from models.records import FaceRecord

BUNDLE = "ab" * 32


def prediction(gender: str, age: str, beard: bool, glasses: bool, smiling: bool) -> dict:
    """A prediction as models.attributes.heads.HeadOutputs.to_dicts writes it (abridged p)."""
    return {"gender": {"label": gender, "p": {gender: 0.9}},
            "age_group": {"label": age, "p": {age: 0.8}},
            "ethnicity": {"label": "white", "p": {"white": 0.7}},
            "beard": {"label": beard, "p": 0.9 if beard else 0.1},
            "glasses": {"label": glasses, "p": 0.9 if glasses else 0.1},
            "smiling": {"label": smiling, "p": 0.9 if smiling else 0.1},
            "young": {"label": age in ("20-29", "10-19"), "p": 0.5}}


def record(operation: str, parents=(), attributes: dict | None = None, image: str | None = None,
           dim: int = 16, psi: float = 1.0) -> FaceRecord:
    params = {"seed": 1}
    if attributes is not None:
        params["attributes"] = attributes
    return FaceRecord(bundle_hash=BUNDLE, latent_space="z", latent=[0.25] * dim,
                      operation=operation, parameters=params, parents=list(parents),
                      image=image, truncation_psi=psi)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    for name in ("alice", "bob", "carol", "dave"):
        done = add_user(home, name)
        assert done.returncode == 0, done.stderr
    daemon = FakeDaemon()
    # No bundle here: attribute capability comes from the faces' records.
    server = Frontend(home, daemon.url, LIGAN_BUNDLE=str(home / "no-bundle"))
    yield server, daemon, home
    server.stop()
    daemon.stop()


def login(stack, name: str) -> Browser:
    b = Browser(stack[0].url)
    b.login(name)
    return b


def results(stack, b: Browser) -> Path:
    uid = b.get("/web/me").json()["user"]["id"]
    return stack[2] / "results" / f"user-{uid}"


@pytest.fixture(scope="module")
def alice_faces(stack):
    """Alice's folder: 30 random faces with predictions, a transition from two of them, a
    style mix and a face re-rendered at ψ 0.5. Answers (browser, {name: record})."""
    b = login(stack, "alice")
    store = FaceStore(results(stack, b))
    genders = ("male", "female")
    ages = ("20-29", "40-49", "60-69")
    randoms = []
    for i in range(30):
        randoms.append(record("generate", image=f"seed{i:010d}.png", attributes=prediction(
            genders[i % 2], ages[i % 3], beard=i % 5 == 0, glasses=i % 4 == 0,
            smiling=i % 3 == 1)))
    store.append(Path(store.root / "tasks" / "t-random"), randoms)
    # a real (tiny) image for the first face, to fetch through /web/files
    from PIL import Image
    Image.new("RGB", (8, 8), (200, 10, 10)).save(store.root / "tasks" / "t-random" /
                                                  "seed0000000000.png")
    a, bb = randoms[0], randoms[1]
    frames = [record("transition", parents=[a.id, bb.id], image=f"frame_{i}.png")
              for i in range(4)]
    store.append(store.root / "tasks" / "t-transition", frames)
    mix = record("style_mix", parents=[a.id, bb.id], image="mix.png")
    store.append(store.root / "tasks" / "t-mix", [mix])
    again = record("face", parents=[frames[2].id], image="face.png", psi=0.5)
    store.append(store.root / "tasks" / "t-face", [again])
    faces = {"randoms": randoms, "frames": frames, "mix": mix, "again": again}
    return b, faces


def test_listing_is_newest_first_and_paged(alice_faces):
    b, faces = alice_faces
    body = b.get("/web/research/faces?per_page=10").json()
    assert body["total"] == 36 and body["all_faces"] == 36 and body["pages"] == 4
    ids = [f["id"] for f in body["faces"]]
    assert ids[0] == faces["again"].id and ids[1] == faces["mix"].id
    assert ids[2:6] == [f.id for f in reversed(faces["frames"])]
    first = body["faces"][0]
    assert first["operation"] == "face" and first["truncation_psi"] == 0.5
    assert first["image"] == "/web/files/tasks/t-face/face.png"
    assert first["parents"] == [faces["frames"][2].id]
    assert "latent" not in first
    last = b.get("/web/research/faces?per_page=10&page=4").json()
    assert [f["id"] for f in last["faces"]] == [r.id for r in reversed(faces["randoms"][:6])]
    assert last["faces"][-1]["attributes"]["gender"] == "male"
    assert b.get("/web/research/faces?per_page=10&page=9").json()["faces"] == []
    # The image URL is served to its owner.
    oldest = last["faces"][-1]["image"]
    assert oldest == "/web/files/tasks/t-random/seed0000000000.png"
    assert b.get(oldest).headers["Content-Type"] == "image/png"


def test_search_by_id_prefix_and_operation(alice_faces):
    b, faces = alice_faces
    target = faces["randoms"][7].id
    body = b.get(f"/web/research/faces?q={target[:10]}").json()
    assert target in [f["id"] for f in body["faces"]]
    assert all(f["id"].startswith(target[:10]) for f in body["faces"])
    assert b.get(f"/web/research/faces?q={target.upper()}").json()["faces"][0]["id"] == target
    body = b.get("/web/research/faces?operation=transition").json()
    assert body["total"] == 4 and {f["operation"] for f in body["faces"]} == {"transition"}
    body = b.get("/web/research/faces?operation=style_mix&per_page=1").json()
    assert body["total"] == 1 and body["faces"][0]["id"] == faces["mix"].id
    err = b.get("/web/research/faces?q=not-hex", 400).json()["error"]
    assert "start of a face id" in err
    err = b.get("/web/research/faces?per_page=0", 400).json()["error"]
    assert "per_page must be from 1 to 200" in err
    assert "page must be a whole number" in b.get("/web/research/faces?page=x", 400).json()["error"]


def test_attribute_filter(alice_faces):
    b, faces = alice_faces
    # Here every face of 40-49 smiles (i % 3 == 1), so the example matches none.
    body = b.get("/web/research/faces", params={
        "where": "men, 40-49, beard, no glasses, not smiling", "per_page": 200}).json()
    assert body["faces"] == [] and body["total"] == 0
    body = b.get("/web/research/faces", params={"where": "men, 40-49", "per_page": 200}).json()
    want = [r.id for i, r in reversed(list(enumerate(faces["randoms"])))
            if i % 2 == 0 and i % 3 == 1]
    assert [f["id"] for f in body["faces"]] == want and len(want) == 5
    assert "gender in {male}" in body["filter"]
    body = b.get("/web/research/faces", params={"where": "women, no glasses, smiling",
                                                 "per_page": 200}).json()
    want = {r.id for i, r in enumerate(faces["randoms"]) if i % 2 == 1 and i % 4 != 0
            and i % 3 == 1}
    assert {f["id"] for f in body["faces"]} == want and want
    for f in body["faces"]:
        assert f["attributes"]["gender"] == "female" and f["attributes"]["smiling"] is True
    # faces without predictions (transition frames, mixes) never match a filter
    body = b.get("/web/research/faces", params={"where": "men", "operation": "transition"}).json()
    assert body["total"] == 0


def test_malformed_filter_is_a_readable_400(alice_faces):
    b, _ = alice_faces
    err = b.get("/web/research/faces", 400, params={"where": "men, purple hair"}).json()["error"]
    assert "unknown filter phrase 'purple hair'" in err
    err = b.get("/web/research/faces", 400, params={"where": "men, women"}).json()["error"]
    assert "asked for twice" in err
    err = b.get("/web/research/faces", 400, params={"where": "35-44"}).json()["error"]
    assert "decade" in err


def test_face_details_with_parents_and_children(alice_faces):
    b, faces = alice_faces
    a = faces["randoms"][0]
    body = b.get(f"/web/research/faces/{a.id}").json()
    assert body["record"]["id"] == a.id and "latent" not in body["record"]
    assert body["record"]["image"] == "tasks/t-random/seed0000000000.png"
    assert body["record"]["parameters"]["attributes"]["gender"]["label"] == "male"
    children = {c["id"] for c in body["children"]}
    assert children == {f.id for f in faces["frames"]} | {faces["mix"].id}
    assert body["parents"] == []
    frame = faces["frames"][2]
    body = b.get(f"/web/research/faces/{frame.id}?latent=1").json()
    assert body["record"]["latent"] == [0.25] * 16
    assert [p["id"] for p in body["parents"]] == [a.id, faces["randoms"][1].id]
    assert [c["id"] for c in body["children"]] == [faces["again"].id]
    b.get(f"/web/research/faces/{'0' * 32}", 404)
    b.get("/web/research/faces/../../etc", 404)


def test_another_users_faces_are_not_found(stack, alice_faces):
    _, faces = alice_faces
    bob = login(stack, "bob")
    assert bob.get("/web/research/faces").json()["total"] == 0
    a = faces["randoms"][0].id
    err = bob.get(f"/web/research/faces/{a}", 404).json()["error"]
    assert a in err
    err = bob.post("/web/research/tasks", 404, json={
        "type": "transition", "params": {"start_face_id": a}}).json()["error"]
    assert "you have no face" in err
    bob.post("/web/research/tasks", 404, json={"type": "face", "params": {"face_id": a}})
    bob.get("/web/files/tasks/t-random/seed0000000000.png", 404)


def test_logged_out_is_401(stack):
    b = Browser(stack[0].url)
    assert b.get("/web/research/faces", 401).json()["error"] == "Please log in first."
    b.post("/web/research/tasks", 401, json={"type": "random", "params": {"amount": 1}})


def test_tasks_are_checked_then_forwarded(stack, alice_faces):
    b, faces = alice_faces
    server, daemon, _ = stack
    a, bb = faces["randoms"][0].id, faces["randoms"][1].id
    sent = [
        ("random", {"amount": 6, "truncation_psi": 0.7, "seed": 42}),
        ("face", {"face_id": a, "truncation_psi": 0.5}),
        ("transition", {"start_face_id": a, "end_face_id": bb, "distance": 0.5, "amount": 5}),
        ("transition", {"start_face_id": a}),
        ("style_mix", {"target_face_id": a, "source_face_id": bb, "styles": "coarse,middle"}),
        ("style_mix", {"target_face_id": a, "source_face_id": bb, "styles": "4-7"}),
        ("attribute_filter", {"filter": "men, 40-49, beard", "amount": 4}),
        ("attribute_edit", {"face_id": a, "attribute": "smiling", "strengths": [-2, 0, 2]}),
    ]
    for type_, params in sent:
        task = b.post("/web/research/tasks", 202, json={"type": type_, "params": params}).json()
        assert task["type"] == type_ and task["params"] == params
        uid = b.get("/web/me").json()["user"]["id"]
        assert task["session_id"] == f"user-{uid}"
        assert daemon.calls[-1] == ("POST", f"/api/sessions/user-{uid}/tasks",
                                    {"type": type_, "params": params})


@pytest.mark.parametrize("path", ["/web/research/tasks", "/web/tasks"])
@pytest.mark.parametrize("type_, params, status, words", [
    (None, {}, 400, "type must be a string naming the task type"),
    (7, {}, 400, "type must be a string naming the task type"),
    ("random", [], 400, "params must be a JSON object"),
    ("face", {"face_id": "nope"}, 404, "you have no face 'nope'"),
    ("face", {"face_id": 12}, 404, "you have no face 12"),
    ("transition", {"start_face_id": "A", "end_face_id": "f" * 32}, 404, "you have no face"),
    ("fillers", {"suspect_face_id": "f" * 32}, 404, "params.suspect_face_id: you have no face"),
    ("transition", {"start_photo": "uploads/" + "0" * 32 + ".png"}, 404, "No uploaded photo"),
    ("interpolate", {"a_face_id": "A", "b_photo": "../../etc/passwd"}, 404,
     "No uploaded photo"),
])
def test_bad_tasks_are_refused(alice_faces, path, type_, params, status, words):
    """Shape and ownership are the frontend's to check (on both task URLs); values are the
    backend's (test_frontend_api.py, tests/browser/test_stack_api.py)."""
    b, faces = alice_faces
    real = {"A": faces["randoms"][0].id, "B": faces["randoms"][1].id}
    if isinstance(params, dict):
        params = {k: real.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
    err = b.post(path, status, json={"type": type_, "params": params}).json()
    assert words in err["error"], err


def test_attribute_capability(stack, alice_faces):
    b, _ = alice_faces
    assert b.get("/web/research/capabilities").json()["attributes"] is True
    carol = login(stack, "carol")
    body = carol.get("/web/research/capabilities").json()
    assert body["attributes"] is None and "make some random faces first" in body["reason"]
    FaceStore(results(stack, carol)).append(results(stack, carol) / "tasks" / "t1",
                                            [record("generate", image="x.png")])
    body = carol.get("/web/research/capabilities").json()
    assert body["attributes"] is False and "no attribute model" in body["reason"]


def test_the_research_page_is_served(stack):
    b = Browser(stack[0].url)
    page = b.get("/research")
    assert "text/html" in page.headers["Content-Type"]
    assert "Content-Security-Policy" in page.headers
    assert '<script type="module" src="/ui/research.js">' in page.text
    assert 'href="/research"' in b.get("/").text


def test_thousands_of_faces_list_page_and_filter(stack):
    """3 000 faces with 512-number latents (as a real model's): a page, a search, and the
    first and a repeated operation/attribute-filtered listing."""
    dave = login(stack, "dave")
    store = FaceStore(results(stack, dave))
    preds = [prediction("male" if i % 2 else "female", "30-39", i % 7 == 0, False, i % 3 == 0)
             for i in range(3)]
    for chunk in range(3):
        store.append(store.root / "tasks" / f"r{chunk}",
                     [record("generate", image=f"s{i}.png", dim=512, attributes=preds[i % 3])
                      for i in range(1000)])
    t0 = time.perf_counter()
    body = dave.get("/web/research/faces?per_page=48").json()
    page_s = time.perf_counter() - t0
    assert body["total"] == 3000 and len(body["faces"]) == 48
    t0 = time.perf_counter()
    body = dave.get("/web/research/faces", params={"where": "men, smiling", "per_page": 48}).json()
    first_filter_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = dave.get("/web/research/faces", params={"where": "men, smiling", "per_page": 48,
                                                     "page": 2}).json()
    cached_filter_s = time.perf_counter() - t0
    assert body["total"] == again["total"] == 0   # i % 3 == 0 are women here
    body = dave.get("/web/research/faces", params={"where": "women, smiling"}).json()
    assert body["total"] == 1002
    print(f"page {page_s:.3f} s, first filter {first_filter_s:.3f} s, "
          f"cached filter {cached_filter_s:.3f} s (speed: tests/bench/gallery.py)")
    # A new task's records appear at once (the index cache follows the file).
    late = record("transition", image="late.png")
    store.append(store.root / "tasks" / "late", [late])
    body = dave.get("/web/research/faces?per_page=1").json()
    assert body["total"] == 3001 and body["faces"][0]["id"] == late.id


def test_index_reading_in_process(tmp_path):
    """Without faces.index (no backend indexed yet) the records are scanned; a torn last index
    line waits until it is complete; a rebuilt index (a new file) is read afresh."""
    from frontend_server import gallery

    gallery.clear_caches()
    folder = tmp_path / "tasks" / "t1"
    recs = [record("generate", image=f"{i}.png") for i in range(3)]
    folder.mkdir(parents=True)
    with open(folder / "records.jsonl", "w") as fh:
        for r in recs:
            fh.write(r.to_json() + "\n")
        fh.write('{"bundle_hash": "ab", "created": "x", "id": "torn')      # being written
    index = gallery.read_index(tmp_path)
    assert index.order == [r.id for r in recs]
    assert gallery.face_summary(tmp_path, index, recs[1].id)["image"] == "tasks/t1/1.png"
    # the backend's index, its last line torn
    lines = [f"{r.id}\ttasks/t1/records.jsonl\t{off}\n"
             for r, off in zip(recs, (0, *[len(recs[0].to_json()) + 1,
                                           len(recs[0].to_json()) + len(recs[1].to_json()) + 2]))]
    (tmp_path / "faces.index").write_text("".join(lines[:2]) + lines[2][:10])
    index = gallery.read_index(tmp_path)
    assert index.order == [recs[0].id, recs[1].id]
    with open(tmp_path / "faces.index", "a") as fh:
        fh.write(lines[2][10:])
    index = gallery.read_index(tmp_path)
    assert index.order == [r.id for r in recs]
    assert gallery.full_record(tmp_path, index, recs[2].id)["image"] == "tasks/t1/2.png"
    # rebuilt: a new file in the same place, in another order
    tmp = tmp_path / "faces.index.tmp"
    tmp.write_text("".join(reversed(lines)))
    tmp.replace(tmp_path / "faces.index")
    assert gallery.read_index(tmp_path).order == [r.id for r in reversed(recs)]
    summaries = gallery.all_summaries(tmp_path, gallery.read_index(tmp_path))
    assert [s["id"] for s in summaries] == [r.id for r in recs]
