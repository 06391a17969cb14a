"""``ligan bundle import``: turn a published StyleGAN2 pickle into a LiGAN bundle.

``setup.commands.bundle.register`` calls :func:`register` with the ``bundle`` sub-parsers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_LICENCE = "unspecified (state the source's licence with --licence)"


def register(bsub: argparse._SubParsersAction, settings) -> None:
    """Add the ``import`` action to the ``ligan bundle`` sub-parsers."""
    imp = bsub.add_parser(
        "import", help="import an official StyleGAN2 / StyleGAN2-ADA network pickle",
        description="Read a published network pickle (official StyleGAN2 TensorFlow 1, or "
                    "StyleGAN2-ADA PyTorch) without running any code from it, map every variable "
                    "onto LiGAN's generator (Gs / G_ema) and discriminator, and write a new "
                    "bundle that records the source file's sha256. Needs neither TensorFlow 1 "
                    "nor PyTorch. See docs/importing.md for where to get the files and their "
                    "licences.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    imp.add_argument("source", type=Path, help="the network pickle (.pkl)")
    imp.add_argument("--out", type=Path, required=True, help="new bundle directory")
    imp.add_argument("--name", default=None, help="bundle name (default: the file's stem)")
    imp.add_argument("--licence", "--license", dest="licence", default=None,
                     help="licence of the weights, e.g. 'CC BY-NC 4.0 (NVIDIA, FFHQ)'")
    imp.add_argument("--note", default="",
                     help="where the file came from (URL, date, who downloaded it)")
    imp.add_argument("--training-data", default="",
                     help="what the network was trained on, e.g. 'FFHQ 1024 px'")
    imp.add_argument("--generator-only", action="store_true",
                     help="leave the discriminator out even when the pickle has one")
    imp.set_defaults(handler=_import)


def _import(args: argparse.Namespace, settings) -> int:
    from models.runtime import configure_tensorflow
    from setup.entry import CommandError

    if not args.source.is_file():
        raise CommandError(f"no file at {args.source}")
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    from models.bundle import BundleError
    from models.importers import NetworkImportError, import_to_bundle

    if args.licence is None:
        print("warning: no --licence given; published StyleGAN2 networks carry licences "
              "(the FFHQ ones are CC BY-NC 4.0), record it with --licence")
    try:
        result = import_to_bundle(
            args.source, args.out, name=args.name or args.source.stem,
            licence=args.licence or DEFAULT_LICENCE, note=args.note,
            training_data=args.training_data, include_discriminator=not args.generator_only,
            progress=lambda message: print(f"… {message}", flush=True))
    except (NetworkImportError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"imported {args.source.name} ({result['format']}) into {args.out}: "
          f"{', '.join(result['parts'])}")
    print(f"source sha256  {result['sha256']}")
    print(f"bundle hash    {result['hash']}")
    return 0
