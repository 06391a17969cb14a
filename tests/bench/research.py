"""Benchmark of the research operations: random faces in bulk, transitions, style mixing.

Measured in one process, one run, so every number has a reference taken beside it:

* **random faces** – a ``random`` task of ``--amount`` faces (default 30 000) on a real backend
  on a loopback port, as a memory lab sends it: faces per second, next to the generator alone
  rendering the same number of faces per batch (``synthesize`` without PNGs, records or
  queue; the ratio is what the task's bookkeeping costs). **Memory**: the process's resident
  size is sampled every 50 ms; the peak while the task runs is reported above the resident
  size after a first task of ``--amount / 10`` faces, and the goal is that it does not grow with
  the amount (records stream to disk in chunks; the result keeps at most 256).
* **transition** (``--frames`` frames) and **style mixing** (one face) latency, as multiples of
  rendering one face from its record (``render_record``) measured in the same run.
* **attribute filter** (guided vs. blind candidates per accepted face): only when the bundle has
  an attribute model; it runs ``tests/bench/attributes.py``'s measurement.

Run from the repository root::

    .venv/bin/python tests/bench/research.py                     # untrained 64 px, 30 000 faces
    .venv/bin/python tests/bench/research.py --bundle models/bundles/default
    .venv/bin/python tests/bench/research.py --quick             # tiny smoke run

Progress goes to stderr, the summary to stdout; ``--json`` writes every number.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import SECRET, TINY, say  # noqa: E402 - puts the repository on sys.path
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident size now."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


class PeakRss:
    """Samples the resident size every ``interval`` seconds while in the ``with`` block."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakRss":
        self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="bundle to use (default: a new untrained one)")
    ap.add_argument("--resolution", type=int, default=64, help="of the untrained bundle")
    ap.add_argument("--amount", type=int, help="faces of the random task (30 000; quick: 2 000)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8, help="frames of the transition")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each latency")
    ap.add_argument("--quick", action="store_true", help="tiny bundle, few repeats")
    ap.add_argument("--json", type=Path, help="write every number here")
    args = ap.parse_args(argv)
    if args.amount is None:
        args.amount = 2_000 if args.quick else 30_000
    if args.quick:
        args.repeats = min(args.repeats, 3)

    import numpy as np
    import requests

    from backend_server.backend import warm_up
    from backend_server.tasks import BackendLimits
    from backend_server.testing import CallbackReceiver, start_backend
    from models.bundle import load_bundle, save_bundle
    from models.generate import render_record
    from models.records import FaceRecord
    from models.research import style_layer_range, style_mix, transition
    from models.stylegan2 import Generator, GeneratorConfig

    work = Path(tempfile.mkdtemp(prefix="ligan-bench-research-"))
    if args.bundle is None:
        cfg = GeneratorConfig(**TINY) if args.quick else GeneratorConfig(
            resolution=args.resolution)
        save_bundle(work / "bundle", Generator(cfg, seed=0), name="bench-untrained",
                    creator="tests/bench", description="UNTRAINED: random weights")
        args.bundle = work / "bundle"
    bundle = load_bundle(args.bundle)
    g = bundle.generator
    say(f"bundle {args.bundle} ({bundle.resolution} px, {bundle.hash[:12]}); warming up")
    warm_up(bundle)
    rx = CallbackReceiver(SECRET).start()
    backend, http, url = start_backend(bundle, work / "results", rx.url, SECRET,
                                       limits=BackendLimits(batch_size=args.batch_size))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {SECRET}"

    def random_task(amount: int, seed: int) -> tuple[float, dict]:
        t0 = time.monotonic()
        resp = session.post(f"{url}/tasks", json={"type": "random", "params": {
            "amount": amount, "seed": seed, "attributes": False}}, timeout=60)
        resp.raise_for_status()
        body = rx.result_of(resp.json()["task_id"], 24 * 3600)
        assert body["state"] == "done", body
        return rx.of("on-result", resp.json()["task_id"])[0].at - t0, body["result"]

    def generator_only(amount: int) -> float:
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for start in range(0, amount, args.batch_size):
            n = min(args.batch_size, amount - start)
            z = rng.standard_normal((n, g.cfg.z_dim)).astype(np.float32)
            g.synthesize(g.map_compiled(z, 1.0, None), "const",
                         noise_seeds=list(range(n))).numpy()
        return time.perf_counter() - t0

    try:
        warm = max(64, args.amount // 10)
        say(f"random faces: a first task of {warm}, then {args.amount}")
        random_task(warm, 1)
        baseline = rss_bytes()
        with PeakRss() as peak:
            task_s, result = random_task(args.amount, 2)
        assert result["faces_total"] == args.amount and len(result["faces"]) <= 256
        say(f"generator alone: {args.amount} faces")
        gen_s = generator_only(args.amount)
        growth = max(0, peak.peak - baseline)

        faces = random_task(2, 3)[1]["faces"]
        start, end = (FaceRecord.from_dict({**f, "image": None}) for f in faces)
        say(f"latencies: {args.repeats} runs each")
        one = median_time(lambda: render_record(bundle, start), args.repeats)
        trans = median_time(lambda: transition(bundle, start, end, 1.0, args.frames),
                            args.repeats)
        layers = style_layer_range(bundle, "coarse")
        mix = median_time(lambda: style_mix(bundle, start, end, layers), args.repeats)
    finally:
        http.stop()
        backend.shutdown()
        rx.stop()

    report = {
        "bundle_hash": bundle.hash, "resolution": bundle.resolution, "amount": args.amount,
        "batch_size": args.batch_size, "random_task_s": task_s,
        "random_faces_per_s": args.amount / task_s, "generator_only_s": gen_s,
        "generator_faces_per_s": args.amount / gen_s, "task_vs_generator": task_s / gen_s,
        "rss_baseline_mb": baseline / 2 ** 20, "rss_peak_mb": peak.peak / 2 ** 20,
        "rss_growth_mb": growth / 2 ** 20, "render_one_s": one, "transition_s": trans,
        "transition_frames": args.frames, "style_mix_s": mix,
    }
    print(f"research benchmark — bundle {bundle.resolution} px, batch {args.batch_size}")
    print(f"  random task, {args.amount} faces     {report['random_faces_per_s']:9.1f} faces/s "
          f"({task_s:.1f} s)")
    print(f"  generator alone, same faces     {report['generator_faces_per_s']:9.1f} faces/s "
          f"→ the task takes {report['task_vs_generator']:.2f}× the generator's time "
          f"(PNGs, records, queue)")
    print(f"  resident memory: {report['rss_baseline_mb']:.0f} MB after {warm} faces, peak "
          f"{report['rss_peak_mb']:.0f} MB while making {args.amount} "
          f"(+{report['rss_growth_mb']:.0f} MB)")
    print(f"  render one face from its record {one * 1000:9.1f} ms")
    print(f"  transition, {args.frames} frames          {trans * 1000:9.1f} ms "
          f"= {trans / one:.1f}× one face")
    print(f"  style mixing (coarse)           {mix * 1000:9.1f} ms = {mix / one:.1f}× one face")
    if bundle.has_part("attributes"):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import attributes as attributes_bench

        print("  attribute filter, guided vs blind:")
        attributes_bench.main(["--bundle", str(args.bundle), "--where", "smiling", "-n", "10",
                               "--max-candidates", "1000"])
    else:
        print("  attribute filter: skipped, the bundle has no attribute model "
              "(tests/bench/attributes.py measures it on one that has)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
