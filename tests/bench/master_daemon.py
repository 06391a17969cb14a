"""Benchmark of the master daemon, in one run:

1. **event relay**: S sessions, each with a browser EventSource open (S client streams in this
   process) and a fake backend posting ``on-progress`` callbacks with its per-job secret at
   R per second per session; measures the events per second relayed and the delay from the
   callback's POST to the event's arrival at the browser (p50/p99). The sessions, fake backend
   jobs and running tasks are written into the daemon's store before it starts (it loads them
   as a restarted daemon would), so no TensorFlow is needed. Goal: p99 < 100 ms at 200
   sessions.
2. **proxy overhead**: the same small GET to a WSGI app standing in for the frontend server,
   once directly and once through the daemon's proxy; the difference of the medians is the
   proxy's cost per request. Goal: < 5 ms.
3. **start-of-interaction → on-ready** of a real backend (local process; and a SLURM job with
   ``--slurm-conf``), when a bundle is given or the tiny one can be made.

The daemon runs in its own process (``--serve-daemon``, used internally), as in production.

    python tests/bench/master_daemon.py [--sessions 200] [--seconds 10] [--bundle DIR]
           [--slurm-conf PATH] [--quick] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

ECHO_APP = '''
import sys
from waitress import serve

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"status": "ok", "path": "' + environ["PATH_INFO"].encode() + b'"}']

serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8)
'''


# -- the daemon process ------------------------------------------------------------------------
def serve_daemon(args: argparse.Namespace) -> int:
    """Child mode: a daemon with an echo app as its frontend, until stdin closes."""
    import logging

    from master_daemon.app import Daemon, scheduler_from_settings
    from master_daemon.testing import daemon_settings

    logging.basicConfig(level=logging.WARNING)
    home = Path(args.home)
    sched_kw = {"slurm_conf": args.slurm_conf, "use_json": "yes"} if args.slurm_conf else {}
    settings = daemon_settings(home, Path(args.bundle) if args.bundle else None,
                               "slurm" if args.slurm_conf else "local", max_backends=10**6,
                               session_idle_timeout=0, slurm_gpus=0, slurm_cpus=1,  # the fake
                               # backends hold slots too
                               slurm_memory_mb=3000, callback_host="127.0.0.1")
    echo = home / "echo_app.py"
    echo.write_text(ECHO_APP)
    d = Daemon(settings, host="127.0.0.1", port=args.port, token=args.token,
               scheduler=scheduler_from_settings(settings, **sched_kw),
               frontend_command=[sys.executable, str(echo), "{port}"],
               frontend_port=args.frontend_port, poll_interval_s=1.0).start()
    d.frontend.wait_ready(30)
    print("READY", flush=True)
    sys.stdin.read()
    d.stop(cancel_backends=True)
    return 0


def seed_store(home: Path, sessions: int) -> list[dict]:
    """Sessions with a ready fake backend and one running task each, in the daemon's store."""
    from master_daemon.models import B_READY, READY, T_RUNNING, Backend, Session, Task
    from master_daemon.store import Store

    store = Store(home / "var" / "master_daemon.sqlite3")
    now = time.time()
    out = []
    for i in range(sessions):
        sid, bid = f"bench-{i}", f"b-bench{i:05d}"
        secret = secrets.token_urlsafe(16)
        (home / "results" / sid).mkdir(parents=True, exist_ok=True)
        store.put_session(Session(session_id=sid, results_dir=str(home / "results" / sid),
                                  created=now, last_activity=now, state=READY, backend_id=bid))
        store.put_backend(Backend(backend_id=bid, session_id=sid, scheduler="local",
                                  secret=secret, time_limit_s=10**6, submitted=now,
                                  state=B_READY, job_state="RUNNING",
                                  address="http://127.0.0.1:9", ready_at=now, started=now,
                                  ends=now + 10**6))
        store.put_task(Task(task_id=f"t-bench{i}", session_id=sid, type="random",
                            params={"amount": 1}, created=now, state=T_RUNNING,
                            backend_id=bid, backend_task_id=f"bt-{i}", started=True,
                            attempts=1))
        out.append({"sid": sid, "bid": bid, "secret": secret, "btid": f"bt-{i}"})
    store.close()
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- measurements ------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def bench_events(url: str, token: str, jobs: list[dict], seconds: float, rate: float,
                 posters: int) -> dict:
    from master_daemon.app import events_token
    from master_daemon.testing import EventStream

    streams = [EventStream(f"{url}/events/{j['sid']}?token={events_token(token, j['sid'])}")
               for j in jobs]
    for s in streams:
        s.wait_for(lambda e: e.get("event") == "session", 30, "the session snapshot")
    stop = time.monotonic() + seconds
    sent = [0] * posters
    errors = [0] * posters

    def poster(k: int) -> None:
        http = requests.Session()
        mine = jobs[k::posters]
        interval = 1.0 / rate  # each session gets `rate` progress callbacks per second
        n = 0
        next_round = time.monotonic()
        while time.monotonic() < stop:
            for j in mine:
                body = {"session_id": j["sid"], "job_id": j["bid"], "task_id": j["btid"],
                        "progress": n % 100, "message": repr(time.time())}
                r = http.post(f"{url}/callbacks/{j['bid']}/on-progress", json=body,
                              headers={"Authorization": f"Bearer {j['secret']}"}, timeout=10)
                sent[k] += 1
                errors[k] += r.status_code != 200
            n += 1
            next_round += interval
            time.sleep(max(0.0, next_round - time.monotonic()))

    threads = [threading.Thread(target=poster, args=(k,)) for k in range(posters)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    posting = time.monotonic() - t0
    time.sleep(1.0)  # let the last events arrive
    delays = []
    received = 0
    for s in streams:
        for e in s.events:
            if e.get("event") == "progress":
                received += 1
                delays.append(e["at"] - float(e["data"]["message"]))
        s.close()
    return {"sessions": len(jobs), "callbacks_sent": sum(sent),
            "callback_errors": sum(errors), "events_received": received,
            "events_per_s": received / posting, "callbacks_per_s": sum(sent) / posting,
            "delay_p50_ms": 1000 * pct(delays, 50), "delay_p99_ms": 1000 * pct(delays, 99),
            "delay_max_ms": 1000 * max(delays) if delays else float("nan")}


def bench_proxy(daemon_url: str, frontend_url: str, n: int) -> dict:
    def timed(base: str) -> list[float]:
        http = requests.Session()
        for _ in range(20):  # warm the connection pools
            http.get(base + "/ping", timeout=10)
        out = []
        for _ in range(n):
            t = time.perf_counter()
            r = http.get(base + "/ping", timeout=10)
            out.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
        return out

    direct, proxied = [], []
    for _ in range(2):  # interleaved, so that load changes affect both alike
        direct += timed(frontend_url)
        proxied += timed(daemon_url)
    d50, p50 = statistics.median(direct), statistics.median(proxied)
    return {"requests": len(direct), "direct_median_ms": 1000 * d50,
            "proxied_median_ms": 1000 * p50, "overhead_ms": 1000 * (p50 - d50),
            "ratio": p50 / d50}


def bench_start(url: str, token: str, sid: str, timeout: float = 300) -> float | None:
    auth = {"Authorization": f"Bearer {token}"}
    t0 = time.monotonic()
    r = requests.put(f"{url}/api/sessions/{sid}", headers=auth, timeout=30)
    r.raise_for_status()
    while time.monotonic() - t0 < timeout:
        s = requests.get(f"{url}/api/sessions/{sid}", headers=auth, timeout=30).json()
        if s["state"] == "ready":
            took = time.monotonic() - t0
            requests.delete(f"{url}/api/sessions/{sid}", headers=auth, timeout=30)
            return took
        if s["state"] in ("failed", "stopped"):
            print(f"  {sid}: {s['state']}: {s['reason']}")
            return None
        time.sleep(0.05)
    return None


def tiny_bundle(path: Path) -> Path:
    """The tiny random-weight bundle of the tests (when no bundle is given)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from models.bundle import save_bundle
    from models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

    g = Generator(GeneratorConfig(resolution=32, z_dim=32, w_dim=32, mapping_layers=2,
                                  channel_base=1024, channel_max=64), seed=3)
    d = Discriminator(DiscriminatorConfig(resolution=32, channel_base=1024, channel_max=64))
    save_bundle(path, g, d, name="tiny-bench", creator="bench", description="random weights")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=4.0,
                    help="on-progress callbacks per second per session (backends send <= 4)")
    ap.add_argument("--posters", type=int, default=8, help="threads posting callbacks")
    ap.add_argument("--proxy-requests", type=int, default=300)
    ap.add_argument("--bundle", help="bundle for the start-of-interaction timing")
    ap.add_argument("--no-start", action="store_true", help="skip the backend start timing")
    ap.add_argument("--slurm-conf", help="also time a SLURM backend on this cluster")
    ap.add_argument("--quick", action="store_true", help="20 sessions, 3 s, 100 requests")
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--serve-daemon", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--frontend-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--token", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_daemon:
        return serve_daemon(args)
    if args.quick:
        args.sessions, args.seconds, args.proxy_requests = 20, 3.0, 100

    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="ligan-bench-") as tmp:
        home = Path(tmp)
        bundle = args.bundle
        if not args.no_start and not bundle:
            bundle = str(tiny_bundle(home / "tiny-bundle"))
        jobs = seed_store(home, args.sessions)
        port, fport, token = free_port(), free_port(), secrets.token_urlsafe(24)
        url, furl = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{fport}"

        def start_child(extra: list[str]) -> subprocess.Popen:
            cmd = [sys.executable, __file__, "--serve-daemon", "--home", str(home), "--port",
                   str(port), "--frontend-port", str(fport), "--token", token, *extra]
            if bundle:
                cmd += ["--bundle", bundle]
            env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
            child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True, cwd=REPO)
            line = child.stdout.readline()
            if "READY" not in line:
                child.kill()
                raise SystemExit(f"the daemon did not start: {line!r}")
            return child

        def stop_child(child: subprocess.Popen) -> None:
            child.stdin.close()
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()

        child = start_child([])
        try:
            print(f"event relay: {args.sessions} sessions, {args.rate:g} callbacks/s each, "
                  f"{args.seconds:g} s")
            ev = bench_events(url, token, jobs, args.seconds, args.rate, args.posters)
            report["events"] = ev
            print(f"  {ev['events_per_s']:.0f} events/s relayed ({ev['events_received']} of "
                  f"{ev['callbacks_sent']} callbacks, {ev['callback_errors']} refused); delay "
                  f"callback -> browser p50 {ev['delay_p50_ms']:.1f} ms, p99 "
                  f"{ev['delay_p99_ms']:.1f} ms, max {ev['delay_max_ms']:.1f} ms "
                  f"(goal: p99 < 100 ms)")
            px = bench_proxy(url, furl, args.proxy_requests)
            report["proxy"] = px
            print(f"proxy: GET direct {px['direct_median_ms']:.2f} ms, through the daemon "
                  f"{px['proxied_median_ms']:.2f} ms (median of {px['requests']}): overhead "
                  f"{px['overhead_ms']:.2f} ms/request, ratio {px['ratio']:.2f} "
                  f"(goal: < 5 ms)")
            if not args.no_start:
                took = bench_start(url, token, "bench-start-local")
                report["start_to_ready_local_s"] = took
                print(f"start-of-interaction -> on-ready, local process: "
                      f"{took:.1f} s" if took else "start-of-interaction: the backend did not "
                      "become ready")
        finally:
            stop_child(child)
        if args.slurm_conf and not args.no_start:
            child = start_child(["--slurm-conf", args.slurm_conf])
            try:
                took = bench_start(url, token, "bench-start-slurm")
                report["start_to_ready_slurm_s"] = took
                print(f"start-of-interaction -> on-ready, SLURM job: {took:.1f} s" if took
                      else "SLURM: the backend did not become ready")
            finally:
                stop_child(child)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
