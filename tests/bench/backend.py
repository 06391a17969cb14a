"""Benchmark of the backend server: what the HTTP API and the task queue cost.

Measured in one process, one run (all numbers on the same machine and load):

* **queue overhead** – the same work two ways, interleaved: ``models.fillers.filler_page``
  called directly (a page of N fillers around a face of the session, ranked by identity, PNGs
  and records.jsonl written) and the same page as a ``fillers`` task sent to a real backend on a
  loopback port (``POST /tasks`` → worker → face store → ``on-result`` received by a real
  callback receiver). ``overhead = median(queued) / median(direct) − 1``; the goal from the
  issue is under 5 %.
* **POST → on-result latency** for that task (median and worst).
* **GET /tasks/<id> requests per second** while a long (``random``) task runs (keep-alive
  clients on threads), next to the same with the backend idle.

The bundle needs a PCA part (``ligan bundle fit-pca``); the default untrained one gets one.

Run from the repository root::

    .venv/bin/python tests/bench/backend.py                      # untrained 64 px bundle
    .venv/bin/python tests/bench/backend.py --bundle models/bundles/default --repeats 9
    .venv/bin/python tests/bench/backend.py --quick              # tiny smoke run (~15 s)

Other work on the machine makes single runs noisy (the two ways are interleaved for that
reason); the "best runs" ratio compares the fastest run of each way. The GET clients run in the
same process as the backend, so they share its interpreter lock: the requests per second are a
lower bound of what a separate master daemon would get. Progress goes to stderr, the summary to
stdout; ``--json`` writes every number.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import SECRET, TINY, say  # noqa: E402 - puts the repository on sys.path


def make_bundle(path: Path, quick: bool, resolution: int) -> Path:
    """An untrained bundle with the PCA part that fillers sample in."""
    from models.bundle import add_part, save_bundle
    from models.latent import fit_pca
    from models.stylegan2 import Generator, GeneratorConfig

    cfg = GeneratorConfig(**TINY) if quick else GeneratorConfig(resolution=resolution)
    g = Generator(cfg, seed=0)
    save_bundle(path, g, name="bench-untrained", creator="tests/bench",
                description="UNTRAINED: random weights for the backend benchmark")
    pca = fit_pca(g, num_samples=2000, num_components=min(64, cfg.w_dim))
    add_part(path, "pca", pca.arrays(), config=pca.config())
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="bundle to use (default: a new untrained one)")
    ap.add_argument("--resolution", type=int, default=64, help="of the untrained bundle")
    ap.add_argument("--amount", type=int, help="faces per task (24; quick: 8)")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs of each way")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0, help="per GET measurement")
    ap.add_argument("--clients", type=int, default=4, help="threads sending GETs")
    ap.add_argument("--quick", action="store_true", help="tiny bundle, few repeats")
    ap.add_argument("--json", type=Path, help="write every number here")
    args = ap.parse_args(argv)
    if args.amount is None:
        args.amount = 8 if args.quick else 24
    if args.quick:
        args.repeats, args.seconds = min(args.repeats, 3), min(args.seconds, 1.0)

    from models.runtime import configure_tensorflow

    configure_tensorflow(0, 1)
    import logging

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "queue depth" notices
    import requests

    from backend_server.backend import warm_up
    from backend_server.tasks import BackendLimits
    from backend_server.testing import CallbackReceiver, start_backend
    from models.bundle import load_bundle, read_manifest
    from models.fillers import filler_page
    from models.generate import record_ws
    from models.images import save_png
    from models.latent import LatentPCA
    from models.records import FaceRecord

    work = Path(tempfile.mkdtemp(prefix="ligan-bench-backend-"))
    bundle_path = args.bundle or make_bundle(work / "bundle", args.quick, args.resolution)
    bundle = load_bundle(bundle_path, parts=("generator", "discriminator")
                         if "discriminator" in read_manifest(bundle_path)["parts"] else
                         ("generator",))
    say(f"bundle {bundle_path} ({bundle.resolution} px, {bundle.hash[:12]}); warming up")
    warm_up(bundle)
    rx = CallbackReceiver(SECRET).start()
    backend, http, url = start_backend(
        bundle, work / "results", rx.url, SECRET,
        limits=BackendLimits(batch_size=args.batch_size))
    auth = {"Authorization": f"Bearer {SECRET}"}
    session = requests.Session()
    session.headers.update(auth)

    # The suspect: a face of the session, so that fillers time sampling, rendering and
    # identity ranking, not a photo's inversion.
    made = session.post(f"{url}/tasks", json={"type": "random", "params": {"amount": 1,
                                                                           "seed": 1}}, timeout=60)
    suspect = rx.result_of(made.json()["task_id"], 600)["result"]["faces"][0]
    suspect_record = FaceRecord.from_dict({**suspect, "image": None})
    pca = LatentPCA.from_bundle(bundle)
    page = dict(per_page=args.amount, near_clone_threshold=0.0)

    def queued_run(seed: int) -> float:
        t0 = time.monotonic()  # the receiver stamps callbacks with time.monotonic()
        resp = session.post(f"{url}/tasks", json={"type": "fillers", "params": {
            "suspect_face_id": suspect["id"], "seed": seed, **page}}, timeout=60)
        resp.raise_for_status()
        body = rx.result_of(resp.json()["task_id"], 600)
        assert body["state"] == "done", body
        return rx.of("on-result", resp.json()["task_id"])[0].at - t0

    def direct_run(i: int) -> float:
        t0 = time.perf_counter()
        result = filler_page(bundle, pca, record_ws(bundle, suspect_record), seed=i,
                             parents=[suspect_record.id], **page)
        folder = work / "direct" / str(i)
        folder.mkdir(parents=True)
        for rec, img in zip(result.records, result.images):  # what the task writes, too
            save_png(img, folder / f"{rec.id}.png")
        with open(folder / "records.jsonl", "w") as f:
            f.writelines(rec.to_json() + "\n" for rec in result.records)
        return time.perf_counter() - t0

    try:
        say(f"queue overhead: {args.repeats}× {args.amount} faces each way, interleaved")
        queued_run(10_000)  # first-request costs (connection, imports) are not the steady state
        direct_run(10_000)
        direct, queued = [], []
        for i in range(args.repeats):
            if i % 2:
                queued.append(queued_run(i))
                direct.append(direct_run(i))
            else:
                direct.append(direct_run(i))
                queued.append(queued_run(i))
        overhead = statistics.median(queued) / statistics.median(direct) - 1
        overhead_best = min(queued) / min(direct) - 1

        def hammer(task_id: str, seconds: float) -> float:
            count = [0] * args.clients
            stop = time.perf_counter() + seconds

            def client(k: int) -> None:
                with requests.Session() as s:
                    s.headers.update(auth)
                    while time.perf_counter() < stop:
                        r = s.get(f"{url}/tasks/{task_id}", timeout=30)
                        assert r.status_code == 200
                        count[k] += 1

            threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return sum(count) / (time.perf_counter() - t0)

        say(f"GET /tasks/<id>: {args.clients} clients, {args.seconds:g} s idle and busy")
        done_id = session.post(f"{url}/tasks", json={"type": "random", "params": {
            "amount": 1}}, timeout=60).json()["task_id"]
        rx.result_of(done_id, 600)
        rps_idle = hammer(done_id, args.seconds)
        long_id = session.post(f"{url}/tasks", json={"type": "random", "params": {
            "amount": 30000}}, timeout=60).json()["task_id"]
        rx.wait_for(lambda _: rx.of("on-progress", long_id)[1:], 600, "the long task running")
        before = session.get(f"{url}/tasks/{long_id}", timeout=30).json()["progress"]
        rps_busy = hammer(long_id, args.seconds)
        after = session.get(f"{url}/tasks/{long_id}", timeout=30).json()
        still_running = after["state"] == "running"
        session.delete(f"{url}/tasks/{long_id}", timeout=30)
        rx.result_of(long_id, 600)
    finally:
        backend.shutdown(flush_timeout=2)
        http.stop()
        rx.stop()

    report = {
        "bundle": str(bundle_path), "resolution": bundle.resolution, "amount": args.amount,
        "batch_size": args.batch_size, "repeats": args.repeats,
        "task": f"fillers, {args.amount} faces per page, from a face of the session",
        "direct_s": direct, "queued_s": queued,
        "direct_median_s": statistics.median(direct), "queued_median_s": statistics.median(queued),
        "post_to_on_result_median_s": statistics.median(queued),
        "post_to_on_result_max_s": max(queued), "queue_overhead": overhead,
        "queue_overhead_best_of": overhead_best,
        "get_rps_idle": rps_idle, "get_rps_while_running": rps_busy,
        "task_progress_during_gets": [before, after["progress"]],
        "task_ran_throughout": still_running, "clients": args.clients,
    }
    print(f"backend benchmark — bundle {bundle.resolution} px, batch {args.batch_size}, "
          f"{args.repeats} runs each (medians)")
    print(f"  task: fillers, a page of {args.amount} faces around a face of the session")
    print(f"  models.fillers directly         {statistics.median(direct) * 1000:9.1f} ms")
    print(f"  POST /tasks → on-result         {statistics.median(queued) * 1000:9.1f} ms "
          f"(worst {max(queued) * 1000:.1f} ms)")
    verdict = "meets" if overhead < 0.05 else "MISSES"
    print(f"  queue overhead                  {overhead * 100:+9.1f} %   ({verdict} the goal of "
          f"< 5 %)")
    print(f"  queue overhead, best runs       {overhead_best * 100:+9.1f} %   (fastest queued ÷ "
          f"fastest direct: less sensitive to other load on the machine)")
    print(f"  GET /tasks/<id> while running   {rps_busy:9.0f} req/s ({args.clients} clients; "
          f"idle backend: {rps_idle:.0f} req/s)")
    if not still_running:
        print("  (the long task ended during the GET measurement; raise its amount)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
