"""How fast the Research gallery lists a large results folder (the frontend's face index).

Builds a results folder of ``--faces`` records with 512-number latents (as a real model's) in
``--tasks`` task folders, then times, in one process and one run: reading the face index
(``frontend_server.faces.read_index``, cold), a page of 48 summaries (``face_summary``), the
first attribute-filtered listing (``all_summaries``: every record's head, latents skipped) and
the same listing again (cached). The reference measured beside them is the naive way: parse
every line of every ``records.jsonl`` with ``json.loads``. Each time is the median of
``--repeats`` runs (the cold ones clear the caches first); the ratios are ours / the reference.

    python tests/bench/gallery.py [--faces 3000] [--tasks 3] [--repeats 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import say  # noqa: E402 - puts the repository on sys.path


def median_time(fn, repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(root: Path, faces: int, tasks: int) -> None:
    from models.facestore import FaceStore
    from models.records import FaceRecord

    store = FaceStore(root)
    per_task = faces // tasks
    for t in range(tasks):
        store.append(root / "tasks" / f"t{t}", [
            FaceRecord(bundle_hash="ab" * 32, latent_space="z", latent=[0.25] * 512,
                       operation="generate", image=f"f{i}.png",
                       parameters={"seed": i, "attributes": {
                           "gender": {"label": "male" if i % 2 else "female", "p": {}}}})
            for i in range(per_task)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from frontend_server import gallery
    from frontend_server.faces import read_index

    cold = gallery.clear_caches

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        say(f"writing {args.faces} records …")
        build(root, args.faces, args.tasks)
        files = sorted(root.rglob("records.jsonl"))

        def naive() -> None:
            for f in files:
                for line in f.read_text().splitlines():
                    json.loads(line)

        times = {
            "reference: json.loads of every record": median_time(naive, args.repeats),
            "read the index (cold)": median_time(lambda: read_index(root), args.repeats, cold),
        }
        index = read_index(root)
        ids = index.order[::-1][:48]
        times["a page of 48 summaries"] = median_time(
            lambda: [gallery.face_summary(root, index, i) for i in ids], args.repeats)
        times["every summary (first filtered listing)"] = median_time(
            lambda: gallery.all_summaries(root, read_index(root)), args.repeats, cold)
        gallery.all_summaries(root, read_index(root))
        times["every summary again (cached)"] = median_time(
            lambda: gallery.all_summaries(root, read_index(root)), args.repeats)
    ref = times["reference: json.loads of every record"]
    print(f"{args.faces} faces in {args.tasks} task folders, median of {args.repeats}:")
    for name, seconds in times.items():
        print(f"  {name:42s} {1000 * seconds:9.1f} ms   {seconds / ref:6.2f}× the reference")
    if args.json:
        args.json.write_text(json.dumps({"faces": args.faces, "seconds": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
