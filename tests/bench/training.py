"""StyleGAN2 training throughput on this machine, and whether the data loader keeps up.

Two numbers per resolution, measured separately:

* **training**: images per second of complete G+D steps (``Trainer``'s compiled step function
  with the real schedule: path-length regularisation every 4th, R1 every 16th minibatch) on a
  batch already in memory, after every step variant has been compiled once (``--quick`` times
  plain steps only, to keep the smoke test short);
* **loading**: images per second of the TFRecord pipeline of ``models/training/data.py``
  (decode, resize, mirror, batch) over a shard of JPEGs written for the run (UTKFace faces when
  ``../shared/data/utkface`` exists, else random images).

The ratio loading ÷ training must exceed 1: the loader is then never the bottleneck (it runs on
other threads while the step computes, so the real margin is larger than the ratio suggests
when the CPU is not saturated).

With ``--precision float32 bfloat16`` (models/precision.py) every configuration is trained in
both, and so is the **encoder** (``EncoderTrainer`` steps on a bundle of the same generator);
each gets a line ``bf16/fp32 X.XX`` (images per second) and the run measures the 3×3
convolution peak in both precisions, so that the ratio can be read against what the CPU's
bfloat16 units give (bf16/fp32 of the peak; about 1 on CPUs without AMX or AVX-512 BF16, where
bfloat16 is emulated).

With ``--inter-threads 1 2`` the whole measurement runs once per number of TensorFlow inter-op
threads (a process's thread pools are fixed once TensorFlow starts, so each in its own process),
and each configuration gets a line ``inter-op 2/1 X.XX`` (images per second): the evidence for
``models.runtime.TRAINING_INTER_THREADS``. Run from the repository root::

    .venv/bin/python tests/bench/training.py                 # 64 and 128 px
    .venv/bin/python tests/bench/training.py --resolutions 64 --precision float32 bfloat16
    .venv/bin/python tests/bench/training.py --resolutions 64 --inter-threads 1 2
    .venv/bin/python tests/bench/training.py --quick         # 32 px, a few plain steps (the test)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

UTKFACE = Path(__file__).resolve().parents[3] / "shared" / "data" / "utkface"


def write_shard(folder: Path, count: int, side: int = 200) -> str:
    """A TFRecord shard of ``count`` JPEGs (UTKFace faces or random pixels); its description."""
    import cv2
    import numpy as np
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(UTKFACE.glob("*.jpg"))[:count] if UTKFACE.is_dir() else []
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(str(folder / "data-00000.tfrecord")) as writer:
        for i in range(count):
            if files:
                data = files[i % len(files)].read_bytes()
            else:
                img = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
                data = cv2.imencode(".jpg", img)[1].tobytes()
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    return f"{count} UTKFace JPEGs" if files else f"{count} random {side}-px JPEGs"


def loading_rate(data: Path, resolution: int, batch: int, batches: int) -> float:
    from models.training.data import training_dataset

    it = iter(training_dataset(data, resolution, batch, seed=0))
    next(it)  # pipeline start-up
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - t0)


def training_rate(data: Path, run_dir: Path, resolution: int, batch: int, steps: int,
                  channel_base: int, channel_max: int, precision: str,
                  schedule: bool = True) -> float:
    """Images per second of G+D steps; leaves the run's bundle in ``run_dir/bundle``.

    ``schedule=False`` times plain steps only (no R1, no path length): compiling the three
    regularised variants is most of a short run's time, and tests/test_training.py covers them.
    """
    import tensorflow as tf

    from models.training.data import training_dataset
    from models.training.stylegan2 import TrainConfig, Trainer

    cfg = TrainConfig(data=str(data), resolution=resolution, batch_size=batch, total_kimg=1,
                      z_dim=256, w_dim=256, mapping_layers=4, channel_base=channel_base,
                      channel_max=channel_max, progress=False, precision=precision)
    trainer = Trainer(cfg, run_dir)
    real = next(iter(training_dataset(data, resolution, batch, seed=0)))
    beta = tf.constant(trainer.ema_beta(10_000), tf.float32)
    def variant(step: int) -> tuple[bool, bool]:
        if not schedule:
            return False, False
        return step % cfg.pl_interval == 0, step % cfg.r1_interval == 0

    for key in {variant(0), variant(1), *(((True, True), (True, False), (False, True))
                                          if schedule else ())}:
        trainer._step_fn(*key)(real, beta)  # compile every variant outside the clock
    t0 = time.perf_counter()
    for step in range(steps):
        stats = trainer._step_fn(*variant(step))(real, beta)
    float(stats["loss/G"])  # wait for the last step
    rate = steps * batch / (time.perf_counter() - t0)
    if not (run_dir / "bundle").exists():
        trainer.export_bundle(0)
    return rate


def encoder_rate(data: Path, bundle: Path, run_dir: Path, batch: int, steps: int,
                 channel_base: int, channel_max: int, precision: str) -> float:
    """Images per second of encoder training steps (half generated, half real faces)."""
    from models.training.data import training_dataset
    from models.training.encoder import EncoderTrainConfig, EncoderTrainer

    cfg = EncoderTrainConfig(bundle=str(bundle), data=str(data), batch_size=batch,
                             channel_base=channel_base, channel_max=channel_max,
                             progress=False, export=False, precision=precision)
    trainer = EncoderTrainer(cfg, run_dir)
    real = next(iter(training_dataset(data, trainer.enc_cfg.resolution, trainer.n_real, 0)))
    trainer._train_step(real)  # compile outside the clock
    t0 = time.perf_counter()
    for _ in range(steps):
        stats = trainer._train_step(real)
    float(stats["total"])
    return steps * batch / (time.perf_counter() - t0)


def conv_peak(dtype: str, shape: tuple[int, int, int, int] = (16, 64, 64, 128)) -> float:
    """GFLOP/s of a compiled 3×3 convolution in ``dtype`` (best of 3)."""
    import tensorflow as tf

    n, h, w, c = shape
    x = tf.cast(tf.random.normal([n, h, w, c], seed=1), dtype)
    k = tf.cast(tf.random.normal([3, 3, c, c], seed=2), dtype)
    conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, strides=1, padding="SAME"))
    conv(x, k).numpy()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        conv(x, k).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n * h * w * c * c * 9 / best / 1e9


def ratio_lines(report: dict) -> list[str]:
    """``bf16/fp32`` per configuration, and the same ratio of the convolution peak."""
    lines = []
    for kind, rows in (("G+D", report["results"]), ("encoder", report["encoder"])):
        by = {(r["resolution"], r["precision"]): r["train_img_s"] for r in rows}
        for (res, precision), rate in by.items():
            if precision == "bfloat16" and (res, "float32") in by:
                lines.append(f"{kind} {res} px, channel max {report['channel_max']}: "
                             f"bf16/fp32 {rate / by[(res, 'float32')]:.2f}")
    peak = report["conv_peak_gflops"]
    if {"float32", "bfloat16"} <= set(peak):
        lines.append(f"3×3 conv peak: float32 {peak['float32']:.0f}, bfloat16 "
                     f"{peak['bfloat16']:.0f} GFLOP/s (bf16/fp32 "
                     f"{peak['bfloat16'] / peak['float32']:.2f}: what this CPU's bfloat16 units "
                     f"give at best)")
    return lines


def compare_inter_threads(argv: list[str], values: list[int], out: Path | None) -> int:
    """Run this benchmark with the options ``argv`` once per inter-op thread count; print each
    run's tables and a ratio line per configuration against the first count, and write the
    reports and ratios to ``out``. Exit status: the worst of the runs'."""
    reports, status = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in values:
            out_n = Path(tmp) / f"inter{n}.json"
            print(f"--- {n} inter-op thread(s)", flush=True)
            proc = subprocess.run([sys.executable, __file__, *argv, "--inter-threads", str(n),
                                   "--json", str(out_n)])
            status = max(status, proc.returncode)
            if not out_n.exists():
                print(f"the run with {n} inter-op thread(s) wrote no report")
                return max(status, 1)
            reports.append(json.loads(out_n.read_text()))
    base, ratios = reports[0], []
    for report in reports[1:]:
        for kind in ("results", "encoder"):
            rates = {(r["resolution"], r["precision"]): r["train_img_s"] for r in base[kind]}
            for row in report[kind]:
                key = (row["resolution"], row["precision"])
                if rates.get(key):
                    ratio = round(row["train_img_s"] / rates[key], 3)  # printed as stored
                    ratios.append({"kind": "G+D" if kind == "results" else "encoder",
                                   "resolution": key[0], "precision": key[1],
                                   "threads": [base["inter_threads"], report["inter_threads"]],
                                   "ratio": ratio})
                    print(f"{ratios[-1]['kind']} {key[0]} px {key[1]}: inter-op "
                          f"{report['inter_threads']}/{base['inter_threads']} {ratio:.2f}")
    if out:
        out.write_text(json.dumps({"runs": reports, "inter_op_ratios": ratios}, indent=2) + "\n")
    return status


def _child_argv(args: argparse.Namespace) -> list[str]:
    """The options of this run, for a run of one inter-op thread count."""
    argv = ["--quick"] if args.quick else []
    if args.resolutions:
        argv += ["--resolutions", *map(str, args.resolutions)]
    argv += ["--batch", str(args.batch), "--steps", str(args.steps),
             "--channel-base", str(args.channel_base), "--channel-max", str(args.channel_max),
             "--precision", *args.precision]
    if args.encoder_steps is not None:
        argv += ["--encoder-steps", str(args.encoder_steps)]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="32 px, a few plain steps (smoke test)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=16, help="timed training steps")
    parser.add_argument("--channel-base", type=int, default=4096)
    parser.add_argument("--channel-max", type=int, default=128)
    parser.add_argument("--precision", nargs="+", default=["float32"],
                        choices=("float32", "bfloat16", "float16"),
                        help="precisions to train in (several: bf16/fp32 ratios)")
    parser.add_argument("--encoder-steps", type=int, default=None,
                        help="timed encoder steps per precision (default: --steps; 0: none)")
    parser.add_argument("--inter-threads", type=int, nargs="+", default=None,
                        help="TensorFlow inter-op threads (several: one run each, and their "
                             "ratios; default: what `ligan train` uses)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)
    if args.inter_threads and len(args.inter_threads) > 1:
        return compare_inter_threads(_child_argv(args), args.inter_threads, args.json)
    if args.quick:
        resolutions, batch, steps, images = args.resolutions or [32], 4, 4, 64
    else:
        resolutions, batch, steps, images = args.resolutions or [64, 128], args.batch, \
            args.steps, 512
    encoder_steps = args.encoder_steps if args.encoder_steps is not None else (
        2 if args.quick else steps)

    from models.runtime import TRAINING_INTER_THREADS, configure_tensorflow

    inter_threads = args.inter_threads[0] if args.inter_threads else TRAINING_INTER_THREADS
    configure_tensorflow(0, inter_threads)
    import tensorflow as tf

    report: dict = {"cpus": len(os.sched_getaffinity(0)), "inter_threads": inter_threads,
                    "gpus": len(tf.config.list_physical_devices("GPU")), "batch": batch,
                    "steps": steps, "channel_base": args.channel_base,
                    "channel_max": args.channel_max, "precision": args.precision,
                    "results": [], "encoder": [], "conv_peak_gflops": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        report["data"] = write_shard(data, images)
        print(f"training throughput on {report['cpus']} CPU(s), {report['gpus']} GPU(s), "
              f"{inter_threads} inter-op thread(s); batch {batch}, channel base "
              f"{args.channel_base}, max {args.channel_max}; "
              f"data: {report['data']}")
        for dtype in sorted({p if p != "float16" else "float32" for p in args.precision}):
            report["conv_peak_gflops"][dtype] = round(conv_peak(dtype), 1)
        print(f"{'px':>5} {'precision':>9} {'train img/s':>12} {'load img/s':>12} "
              f"{'load/train':>11}")
        for res in resolutions:
            load = loading_rate(data, res, batch, max(4, images // batch))
            for precision in args.precision:
                run = Path(tmp) / f"run{res}-{precision}"
                train = training_rate(data, run, res, batch, steps, args.channel_base,
                                      args.channel_max, precision, schedule=not args.quick)
                row = {"resolution": res, "precision": precision, "train_img_s": round(train, 2),
                       "load_img_s": round(load, 1), "ratio": round(load / train, 1)}
                report["results"].append(row)
                print(f"{res:>5} {precision:>9} {train:>12.2f} {load:>12.1f} "
                      f"{load / train:>10.1f}×")
            if encoder_steps:
                bundle = Path(tmp) / f"run{res}-{args.precision[0]}" / "bundle"
                for precision in args.precision:
                    if precision == "float16":
                        continue
                    rate = encoder_rate(data, bundle, Path(tmp) / f"enc{res}-{precision}",
                                        max(batch // 2, 2), encoder_steps, args.channel_base,
                                        args.channel_max, precision)
                    report["encoder"].append({"resolution": res, "precision": precision,
                                              "train_img_s": round(rate, 2)})
                    print(f"{res:>5} {precision:>9} {rate:>12.2f}  (encoder steps)")
        for line in ratio_lines(report):
            print(line)
    slow = [r for r in report["results"] if r["ratio"] <= 1]
    print("the loader is " + ("the bottleneck at " + ", ".join(f"{r['resolution']} px"
                                                               for r in slow)
                              if slow else "faster than training at every resolution"))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
