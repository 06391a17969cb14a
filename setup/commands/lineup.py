"""``ligan invert``, ``ligan fillers``, ``ligan interpolate``: the lineup workflow on the command
line. A face is given as a photo file or as ``RECORDS.jsonl#FACE_ID`` (any face LiGAN made)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.runtime import configure_tensorflow
from setup.commands.bundle import load_bundle_for_projection, load_bundle_or_fail
from setup.entry import CommandError


def face_source_options(settings) -> argparse.ArgumentParser:
    """The options of every command that takes faces as photos or records (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bundle", type=Path, default=settings.bundle,
                        help="bundle directory or packed file (LIGAN_BUNDLE)")
    common.add_argument("--outdir", type=Path, default=Path("out"), help="output folder")
    common.add_argument("--steps", type=int, default=300,
                        help="projector steps for a photo (0: the bundle's encoder alone)")
    common.add_argument("--time-limit", type=float, default=None,
                        help="stop projecting a photo after this many seconds")
    common.add_argument("--face-index", type=int, default=None,
                        help="which face of a photo with several (0 = largest; default: the "
                             "largest, with a warning)")
    common.add_argument("--align", choices=("ffhq", "padded"), default="ffhq",
                        help="alignment of photos: FFHQ recipe, or padded passport-style crop")
    return common


def register(sub: argparse._SubParsersAction, settings) -> argparse._SubParsersAction:
    """Add the face and lineup commands; returns the ``lineup`` actions, to which the frontend
    adds ``lineup report`` (it reads the frontend's database)."""
    from models.fillers import NEAR_CLONE_THRESHOLD

    common = face_source_options(settings)
    inv = sub.add_parser("invert", parents=[common], help="find the latent of a photo's face",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                         description="Align the face in a photo and project it into the "
                                     "generator's w+ space. Writes aligned.png, "
                                     "reconstruction.png and records.jsonl.")
    inv.add_argument("photo", type=Path)
    inv.set_defaults(handler=_invert)

    fil = sub.add_parser("fillers", parents=[common], help="faces that resemble a suspect",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                         description="Generate pages of fillers around a suspect (a photo or "
                                     "a face record), most similar first. Needs a bundle with "
                                     "a PCA part (ligan bundle fit-pca).")
    fil.add_argument("suspect", help="photo file or RECORDS.jsonl#FACE_ID")
    fil.add_argument("--pages", type=int, default=1)
    fil.add_argument("--per-page", type=int, default=24)
    fil.add_argument("--radius", type=float, default=None,
                     help="sampling radius on page 1, in standard deviations of W's PCA axes "
                          "(default: the bundle's calibrated radius, or 6 if it has none)")
    fil.add_argument("--radius-growth", type=float, default=0.5,
                     help="each later page samples a radius larger by this share of --radius")
    fil.add_argument("--near-clone-threshold", type=float, default=NEAR_CLONE_THRESHOLD,
                     help="identity distance below which a filler is a near-clone and left out")
    fil.add_argument("--styles", default="all",
                     help="w+ entries to vary: all, or any of coarse,middle,fine")
    fil.add_argument("--seed", type=int, default=0)
    fil.add_argument("--traits", default="auto", help=TRAITS_HELP)
    fil.set_defaults(handler=_fillers)

    ref = sub.add_parser("refine", parents=[common], help="fine-tune copies of the models on "
                                                         "one hard photo",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                         description="Fine-tune private copies of encoder and generator on one "
                                     "photo for a time limit and save them as a new bundle in "
                                     "--outdir/bundle (the original bundle is never changed); "
                                     "then run fillers with --bundle on it.")
    ref.add_argument("photo", type=Path)
    ref.add_argument("--seconds", type=float, default=60.0,
                     help="time limit (the web UI offers 60–600)")
    ref.add_argument("--ratio", type=int, default=75,
                     help="encoder steps per generator step")
    ref.set_defaults(handler=_refine)

    itp = sub.add_parser("interpolate", parents=[common], help="faces between two faces",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                         description="Interpolate linearly in w+ between two faces (photos or "
                                     "face records), ends included.")
    itp.add_argument("start", help="photo file or RECORDS.jsonl#FACE_ID")
    itp.add_argument("end", help="photo file or RECORDS.jsonl#FACE_ID")
    itp.add_argument("--count", type=int, default=8, help="faces along the way, ends included")
    itp.set_defaults(handler=_interpolate)

    lineup = sub.add_parser("lineup", help="measure a lineup's fairness from mock witnesses",
                            description="Lineup fairness measures (no model needed).")
    lsub = lineup.add_subparsers(dest="lineup_command", metavar="ACTION", required=True)
    ana = lsub.add_parser(
        "analyse", help="functional and effective size, suspect bias, from a CSV of choices",
        description="Read the choices of mock witnesses (a CSV file with a header row and a "
                    "'choice' column: the position each one picked, 1-based) and report the "
                    "functional size (Wells et al. 1979), Malpass's effective size and its "
                    "null-foil adjustment (1981), Tredoux's E' with 95 % intervals (1998), and "
                    "the share choosing the suspect with an exact binomial test against chance. "
                    "See docs/fairness.md.")
    ana.add_argument("--choices", type=Path, required=True, metavar="CHOICES.csv",
                     help="CSV file with a 'choice' column")
    ana.add_argument("--size", type=int, required=True, metavar="K",
                     help="number of lineup members (nominal size)")
    ana.add_argument("--suspect-position", type=int, required=True, metavar="S",
                     help="the suspect's position, 1 to K")
    ana.add_argument("--design", choices=("target-present", "target-absent"),
                     default="target-present",
                     help="target-absent: S is the designated innocent suspect of a "
                          "culprit-absent lineup (same measures, worded for it)")
    ana.add_argument("--json", action="store_true", help="print one JSON object")
    ana.set_defaults(handler=_analyse)

    eva = lsub.add_parser(
        "evaluate", help="how well page-1 fillers of real photos match their suspects",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Invert each suspect photo (the encoder alone and with the projector), "
                    "make page 1 of fillers as the web UI does, and report the share of "
                    "fillers with the suspect's gender, ethnicity and age group (by the "
                    "bundle's attribute model, against the photos' labels), the dlib distance "
                    "to the photo (the look-alike band), reconstructions that dlib takes for "
                    "the same person, faces found and seconds per page, beside the default "
                    "model's goals. See docs/lineup.md.")
    eva.add_argument("photos", type=Path, nargs="+", help="suspect photos")
    eva.add_argument("--labels", type=Path, default=None, metavar="CSV",
                     help="a CSV with a 'file' column and any of gender, age, ethnicity (as "
                          "the London set's info.csv); UTKFace names carry their own labels")
    eva.add_argument("--bundle", type=Path, default=settings.bundle,
                     help="bundle directory or packed file (LIGAN_BUNDLE)")
    eva.add_argument("--steps", default=None,
                     help="inversion paths: projector steps, comma-separated (0: the encoder "
                          "alone; default: the encoder alone and the web UI's steps)")
    eva.add_argument("--ages", default=None, metavar="LOW-HIGH",
                     help="only the photos whose labelled age lies within LOW-HIGH years, "
                          "e.g. 20-70 (adult suspects from a held-out split)")
    eva.add_argument("--sample", type=int, default=None, metavar="N",
                     help="draw N of the (age-filtered) photos with --seed, e.g. 30 of a "
                          "held-out split: utk/heldout/*.jpg --ages 20-70 --sample 30")
    eva.add_argument("--per-page", type=int, default=24)
    eva.add_argument("--seed", type=int, default=0)
    eva.add_argument("--traits", default="auto", help=TRAITS_HELP)
    eva.add_argument("--probe", type=Path, default=None, metavar="UTKFACE_DIR",
                     help="also read the fillers' traits with logistic regressions on dlib "
                          "embeddings fitted on this folder's labelled UTKFace faces (an "
                          "instrument independent of the bundle's attribute model)")
    eva.add_argument("--measure", choices=("identity-net", "dlib"), default=None,
                     help="the identity measure that ranks the pages (default: the bundle's "
                          "identity network where it has one, else dlib); dlib measures the "
                          "pages either way")
    eva.add_argument("--probe-samples", type=int, default=1000,
                     help="faces the probe is fitted on (about 80 ms each to embed)")
    eva.add_argument("--sheet", type=Path, default=None, metavar="PNG",
                     help="also draw a picture: for each photo on the last path, the aligned "
                          "photo, its reconstruction and its first fillers (2x zoom)")
    eva.add_argument("--sheet-fillers", type=int, default=8,
                     help="fillers a photo on the sheet")
    eva.add_argument("--json", action="store_true",
                     help="print one JSON object (with every photo's numbers)")
    eva.set_defaults(handler=_evaluate)
    return lsub


TRAITS_HELP = ("what every filler shares with the suspect: auto (gender, ethnicity, age group "
               "with its likelier neighbouring decade, hair colour ± one shade, beard and "
               "glasses as the bundle reads the suspect: a photo's gender, ethnicity and age "
               "group with its trait probe where it has one), none, or trait=value pairs, "
               "e.g. gender=female,age_group=any")


def _trait_request(text: str):
    from models.filler_traits import TraitRequestError, parse_trait_request

    try:
        return parse_trait_request(text)
    except TraitRequestError as exc:
        raise CommandError(f"--traits: {exc}") from None


def _accepted_words(accepted) -> str:
    return "/".join(accepted) if isinstance(accepted, list) else ("yes" if accepted else "no")


def resolve_face(bundle, reference: str, args, log, outdir: Path, label: str):
    """A face reference → (w+, its record) — inverting a photo when needed."""
    from models.faces import FaceError
    from models.generate import record_ws
    from models.images import save_png
    from models.inversion import invert_photo, read_record
    from models.records import write_faces

    try:
        if "#" in reference and not Path(reference).is_file():
            record = read_record(reference)
            return record_ws(bundle, record), record
        inv = invert_photo(bundle, reference, face_index=args.face_index, align_mode=args.align,
                           steps=args.steps, time_limit=args.time_limit,
                           source_name=Path(reference).name)
    except (ValueError, FaceError) as exc:
        raise CommandError(str(exc)) from None
    for warning in inv.warnings:
        print(f"warning: {warning}")
    save_png(inv.aligned, outdir / f"{label}_aligned.png")
    write_faces([inv.record], [inv.projection.image], outdir,
                lambda *_: f"{label}_reconstruction.png", log)
    return np.asarray(inv.record.latent, np.float32), inv.record


def prepare(args, settings, parts: tuple[str, ...] | None = None):
    """Threads, the bundle (by default with what projecting photos needs) and the output
    folder of a command that makes faces."""
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    bundle = (load_bundle_for_projection(args.bundle, settings.precision) if parts is None
              else load_bundle_or_fail(args.bundle, parts=parts, precision=settings.precision))
    args.outdir.mkdir(parents=True, exist_ok=True)
    return bundle


def _invert(args: argparse.Namespace, settings) -> int:
    bundle = prepare(args, settings)
    with open(args.outdir / "records.jsonl", "a", encoding="utf-8") as log:
        _, record = resolve_face(bundle, str(args.photo), args, log, args.outdir, "suspect")
    print(f"inverted {args.photo} → face {record.id} ({record.parameters['steps']} steps); "
          f"see {args.outdir}")
    return 0


def _refine(args: argparse.Namespace, settings) -> int:
    from models.faces import FaceError
    from models.images import save_png
    from models.inversion import align_photo
    from models.refine import refine, save_refined

    if not args.seconds > 0:
        raise CommandError(f"--seconds must be positive, got {args.seconds}")
    if (args.outdir / "bundle").exists():
        raise CommandError(f"{args.outdir / 'bundle'} already exists; choose another --outdir")
    bundle = prepare(args, settings)
    try:
        aligned, warnings = align_photo(args.photo, bundle.resolution, args.face_index, args.align,
                                        bundle.framing)
        result = refine(bundle, aligned, seconds=args.seconds, ratio=args.ratio)
    except (ValueError, FaceError) as exc:
        raise CommandError(str(exc)) from None
    for warning in warnings:
        print(f"warning: {warning}")
    save_png(aligned, args.outdir / "suspect_aligned.png")
    save_png(result.image, args.outdir / "refined_reconstruction.png")
    digest = save_refined(bundle, result, args.outdir / "bundle", note=Path(args.photo).name)
    print(f"refined in {result.seconds:.0f} s ({result.encoder_steps} encoder, "
          f"{result.generator_steps} generator steps): reconstruction error "
          f"{result.initial_error:.4f} → {result.final_error:.4f}; refined bundle "
          f"{args.outdir / 'bundle'} (hash {digest[:12]})")
    return 0


def _style_layers(bundle, spec: str) -> list[int] | None:
    if spec == "all":
        return None
    ranges = bundle.style_layers
    layers: list[int] = []
    for name in spec.split(","):
        if name not in ranges:
            known = [n for n in ("coarse", "middle", "fine") if n in ranges]
            raise CommandError(f"--styles takes all or any of {', '.join(known)}, got {name!r}")
        layers.extend(range(*ranges[name]))
    return layers


def _fillers(args: argparse.Namespace, settings) -> int:
    from models.bundle import BundleError
    from models.filler_traits import suspect_reading, trait_match
    from models.fillers import check_filler_args, filler_page, render
    from models.inversion import record_photo_identity
    from models.images import make_grid, save_png
    from models.latent import LatentPCA
    from models.records import write_faces

    try:
        check_filler_args(args.per_page, 0, args.radius, args.radius_growth,
                          args.near_clone_threshold)
        if not 1 <= args.pages <= 100:
            raise ValueError(f"--pages must be from 1 to 100, got {args.pages}")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    request = _trait_request(args.traits)
    bundle = prepare(args, settings)
    try:
        pca = LatentPCA.from_bundle(bundle)
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    layers = _style_layers(bundle, args.styles)
    with open(args.outdir / "records.jsonl", "a", encoding="utf-8") as log:
        center, suspect = resolve_face(bundle, args.suspect, args, log, args.outdir, "suspect")
        traits = None
        if request is not None:
            reading = suspect_reading(bundle, suspect, render(bundle.generator, center[None])[0])
            traits = trait_match(reading, request)
            if reading is None and traits is not None:
                raise CommandError("--traits: this bundle has no attribute model to read the "
                                   "traits with; use --traits auto or none")
            if traits is not None:
                print("fillers share the suspect's " + ", ".join(
                    f"{t} {_accepted_words(v['accepted'])}"
                    for t, v in traits.describe().items()))
        for p in range(args.pages):
            reference = record_photo_identity(suspect)
            page = filler_page(bundle, pca, center, reference_embedding=reference, page=p,
                               per_page=args.per_page,
                               radius=args.radius, radius_growth=args.radius_growth,
                               near_clone_threshold=args.near_clone_threshold, layers=layers,
                               seed=args.seed, parents=[suspect.id], traits=traits)
            write_faces(page.records, page.images, args.outdir,
                        lambda rank, _: f"page{p + 1:02d}_{rank + 1:03d}.png", log)
            if len(page.images):
                save_png(make_grid(page.images, cols=6), args.outdir / f"page{p + 1:02d}.png")
            dist = page.distances
            to = "the suspect's photo" if page.reference == "photo" else "the suspect"
            summary = (f"identity distance to {to} {dist.min():.3f}–{dist.max():.3f} (mean "
                       f"{dist.mean():.3f})" if len(dist) else "no faces kept")
            rejected = f", {page.trait_rejected} of other traits" if traits is not None else ""
            where = f"radius {page.radius:.3g}"
            if page.reconstruction_photo_distance is not None:
                where += f"; reconstruction {page.reconstruction_photo_distance:.3f} from the photo"
            print(f"page {p + 1} ({where}): {len(page.records)} fillers, "
                  f"{summary}; {page.near_clones} near-clones{rejected} left out of "
                  f"{page.candidates} candidates; {page.seconds:.1f} s")
            if traits is not None and len(page.records) < args.per_page:
                print("warning: " + traits.shortfall_warning(
                    len(page.records), args.per_page, page.candidates, page.trait_rejections))
    return 0


def _interpolate(args: argparse.Namespace, settings) -> int:
    from models.fillers import render
    from models.images import make_grid, save_png
    from models.latent import interpolate_ws
    from models.records import face_record, latent_to_list, write_faces

    if not 2 <= args.count <= 1000:
        raise CommandError(f"--count must be from 2 to 1000, got {args.count}")
    bundle = prepare(args, settings)
    with open(args.outdir / "records.jsonl", "a", encoding="utf-8") as log:
        ws_a, rec_a = resolve_face(bundle, args.start, args, log, args.outdir, "start")
        ws_b, rec_b = resolve_face(bundle, args.end, args, log, args.outdir, "end")
        ws, ts = interpolate_ws(ws_a, ws_b, args.count)
        images = render(bundle.generator, ws)
        records = [face_record(bundle, latent_space="w+", latent=latent_to_list(w),
                               operation="interpolate",
                               parameters={"t": float(t), "index": i, "count": args.count},
                               parents=[rec_a.id, rec_b.id], image=f"step{i:03d}.png")
                   for i, (w, t) in enumerate(zip(ws, ts))]
        write_faces(records, images, args.outdir, log=log)
    save_png(make_grid(images, cols=min(args.count, 8)), args.outdir / "interpolation.png")
    print(f"wrote {args.count} faces from {rec_a.id} to {rec_b.id} in {args.outdir}")
    return 0


def _analyse(args: argparse.Namespace, settings) -> int:
    """``ligan lineup analyse``: NumPy only — no TensorFlow, no bundle."""
    import json

    from models.fairness import analyse_choices, format_table, read_choices_csv

    if args.size < 2:
        raise CommandError(f"--size must be at least 2, got {args.size}")
    if not 1 <= args.suspect_position <= args.size:
        raise CommandError(f"--suspect-position must be from 1 to {args.size}, got "
                           f"{args.suspect_position}")
    try:
        choices, _ = read_choices_csv(args.choices, size=args.size)
        result = analyse_choices(choices, args.size, args.suspect_position, design=args.design)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(json.dumps(result.to_dict()) if args.json else format_table(result))
    return 0


def _evaluate(args: argparse.Namespace, settings) -> int:
    """``ligan lineup evaluate``: the lineup workflow measured on real photos."""
    import json
    import sys

    from models.bundle import BundleError
    from models.lineup_evaluation import (EmbeddingProbe, choose_suspects, evaluate_lineups,
                                          format_table, read_labels_csv)

    try:  # None: evaluate_lineups' default paths (the encoder alone and the web UI's steps)
        steps = None if args.steps is None else \
            [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        raise CommandError(f"--steps takes whole numbers separated by commas, got "
                           f"{args.steps!r}") from None
    request = _trait_request(args.traits)
    missing = [str(p) for p in args.photos if not p.is_file()]
    if missing:
        raise CommandError(f"no such photo: {', '.join(missing[:3])}")
    if args.sheet is not None and not args.sheet.resolve().parent.is_dir():
        raise CommandError(f"cannot write the sheet: no folder {args.sheet.parent}")
    try:
        labels = read_labels_csv(args.labels) if args.labels else {}
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    ages = None
    if args.ages is not None:
        low, dash, high = args.ages.partition("-")
        if not (dash and low.strip().isdigit() and high.strip().isdigit()):
            raise CommandError(f"--ages takes LOW-HIGH in whole years, e.g. 20-70, got "
                               f"{args.ages!r}")
        ages = (int(low), int(high))
    try:
        photos = choose_suspects(args.photos, labels, ages=ages, sample=args.sample,
                                 seed=args.seed)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    bundle = load_bundle_for_projection(args.bundle, settings.precision)  # as the web UI
    try:
        probe = None
        if args.probe is not None:
            print(f"fitting the probe on {args.probe_samples} faces of {args.probe} …",
                  file=sys.stderr, flush=True)
            probe = EmbeddingProbe.from_folder(args.probe, bundle.resolution,
                                               args.probe_samples, args.seed)
        report = evaluate_lineups(bundle, photos, labels, steps=steps,
                                  per_page=args.per_page, seed=args.seed, traits=request,
                                  probe=probe, measure=args.measure, sheet=args.sheet,
                                  sheet_fillers=args.sheet_fillers,
                                  progress=lambda line: print(line, file=sys.stderr,
                                                              flush=True))
    except (ValueError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    if args.sheet is not None:
        print(f"sheet: {report['sheet']}" if report["sheet"] else
              "no sheet: every photo was skipped", file=sys.stderr)
    print(json.dumps(report) if args.json else format_table(report))
    return 0
