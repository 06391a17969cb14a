"""``ligan dataset build|merge|report|submit``: training datasets from folders of photos.

``build`` runs the standard chain (size → colour → face extraction → quality → identity
near-duplicates → RGB) and writes TFRecord shards with a report. Inside a SLURM job array it
takes its block of the file list from ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``
(or ``--shard-index``/``--shard-count``); ``merge`` then combines the tasks' reports and
``submit`` does both through the SLURM scheduler of ``jobs/``.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from setup.entry import CommandError


def register(sub: argparse._SubParsersAction, settings) -> None:
    ds = sub.add_parser("dataset", help="build training datasets (TFRecord shards) from photos",
                        description="Build face datasets for training: detection, FFHQ "
                                    "alignment, filters, identity near-duplicate removal, "
                                    "TFRecord shards and a report of every drop.")
    dsub = ds.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    build = dsub.add_parser("build", help="build shards from folders of photos",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                            description="Stream the photos under SRC through the pipeline and "
                                        "write OUT/data-*.tfrecord, OUT/report.json and "
                                        "contact sheets of each rejection reason.")
    build.add_argument("sources", nargs="+", metavar="SRC", help="folders (recursive) or files")
    add_build_options(build)
    build.add_argument("--shard-index", type=int, default=None,
                       help="this task's block of the sorted file list (default: "
                            "SLURM_ARRAY_TASK_ID, else 0)")
    build.add_argument("--shard-count", type=int, default=None,
                       help="number of blocks (default: SLURM_ARRAY_TASK_COUNT, else 1)")
    build.add_argument("--no-progress", action="store_true")
    build.set_defaults(handler=_build)

    merge = dsub.add_parser("merge", help="combine the reports of a job array's tasks",
                            description="Merge OUT/tasks/*/report.json into OUT/report.json and "
                                        "contact sheets (the shards are already in OUT).")
    merge.add_argument("out", type=Path, metavar="DIR")
    merge.set_defaults(handler=_merge)

    report = dsub.add_parser("report", help="print a dataset's report as a table",
                             description="Print DIR/report.json as a table: each step, how many "
                                         "images it kept and dropped, and why.")
    report.add_argument("out", type=Path, metavar="DIR")
    report.add_argument("--files", action="store_true", help="also list every dropped file")
    report.set_defaults(handler=_report)

    submit = dsub.add_parser("submit", help="build as a SLURM job array, then merge",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                             description="Submit 'dataset build' as a SLURM job array of TASKS "
                                         "tasks and a 'dataset merge' job that runs after all "
                                         "of them succeeded.")
    submit.add_argument("sources", nargs="+", metavar="SRC")
    add_build_options(submit)
    submit.add_argument("--tasks", type=int, required=True, help="tasks in the job array")
    submit.add_argument("--partition", default=None)
    submit.add_argument("--account", default=None)
    submit.add_argument("--time-limit-min", type=int, default=240, help="per task")
    submit.add_argument("--memory-mb", type=int, default=8000, help="per task")
    submit.add_argument("--max-parallel", type=int, default=None,
                        help="at most this many tasks at once (sbatch --array=0-N%%M)")
    submit.set_defaults(handler=_submit)
    from jobs.submit import make_submittable

    # ``build --slurm``: the whole build as one batch job (``submit``: a job array).
    make_submittable(dsub, ("dataset",), settings, run_dir_dest="out", names=("build",), gpus=0)


def add_build_options(p: argparse.ArgumentParser) -> None:
    """The pipeline's settings, shared by ``build`` and ``submit``."""
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--resolution", type=int, default=64, help="side of the aligned faces")
    p.add_argument("--workers", type=int, default=max(1, min(4, len(os.sched_getaffinity(0)))),
                   help="processes for the per-image steps (default: the CPUs this process may "
                        "use, at most 4)")
    p.add_argument("--min-size", type=int, default=128, help="minimum shorter side of a photo")
    p.add_argument("--min-colourfulness", type=float, default=3.0,
                   help="below: dropped as grayscale")
    p.add_argument("--min-face-size", type=float, default=80, help="minimum face box side, px")
    p.add_argument("--several-faces", choices=("largest", "drop"), default="largest")
    p.add_argument("--detector", choices=("hog", "cnn"), default="hog")
    p.add_argument("--upsample", type=int, default=1, help="detector image doublings")
    p.add_argument("--align", choices=("ffhq", "padded"), default="ffhq")
    p.add_argument("--framing", choices=("ffhq", "utkface"), default="ffhq",
                   help="with --align ffhq: FFHQ's crop, or UTKFace's tighter chip (train with "
                        "the same --framing)")
    p.add_argument("--min-sharpness", type=float, default=50.0,
                   help="variance of the Laplacian of the aligned face (resolution-dependent)")
    p.add_argument("--max-upscale", type=float, default=2.0,
                   help="drop faces enlarged more than this by alignment (0: off)")
    p.add_argument("--window-size", type=int, default=1000,
                   help="kept faces each new face is compared with")
    p.add_argument("--similarity-threshold", type=float, default=None,
                   help="identity distance below which a face is a near-duplicate "
                        "(default: models.dataset.DEFAULT_SIMILARITY_THRESHOLD, 0.1)")
    p.add_argument("--shard-size", type=int, default=2000, help="faces per TFRecord shard")
    p.add_argument("--holdout", type=float, default=0.0,
                   help="share of the kept faces (0-0.5) written to OUT/heldout/ instead, for "
                        "the quality metrics (--metrics OUT/heldout); chosen by file name")


def build_dataset(args: argparse.Namespace, shard_index: int = 0, shard_count: int = 1):
    """The standard chain with the command line's settings (a :class:`FacesDataset`)."""
    from models.dataset import (DEFAULT_SIMILARITY_THRESHOLD, FacesDataset, color_filter,
                                convert_to_rgb, extract_face, quality_filter,
                                remove_too_similar, size_filter)

    threshold = args.similarity_threshold
    return (FacesDataset.load(args.sources, shard_index=shard_index, shard_count=shard_count)
            .filter(size_filter, min_size=args.min_size)
            .filter(color_filter, min_colourfulness=args.min_colourfulness)
            .apply(extract_face, resolution=args.resolution, min_face_size=args.min_face_size,
                   several_faces=args.several_faces, upsample=args.upsample,
                   detector=args.detector, mode=args.align, framing=args.framing)
            .filter(quality_filter, min_sharpness=args.min_sharpness,
                    max_upscale=args.max_upscale or None)
            .filter_window(remove_too_similar, window_size=args.window_size,
                           similarity_threshold=DEFAULT_SIMILARITY_THRESHOLD
                           if threshold is None else threshold)
            .apply(convert_to_rgb))


def array_task() -> tuple[int, int] | None:
    """(index, count) of this SLURM job-array task, from the environment, or None."""
    env = os.environ
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    if "SLURM_ARRAY_TASK_COUNT" in env:
        count = int(env["SLURM_ARRAY_TASK_COUNT"])
    else:
        count = int(env["SLURM_ARRAY_TASK_MAX"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0")) + 1
    return index, count


def _build(args: argparse.Namespace, settings) -> int:
    task = array_task() or (0, 1)
    index = task[0] if args.shard_index is None else args.shard_index
    count = task[1] if args.shard_count is None else args.shard_count
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    try:
        dataset = build_dataset(args, index, count)
        if not dataset.files:
            raise CommandError(f"no image files under {', '.join(args.sources)}"
                               + (f" for task {index} of {count}" if count > 1 else ""))
        dataset.create(args.out, shard_size=args.shard_size, workers=args.workers,
                       progress=not args.no_progress, holdout=args.holdout)
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    return 0


def _merge(args: argparse.Namespace, settings) -> int:
    from models.dataset import format_table, merge

    try:
        report = merge(args.out)
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    print(format_table(report))
    return 0


def _report(args: argparse.Namespace, settings) -> int:
    from models.dataset import format_table, load_report

    path = args.out / "report.json"
    if not path.is_file():
        hint = " (a job array: run 'ligan dataset merge' first)" \
            if (args.out / "tasks").is_dir() else ""
        raise CommandError(f"no report at {path}{hint}")
    report = load_report(path)
    print(format_table(report))
    if args.files:
        for d in report["dropped"]:
            print(f"{d['file']}\t{d['step']}\t{d['reason']}\t{d['detail']}")
    return 0


def _submit(args: argparse.Namespace, settings) -> int:
    from jobs import SchedulerError, make_scheduler
    from jobs.dataset_array import submit_array

    try:
        scheduler = make_scheduler("slurm", partition=args.partition, account=args.account)
        array_id, merge_id = submit_array(scheduler, args, args.tasks,
                                          time_limit_s=args.time_limit_min * 60,
                                          memory_mb=args.memory_mb,
                                          max_parallel=args.max_parallel)
    except (SchedulerError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"submitted job array {array_id} ({args.tasks} tasks) and merge job {merge_id}; "
          f"the report will be {args.out / 'report.json'}")
    return 0
