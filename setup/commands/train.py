"""``ligan train …``: training jobs, in the foreground (``--local``) or as SLURM jobs (``--slurm``).

Running the same command again resumes the run from its last checkpoint. ``--slurm`` and the
job's resources come from :mod:`jobs.submit`, shared with ``ligan dataset build``.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models.precision import SETTINGS
from models.runtime import configure_tensorflow
from setup.entry import CommandError

log = logging.getLogger("ligan.train")


def precision_option(parser: argparse.ArgumentParser) -> None:
    """``--precision`` of every trainer (models.precision)."""
    parser.add_argument("--precision", choices=SETTINGS, default=None,
                        help="float32; bfloat16 (for CPUs with AMX or AVX-512 BF16); float16 "
                             "(the discriminator's highest-resolution blocks, for GPUs; the "
                             "encoder and attribute trainers run it as float32); auto picks by "
                             "the hardware. Default: the run's own when resuming, else "
                             "LIGAN_PRECISION")


def training_precision(args: argparse.Namespace, settings, gan: bool) -> str:
    """The precision a trainer runs in, logged with the reason it was chosen."""
    from models.precision import render_precision
    from models.training.run import run_precision

    precision = run_precision(args.run_dir, args.precision, settings.precision)
    name = precision.name if gan else render_precision(precision)
    log.info("precision %s (%s)", name, precision.reason)
    return name


def register(sub: argparse._SubParsersAction, settings) -> None:
    train = sub.add_parser("train", help="train models (StyleGAN2, encoder, attribute model)",
                           description="Training jobs. Each writes a run folder and resumes "
                                       "from its last checkpoint when run again.")
    tsub = train.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    gan = tsub.add_parser(
        "stylegan2", help="train a StyleGAN2 generator and discriminator",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train StyleGAN2 on a folder of aligned face images (or TFRecord shards) "
                    "and export the latest snapshot as RUN_DIR/bundle. Stop with Ctrl-C or "
                    "SIGTERM (it checkpoints) and run the same command to resume.")
    gan.add_argument("--data", required=True, type=Path, help="image folder or TFRecord shards")
    gan.add_argument("--run-dir", required=True, type=Path, help="run folder (created or resumed)")
    gan.add_argument("--local", action="store_true",
                     help="run in the foreground on this machine (the default)")
    gan.add_argument("--resolution", type=int, default=64)
    gan.add_argument("--batch", type=int, default=32, help="global batch size")
    gan.add_argument("--kimg", type=float, default=1000, help="length of training, thousands of "
                                                              "images shown")
    gan.add_argument("--z-dim", type=int, default=512)
    gan.add_argument("--w-dim", type=int, default=512)
    gan.add_argument("--mapping-layers", type=int, default=8)
    gan.add_argument("--channel-base", type=int, default=16384)
    gan.add_argument("--channel-max", type=int, default=512)
    gan.add_argument("--lr", type=float, default=0.0025,
                     help="learning rate of G and D (may be changed when resuming)")
    gan.add_argument("--ema-kimg", type=float, default=None,
                     help="half-life of G's moving average in kimg (default: batch · 10 / 32; "
                          "may be changed when resuming)")
    gan.add_argument("--gamma", type=float, default=None,
                     help="R1 weight (default: 0.0002 · resolution² / batch)")
    gan.add_argument("--augment", default="color,translation,cutout",
                     help="differentiable augmentations, comma-separated, or none")
    gan.add_argument("--no-mirror", action="store_true", help="do not flip images horizontally")
    gan.add_argument("--seed", type=int, default=0)
    gan.add_argument("--tick-kimg", type=float, default=4.0, help="log interval")
    gan.add_argument("--snapshot-kimg", type=float, default=50.0,
                     help="checkpoint, sample grid and bundle interval")
    gan.add_argument("--max-minutes", type=float, default=None,
                     help="stop (with a checkpoint) after this long; run again to continue")
    gan.add_argument("--resume-from", type=Path, default=None,
                     help="start from a bundle's weights (fine-tuning, e.g. an imported network)")
    gan.add_argument("--widen", action="store_true",
                     help="with --resume-from: the bundle's network may be narrower (smaller "
                          "--channel-base or --channel-max, same resolution); its weights fill "
                          "the leading channels and the new ones start near silent")
    gan.add_argument("--strategy", choices=("auto", "mirrored"), default="auto",
                     help="auto: several SLURM tasks → multi-worker, several GPUs → mirrored")
    gan.add_argument("--deterministic", action="store_true",
                     help="bit-for-bit reproducible (slower on GPUs)")
    gan.add_argument("--data-description", default="", help="recorded in the bundle")
    gan.add_argument("--data-licence", default="", help="recorded in the bundle")
    gan.add_argument("--framing", choices=("ffhq", "utkface"), default="ffhq",
                     help="how the training faces are cut (ffhq: FFHQ's alignment, as `dataset "
                          "build` makes; utkface: UTKFace's aligned & cropped chips), recorded "
                          "in the bundle so photos are aligned alike")
    gan.add_argument("--balance", choices=("gender", "age_group", "ethnicity"), default="",
                     help="even out the groups of this UTKFace label in what the networks see "
                          "(labels from the file names), against a generator's dropping of "
                          "rare groups; may be switched on when resuming")
    gan.add_argument("--balance-power", type=float, default=0.5,
                     help="0: the data as it is; 1: every group equally often")
    gan.add_argument("--condition", choices=("utkface",), default="",
                     help="train a conditional generator on the data's labels (utkface: "
                          "gender, age group and ethnicity from UTKFace file names); switching "
                          "it on needs a new run folder, which may --resume-from an "
                          "unconditional bundle")
    gan.add_argument("--feature-d", type=Path, default=None, metavar="BUNDLE",
                     help="add a second discriminator that reads faces through this bundle's "
                          "frozen identity network (a small head learns on its features; "
                          "docs/training.md); may be switched on when resuming")
    gan.add_argument("--feature-d-weight", type=float, default=0.5,
                     help="weight of the second discriminator's loss in the generator's")
    gan.add_argument("--label-loss", type=float, default=0.0, metavar="WEIGHT",
                     help="conditional runs with --feature-d: weight of a loss that reads each "
                          "generated face's traits with the --feature-d bundle's trait probe "
                          "against its labels, so the generator learns to draw them (0: off; "
                          "may be changed when resuming)")
    gan.add_argument("--spectral-weight", type=float, default=0.0,
                     help="weight of a loss that pulls the generated faces' radial power "
                          "spectrum toward the real faces' (against blur and grain; 0: off; "
                          "may be changed when resuming)")
    precision_option(gan)
    gan.add_argument("--metrics", type=Path, default=None, metavar="REAL",
                     help="held-out real faces (folder or TFRecord shards): compute the quality "
                          "metrics at every snapshot")
    gan.add_argument("--metrics-samples", type=int, default=200,
                     help="generated (and real) faces per metrics evaluation")
    gan.add_argument("--metrics-psi", type=float, default=0.7, help="truncation for the metrics")
    gan.add_argument("--metrics-attributes", type=Path, default=None, metavar="BUNDLE",
                     help="a bundle whose attribute model compares gender/age/ethnicity shares")
    gan.add_argument("--metrics-inception", type=Path, default=None, metavar="WEIGHTS",
                     help="Keras Inception-v3 ImageNet weights file (.h5): add FID to the "
                          "metrics")
    gan.add_argument("--no-progress", action="store_true")
    gan.set_defaults(handler=_train_stylegan2)
    _register_encoder(tsub)
    _register_metrics(tsub)
    from setup.commands.attributes import register_train as register_attributes_training

    register_attributes_training(tsub)
    from setup.commands.identity import register_train as register_identity_training

    register_identity_training(tsub)
    from jobs.submit import make_submittable

    make_submittable(tsub, ("train",), settings,
                     names=("stylegan2", "encoder", "attributes", "identity", "trait-probe"))


def _register_encoder(tsub: argparse._SubParsersAction) -> None:
    enc = tsub.add_parser(
        "encoder", help="train a bundle's encoder (photo → w+)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train the encoder of a bundle on generated (image, w+) pairs and, with "
                    "--data, real aligned photos; the generator stays frozen. When finished the "
                    "encoder is added to the bundle (its hash changes). Run again to resume.")
    enc.add_argument("--bundle", required=True, type=Path, help="bundle directory")
    enc.add_argument("--run-dir", required=True, type=Path)
    enc.add_argument("--data", type=Path, default=None, help="folder of aligned real photos")
    enc.add_argument("--local", action="store_true", help="run in the foreground (the default)")
    enc.add_argument("--steps", type=int, default=20_000)
    enc.add_argument("--batch", type=int, default=8)
    enc.add_argument("--lr", type=float, default=1e-4)
    enc.add_argument("--real-fraction", type=float, default=0.5,
                     help="share of each batch taken from --data")
    enc.add_argument("--psi", type=float, default=0.8, help="truncation of generated samples")
    enc.add_argument("--identity-weight", type=float, default=None,
                     help="weight of the identity loss, by the bundle's identity network "
                          "(default: IDENTITY_WEIGHT of models/faces/identity_net.py)")
    enc.add_argument("--channel-base", type=int, default=4096)
    enc.add_argument("--channel-max", type=int, default=256)
    enc.add_argument("--seed", type=int, default=0)
    enc.add_argument("--tick-steps", type=int, default=100)
    enc.add_argument("--snapshot-steps", type=int, default=1000)
    enc.add_argument("--max-minutes", type=float, default=None)
    enc.add_argument("--deterministic", action="store_true")
    enc.add_argument("--resume-from", type=Path, default=None, metavar="BUNDLE",
                     help="start from the encoder of this bundle (e.g. one trained for an "
                          "earlier snapshot of the same generator) instead of random weights")
    enc.add_argument("--no-export", action="store_true",
                     help="do not add the finished encoder to the bundle")
    precision_option(enc)
    enc.add_argument("--no-progress", action="store_true")
    enc.set_defaults(handler=_train_encoder)


def _register_metrics(tsub: argparse._SubParsersAction) -> None:
    met = tsub.add_parser(
        "metrics", help="quality metrics of a bundle against real faces",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Identity-embedding Fréchet distance, precision/recall (k=3), one-face rate "
                    "and, when the bundle has an attribute model, gender/age/ethnicity shares "
                    "against the real data's (UTKFace labels from file names, else predicted); "
                    "FID with --inception; when the bundle has an encoder, the same readings "
                    "on its reconstructions of the real faces (the renderer's ceiling). "
                    "Prints a table and writes JSON.")
    met.add_argument("--bundle", required=True, type=Path, help="bundle directory")
    met.add_argument("--real", required=True, type=Path,
                     help="held-out real faces: image folder or TFRecord shards")
    met.add_argument("--samples", type=int, default=1000, help="generated faces")
    met.add_argument("--real-samples", type=int, default=None,
                     help="real faces (default: as many as --samples)")
    met.add_argument("--psi", type=float, default=0.7, help="truncation")
    met.add_argument("--inception", type=Path, default=None, metavar="WEIGHTS",
                     help="Keras Inception-v3 ImageNet weights file (.h5, e.g. inception_v3_"
                          "weights_tf_dim_ordering_tf_kernels_notop.h5): add FID")
    met.add_argument("--no-reconstructions", action="store_true",
                     help="skip reading the encoder's reconstructions of the real faces")
    met.add_argument("--seed", type=int, default=0)
    met.add_argument("--json", type=Path, default=None,
                     help="write the result here (default: metrics-<bundle name>.json)")
    met.add_argument("--no-progress", action="store_true")
    met.set_defaults(handler=_metrics)


def _metrics(args: argparse.Namespace, settings) -> int:
    import json

    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    from models.bundle import BundleError
    from models.training.metrics import evaluate_bundle, format_table

    try:
        result = evaluate_bundle(args.bundle, args.real, args.samples, args.psi, args.seed,
                                 args.real_samples, progress=not args.no_progress,
                                 inception_weights=args.inception,
                                 reconstructions=not args.no_reconstructions)
    except (ValueError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    out = args.json or Path(f"metrics-{args.bundle.resolve().name}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    print(f"\nwritten to {out}")
    return 0


def _train_encoder(args: argparse.Namespace, settings) -> int:
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads, training=True)
    from models.bundle import BundleError
    from models.training.encoder import EncoderTrainConfig, EncoderTrainer

    try:
        cfg = EncoderTrainConfig(
            bundle=str(args.bundle), data=str(args.data) if args.data else None,
            steps=args.steps, batch_size=args.batch, lr=args.lr,
            real_fraction=args.real_fraction, psi=args.psi,
            identity_weight=args.identity_weight, channel_base=args.channel_base,
            channel_max=args.channel_max, seed=args.seed, tick_steps=args.tick_steps,
            snapshot_steps=args.snapshot_steps, max_minutes=args.max_minutes,
            deterministic=args.deterministic, progress=not args.no_progress,
            export=not args.no_export, precision=training_precision(args, settings, gan=False),
            resume_from=str(args.resume_from) if args.resume_from else None)
        summary = EncoderTrainer(cfg, args.run_dir).train()
    except (ValueError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    if summary["finished"]:
        added = f"; added to {args.bundle} (hash {summary['bundle_hash'][:12]})" \
            if summary["bundle_hash"] else ""
        print(f"finished: {summary['steps']} steps{added}")
    else:
        print(f"{summary['reason']} at step {summary['steps']}; run the same command again to "
              f"resume")
    return 0


def _train_stylegan2(args: argparse.Namespace, settings) -> int:
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads, training=True)
    from models.bundle import BundleError
    from models.training.stylegan2 import TrainConfig, Trainer, choose_strategy

    try:
        precision = training_precision(args, settings, gan=True)
        cfg = TrainConfig(
            data=str(args.data), resolution=args.resolution, batch_size=args.batch,
            total_kimg=args.kimg, z_dim=args.z_dim, w_dim=args.w_dim,
            mapping_layers=args.mapping_layers, channel_base=args.channel_base,
            channel_max=args.channel_max, g_lr=args.lr, d_lr=args.lr, r1_gamma=args.gamma,
            ema_kimg=args.ema_kimg,
            augment=args.augment, mirror=not args.no_mirror, seed=args.seed,
            tick_kimg=args.tick_kimg, snapshot_kimg=args.snapshot_kimg,
            max_minutes=args.max_minutes, deterministic=args.deterministic,
            progress=not args.no_progress, data_description=args.data_description,
            data_licence=args.data_licence, framing=args.framing, balance=args.balance,
            balance_power=args.balance_power, conditioning=args.condition,
            resume_from=str(args.resume_from) if args.resume_from else None,
            resume_widen=args.widen,
            feature_d=str(args.feature_d.resolve()) if args.feature_d else None,
            feature_d_weight=args.feature_d_weight, spectral_weight=args.spectral_weight,
            label_loss_weight=args.label_loss,
            metrics_real=str(args.metrics.resolve()) if args.metrics else None,
            precision=precision,
            metrics_samples=args.metrics_samples, metrics_psi=args.metrics_psi,
            metrics_attributes=str(args.metrics_attributes.resolve())
            if args.metrics_attributes else None,
            metrics_inception=str(args.metrics_inception.resolve())
            if args.metrics_inception else None)
        cfg.generator_config()
        trainer = Trainer(cfg, args.run_dir, choose_strategy(args.strategy))
        summary = trainer.train()
    except (ValueError, BundleError) as exc:  # settings, data and bundle errors all say why
        raise CommandError(str(exc)) from None
    kimg = summary["nimg"] / 1000
    if summary["finished"]:
        print(f"finished: {kimg:.3f} kimg; bundle: {args.run_dir / 'bundle'}")
    else:
        print(f"{summary['reason']} at {kimg:.3f} kimg; run the same command again to resume")
    return 0


def print_step_summary(summary: dict, bundle) -> None:
    """What a step-counted trainer (attributes, identity) prints when it ends: the steps, the
    bundle it added its part to, and its held-out metrics; or why it stopped."""
    if summary["finished"]:
        added = (f"; added to {bundle} (hash {summary['bundle_hash'][:12]})"
                 if summary["bundle_hash"] else "")
        print(f"finished: {summary['steps']} steps{added}")
        for key, value in sorted(summary["metrics"].items()):
            print(f"  {key} {value:.3f}")
    else:
        print(f"{summary['reason']} at step {summary['steps']}; run the same command again "
              f"to resume")
