"""``ligan train identity``: distil dlib's face descriptor into a bundle's identity network;
``ligan train trait-probe``: read gender, ethnicity and age group from that descriptor.

``register_train(tsub)`` adds both to the ``ligan train`` group. TensorFlow is imported inside
the handlers.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from models.runtime import configure_tensorflow
from setup.entry import CommandError


def register_train(tsub: argparse._SubParsersAction) -> None:
    tr = tsub.add_parser(
        "identity", help="train a bundle's identity network (dlib's descriptor, distilled)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train the identity network of a bundle: a small CNN that puts an aligned "
                    "face where dlib's face descriptor puts it, so that fillers are scored in "
                    "one batched call and the projector, refine and the encoder get an "
                    "identity loss. The distillation set (UTKFace and CelebA photos, which are "
                    "for non-commercial research only, and the bundle's generated faces, each "
                    "embedded by dlib) is built once in RUN/set by --workers processes. When "
                    "finished the network is added to the bundle as its identity part (its "
                    "hash changes), with its agreement with dlib on held-out faces. Run again "
                    "to resume.")
    tr.add_argument("--bundle", required=True, type=Path, help="bundle directory")
    tr.add_argument("--run-dir", required=True, type=Path)
    tr.add_argument("--utkface", type=Path, default=None, help="UTKFace folder (aligned faces)")
    tr.add_argument("--celeba", type=Path, default=None,
                    help="CelebA folder with images/ and attributes.csv (aligned here)")
    tr.add_argument("--utkface-faces", type=int, default=6000)
    tr.add_argument("--celeba-faces", type=int, default=2000)
    tr.add_argument("--generated-groups", type=int, default=1600,
                    help="generated faces, each with --neighbours look-alikes around it")
    tr.add_argument("--neighbours", type=int, default=4)
    tr.add_argument("--workers", type=int, default=2,
                    help="processes that embed the distillation set with dlib")
    tr.add_argument("--local", action="store_true", help="run in the foreground (the default)")
    tr.add_argument("--steps", type=int, default=6000)
    tr.add_argument("--batch", type=int, default=64)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--distance-weight", type=float, default=1.0,
                    help="weight of the loss on distances between faces of a batch")
    tr.add_argument("--from-scratch", action="store_true",
                    help="do not start from the bundle's attribute model")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--tick-steps", type=int, default=100)
    tr.add_argument("--snapshot-steps", type=int, default=1000,
                    help="checkpoint and held-out evaluation interval")
    tr.add_argument("--max-minutes", type=float, default=None)
    tr.add_argument("--no-export", action="store_true",
                    help="do not add the finished network to the bundle")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(handler=_train)
    _register_trait_probe(tsub)


def _register_trait_probe(tsub: argparse._SubParsersAction) -> None:
    tp = tsub.add_parser(
        "trait-probe", help="fit a bundle's trait probe (gender, ethnicity, age group from "
                            "dlib's descriptor of a photo)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Fit the trait probe of a bundle: a logistic regression per trait on dlib's "
                    "descriptor, which reads a suspect photo's gender, ethnicity and age group "
                    "better than the attribute model's 64-px crop does. It is fitted on the "
                    "UTKFace faces of RUN/set (an identity training run's distillation set "
                    "serves as it is; without one, --utkface builds a set of UTKFace faces "
                    "there, resumable) and compared with the attribute model on the faces of "
                    "the attribute model's held-out share, which it does not train on. The "
                    "probe is added to the bundle as its trait_probe part (its hash changes).")
    tp.add_argument("--bundle", required=True, type=Path, help="bundle directory")
    tp.add_argument("--run-dir", required=True, type=Path,
                    help="folder whose set/ holds (or will hold) the embedded faces")
    tp.add_argument("--utkface", type=Path, default=None,
                    help="UTKFace folder, to build RUN/set when it holds no faces")
    tp.add_argument("--faces", type=int, default=6000, help="UTKFace faces of a built set")
    tp.add_argument("--workers", type=int, default=2,
                    help="processes that embed a built set with dlib")
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--no-export", action="store_true",
                    help="measure only; do not add the probe to the bundle")
    tp.set_defaults(handler=_train_trait_probe)


def _train(args: argparse.Namespace, settings) -> int:
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads, training=True)
    from models.bundle import BundleError
    from models.training.identity_net import IdentityTrainConfig, IdentityTrainer

    try:
        cfg = IdentityTrainConfig(
            bundle=str(args.bundle), utkface=str(args.utkface) if args.utkface else None,
            celeba=str(args.celeba) if args.celeba else None,
            utkface_faces=args.utkface_faces, celeba_faces=args.celeba_faces,
            generated_groups=args.generated_groups, neighbours=args.neighbours,
            workers=args.workers, steps=args.steps, batch_size=args.batch, lr=args.lr,
            distance_weight=args.distance_weight, from_attributes=not args.from_scratch,
            seed=args.seed, tick_steps=args.tick_steps, snapshot_steps=args.snapshot_steps,
            max_minutes=args.max_minutes, progress=not args.no_progress,
            export=not args.no_export)
        summary = IdentityTrainer(cfg, args.run_dir).train()
    except (ValueError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    from setup.commands.train import print_step_summary

    print_step_summary(summary, args.bundle)
    return 0


def _train_trait_probe(args: argparse.Namespace, settings) -> int:
    configure_tensorflow(settings.tf_intra_threads, settings.tf_inter_threads)
    from models.bundle import BundleError
    from models.training.trait_probe import TraitProbeConfig, train_trait_probe

    try:
        summary = train_trait_probe(TraitProbeConfig(
            bundle=str(args.bundle), run_dir=str(args.run_dir),
            utkface=str(args.utkface) if args.utkface else None, faces=args.faces,
            workers=args.workers, seed=args.seed, export=not args.no_export))
    except (ValueError, BundleError) as exc:
        raise CommandError(str(exc)) from None
    held_out = summary["held_out"]
    print(f"trait probe fitted on {summary['training_faces']} UTKFace faces; read right on "
          f"{held_out['faces']} held-out faces:")
    readers = [r for r in ("probe", "attribute_model", "both") if r in held_out]
    print(f"  {'trait':<22}" + "".join(f"{r.replace('_', ' '):>17}" for r in readers))
    for key in held_out["probe"]:
        print(f"  {key.replace('_', ' '):<22}"
              + "".join(f"{100 * held_out[r][key]:>16.1f}%" for r in readers))
    if summary["bundle_hash"]:
        print(f"added to {args.bundle} (hash {summary['bundle_hash'][:12]})")
    return 0
