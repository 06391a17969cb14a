"""``ligan attributes …`` (directions, generate, filter, edit) and ``ligan train attributes``.

``register(sub, settings)`` adds the top-level ``attributes`` group; ``register_train(tsub)``
adds ``attributes`` to the ``ligan train`` group. TensorFlow is imported inside the handlers.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from models.runtime import configure_tensorflow
from setup.entry import CommandError


def register_train(tsub: argparse._SubParsersAction) -> None:
    tr = tsub.add_parser(
        "attributes", help="train a bundle's attribute classifier (UTKFace, CelebA)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train the attribute classifier of a bundle (input size: the bundle's "
                    "resolution) on UTKFace (age group, gender, ethnicity) and/or the CelebA "
                    "attribute subset, with masked losses so each dataset trains only its own "
                    "heads. Both datasets are for non-commercial research only. When finished "
                    "the model is added to the bundle as its attributes part (its hash "
                    "changes; earlier directions are dropped). Run again to resume.")
    tr.add_argument("--bundle", required=True, type=Path, help="bundle directory")
    tr.add_argument("--run-dir", required=True, type=Path)
    tr.add_argument("--utkface", type=Path, default=None, help="UTKFace folder (aligned faces)")
    tr.add_argument("--celeba", type=Path, default=None,
                    help="CelebA folder with images/ and attributes.csv (aligned here)")
    tr.add_argument("--utkface-limit", type=int, default=None, help="use a random subset")
    tr.add_argument("--celeba-limit", type=int, default=None, help="use a random subset")
    tr.add_argument("--local", action="store_true", help="run in the foreground (the default)")
    tr.add_argument("--steps", type=int, default=5000)
    tr.add_argument("--batch", type=int, default=32)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--work-resolution", type=int, default=64,
                    help="faces are resized to this inside the model")
    tr.add_argument("--channel-base", type=int, default=2048)
    tr.add_argument("--channel-max", type=int, default=128)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--tick-steps", type=int, default=50)
    tr.add_argument("--snapshot-steps", type=int, default=500,
                    help="checkpoint and held-out evaluation interval")
    tr.add_argument("--max-minutes", type=float, default=None)
    tr.add_argument("--no-export", action="store_true",
                    help="do not add the finished model to the bundle")
    from setup.commands.train import precision_option

    precision_option(tr)
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(handler=_train)


def register(sub: argparse._SubParsersAction, settings) -> None:
    attr = sub.add_parser("attributes", help="attribute directions, filters, matching faces "
                                             "and edits",
                          description="Work with a bundle's attribute model (see "
                                      "docs/attributes.md).")
    asub = attr.add_subparsers(dest="attributes_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bundle", type=Path, default=settings.bundle,
                        help="bundle directory or packed file (LIGAN_BUNDLE)")

    d = asub.add_parser("directions", parents=[common],
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        help="fit attribute directions in W and add them to the bundle",
                        description="Sample faces, predict their attributes and fit one linear "
                                    "boundary in W per attribute (InterFaceGAN); stored in the "
                                    "bundle's attributes part (its hash changes).")
    d.add_argument("--samples", type=int, default=2000)
    d.add_argument("--psi", type=float, default=1.0, help="truncation of the samples")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(handler=_directions)

    g = asub.add_parser("generate", parents=[common],
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        help="generate N faces matching a filter",
                        description="Sample faces until N match the filter per the classifier: "
                                    "guided along the attribute directions (default) or blind. "
                                    "Reports how many candidates were tried.")
    g.add_argument("--where", required=True, help="e.g. 'men, 40-49, beard, no glasses'")
    g.add_argument("-n", "--number", type=int, default=8)
    g.add_argument("--blind", action="store_true", help="plain sampling and rejection")
    g.add_argument("--max-candidates", type=int, default=1000)
    g.add_argument("--psi", type=float, default=1.0)
    g.add_argument("--pool", type=int, default=64,
                   help="guided: latents drawn (mapped, not rendered) per rendered candidate")
    g.add_argument("--margin", type=float, default=0.0,
                   help="guided: also push candidates this far beyond each boundary (units "
                        "of its spread; 0 = off)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--outdir", type=Path, default=Path("out"))
    g.set_defaults(handler=_generate)

    f = asub.add_parser("filter", parents=[common],
                        help="faces of a records file that match a filter",
                        description="Print the ids of the faces in RECORDS.jsonl that match "
                                    "the filter; faces without stored predictions are "
                                    "rendered and classified with --bundle.")
    f.add_argument("records", type=Path)
    f.add_argument("--where", required=True)
    f.add_argument("--out", type=Path, default=None,
                   help="write the matching records (with predictions) to this file")
    f.set_defaults(handler=_filter)

    e = asub.add_parser("edit", parents=[common],
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        help="a strip of a face edited along an attribute",
                        description="Move a face along an attribute direction at several "
                                    "strengths (units of the direction's spread), optionally "
                                    "only in some style layers; writes strip.png and records.")
    e.add_argument("face", help="RECORDS.jsonl#FACE_ID")
    e.add_argument("--attribute", required=True,
                   help="beard, glasses, smiling, gender=male, age_group=40-49, …")
    e.add_argument("--strengths", default="-2,-1,0,1,2")
    e.add_argument("--layers", default=None,
                   help="coarse, middle, fine or a w+ range like 0-5 (default: all)")
    e.add_argument("--outdir", type=Path, default=Path("out"))
    e.set_defaults(handler=_edit)


def _bundle(args, settings):
    from setup.commands.bundle import load_bundle_or_fail

    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    if args.bundle is None:
        raise CommandError("no bundle: pass --bundle or set LIGAN_BUNDLE")
    return load_bundle_or_fail(args.bundle, precision=settings.precision)


def _spec(text: str):
    from models.attributes.filter import FilterError, parse_filter

    try:
        return parse_filter(text)
    except FilterError as exc:
        raise CommandError(str(exc)) from None


def _train(args: argparse.Namespace, settings) -> int:
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads, training=True)
    from models.attributes.train import AttributeTrainConfig, AttributeTrainer
    from models.bundle import BundleError
    from setup.commands.train import training_precision

    try:
        cfg = AttributeTrainConfig(
            bundle=str(args.bundle), utkface=str(args.utkface) if args.utkface else None,
            celeba=str(args.celeba) if args.celeba else None,
            utkface_limit=args.utkface_limit, celeba_limit=args.celeba_limit, steps=args.steps,
            batch_size=args.batch, lr=args.lr, work_resolution=args.work_resolution,
            channel_base=args.channel_base, channel_max=args.channel_max, seed=args.seed,
            tick_steps=args.tick_steps, snapshot_steps=args.snapshot_steps,
            max_minutes=args.max_minutes, progress=not args.no_progress,
            export=not args.no_export, precision=training_precision(args, settings, gan=False))
        summary = AttributeTrainer(cfg, args.run_dir).train()
    except (ValueError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    from setup.commands.train import print_step_summary

    print_step_summary(summary, args.bundle)
    return 0


def _directions(args: argparse.Namespace, settings) -> int:
    from models.attributes.directions import fit_directions, save_directions
    from models.bundle import BundleError

    bundle = _bundle(args, settings)
    try:
        directions = fit_directions(bundle, args.samples, args.psi, args.seed)
        digest = save_directions(bundle, directions)
    except (ValueError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    for key, d in sorted(directions.items.items()):
        print(f"  {key:22s} held-out accuracy {d.accuracy:.2f}  ({d.positives} positive)")
    for key, why in sorted(directions.skipped.items()):
        print(f"  {key:22s} skipped: {why}")
    print(f"added {len(directions.items)} directions to {args.bundle}; new bundle hash "
          f"{digest[:12]}")
    return 0


def _generate(args: argparse.Namespace, settings) -> int:
    from models.attributes.filter import generate_matching
    from models.attributes.records import matching_records
    from models.bundle import BundleError
    from models.records import write_faces

    spec = _spec(args.where)
    bundle = _bundle(args, settings)
    try:
        result = generate_matching(bundle, spec, args.number, guided=not args.blind,
                                   max_candidates=args.max_candidates, psi=args.psi,
                                   pool=args.pool, margin=args.margin, seed=args.seed)
    except (ValueError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    args.outdir.mkdir(parents=True, exist_ok=True)
    records = matching_records(bundle, result, spec)
    with open(args.outdir / "records.jsonl", "a", encoding="utf-8") as log:
        write_faces(records, result.images, args.outdir,
                    lambda i, rec: f"match{i:03d}_{rec.id[:8]}.png", log)
    mode = "guided" if result.guided else "blind"
    print(f"{result.accepted} of {args.number} faces matching '{spec.describe()}' after "
          f"{result.candidates} candidates ({mode}); see {args.outdir}")
    if result.unguided and result.guided:
        print(f"note: no direction for {', '.join(result.unguided)} (rejection only)")
    if result.labelled:
        print(f"note: the conditional generator drew {', '.join(result.labelled)} through its "
              f"labels")
    return 0 if result.accepted == args.number else 1


def _filter(args: argparse.Namespace, settings) -> int:
    from models.attributes.filter import matches
    from models.attributes.records import annotate
    from models.records import FaceRecord

    spec = _spec(args.where)
    if not args.records.is_file():
        raise CommandError(f"no records file {args.records}")
    records = []
    for number, line in enumerate(args.records.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(FaceRecord.from_dict(json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise CommandError(f"{args.records}:{number} is not a face record: {exc}") \
                    from None
    pose = any(c.trait == "head_pose" for c in spec.constraints)
    todo = [r for r in records if "attributes" not in r.parameters
            or (pose and "head_pose" not in r.parameters["attributes"])]
    if todo:
        bundle = _bundle(args, settings)
        try:
            annotate(bundle, todo, head_pose=pose)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    keep = [r for r in records if matches(r.parameters["attributes"], spec)]
    for r in keep:
        print(r.id)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.writelines(r.to_json() + "\n" for r in keep)
    print(f"{len(keep)} of {len(records)} faces match '{spec.describe()}'")
    return 0


def _edit(args: argparse.Namespace, settings) -> int:
    from models.attributes.records import edit_strip
    from models.bundle import BundleError
    from models.images import make_grid, save_png
    from models.inversion import read_record
    from models.records import write_faces
    from models.research import style_layer_range

    try:
        strengths = [float(s) for s in args.strengths.split(",")]
    except ValueError:
        raise CommandError(f"--strengths must be numbers separated by commas, got "
                           f"{args.strengths!r}") from None
    bundle = _bundle(args, settings)
    try:
        layers = style_layer_range(bundle, args.layers) if args.layers else None
        record = read_record(args.face)
        records, images = edit_strip(bundle, record, args.attribute, strengths, layers)
    except (ValueError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    args.outdir.mkdir(parents=True, exist_ok=True)
    with open(args.outdir / "records.jsonl", "a", encoding="utf-8") as log:
        name = args.attribute.replace("=", "_")
        write_faces(records, images, args.outdir,
                    lambda _, rec: f"edit_{name}_{rec.parameters['strength']:+.2f}.png", log)
    save_png(make_grid(images, cols=len(images)), args.outdir / "strip.png")
    print(f"{len(records)} edits of face {record.id} along {args.attribute}; see "
          f"{args.outdir / 'strip.png'}")
    return 0
