"""``ligan generate`` and ``ligan bundle …``: the model commands of the ``ligan`` entry point.

TensorFlow is imported inside the handlers so that ``ligan --help`` stays instant.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from models.bundle import INFO_FIELDS
from models.runtime import configure_tensorflow
from setup.entry import CommandError


def register(sub: argparse._SubParsersAction, settings) -> None:
    """Add the model subcommands to the ``ligan`` parser."""
    gen = sub.add_parser(
        "generate", help="render faces from seeds",
        description="Render one face per seed with the generator of a bundle. Writes "
                    "seed<N>.png per face and records.jsonl (one face record per line, with the "
                    "latent z), and grid.png with --grid.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    gen.add_argument("--bundle", type=Path, default=settings.bundle,
                     help="bundle directory or packed bundle file (LIGAN_BUNDLE)")
    gen.add_argument("--seeds", default="0-7",
                     help="seeds and inclusive ranges, e.g. 0-9,42")
    gen.add_argument("--psi", "--truncation-psi", dest="psi", type=float, default=1.0,
                     help="truncation psi: 1 = none, 0.7 = typical, 0 = the average face")
    gen.add_argument("--cutoff", "--truncation-cutoff", dest="cutoff", type=int, default=None,
                     help="truncate only the first N w+ entries (default: all)")
    gen.add_argument("--noise-mode", choices=("const", "random", "none"), default="const",
                     help="per-pixel noise: the bundle's fixed noise, fresh noise seeded by the "
                          "face's seed, or none")
    gen.add_argument("--outdir", type=Path, default=Path("out"), help="output folder")
    gen.add_argument("--grid", action="store_true", help="also write grid.png of all faces")
    gen.add_argument("--grid-cols", type=int, default=None, help="faces per grid row")
    gen.add_argument("--grid-zoom", type=int, default=1,
                     help="enlarge the grid's faces N times (nearest neighbour)")
    gen.add_argument("--batch-size", type=int, default=8, help="faces rendered at once")
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen.set_defaults(handler=_generate)

    bundle = sub.add_parser("bundle", help="inspect, verify, create and pack model bundles",
                            description="Work with model bundles (manifest + weights).")
    bsub = bundle.add_subparsers(dest="bundle_command", metavar="ACTION", required=True)
    inspect = bsub.add_parser("inspect", help="show what a bundle holds",
                              description="Print a bundle's manifest facts, parts, sizes and "
                                          "hash (files are not hashed; see verify).")
    inspect.add_argument("path", type=Path, nargs="?", default=settings.bundle)
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(handler=_inspect)

    verify = bsub.add_parser("verify", help="check every file's hash and that the networks load",
                             description="Verify sha256 of every file, then build each network "
                                         "and load its weights (names and shapes checked).")
    verify.add_argument("path", type=Path, nargs="?", default=settings.bundle)
    verify.set_defaults(handler=_verify)

    init = bsub.add_parser(
        "init", help="create an UNTRAINED bundle with random weights",
        description="Create a bundle whose generator and discriminator have random weights: "
                    "for development, tests and as the starting point of training. Its images "
                    "are noise, not faces.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    init.add_argument("out", type=Path, help="new bundle directory")
    init.add_argument("--resolution", type=int, default=64)
    init.add_argument("--z-dim", type=int, default=512)
    init.add_argument("--w-dim", type=int, default=512)
    init.add_argument("--mapping-layers", type=int, default=8)
    init.add_argument("--channel-base", type=int, default=16384)
    init.add_argument("--channel-max", type=int, default=512)
    init.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    init.add_argument("--name", default="untrained")
    init.set_defaults(handler=_init)

    pack = bsub.add_parser("pack", help="pack a bundle directory into one file",
                           description="Verify a bundle directory and write it as one "
                                       "uncompressed tar file that every command accepts.")
    pack.add_argument("path", type=Path)
    pack.add_argument("out", type=Path)
    pack.set_defaults(handler=_pack)

    fit = bsub.add_parser(
        "fit-pca", help="add the PCA of W that filler sampling needs",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Fit the principal axes of W on mapped random latents and add them to the "
                    "bundle as its pca part (the bundle hash changes).")
    fit.add_argument("path", type=Path, nargs="?", default=settings.bundle,
                     help="bundle directory")
    fit.add_argument("--samples", type=int, default=10_000)
    fit.add_argument("--components", type=int, default=256)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                     help="skip measuring the fillers' page-1 radius (calibrate-fillers does it "
                          "later; until then fillers use the fixed default radius)")
    _calibration_options(fit)
    fit.set_defaults(handler=_fit_pca)

    cal = bsub.add_parser(
        "calibrate-fillers", help="measure the fillers' page-1 radius for this generator",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Find the smallest radius around a face at which at most the given share "
                    "of sampled faces are near-clones of it (dlib identity), and store it with "
                    "the PCA as page 1's default radius (the bundle hash changes). fit-pca does "
                    "this too; run it alone for a bundle whose PCA predates it.")
    cal.add_argument("path", type=Path, nargs="?", default=settings.bundle,
                     help="bundle directory")
    _calibration_options(cal)
    cal.set_defaults(handler=_calibrate_fillers)

    framing = bsub.add_parser(
        "set-alignment", help="record how the training faces were cut (ffhq or utkface)",
        description="Record in a bundle directory's manifest how its generator's training faces "
                    "were framed, so photos are aligned the same way before they are encoded "
                    "(the bundle hash changes). Bundles trained with `ligan train stylegan2 "
                    "--framing` and imported FFHQ networks already say it.")
    framing.add_argument("path", type=Path, help="bundle directory")
    framing.add_argument("framing", choices=("ffhq", "utkface"))
    framing.set_defaults(handler=_set_alignment)

    info = bsub.add_parser(
        "set-info", help="set what a bundle says it is: name, description, creator, licence",
        description="Set free-text fields of a bundle directory's manifest, e.g. before a "
                    "trained bundle becomes the default (the weights are untouched; the bundle "
                    "hash changes). A licence that limits the bundle to research makes every "
                    "lineup made with it carry a research-only notice.")
    info.add_argument("path", type=Path, help="bundle directory")
    for field in INFO_FIELDS:
        info.add_argument(f"--{field}")
    info.set_defaults(handler=_set_info)

    carry = bsub.add_parser(
        "carry-parts", help="reuse another bundle's attribute model, identity network and probe",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Copy the parts that read images (attribute model, identity network, trait "
                    "probe) from SOURCE into the bundle directory PATH, whose generator is new, "
                    "instead of training them again (the bundle hash changes). The attribute "
                    "model's directions in W are dropped: refit them with `ligan attributes "
                    "directions`. Encoder and PCA belong to a generator and are never carried.")
    carry.add_argument("path", type=Path, help="bundle directory that receives the parts")
    carry.add_argument("--from", dest="source", type=Path, required=True,
                       help="bundle directory or packed bundle to take them from")
    carry.add_argument("--parts", default=None,
                       help="comma-separated parts to carry (default: every part that reads "
                            "images)")
    carry.set_defaults(handler=_carry_parts)

    from setup.commands.importers import register as register_import

    register_import(bsub, settings)


def _calibration_options(parser: argparse.ArgumentParser) -> None:
    from models.filler_calibration import BROKEN_SHARE, NEAR_CLONE_SHARE, NORM_SAMPLES

    parser.add_argument("--near-clone-share", type=float, default=NEAR_CLONE_SHARE,
                        help="largest share of page-1 candidates that may be near-clones")
    parser.add_argument("--broken-share", type=float, default=BROKEN_SHARE,
                        help="largest share of faces that may break up at the largest norm")
    parser.add_argument("--centres", type=int, default=12,
                        help="generated faces to measure the radius around")
    parser.add_argument("--samples-per-centre", type=int, default=8)
    parser.add_argument("--norm-samples", type=int, default=NORM_SAMPLES,
                        help="generated faces to measure the largest norm with")
    parser.add_argument("--calibration-seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def load_bundle_or_fail(path: Path, parts=("generator",), precision: str = "float32"):
    """``load_bundle`` with its errors turned into one-line command errors; its generator
    renders in ``precision`` (a LIGAN_PRECISION value, resolved for this machine and this
    generator: :func:`models.precision.resolve_render_precision`)."""
    from models.bundle import BundleError, load_bundle
    from models.precision import resolve_render_precision

    try:
        bundle = load_bundle(path, parts=parts)
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    if bundle.generator is not None:
        bundle.generator.use_precision(
            resolve_render_precision(precision, bundle.generator.cfg).name)
    return bundle


def load_bundle_for_projection(path: Path, precision: str = "float32"):
    """:func:`load_bundle_or_fail` with the networks that projecting photos needs
    (:func:`models.projector.projector_parts`), as the web UI's backend loads them."""
    from models.bundle import BundleError, read_manifest
    from models.projector import projector_parts

    try:
        parts = projector_parts(read_manifest(path))
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    return load_bundle_or_fail(path, parts=parts, precision=precision)


def _generate(args: argparse.Namespace, settings) -> int:
    from models.generate import check_generation_args, generate_from_seeds, parse_seeds

    try:
        seeds = parse_seeds(args.seeds)
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
        if args.grid_cols is not None and args.grid_cols < 1:
            raise ValueError(f"--grid-cols must be at least 1, got {args.grid_cols}")
        if args.grid_zoom < 1:
            raise ValueError(f"--grid-zoom must be at least 1, got {args.grid_zoom}")
        check_generation_args(args.psi, args.cutoff, args.noise_mode, num_ws=10 ** 6)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    bundle = load_bundle_or_fail(args.bundle, precision=settings.precision)
    try:
        records = generate_from_seeds(
            bundle, seeds, args.outdir, truncation_psi=args.psi, truncation_cutoff=args.cutoff,
            noise_mode=args.noise_mode, batch_size=args.batch_size, grid=args.grid,
            grid_cols=args.grid_cols, grid_zoom=args.grid_zoom, progress=not args.no_progress)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {len(records)} faces to {args.outdir} (bundle {bundle.hash[:12]})")
    return 0


def _inspect(args: argparse.Namespace, settings) -> int:
    from models.bundle import BundleError, describe

    try:
        info = describe(args.path)
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    from models.faces.alignment import Framing

    print(f"bundle      {info['path']}")
    print(f"hash        {info['hash']}")
    print(f"name        {info['name']}  (format {info['format_version']})")
    if info.get("description"):
        print(f"about       {info['description']}")
    print(f"created     {info['created']} by {info.get('creator') or 'unknown'}")
    print(f"licence     {info['licence']}")
    data = info.get("training_data") or {}
    print(f"trained on  {data.get('description', 'unknown')} (licence: "
          f"{data.get('licence', 'unknown')})")
    print(f"resolution  {info['resolution']} px, z {info['z_dim']}, w {info['w_dim']}, "
          f"w+ entries {info['num_ws']}")
    ranges = info.get("style_layers") or {}
    print("styles      " + ", ".join(f"{k} {v[0]}–{v[1] - 1}" if v[1] > v[0] else f"{k} none"
                                     for k, v in ranges.items()))
    a = info["alignment"]
    print(f"alignment   {Framing.from_dict(a).name} (FFHQ square × {a['scale']:g}, moved {a['dx']:g}, {a['dy']:g} "
          f"half-sides)")
    print("parts")
    for part, spec in info["parts"].items():
        size = spec.get("bytes")
        print(f"  {part:14s} {spec['file']:22s} {size / 1e6 if size else 0:8.2f} MB")
    return 0


def _verify(args: argparse.Namespace, settings) -> int:
    from models.bundle import KNOWN_PARTS, read_manifest

    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    try:
        manifest = read_manifest(args.path)
    except Exception as exc:  # BundleError; reported the same way as load failures
        raise CommandError(str(exc)) from None
    buildable = [p for p in ("generator", "discriminator") if p in manifest["parts"]]
    bundle = load_bundle_or_fail(args.path, parts=buildable)
    others = [p for p in manifest["parts"] if p not in buildable and p in KNOWN_PARTS]
    print(f"ok: {args.path} (hash {bundle.hash})")
    print(f"  every file matches its sha256; networks built and loaded: {', '.join(buildable)}")
    if others:
        print(f"  other parts (hash-checked only): {', '.join(others)}")
    return 0


def _init(args: argparse.Namespace, settings) -> int:
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    from models.bundle import BundleError, save_bundle
    from models.stylegan2 import (ConfigError, Discriminator, DiscriminatorConfig, Generator,
                                  GeneratorConfig)

    try:
        gcfg = GeneratorConfig(resolution=args.resolution, z_dim=args.z_dim, w_dim=args.w_dim,
                               mapping_layers=args.mapping_layers,
                               channel_base=args.channel_base, channel_max=args.channel_max)
        dcfg = DiscriminatorConfig(resolution=args.resolution, channel_base=args.channel_base,
                                   channel_max=args.channel_max)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    try:
        digest = save_bundle(
            args.out, Generator(gcfg, seed=args.seed), Discriminator(dcfg, seed=args.seed + 1),
            name=args.name, creator="ligan bundle init",
            description=f"UNTRAINED: random weights (seed {args.seed}); images are noise",
            licence="none (no training data)")
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    print(f"created untrained bundle {args.out} (hash {digest[:12]})")
    return 0


def _pack(args: argparse.Namespace, settings) -> int:
    from models.bundle import BundleError, pack_bundle

    try:
        out = pack_bundle(args.path, args.out)
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    print(f"packed {args.path} into {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


def _require_bundle_directory(path: Path) -> None:
    """Commands that change a bundle write into its directory; a packed file cannot be changed."""
    if not Path(path).is_dir():
        raise CommandError(f"{path} is not a bundle directory (unpack a packed bundle first)")


def _set_alignment(args: argparse.Namespace, settings) -> int:
    from models.bundle import BundleError, set_framing
    from models.faces import FRAMINGS

    _require_bundle_directory(args.path)
    try:
        digest = set_framing(args.path, FRAMINGS[args.framing])
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    print(f"{args.path}: photos are now aligned with the {args.framing} framing; new bundle hash "
          f"{digest[:12]}")
    return 0


def _set_info(args: argparse.Namespace, settings) -> int:
    from models.bundle import BundleError, set_info

    _require_bundle_directory(args.path)
    fields = {k: getattr(args, k) for k in INFO_FIELDS if getattr(args, k) is not None}
    try:
        digest = set_info(args.path, **fields)
    except (BundleError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"{args.path}: set {', '.join(fields)}; new bundle hash {digest[:12]}")
    return 0


def _carry_parts(args: argparse.Namespace, settings) -> int:
    from models.bundle import BundleError
    from models.bundle_carry import CARRIABLE_PARTS, REFIT_AFTER, carry_parts

    parts = (CARRIABLE_PARTS if args.parts is None else
             tuple(p.strip() for p in args.parts.split(",") if p.strip()))
    if not parts:
        raise CommandError("--parts names no part")
    try:
        digest = carry_parts(args.source, args.path, parts)
    except (BundleError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"carried {', '.join(parts)} from {args.source} into {args.path}; new bundle hash "
          f"{digest[:12]}")
    for part in parts:
        if part in REFIT_AFTER:
            print(f"  next: {REFIT_AFTER[part]}")
    return 0


def _fit_pca(args: argparse.Namespace, settings) -> int:
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    from models.bundle import add_part
    from models.latent import PCA_PART, fit_pca

    _require_bundle_directory(args.path)
    bundle = load_bundle_or_fail(args.path)
    try:
        pca = fit_pca(bundle.generator, args.samples, args.components, args.seed,
                      progress=not args.no_progress)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    digest = add_part(args.path, PCA_PART, pca.arrays(), config=pca.config())
    share = float(np.sum(pca.stddev ** 2))
    print(f"added PCA ({pca.num_components} components from {args.samples} samples; variance "
          f"along them {share:.3g}) to {args.path}; new bundle hash {digest[:12]}")
    if args.calibrate:  # with the generator and PCA in hand, not reloaded from disk
        _calibrate_and_store(args, bundle, pca)
    return 0


def _calibrate_fillers(args: argparse.Namespace, settings) -> int:
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    from models.bundle import BundleError
    from models.latent import LatentPCA

    _require_bundle_directory(args.path)
    bundle = load_bundle_or_fail(args.path)
    try:
        pca = LatentPCA.from_bundle(bundle)
    except BundleError as exc:
        raise CommandError(str(exc)) from None
    _calibrate_and_store(args, bundle, pca)
    return 0


def _calibrate_and_store(args: argparse.Namespace, bundle, pca) -> None:
    """Calibrate fillers for ``bundle`` with ``pca``, store the result in the PCA part's config
    in ``args.path`` and print the measurements."""
    from models.bundle import set_part_config
    from models.filler_calibration import calibrate_fillers
    from models.latent import PCA_PART

    try:
        result = calibrate_fillers(bundle, pca, near_clone_share=args.near_clone_share,
                                   broken_share=args.broken_share, centres=args.centres,
                                   samples=args.samples_per_centre,
                                   norm_samples=args.norm_samples, seed=args.calibration_seed,
                                   progress=not args.no_progress)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    result.apply(pca)
    digest = set_part_config(args.path, PCA_PART, pca.config())
    for row in result.radius_table:
        print(f"  radius {row['radius']:7.3f}: near-clones {row['near_clone_share']:6.1%}, "
              f"mean identity distance {row['mean_distance']:.3f}")
    for row in result.norm_table:
        print(f"  norm {row['norm']:7.3f}: broken faces {row['broken_share']:6.1%}")
    radius_note = "" if result.radius_met else (
        f" (even this radius leaves more than {args.near_clone_share:.0%} near-clones)")
    norm_note = (f"largest norm {result.max_norm}" if result.max_norm is not None else
                 f"no largest norm (more than {args.broken_share:.0%} of the generator's own "
                 f"faces break up; later pages grow without a bound)")
    print(f"fillers for {args.path}: page-1 radius {result.radius}{radius_note}; {norm_note}; "
          f"new bundle hash {digest[:12]}")
