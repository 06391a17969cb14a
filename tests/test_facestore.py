"""The face store format (models/facestore.py), its one reader and writer: files as they are on
disk today still read, the written bytes do not change, records whose keys are in any order
read the same, and torn or damaged lines are handled as the backend and frontend need."""
from __future__ import annotations

import json
from pathlib import Path

from models import facestore
from models.facestore import INDEX_NAME, FaceStore, read_index, read_record, record_head
from models.records import FaceRecord


def record(i: int, latent=None, **kw) -> FaceRecord:
    return FaceRecord(bundle_hash="ab" * 32, latent_space="w+" if latent else "z",
                      latent=latent or [float(i), -0.5e-3], operation="generate",
                      parameters={"seed": i}, image=f"{i}.png", **kw)


def test_the_bytes_written_are_those_of_the_existing_format(tmp_path):
    """A record line is FaceRecord.to_json() and an index line is id TAB file TAB offset."""
    recs = [record(i) for i in range(3)]
    FaceStore(tmp_path).append(tmp_path / "tasks" / "t1", recs)
    lines = [r.to_json() + "\n" for r in recs]
    assert (tmp_path / "tasks" / "t1" / "records.jsonl").read_text() == "".join(lines)
    offsets = [0, len(lines[0]), len(lines[0]) + len(lines[1])]
    assert (tmp_path / INDEX_NAME).read_text() == "".join(
        f"{r.id}\ttasks/t1/records.jsonl\t{o}\n" for r, o in zip(recs, offsets))


def test_a_folder_written_before_this_module_still_reads(tmp_path):
    """Hand-written files as the earlier backend left them (sorted keys, one index line per
    record, a later line for the same id winning)."""
    a, b = record(1), record(2, latent=[[0.25] * 8] * 3)
    folder = tmp_path / "tasks" / "old"
    folder.mkdir(parents=True)
    line_a = json.dumps(a.to_dict(), sort_keys=True) + "\n"
    line_b = json.dumps(b.to_dict(), sort_keys=True) + "\n"
    (folder / "records.jsonl").write_text(line_a + line_b + line_a)
    rel = "tasks/old/records.jsonl"
    (tmp_path / INDEX_NAME).write_text(
        f"{a.id}\t{rel}\t0\n{b.id}\t{rel}\t{len(line_a)}\n"
        f"{a.id}\t{rel}\t{len(line_a) + len(line_b)}\n")
    index = read_index(tmp_path)
    assert index.order == [a.id, b.id] and index.where[a.id][1] == len(line_a) + len(line_b)
    assert not index.damaged and not index.torn and not index.scanned
    store = FaceStore(tmp_path)
    assert store.get(a.id) == a and store.get(b.id) == b
    assert store.relative_image(b.id, b) == "tasks/old/2.png"
    full = read_record(tmp_path, index, b.id)
    assert full["latent"] == [[0.25] * 8] * 3 and full["image"] == "tasks/old/2.png"
    assert "latent" not in read_record(tmp_path, index, b.id, latent=False)
    # the store did not rewrite a sound index
    assert (tmp_path / INDEX_NAME).read_text().count("\n") == 3


def test_key_order_does_not_matter(tmp_path):
    """Records written with their keys in another order (latent first, a nested "latent" in
    the parameters) are indexed, summarised and read back the same."""
    recs = [record(i, latent=[[0.5, -1.0]] * 2) for i in range(2)]
    recs[1].parameters = {"latent": [9, 9], "note": 'a "latent": [1] in a string'}
    folder = tmp_path / "tasks" / "shuffled"
    folder.mkdir(parents=True)
    with open(folder / "records.jsonl", "w") as fh:
        for rec in recs:
            d = rec.to_dict()
            fh.write(json.dumps(dict(reversed(list(d.items())))) + "\n")
    store = FaceStore(tmp_path)        # no index: rebuilt by scanning
    assert len(store) == 2 and all(store.get(r.id) == r for r in recs)
    index = read_index(tmp_path)
    head = read_record(tmp_path, index, recs[1].id, latent=False)
    assert "latent" not in head and head["parameters"] == recs[1].parameters
    assert head["image"] == "tasks/shuffled/1.png" and head["operation"] == "generate"
    for rec in recs:
        line = json.dumps({"parameters": rec.parameters, **rec.to_dict()}).encode()
        assert record_head(line)["parameters"] == rec.parameters
        assert facestore.line_id(line) == rec.id


def test_torn_and_damaged_lines(tmp_path):
    """A reader waits for a line still being written; the backend rebuilds an index with a
    damaged or torn line."""
    recs = [record(i) for i in range(3)]
    store = FaceStore(tmp_path)
    store.append(tmp_path / "t", recs)
    text = (tmp_path / INDEX_NAME).read_text()
    cut = text.rindex("\t") + 1
    (tmp_path / INDEX_NAME).write_text(text[:cut])
    first = read_index(tmp_path)
    assert first.order == [r.id for r in recs[:2]] and first.torn
    (tmp_path / INDEX_NAME).write_text(text)
    again = read_index(tmp_path, first)
    assert again.order == [r.id for r in recs] and not again.torn and first.torn
    assert read_index(tmp_path, again) is again          # nothing changed: the same answer
    (tmp_path / INDEX_NAME).write_text(text[:cut])
    assert FaceStore(tmp_path).get(recs[2].id) == recs[2]  # rebuilt at start
    assert (tmp_path / INDEX_NAME).read_text() == text
    with open(tmp_path / INDEX_NAME, "a") as fh:
        fh.write("garbage\n")
    assert read_index(tmp_path).damaged == 1
    assert FaceStore(tmp_path).get(recs[0].id) == recs[0]
    assert read_index(tmp_path).damaged == 0


def test_reads_stay_inside_the_results_folder(tmp_path):
    outside = tmp_path / "elsewhere"
    root = tmp_path / "results"
    rec = record(1)
    FaceStore(outside).append(outside / "t", [rec])
    root.mkdir()
    (root / INDEX_NAME).write_text(f"{rec.id}\t../elsewhere/t/records.jsonl\t0\n")
    index = read_index(root)
    assert rec.id in index and read_record(root, index, rec.id) is None
    assert facestore.image_path("t/records.jsonl", "../../x.png") is None
    assert facestore.image_path("t/records.jsonl", "/etc/x.png") is None
    assert facestore.image_path("t/records.jsonl", "a/b.png") == "t/a/b.png"
    assert read_index(Path(tmp_path / "missing")).order == []
