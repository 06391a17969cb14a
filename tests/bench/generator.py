"""CPU benchmark of the StyleGAN2 generator: throughput, memory, FLOP bound and references.

What it measures, for every (resolution, batch) config:

* **ours** – ``Generator.map_compiled`` + ``Generator.synthesize`` (compiled ``tf.function``s,
  ``noise_mode="const"``, ``truncation_psi=1``): images per second and peak memory. Mapping is
  *included* in the timed call, as the reference times ``G(z, c)`` = mapping + synthesis; the
  images are copied to NumPy inside the timed call, as a caller would.
* **naive** – ``tests/reference_stylegan2.py`` (``map_one`` + ``synthesize_one``): the eager
  per-sample implementation with explicitly modulated per-sample kernels. It is measured once per
  resolution at batch 1 (a per-sample loop has the same images/s at any batch); ``ours/naive``
  divides each config's throughput by it.
* **FLOP bound** – the generator's FLOPs per image are counted analytically (see
  :func:`models.stylegan2.config.generator_flops`); the machine's peak convolution FLOP/s is
  measured with ``tf.nn.conv2d`` in a ``tf.function`` on large 3×3 convolutions (best of a few
  shapes and runs, measured before and after the configs). ``% bound`` = achieved FLOP/s ÷ peak
  FLOP/s, i.e. images/s ÷ (peak FLOP/s ÷ FLOPs per image). Because other work on the machine lowers
  both numbers, each config's process also measures the conv peak right after its timing;
  ``% local`` divides by that load-matched peak instead of the run's best.
* **reference** (optional) – NVIDIA's official StyleGAN2-ADA PyTorch generator on the same CPU,
  run by ``tests/bench/reference_stylegan2_ada.py`` in a separate interpreter with the same
  architecture, resolution, batch and thread count, right after ours for each config so that
  both see the same machine load. ``ours/ref`` is the ratio of images per second.

Every measurement runs in a fresh subprocess of this script, so ``peak MB`` is that process's own
``ru_maxrss`` (TensorFlow runtime + model + that config's activations); ``base MB`` is the RSS
after importing TensorFlow and building the model, before the first call. Both implementations
use all cores (TensorFlow: default intra-op pool and one inter-op thread, as in
``models.runtime``; PyTorch: ``torch.set_num_threads(os.cpu_count())``).

Goals (from the issue; printed as verdicts, never asserted, because absolute speed depends on
the machine): at least 1.5× the images/s of the official StyleGAN2-ADA PyTorch generator for
each config, and at least 70 % of the FLOP bound at batch 8 and above.

Run from the repository root::

    .venv/bin/python tests/bench/generator.py                       # 64/128/256 px, batch 1/8/32
    .venv/bin/python tests/bench/generator.py --resolutions 64 --batches 8 --seconds 4 \\
        --reference-python /work/ref/venv/bin/python --ada-root /work/ref/stylegan2-ada-pytorch \\
        --json /tmp/bench_generator.json
    .venv/bin/python tests/bench/generator.py --quick               # tiny smoke run (~30 s)

The reference is never part of this repository. To enable it, outside the repo::

    git clone <NVIDIA stylegan2-ada-pytorch repository> /work/ref/stylegan2-ada-pytorch
    python3 -m venv /work/ref/venv && /work/ref/venv/bin/pip install torch==2.13.0 numpy

**Precision** (``--precision float32 bfloat16``, see ``models/precision.py``): every config is
measured in each precision given; the bfloat16 rows' ``% bound`` is against the *bfloat16*
convolution peak measured in the same run, and a line ``bf16/fp32 X.XX`` per config gives the
ratio of images per second. With both precisions, a **quality guard** renders the default
bundle's first 256 seeds in each and prints the mean dlib identity distance between the two
renders of each face (goal < 0.05; dlib's same-person threshold is 0.6) and the mean absolute
pixel difference. On a CPU without bfloat16 units (no AMX, no AVX-512 BF16) bfloat16 is
emulated and slower than float32; ``auto`` then never picks it.

Rendering is timed batched (``reproducible=False``): the throughput of the kernels. Faces that
get records are rendered one by one so that a face never depends on its batch (see
``Generator.synthesize``); at batch 1 the two are the same.

Progress goes to stderr; the summary table goes to stdout; ``--json`` writes every number.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
REFERENCE_SCRIPT = Path(__file__).resolve().parent / "reference_stylegan2_ada.py"
Z_DIM = 512
# Large 3×3 convolutions for the peak FLOP/s: (batch, height, width, in channels, out channels).
PEAK_SHAPES = [(8, 32, 32, 512, 512), (8, 64, 64, 256, 256), (32, 16, 16, 512, 512)]
QUICK_PEAK_SHAPES = [(4, 32, 32, 256, 256)]
GOAL_REF_RATIO = 1.5
GOAL_BOUND_PCT = 70.0
GOAL_BOUND_MIN_BATCH = 8
PRECISIONS = ("float32", "bfloat16")
QUALITY_SEEDS = 256
GOAL_QUALITY_DISTANCE = 0.05


# --------------------------------------------------------------------------------------------
# Child processes: one measurement each, one JSON line on stdout
# --------------------------------------------------------------------------------------------

def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _time_calls(step: Callable[[], Any], seconds: float, min_calls: int = 2) -> tuple[int, float]:
    """Call ``step`` until ``seconds`` have passed (and at least ``min_calls`` times)."""
    calls, t0 = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - t0 < seconds:
        step()
        calls += 1
    return calls, time.perf_counter() - t0


def _start_tensorflow() -> Any:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from models.runtime import configure_tensorflow

    configure_tensorflow(intra_threads=0, inter_threads=1)
    import tensorflow as tf

    return tf


def _build_generator(res: int, channel_base: int, channel_max: int) -> Any:
    from models.stylegan2 import Generator, GeneratorConfig

    cfg = GeneratorConfig(resolution=res, z_dim=Z_DIM, channel_base=channel_base,
                          channel_max=channel_max)
    return Generator(cfg, seed=0)


def child_ours(args: argparse.Namespace, res: int, batch: int, bf16: int = 0) -> dict[str, Any]:
    """Time compiled mapping + synthesis for one config."""
    import numpy as np

    tf = _start_tensorflow()
    from models.stylegan2.config import generator_flops

    g = _build_generator(res, args.channel_base, args.channel_max)
    precision = "bfloat16" if bf16 else "float32"
    g.use_precision(precision)
    base = _rss_mb()
    z = np.random.default_rng(0).standard_normal((batch, Z_DIM)).astype(np.float32)

    def step() -> np.ndarray:
        ws = g.map_compiled(z, truncation_psi=1.0, reproducible=False)
        return g.synthesize(ws, "const", reproducible=False).numpy()

    img = step()  # traces and compiles both functions
    assert img.shape == (batch, res, res, 3), img.shape
    step()
    calls, elapsed = _time_calls(step, args.seconds)
    peak_rss = _peak_rss_mb()  # before the conv peak below allocates its own tensors
    # The conv peak again, in this process right after the timing, so that the "% local"
    # column compares against a peak measured under the same machine load.
    local = measure_conv_peak(tf, QUICK_PEAK_SHAPES if args.quick else PEAK_SHAPES[:1], runs=3,
                              dtype=precision)
    return {"resolution": res, "batch": batch, "precision": precision,
            "images_per_s": calls * batch / elapsed,
            "peak_rss_mb": round(peak_rss, 1), "base_rss_mb": round(base, 1),
            "calls": calls, "seconds": round(elapsed, 3), "num_ws": g.num_ws,
            "local_peak_gflops_per_s": local["peak_gflops_per_s"],
            "tensorflow": tf.__version__, **generator_flops(g.cfg)}


def child_naive(args: argparse.Namespace, res: int) -> dict[str, Any]:
    """Time the eager per-sample implementation, one image at a time."""
    import numpy as np

    _start_tensorflow()
    from tests.reference_stylegan2 import map_one, synthesize_one

    g = _build_generator(res, args.channel_base, args.channel_max)
    base = _rss_mb()
    rng = np.random.default_rng(0)

    def step() -> np.ndarray:
        w = map_one(g, rng.standard_normal(Z_DIM).astype(np.float32))
        return synthesize_one(g, np.tile(w[None], [g.num_ws, 1]), "const")

    assert step().shape == (res, res, 3)  # warm-up
    images, elapsed = _time_calls(step, min(args.seconds, 3.0))
    return {"resolution": res, "images_per_s": images / elapsed,
            "peak_rss_mb": round(_peak_rss_mb(), 1), "base_rss_mb": round(base, 1),
            "images": images, "seconds": round(elapsed, 3)}


def measure_conv_peak(tf: Any, shapes: list[tuple[int, int, int, int, int]],
                      runs: int, dtype: str = "float32") -> dict[str, Any]:
    """Best FLOP/s of a plain compiled 3×3 ``tf.nn.conv2d`` over ``shapes`` (NHW, Cin, Cout),
    in ``dtype`` (float32 or bfloat16)."""
    conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, strides=1, padding="SAME"))
    per_shape = []
    for n, h, w, cin, cout in shapes:
        x = tf.cast(tf.random.normal([n, h, w, cin], seed=1), dtype)
        k = tf.cast(tf.random.normal([3, 3, cin, cout], seed=2), dtype)
        conv(x, k).numpy()  # trace + warm-up
        best = float("inf")
        for _ in range(runs):
            t0 = time.perf_counter()
            conv(x, k)  # eager CPU execution is synchronous: the result is ready here
            best = min(best, time.perf_counter() - t0)
        flops = 2 * n * h * w * cin * cout * 9
        per_shape.append({"shape": [n, h, w, cin, cout], "flops": flops, "best_s": best,
                          "gflops_per_s": flops / best / 1e9})
    return {"peak_gflops_per_s": max(s["gflops_per_s"] for s in per_shape), "shapes": per_shape}


def child_peak(args: argparse.Namespace, bf16: int = 0) -> dict[str, Any]:
    """The machine's convolution peak: several large shapes, best of a few runs each."""
    tf = _start_tensorflow()
    return measure_conv_peak(tf, QUICK_PEAK_SHAPES if args.quick else PEAK_SHAPES,
                             runs=2 if args.quick else 4,
                             dtype="bfloat16" if bf16 else "float32")


def child_quality(args: argparse.Namespace, seeds: int) -> dict[str, Any]:
    """The default bundle's first ``seeds`` seeds rendered in float32 and in bfloat16: mean dlib
    identity distance between the two renders of each face, and the mean pixel difference."""
    import numpy as np

    _start_tensorflow()
    from models.bundle import load_bundle
    from models.faces.identity import aligned_face_embedding, identity_distance
    from models.generate import z_from_seed
    from models.images import to_uint8

    bundle = load_bundle(REPO / "models" / "bundles" / "default")
    g = bundle.generator
    z = np.stack([z_from_seed(s, g.cfg.z_dim) for s in range(seeds)])
    ws = g.map_compiled(z, 0.7, reproducible=False)
    images = {p: to_uint8(g.synthesize(ws, precision=p, reproducible=False).numpy())
              for p in ("float32", "bfloat16")}
    distances = [float(identity_distance(aligned_face_embedding(a)[0],
                                         aligned_face_embedding(b)[0]))
                 for a, b in zip(images["float32"], images["bfloat16"])]
    diff = np.abs(images["float32"].astype(int) - images["bfloat16"].astype(int))
    return {"seeds": seeds, "mean_identity_distance": float(np.mean(distances)),
            "max_identity_distance": float(np.max(distances)),
            "mean_abs_pixel_difference": float(diff.mean()),
            "max_abs_pixel_difference": int(diff.max())}


# --------------------------------------------------------------------------------------------
# Parent: orchestration, reference, report
# --------------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run_json(cmd: list[str], what: str) -> dict[str, Any]:
    """Run a child command and parse the JSON on the last line of its stdout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def _child_cmd(args: argparse.Namespace, kind: str, *numbers: int) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
           "--channel-base", str(args.channel_base), "--channel-max", str(args.channel_max),
           "--seconds", str(args.seconds), "--child-args", *map(str, numbers)]
    return cmd + (["--quick"] if args.quick else [])


def reference_status(args: argparse.Namespace) -> str | None:
    """None when the reference can run, else why it is skipped (always printed)."""
    how = ("to enable it: git clone https://github.com/NVlabs/stylegan2-ada-pytorch DIR; "
           "python3 -m venv V && V/bin/pip install torch==2.13.0 numpy; then pass "
           "--reference-python V/bin/python --ada-root DIR")
    if args.quick:
        return "not run in --quick mode"
    if not args.reference_python or not args.ada_root:
        return f"--reference-python and --ada-root not both given; {how}"
    if not Path(args.reference_python).exists():
        return f"--reference-python {args.reference_python} does not exist; {how}"
    if not (Path(args.ada_root) / "training" / "networks.py").exists():
        return f"--ada-root {args.ada_root} is not a stylegan2-ada-pytorch checkout; {how}"
    return None


def run_reference(args: argparse.Namespace, res: int, batch: int) -> dict[str, Any]:
    cmd = [args.reference_python, str(REFERENCE_SCRIPT), "--ada-root", args.ada_root,
           "--resolutions", str(res), "--batches", str(batch),
           "--channel-base", str(args.channel_base), "--channel-max", str(args.channel_max),
           "--seconds", str(args.seconds), "--threads", str(args.threads)]
    out = _run_json(cmd, f"reference res={res} batch={batch}")
    return {**out["results"][0], "torch": out.get("torch"), "threads": out.get("threads")}


def measure_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run every measurement; returns the JSON report."""
    skipped = reference_status(args)
    if skipped:
        _log(f"[bench] reference comparison SKIPPED: {skipped}")
    peaks: dict[str, list[dict[str, Any]]] = {}
    for precision in args.precision:
        _log(f"[bench] peak convolution FLOP/s in {precision} ...")
        peaks[precision] = [_run_json(_child_cmd(args, "peak", _bf16(precision)),
                                      f"peak FLOP/s measurement ({precision})")]
        _log(f"[bench]   {peaks[precision][0]['peak_gflops_per_s']:.1f} GFLOP/s")
    naive: dict[int, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for res in args.resolutions:
        _log(f"[naive] res={res} per-sample ...")
        naive[res] = _run_json(_child_cmd(args, "naive", res), f"naive res={res}")
        _log(f"[naive]   {naive[res]['images_per_s']:.3f} img/s")
        for batch, precision in ((b, p) for b in args.batches for p in args.precision):
            what = f"res={res} batch={batch} {precision}"
            _log(f"[ours] {what} ...")
            row = _run_json(_child_cmd(args, "ours", res, batch, _bf16(precision)), f"ours {what}")
            _log(f"[ours]   {row['images_per_s']:.3f} img/s, peak RSS {row['peak_rss_mb']:.0f} MB")
            row["naive_images_per_s"] = naive[res]["images_per_s"]
            row["ours_over_naive"] = row["images_per_s"] / naive[res]["images_per_s"]
            row["reference"] = None
            if not skipped and precision == "float32":
                _log(f"[ref]  res={res} batch={batch} ...")
                try:
                    ref = run_reference(args, res, batch)
                except RuntimeError as exc:  # reported, the other numbers are still useful
                    _log(f"[ref]   FAILED: {exc}")
                    ref = {"error": str(exc)}
                else:
                    _log(f"[ref]    {ref['images_per_s']:.3f} img/s, "
                         f"peak RSS {ref['peak_rss_mb']:.0f} MB")
                    row["ours_over_reference"] = row["images_per_s"] / ref["images_per_s"]
                row["reference"] = ref
            rows.append(row)
    if not args.quick:  # again at the end: the bound uses the best of both, against noise
        for precision in args.precision:
            _log(f"[bench] peak convolution FLOP/s in {precision} again ...")
            peaks[precision].append(_run_json(_child_cmd(args, "peak", _bf16(precision)),
                                              f"peak FLOP/s measurement ({precision})"))
            _log(f"[bench]   {peaks[precision][-1]['peak_gflops_per_s']:.1f} GFLOP/s")
    # Each precision's bound uses the best conv FLOP/s seen anywhere in the run in that
    # precision, the per-config ones included.
    peak = {p: max([m["peak_gflops_per_s"] for m in peaks[p]]
                   + [r["local_peak_gflops_per_s"] for r in rows if r["precision"] == p])
            for p in args.precision}
    for row in rows:
        best = peak[row["precision"]]
        row["achieved_gflops_per_s"] = row["images_per_s"] * row["flops_per_image"] / 1e9
        row["flop_bound_images_per_s"] = best * 1e9 / row["flops_per_image"]
        row["flop_bound_pct"] = 100.0 * row["achieved_gflops_per_s"] / best
        row["local_flop_bound_pct"] = (100.0 * row["achieved_gflops_per_s"]
                                       / row["local_peak_gflops_per_s"])
    quality = None
    if set(args.precision) == set(PRECISIONS) and not args.quick:
        _log(f"[quality] default bundle, {QUALITY_SEEDS} seeds in both precisions ...")
        quality = _run_json(_child_cmd(args, "quality", QUALITY_SEEDS), "quality guard")
    return {"peak_conv": {"peak_gflops_per_s": peak["float32" if "float32" in peak
                                                    else args.precision[0]],
                          "by_precision": peak, "measurements": peaks},
            "naive": {str(r): v for r, v in naive.items()}, "results": rows,
            "reference_skipped": skipped, "quality": quality}


def _bf16(precision: str) -> int:
    return int(precision == "bfloat16")


def precision_lines(report: dict[str, Any]) -> list[str]:
    """``bf16/fp32`` per config, the peaks, and the quality guard."""
    rows = {(r["resolution"], r["batch"], r["precision"]): r for r in report["results"]}
    lines = []
    for (res, batch, precision), row in rows.items():
        full = rows.get((res, batch, "float32"))
        if precision == "bfloat16" and full:
            ratio = row["images_per_s"] / full["images_per_s"]
            lines.append(f"{res}px b{batch}: bf16/fp32 {ratio:.2f} "
                         f"({row['flop_bound_pct']:.0f} % of the bfloat16 conv peak)")
    peaks = report["peak_conv"]["by_precision"]
    if len(peaks) > 1:
        lines.append("conv peak: " + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in peaks.items())
                     + f" (bf16/fp32 {peaks['bfloat16'] / peaks['float32']:.2f})")
    q = report.get("quality")
    if q:
        verdict = "met" if q["mean_identity_distance"] < GOAL_QUALITY_DISTANCE else "NOT met"
        lines.append(f"quality guard ({q['seeds']} seeds of the default bundle): mean dlib "
                     f"identity distance float32 vs bfloat16 {q['mean_identity_distance']:.4f} "
                     f"(max {q['max_identity_distance']:.4f}; goal < {GOAL_QUALITY_DISTANCE}: "
                     f"{verdict}), mean |pixel difference| {q['mean_abs_pixel_difference']:.2f}"
                     f" grey levels (max {q['max_abs_pixel_difference']})")
    return lines


def goal_verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Readable lines on the issue's two goals."""
    lines = []
    with_ref = [r for r in rows if r.get("ours_over_reference") is not None]
    if with_ref:
        below = [f"{r['resolution']}px b{r['batch']} ({r['ours_over_reference']:.2f}x)"
                 for r in with_ref if r["ours_over_reference"] < GOAL_REF_RATIO]
        lines.append(f"goal ours/ref >= {GOAL_REF_RATIO}x: met in "
                     f"{len(with_ref) - len(below)}/{len(with_ref)} configs"
                     + (f"; below: {', '.join(below)}" if below else ""))
    else:
        lines.append(f"goal ours/ref >= {GOAL_REF_RATIO}x: not checked (no reference numbers)")
    big = [r for r in rows if r["batch"] >= GOAL_BOUND_MIN_BATCH and r["precision"] == "float32"]
    if not big:
        return lines + [f"goal >= {GOAL_BOUND_PCT:.0f} % of FLOP bound: no config with batch "
                        f">= {GOAL_BOUND_MIN_BATCH}"]
    for key, what in (("flop_bound_pct", "run's best conv peak"),
                      ("local_flop_bound_pct", "load-matched peak")):
        below = [f"{r['resolution']}px b{r['batch']} ({r[key]:.0f} %)"
                 for r in big if r[key] < GOAL_BOUND_PCT]
        lines.append(f"goal >= {GOAL_BOUND_PCT:.0f} % of FLOP bound at batch >= "
                     f"{GOAL_BOUND_MIN_BATCH} ({what}): met in {len(big) - len(below)}/"
                     f"{len(big)} configs" + (f"; below: {', '.join(below)}" if below else ""))
    return lines


def format_table(report: dict[str, Any]) -> str:
    head = (f"{'res':>4} {'batch':>5} {'prec':>5} {'ours img/s':>10} {'peak MB':>8} {'base MB':>8} "
            f"{'ours/naive':>10} {'ref img/s':>9} {'ref MB':>7} {'ours/ref':>8} "
            f"{'GFLOP/img':>9} {'GFLOP/s':>8} {'% bound':>7} {'% local':>7}")
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        ref = r.get("reference") or {}
        ref_ips = f"{ref['images_per_s']:9.2f}" if "images_per_s" in ref else f"{'-':>9}"
        ref_mb = f"{ref['peak_rss_mb']:7.0f}" if "peak_rss_mb" in ref else f"{'-':>7}"
        ratio = (f"{r['ours_over_reference']:7.2f}x" if r.get("ours_over_reference")
                 else f"{'-':>8}")
        lines.append(
            f"{r['resolution']:>4} {r['batch']:>5} {r['precision'][:4]:>5} "
            f"{r['images_per_s']:10.2f} "
            f"{r['peak_rss_mb']:8.0f} {r['base_rss_mb']:8.0f} {r['ours_over_naive']:9.1f}x "
            f"{ref_ips} {ref_mb} {ratio} {r['flops_per_image'] / 1e9:9.2f} "
            f"{r['achieved_gflops_per_s']:8.1f} {r['flop_bound_pct']:6.1f}% "
            f"{r['local_flop_bound_pct']:6.1f}%")
    peak = report["peak_conv"]
    first = next(iter(peak["measurements"].values()))[0]
    lines.append(f"peak conv: {peak['peak_gflops_per_s']:.1f} GFLOP/s (tf.nn.conv2d 3x3, best of "
                 f"{', '.join(str(s['shape']) for s in first['shapes'])}; "
                 f"'% local' uses the peak measured in each config's process right after it)")
    naive = ", ".join(f"{r}px {v['images_per_s']:.3f}" for r, v in report["naive"].items())
    lines.append(f"naive per-sample img/s (batch 1): {naive}")
    if report["reference_skipped"]:
        lines.append(f"reference: SKIPPED ({report['reference_skipped']})")
    return "\n".join(lines + precision_lines(report) + goal_verdicts(report["results"]))


def _machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu_count": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=4.0, help="timed seconds per config")
    p.add_argument("--channel-base", type=int, default=16384)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--reference-python", help="interpreter with torch for the official reference")
    p.add_argument("--ada-root", help="checkout of NVlabs/stylegan2-ada-pytorch")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="PyTorch threads for the reference (default: all cores, like ours)")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["float32"],
                   help="precisions to measure (both: bf16/fp32 ratios and the quality guard)")
    p.add_argument("--json", help="write every number to this file")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 32 px, batch 1 and 2, tiny channels, ~1 s each, no reference")
    p.add_argument("--child", choices=["ours", "naive", "peak", "quality"],
                   help=argparse.SUPPRESS)
    p.add_argument("--child-args", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.resolutions, args.batches, args.seconds = [32], [1, 2], 1.0
        args.channel_base, args.channel_max = 1024, 64
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child = {"ours": child_ours, "naive": child_naive, "peak": child_peak,
                 "quality": child_quality}[args.child]
        print(json.dumps(child(args, *args.child_args)), flush=True)
        return
    t0 = time.perf_counter()
    report = measure_all(args)
    report.update(
        benchmark="tests/bench/generator.py",
        timed="mapping + synthesis (noise_mode=const, truncation_psi=1), images copied to host",
        settings={"resolutions": args.resolutions, "batches": args.batches,
                  "seconds": args.seconds, "channel_base": args.channel_base,
                  "channel_max": args.channel_max, "reference_threads": args.threads,
                  "precision": args.precision,
                  "quick": args.quick},
        machine=_machine(), goals=goal_verdicts(report["results"]),
        total_seconds=round(time.perf_counter() - t0, 1))
    print(format_table(report))
    print(f"total benchmark time: {report['total_seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
