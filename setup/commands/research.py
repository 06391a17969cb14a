"""``ligan transition``, ``ligan mix``, ``ligan face``: the research lab's operations on faces
given as photos or ``RECORDS.jsonl#FACE_ID``."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from setup.commands.lineup import face_source_options, prepare, resolve_face
from setup.entry import CommandError


def register(sub: argparse._SubParsersAction, settings) -> None:
    common = face_source_options(settings)
    tr = sub.add_parser("transition", parents=[common], help="faces from A toward B",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        description="Faces along the straight line in W from face A toward "
                                    "face B (a new random face when B is omitted), stopping "
                                    "--distance of the way. Every frame is a face record that "
                                    "can start another transition.")
    tr.add_argument("start", help="photo file or RECORDS.jsonl#FACE_ID")
    tr.add_argument("end", nargs="?", default=None, help="photo or record (default: random)")
    tr.add_argument("--distance", type=float, default=1.0, help="0 = stay at A, 1 = reach B")
    tr.add_argument("--amount", type=int, default=8, help="faces along the way")
    tr.add_argument("--seed", type=int, default=None, help="seed of the random B")
    tr.set_defaults(handler=_transition)

    mx = sub.add_parser("mix", parents=[common], help="style mixing (coarse / middle / fine)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        description="Take the chosen styles of the SOURCE faces into the TARGET "
                                    "faces; with several of either, a grid like the StyleGAN "
                                    "paper's figure (sources on top, targets on the left).")
    mx.add_argument("--target", action="append", required=True,
                    help="face that keeps its other styles (repeatable)")
    mx.add_argument("--source", action="append", required=True,
                    help="face the styles come from (repeatable)")
    mx.add_argument("--styles", default="coarse",
                    help="coarse, middle, fine (comma-separated) or a w+ range like 4-7")
    mx.set_defaults(handler=_mix)

    fc = sub.add_parser("face", parents=[common], help="re-render a face at another psi",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        description="Re-render any face record, optionally at another "
                                    "truncation psi.")
    fc.add_argument("face", help="RECORDS.jsonl#FACE_ID")
    fc.add_argument("--psi", type=float, default=None, help="truncation (default: as recorded)")
    fc.set_defaults(handler=_face)


def _random_face(bundle, seed: int | None, log):
    from models.generate import seed_record

    seed = int(np.random.default_rng().integers(2 ** 31)) if seed is None else seed
    record = seed_record(bundle, seed)
    log.write(record.to_json() + "\n")
    return record


def _save(records, images, outdir: Path, prefix: str, log) -> None:
    from models.records import write_faces

    write_faces(records, images, outdir, lambda i, _: f"{prefix}{i:03d}.png", log)


def _transition(args: argparse.Namespace, settings) -> int:
    from models.images import make_grid, save_png
    from models.research import transition

    bundle = prepare(args, settings)
    with open(args.outdir / "records.jsonl", "a", encoding="utf-8") as log:
        _, start = resolve_face(bundle, args.start, args, log, args.outdir, "start")
        if args.end is None:
            end = _random_face(bundle, args.seed, log)
        else:
            _, end = resolve_face(bundle, args.end, args, log, args.outdir, "end")
        try:
            records, images = transition(bundle, start, end, args.distance, args.amount)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        _save(records, images, args.outdir, "frame", log)
    save_png(make_grid(images, cols=min(len(images), 8)), args.outdir / "transition.png")
    print(f"wrote {len(records)} faces from {start.id} toward {end.id} in {args.outdir}")
    return 0


def _mix(args: argparse.Namespace, settings) -> int:
    from models.images import save_png
    from models.research import mixing_grid, style_layer_range, style_mix

    bundle = prepare(args, settings)
    try:
        layers = style_layer_range(bundle, args.styles)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    with open(args.outdir / "records.jsonl", "a", encoding="utf-8") as log:
        targets = [resolve_face(bundle, t, args, log, args.outdir, f"target{i}")[1]
                   for i, t in enumerate(args.target)]
        sources = [resolve_face(bundle, s, args, log, args.outdir, f"source{i}")[1]
                   for i, s in enumerate(args.source)]
        mixed = [style_mix(bundle, t, s, layers) for t in targets for s in sources]
        _save([m[0] for m in mixed], [m[1] for m in mixed], args.outdir, "mix", log)
    save_png(mixing_grid(bundle, targets, sources, layers), args.outdir / "mixing_grid.png")
    print(f"wrote {len(mixed)} mixed faces (layers {layers[0]}–{layers[-1]}) and "
          f"mixing_grid.png in {args.outdir}")
    return 0


def _face(args: argparse.Namespace, settings) -> int:
    from models.generate import render_record
    from models.inversion import read_record
    from models.research import at_truncation

    bundle = prepare(args, settings, parts=("generator",))
    try:
        record = read_record(args.face)
        if args.psi is None:
            out, image = record, render_record(bundle, record)
        else:
            out, image = at_truncation(bundle, record, args.psi)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    with open(args.outdir / "records.jsonl", "a", encoding="utf-8") as log:
        _save([out], [image], args.outdir, "face", log)
    print(f"wrote {args.outdir / out.image}")
    return 0
