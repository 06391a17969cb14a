"""The dataset pipeline (models.dataset) on a mixed folder built from ../shared/faces: every file
is kept or dropped by the step and for the reason it should be; the shards are readable by the
trainer's loader; the report, contact sheets, job-array sharding and merge work."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
if not FACES.is_dir():
    pytest.skip(f"face photographs not found at {FACES} (see shared/faces/README.md); the "
                "dataset pipeline tests need them", allow_module_level=True)

from models.dataset import (FacesDataset, color_filter, convert_to_rgb,  # noqa: E402
                            drop_reasons, extract_face, format_table, load_report, merge,
                            quality_filter, remove_too_similar, size_filter)

LONDON = FACES / "london"
RESOLUTION = 64
#: Exact copies lie at identity distance 0.000; the two photos of one London person (neutral
#: 001_03 vs smiling 001_08) at ~0.26. 0.1 drops the copy and keeps both photos of the person:
#: another expression of the same person is useful training data, a byte-identical copy is not.
THRESHOLD = 0.1
UTK_NAME = "24_1_0_20170109150557335.jpg"  # UTKFace naming: age 24, gender 1, race 0

#: file (relative to the folder) -> (step, reason) for every file that must be dropped
EXPECTED_DROPS = {
    "005_03_copy.jpg": ("remove_too_similar", "too similar"),
    "blurred_013_03.jpg": ("quality_filter", "blurry"),
    "broken.jpg": ("load", "corrupt"),
    "gray_009_03.jpg": ("color_filter", "grayscale"),
    "no_face/fox.jpg": ("extract_face", "no face"),
    "no_face/road.jpg": ("extract_face", "no face"),
    "no_face/sunflower.jpg": ("extract_face", "no face"),
    "notes.jpg": ("load", "corrupt"),
    "small_face_013_03.jpg": ("extract_face", "face too small"),
    "thumb_013_03.jpg": ("size_filter", "too small"),
}
EXPECTED_KEPT = ["001_03.jpg", "001_08.jpg", "005_03.jpg", "009_03.jpg", "013_03.jpg", UTK_NAME]


def make_mixed_folder(root: Path) -> Path:
    """Faces, non-faces, a grayscale copy, a blurred copy, small photos, a truncated JPEG, a
    text file named .jpg, an exact duplicate and two photos of one person."""
    root.mkdir()
    for name in ("001_03.jpg", "001_08.jpg", "005_03.jpg", "009_03.jpg", "013_03.jpg"):
        shutil.copy(LONDON / name, root / name)
    shutil.copy(LONDON / "018_03.jpg", root / UTK_NAME)
    shutil.copy(LONDON / "005_03.jpg", root / "005_03_copy.jpg")          # exact duplicate
    shutil.copytree(FACES / "no_face", root / "no_face")
    photo = Image.open(LONDON / "013_03.jpg")
    Image.open(LONDON / "009_03.jpg").convert("L").save(root / "gray_009_03.jpg", quality=95)
    photo.filter(ImageFilter.GaussianBlur(12)).save(root / "blurred_013_03.jpg", quality=95)
    photo.resize((200, 200), Image.LANCZOS).save(root / "small_face_013_03.jpg")  # face ~65 px
    photo.resize((100, 100), Image.LANCZOS).save(root / "thumb_013_03.jpg")
    data = (LONDON / "013_03.jpg").read_bytes()
    (root / "broken.jpg").write_bytes(data[:len(data) // 3])              # truncated upload
    (root / "notes.jpg").write_text("not a photo at all\n")
    return root


def chain(folder: Path, **load):
    return (FacesDataset.load([folder], **load)
            .filter(size_filter, min_size=128)
            .filter(color_filter)
            .apply(extract_face, resolution=RESOLUTION)
            .filter(quality_filter, min_sharpness=50)
            .filter_window(remove_too_similar, window_size=8, similarity_threshold=THRESHOLD)
            .apply(convert_to_rgb))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = make_mixed_folder(tmp_path_factory.mktemp("mixed") / "photos")
    out = tmp_path_factory.mktemp("dataset")
    report = chain(folder).create(out, shard_size=4, workers=2, progress=False)
    return folder, out, report


def _rel(folder: Path, path: str) -> str:
    return Path(path).relative_to(folder).as_posix()


def test_drops_exactly_what_it_should(built):
    folder, _, report = built
    dropped = {_rel(folder, d["file"]): (d["step"], d["reason"]) for d in report["dropped"]}
    assert dropped == EXPECTED_DROPS
    assert [_rel(folder, p) for p in report["kept"]] == EXPECTED_KEPT
    details = {_rel(folder, d["file"]): d["detail"] for d in report["dropped"]}
    # the duplicate is dropped against the original, at distance exactly 0
    assert details["005_03_copy.jpg"] == "to 005_03.jpg (distance 0.000)"
    assert details["broken.jpg"].startswith("corrupt_image:")
    assert details["notes.jpg"].startswith("not_an_image:")
    # the same person's other photo (001_08 vs 001_03, distance ~0.26) is NOT too similar at
    # 0.1: a different photo of one person is kept, only copies are removed
    assert "001_08.jpg" in [_rel(folder, p) for p in report["kept"]]


def test_report_counts_table_and_contact_sheets(built):
    _, out, report = built
    assert load_report(out / "report.json") == json.loads(json.dumps(report))
    assert report["input"] == 16 and report["output"] == 6
    steps = {s["step"]: s for s in report["steps"]}
    assert [s["step"] for s in report["steps"]] == [
        "load", "size_filter", "color_filter", "extract_face", "quality_filter",
        "remove_too_similar", "convert_to_rgb"]
    assert steps["load"] == {"step": "load", "params": {}, "in": 16, "kept": 14, "dropped": 2,
                             "reasons": {"corrupt": 2}}
    assert steps["extract_face"]["reasons"] == {"face too small": 1, "no face": 3}
    assert steps["remove_too_similar"]["params"] == {"similarity_threshold": THRESHOLD,
                                                     "window_size": 8}
    for s, nxt in zip(report["steps"], report["steps"][1:]):
        assert s["kept"] == nxt["in"] == s["in"] - s["dropped"]
    assert drop_reasons(report) == {"corrupt": 2, "too small": 1, "grayscale": 1, "no face": 3,
                                    "face too small": 1, "blurry": 1, "too similar": 1}
    table = format_table(report)
    assert "extract_face" in table and "no face 3" in table and "16 images in, 6 written" in table
    for reason in drop_reasons(report):
        sheet = out / f"contact_sheet_{reason.replace(' ', '_')}.png"
        assert sheet.is_file(), sheet
        assert sheet.name in report["contact_sheets"]
    with Image.open(out / "contact_sheet_no_face.png") as im:  # 3 tiles of 96 px in one row
        assert im.width >= 3 * 96 and im.height >= 96
    # corrupt files have no pixels: their samples are placeholders, the others real thumbnails
    assert [e["thumbnail"] for e in report["samples"]["corrupt"]] == [None, None]
    assert all(e["thumbnail"] for e in report["samples"]["no face"])


def test_shards_are_read_by_the_trainer(built):
    import tensorflow as tf

    from models.training.data import training_dataset

    _, out, report = built
    shards = sorted(p.name for p in out.glob("*.tfrecord"))
    assert shards == report["shards"] == ["data-00000-of-00002.tfrecord",
                                          "data-00001-of-00002.tfrecord"]
    records = [tf.train.Example.FromString(r.numpy())
               for r in tf.data.TFRecordDataset([str(out / s) for s in shards])]
    assert len(records) == 6
    sources = [Path(r.features.feature["source"].bytes_list.value[0].decode()).name
               for r in records]
    assert sources == EXPECTED_KEPT
    labelled = records[sources.index(UTK_NAME)].features.feature
    assert {k: labelled[k].int64_list.value[0] for k in ("age", "gender", "race")} == \
        {"age": 24, "gender": 1, "race": 0}
    assert "age" not in records[0].features.feature  # London names carry no labels
    image = tf.io.decode_png(records[0].features.feature["image"].bytes_list.value[0]).numpy()
    assert image.shape == (RESOLUTION, RESOLUTION, 3) and image.std() > 10
    batch = next(iter(training_dataset(out, resolution=RESOLUTION, batch_size=6, seed=0)))
    assert batch.shape == (6, RESOLUTION, RESOLUTION, 3)
    assert -1.0 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 1.0


def test_held_out_faces_go_to_their_own_shards_by_file_name(built, tmp_path):
    import tensorflow as tf

    from models.dataset.pipeline import held_out

    folder, _, report = built
    out = tmp_path / "split"
    split = chain(folder).create(out, shard_size=4, workers=1, progress=False, verbose=False,
                                 holdout=0.5)
    names = lambda shards, where: sorted(  # noqa: E731 - a local shorthand
        Path(tf.train.Example.FromString(r.numpy()).features.feature["source"]
             .bytes_list.value[0].decode()).name
        for r in tf.data.TFRecordDataset([str(where / s) for s in shards]))
    train = names(split["shards"], out)
    held = names(split["heldout"]["shards"], out / "heldout")
    assert sorted(train + held) == sorted(EXPECTED_KEPT) and not set(train) & set(held)
    assert held == sorted(n for n in EXPECTED_KEPT if held_out(n, 0.5))
    assert split["heldout"]["count"] == len(held) and split["output"] == len(EXPECTED_KEPT)
    assert not list(out.glob("heldout*.tfrecord"))  # the trainer's folder holds no held-out face
    # the decision is by name alone: independent of the folder and of the share's other faces
    assert held_out("/elsewhere/" + held[0], 0.5) if held else True
    assert not any(held_out(n, 0.0) for n in EXPECTED_KEPT)
    with pytest.raises(ValueError, match="from 0 to 0.5"):
        chain(folder).create(tmp_path / "bad", progress=False, verbose=False, holdout=0.9)


def test_one_worker_gives_the_same_outcomes(built):
    folder, _, report = built
    outcomes = list(chain(folder).outcomes(workers=1))
    assert [o.path for o in outcomes if o.item is not None] == report["kept"]
    assert [(o.path, str(o.drop)) for o in outcomes if o.drop] == \
        [(d["file"], f"{d['reason']}: {d['detail']}") for d in report["dropped"]]


def test_job_array_tasks_and_merge(built, tmp_path):
    """Two array tasks (a cheap chain without face steps) write their own shards and reports;
    merge adds them up, and the trainer reads both tasks' shards from the one folder."""
    folder, _, _ = built
    out = tmp_path / "array"
    for index in (0, 1):
        (FacesDataset.load([folder], shard_index=index, shard_count=2)
         .filter(size_filter, min_size=128).filter(color_filter)
         .create(out, shard_size=100, progress=False, verbose=False))
    tasks = sorted(p.name for p in (out / "tasks").iterdir())
    assert tasks == ["task0000of0002", "task0001of0002"]
    merged = merge(out)
    assert merged["input"] == 16
    assert merged["steps"][0]["reasons"] == {"corrupt": 2}
    assert drop_reasons(merged) == {"corrupt": 2, "too small": 1, "grayscale": 1}
    assert merged["output"] == 12 == len(merged["kept"])
    assert sorted(merged["shards"]) == sorted(p.name for p in out.glob("*.tfrecord")) == [
        "data-task0000of0002-00000-of-00001.tfrecord",
        "data-task0001of0002-00000-of-00001.tfrecord"]
    assert (out / "report.json").is_file() and (out / "contact_sheet_corrupt.png").is_file()
    assert "2 tasks ran" in format_table(merged)


def _mean_colour_embedding(item):
    """A custom apply step: a 128-d 'embedding' from the mean colour (no dlib needed)."""
    item.embedding = np.resize(item.image.reshape(-1, 3).mean(axis=0) / 255.0, 128)
    return item


@pytest.mark.parametrize("window_size, copy_dropped", [(1, False), (2, True)])
def test_window_holds_only_the_last_kept_items(tmp_path, window_size, copy_dropped):
    """a, b, copy-of-a: with a window of 1 the copy is compared with b only and survives."""
    for name, colour in (("a.png", (200, 30, 30)), ("b.png", (30, 200, 30)),
                         ("c.png", (200, 30, 30))):
        Image.new("RGB", (32, 32), colour).save(tmp_path / name)
    outcomes = list(FacesDataset.load(tmp_path).apply(_mean_colour_embedding)
                    .filter_window(remove_too_similar, window_size=window_size,
                                   similarity_threshold=0.01).outcomes())
    drops = {Path(o.path).name: str(o.drop) for o in outcomes if o.drop}
    assert drops == ({"c.png": "too similar: to a.png (distance 0.000)"} if copy_dropped else {})


def test_merge_refuses_missing_tasks(built, tmp_path):
    folder, _, _ = built
    (FacesDataset.load([folder], shard_index=1, shard_count=3).filter(size_filter)
     .create(tmp_path, progress=False, verbose=False))
    with pytest.raises(ValueError, match="1 of 3 task reports"):
        merge(tmp_path)


def test_cli_report_and_slurm_array_script(built, tmp_path, capsys):
    from jobs.slurm import SlurmScheduler
    from setup.commands import dataset as cli
    from jobs.dataset_array import array_job_specs

    _, out, _ = built
    parser = argparse.ArgumentParser(prog="ligan")
    cli.register(parser.add_subparsers(dest="command"), None)
    args = parser.parse_args(["dataset", "report", str(out), "--files"])
    assert args.handler(args, None) == 0
    printed = capsys.readouterr().out
    assert "remove_too_similar" in printed and "too similar\tto 005_03.jpg" in printed

    args = parser.parse_args(["dataset", "submit", "photos", "--out", str(tmp_path / "d"),
                              "--tasks", "4", "--workers", "2", "--max-parallel", "2"])
    build, merge_job = array_job_specs(args, 4, time_limit_s=3600, memory_mb=4000,
                                       max_parallel=2)
    script = SlurmScheduler(script_dir=tmp_path).render_script(build)
    assert "#SBATCH --array=0-3%2" in script and "#SBATCH --cpus-per-task=2" in script
    assert "dataset build" in script and "--shard-index" not in script  # taken from the array
    assert merge_job.command[-2:] == ["merge", str((tmp_path / "d").resolve())]


def test_array_task_from_slurm_environment(monkeypatch):
    from setup.commands.dataset import array_task

    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert array_task() is None
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "8")
    assert array_task() == (3, 8)


def test_several_faces_policy_and_labels(tmp_path):
    """Two London faces side by side: 'largest' keeps one aligned face, 'drop' drops the photo."""
    from models.dataset import Item, load_item, parse_labels

    left, right = Image.open(LONDON / "001_03.jpg"), Image.open(LONDON / "005_03.jpg")
    pair = Image.new("RGB", (1024, 512))
    pair.paste(left, (0, 0))
    pair.paste(right, (512, 0))
    pair.save(tmp_path / "30_0_2_20170116174525125.jpg")
    item = load_item(str(tmp_path / "30_0_2_20170116174525125.jpg"))
    assert isinstance(item, Item) and item.labels == {"age": 30, "gender": 0, "race": 2}
    kept = extract_face(load_item(item.path), resolution=32, embedding=False)
    assert isinstance(kept, Item) and kept.image.shape == (32, 32, 3)
    assert kept.meta["faces_found"] == 2 and kept.embedding is None
    dropped = extract_face(item, resolution=32, several_faces="drop")
    assert (dropped.reason, dropped.detail) == ("several faces", "2 faces of at least 80 px")
    assert parse_labels("a_1_2_3.jpg") == {} and parse_labels("001_03.jpg") == {}


def test_quality_filter_and_convert_to_rgb_on_arrays():
    from models.dataset import Item

    sharp = np.indices((64, 64)).sum(axis=0) % 2 * 255  # a checkerboard: very sharp
    face = {"box": [0, 0, 100, 100]}
    item = Item("x.png", np.repeat(sharp[..., None], 3, 2).astype(np.uint8),
                meta={"face": face, "crop_side": 40.0})
    drop = quality_filter(item, max_upscale=1.5)
    assert (drop.reason, drop.detail) == ("low resolution",
                                          "face crop 40 px enlarged to 64 px (more than 1.5×)")
    assert quality_filter(item, max_upscale=2.0) is None
    flat = Item("y.png", np.full((64, 64, 3), 128, np.uint8), meta={"face": face})
    assert quality_filter(flat).reason == "blurry"
    assert quality_filter(item, min_face_size=120).reason == "face too small"
    for image in (np.full((8, 8), 0.5), np.zeros((8, 8, 1), np.uint8),
                  np.full((8, 8, 4), 255, np.uint8)):
        out = convert_to_rgb(Item("z.png", image)).image
        assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    assert convert_to_rgb(Item("z.png", np.full((2, 2), 0.5))).image[0, 0, 0] == 128
