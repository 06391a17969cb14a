"""Benchmark of photo inversion and filler pages on real photographs (../shared/faces/london).

For each photo (aligned like the training data) and each method — **encoder** alone,
**encoder+projector** (``--steps``), **encoder+refine** (``--refine-seconds``, or
``--refine-steps`` for a fixed amount of work) — it prints pixel MSE (on a [0, 1] scale), SSIM
and the dlib identity distance between the aligned photo and its reconstruction (mean and
worst), and seconds per photo. Then, around each photo's encoder latent, one page of
``--per-page`` fillers for each of ``--pages`` pages (at the bundle's calibrated radius): the
identity distance to the suspect per page (it should grow with the page), the near-clones
dropped, and seconds per page (mean and worst over the suspects). Pages are ranked by the
bundle's identity network when it has one, and again by dlib, the reference of the same run:
the benchmark prints how much faster the network's pages are.

Each time is also given as a multiple of rendering one face with the same bundle, measured in
the same run, so figures from machines under different load can be compared. The issue's goals
(for the bundled default model on the development CPU): encoder alone under 0.5 s per photo, a
page of 24 fillers in 1.5 s at most. On an untrained bundle the times are real but the similarities
mean nothing (its faces are noise, dlib finds no face in them: "undetected").

With ``--precision float32 bfloat16`` (models/precision.py) the whole measurement runs in each
precision (generator, encoder, projector, refine and the discriminator's features), and lines
``bf16/fp32`` give the ratio of the encoder's seconds per photo and of a page of fillers.

Run from the repository root::

    .venv/bin/python tests/bench/inversion.py --bundle models/bundles/default
    .venv/bin/python tests/bench/inversion.py --quick          # tiny untrained bundle, 1 photo
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, TINY, say  # noqa: E402 - puts the repository on sys.path

PHOTOS = REPO.parent / "shared" / "faces" / "london"
TINY_ARGS = [a for k, v in TINY.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def make_bundle(path: Path) -> Path:
    """A tiny untrained bundle with discriminator, encoder and PCA: every method can run."""
    import subprocess

    from models.bundle import add_part, load_bundle, module_arrays
    from models.encoder import Encoder, EncoderConfig
    from models.latent import fit_pca

    ligan = [sys.executable, "-m", "setup.cli"]
    subprocess.run([*ligan, "bundle", "init", str(path), *TINY_ARGS], cwd=REPO, check=True,
                   capture_output=True)
    bundle = load_bundle(path)
    cfg = EncoderConfig.for_bundle(bundle, channel_base=512, channel_max=64)
    encoder = Encoder(cfg)
    encoder.set_w_statistics(bundle.generator, num_samples=500)
    add_part(path, "encoder", module_arrays(encoder), config=cfg.to_dict())
    pca = fit_pca(bundle.generator, num_samples=500, num_components=16)
    add_part(path, "pca", pca.arrays(), config=pca.config())
    return path


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "worst": max(values)} if values else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="bundle with an encoder (default with --quick: "
                                                "a tiny untrained one)")
    ap.add_argument("--photos", type=Path, default=PHOTOS, help="folder of photos")
    ap.add_argument("--pattern", default="*_03.jpg", help="which photos (neutral expression)")
    ap.add_argument("--limit", type=int, default=10, help="photos to invert")
    ap.add_argument("--steps", type=int, default=100, help="projector steps after the encoder")
    ap.add_argument("--refine-seconds", type=float, default=60.0)
    ap.add_argument("--refine-steps", type=int, default=None,
                    help="stop refine after this many steps (fixed work instead of time)")
    ap.add_argument("--pages", type=int, default=3)
    ap.add_argument("--per-page", type=int, default=24)
    ap.add_argument("--methods", default="encoder,encoder+projector,encoder+refine",
                    help="comma-separated inversion methods to measure (the encoder always "
                         "runs: fillers start from its latents)")
    ap.add_argument("--quick", action="store_true", help="tiny bundle, 1 photo, few steps")
    ap.add_argument("--precision", nargs="+", default=["float32"],
                    choices=("float32", "bfloat16"), help="precisions to measure in")
    ap.add_argument("--json", type=Path, help="write every number here")
    args = ap.parse_args(argv)
    if args.quick:
        args.limit, args.steps, args.pages, args.per_page = 1, 5, 2, 6
        args.refine_steps = args.refine_steps or 4
    photos = sorted(args.photos.glob(args.pattern))[:args.limit]
    if not photos:
        print(f"no photos matching {args.pattern} in {args.photos}", file=sys.stderr)
        return 2

    from models.runtime import configure_tensorflow

    configure_tensorflow(0, 1)
    from models.bundle import load_bundle
    from models.encoder import ENCODER_PART

    if args.bundle is None:
        if not args.quick:
            ap.error("--bundle is required (or --quick for a tiny untrained one)")
        args.bundle = make_bundle(Path(tempfile.mkdtemp(prefix="ligan-bench-inv-")) / "b")
    bundle = load_bundle(args.bundle, parts=("generator", "discriminator"))
    if not bundle.has_part(ENCODER_PART):
        print(f"bundle {args.bundle} has no encoder; train one with 'ligan train encoder'",
              file=sys.stderr)
        return 2
    say(f"bundle {args.bundle} ({bundle.resolution} px, {bundle.hash[:12]}), "
        f"{len(photos)} photos")
    reports = {}
    for precision in args.precision:
        bundle.generator.use_precision(precision)
        bundle.cache.pop("encoder", None)  # the inference encoder takes the new precision
        reports[precision] = measure(bundle, photos, args, precision)
    if len(reports) == 2:
        full, half = reports["float32"], reports["bfloat16"]
        enc = half["methods"]["encoder"]["seconds"]["mean"] / \
            full["methods"]["encoder"]["seconds"]["mean"]
        page = max(p["seconds"] for p in full["pages"]) / max(p["seconds"] for p in half["pages"])
        print(f"bf16/fp32 speed: encoder {1 / enc:.2f}, page of {args.per_page} fillers {page:.2f}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


def measure(bundle, photos: list[Path], args: argparse.Namespace, precision: str) -> dict:
    """Every number of the benchmark with the bundle rendering in ``precision``; printed."""
    import numpy as np

    from models.encoder import shared_encoder
    from models.faces import aligned_face_embedding
    from models.faces.identity import identity_distance
    from models.faces.identity_net import DLIB_MEASURE, identity_measure
    from models.fillers import render
    from models.images import pixel_mse, ssim
    from models.inversion import align_photo, invert_photo
    from models.latent import LatentPCA
    from models.refine import refine

    g = bundle.generator

    center = g.w_avg.numpy()[None].repeat(g.num_ws, 0)
    render(g, center[None])  # warm the graphs
    # Build and trace the encoder once, as a backend does when its first photo arrives.
    _, warm_encoder = _timed(lambda: shared_encoder(bundle)(
        np.zeros((1, bundle.resolution, bundle.resolution, 3), np.uint8)))
    one_face = statistics.median(
        [_timed(lambda: render(g, center[None]))[1] for _ in range(5)])

    methods = ["encoder"] + [m for m in ("encoder+projector", "encoder+refine")
                             if m in args.methods.split(",")]
    rows = {m: {"mse": [], "ssim": [], "identity": [], "seconds": [], "undetected": 0}
            for m in methods}
    suspects = []  # each photo's encoder latent: the centres of the filler pages
    for i, photo in enumerate(photos):
        say(f"  {photo.name}")
        aligned, _ = align_photo(str(photo), bundle.resolution, framing=bundle.framing)
        target, _ = aligned_face_embedding(aligned)
        for method in methods:
            if method == "encoder+refine":
                result, seconds = _timed(lambda: refine(
                    bundle, aligned, seconds=args.refine_seconds, max_steps=args.refine_steps))
                image = result.image
            else:
                inv, seconds = _timed(lambda: invert_photo(
                    bundle, str(photo), steps=0 if method == "encoder" else args.steps))
                image = inv.projection.image
                if method == "encoder":
                    suspects.append(inv.projection.ws)
            row = rows[method]
            row["seconds"].append(seconds)
            row["mse"].append(pixel_mse(aligned, image))
            row["ssim"].append(ssim(aligned, image))
            emb, found = aligned_face_embedding(image)
            row["identity"].append(float(identity_distance(target, emb)))
            row["undetected"] += not found

    pca = LatentPCA.from_bundle(bundle)
    # Pages ranked by each identity measure the bundle offers: its identity network (if any)
    # and dlib, the reference measured in the same run.
    measures = [identity_measure(bundle)] + ([DLIB_MEASURE] if identity_measure(bundle)
                                             != DLIB_MEASURE else [])
    pages_by = {m: _pages(bundle, pca, suspects, args, m) for m in measures}
    pages = pages_by[measures[0]]
    print(f"inversion benchmark — bundle {bundle.resolution} px ({bundle.hash[:12]}), "
          f"{len(photos)} photos from {args.photos.name}/{args.pattern}, {precision}")
    print(f"  rendering one face: {one_face * 1000:.1f} ms (the unit of the × columns); "
          f"building the encoder once: {warm_encoder:.2f} s (not in the times below)")
    print(f"  {'method':18s} {'MSE':>8s} {'worst':>8s} {'SSIM':>6s} {'worst':>6s} "
          f"{'identity':>8s} {'worst':>6s} {'s/photo':>8s} {'×face':>7s}  undetected")
    report_methods = {}
    for method, row in rows.items():
        mse, sim, ident, secs = (summary(row[k]) for k in ("mse", "ssim", "identity",
                                                           "seconds"))
        sim["worst"] = min(row["ssim"])
        report_methods[method] = {"mse": mse, "ssim": sim, "identity": ident, "seconds": secs,
                                  "undetected": row["undetected"]}
        print(f"  {method:18s} {mse['mean']:8.4f} {mse['worst']:8.4f} {sim['mean']:6.3f} "
              f"{sim['worst']:6.3f} {ident['mean']:8.3f} {ident['worst']:6.3f} "
              f"{secs['mean']:8.2f} {secs['mean'] / one_face:7.0f}  {row['undetected']}")
    print(f"  fillers around each of the {len(suspects)} photos, {args.per_page} per page "
          f"(calibrated page-1 radius {pca.filler_radius}, largest norm {pca.filler_max_norm}):")
    for p in pages:
        ident = "-" if p["identity_mean"] is None else f"{p['identity_mean']:.3f}"
        print(f"    page {p['page']} (radius {p['radius']:.3g}): identity distance {ident}, "
              f"{p['near_clones']} near-clones dropped of {p['candidates']} candidates, "
              f"{p['undetected']} undetected, {p['seconds']:.2f} s (worst "
              f"{p['seconds_worst']:.2f} s; {p['seconds'] / one_face:.0f}× one face)")
    goal_enc = report_methods["encoder"]["seconds"]["mean"]
    goal_page = max(p["seconds"] for p in pages)
    print(f"  pages ranked by {measures[0]}")
    if len(measures) > 1:
        dlib_page = max(p["seconds"] for p in pages_by[DLIB_MEASURE])
        print(f"  the same pages ranked by dlib: slowest page on average {dlib_page:.2f} s; "
              f"{measures[0]} is {dlib_page / goal_page:.1f}× faster")
    print(f"  goals (default model, development CPU): encoder {goal_enc:.2f} s/photo "
          f"(< 0.5 s), slowest page on average {goal_page:.2f} s (≤ 1.5 s for 24)")
    return {"bundle_hash": bundle.hash, "resolution": bundle.resolution, "precision": precision,
            "photos": [p.name for p in photos], "render_one_face_s": one_face,
            "build_encoder_s": warm_encoder, "methods": report_methods, "pages": pages,
            "measure": measures[0], "pages_by_measure": pages_by}


def _pages(bundle, pca, suspects: list, args: argparse.Namespace, measure: str) -> list[dict]:
    """``args.pages`` pages around every suspect, ranked by ``measure``: time and distances."""
    import numpy as np

    from models.fillers import filler_page

    filler_page(bundle, pca, suspects[0], per_page=2, measure=measure)  # warm the graphs
    pages = []
    for page in range(args.pages):
        runs = [_timed(lambda: filler_page(bundle, pca, ws, page=page, per_page=args.per_page,
                                           measure=measure, seed=0)) for ws in suspects]
        distances = [d for result, _ in runs for d in result.distances]
        pages.append({"page": page + 1, "radius": runs[0][0].radius,
                      "seconds": statistics.fmean(s for _, s in runs),
                      "seconds_worst": max(s for _, s in runs),
                      "kept": sum(len(r.records) for r, _ in runs),
                      "near_clones": sum(r.near_clones for r, _ in runs),
                      "undetected": sum(r.undetected for r, _ in runs),
                      "candidates": sum(r.candidates for r, _ in runs),
                      "identity_mean": float(np.mean(distances)) if distances else None})
    return pages


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
