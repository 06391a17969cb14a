"""Split UTKFace's aligned & cropped chips for training the default model.

UTKFace's chips are already aligned (LiGAN's ``utkface`` framing reproduces their crop), so they
are not re-detected or re-aligned: each chip is linked into ``OUT/train`` or ``OUT/heldout``
(5 % by the SHA-256 of the file name, the rule of ``ligan dataset build --holdout``), and chips
that look grayscale (the colour filter of the dataset pipeline) are left out, since a generator
trained on a few of them emits gray faces. Writes ``OUT/split.json`` with the counts.

    python jobs/default_model/split_utkface.py ../shared/data/utkface /data/utk
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from models.dataset.pipeline import held_out
from models.dataset.steps import colourfulness

HOLDOUT = 0.05
MIN_COLOURFULNESS = 3.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="UTKFace folder (*.jpg chips)")
    parser.add_argument("out", type=Path, help="output folder (train/, heldout/, split.json)")
    args = parser.parse_args(argv)
    files = sorted(args.source.glob("*.jpg"))
    if not files:
        print(f"no JPEG chips in {args.source}", file=sys.stderr)
        return 2
    for sub in ("train", "heldout"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "heldout": 0, "grayscale": 0, "unreadable": 0}
    for path in tqdm(files, desc="splitting", unit="chip"):
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))
        except OSError:
            counts["unreadable"] += 1
            continue
        if colourfulness(pixels) < MIN_COLOURFULNESS:
            counts["grayscale"] += 1
            continue
        part = "heldout" if held_out(str(path), HOLDOUT) else "train"
        counts[part] += 1
        link = args.out / part / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    (args.out / "split.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
