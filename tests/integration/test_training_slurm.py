"""``ligan train stylegan2 --slurm`` on the real single-node SLURM cluster: a tiny training run
is submitted, runs as a batch job with ``--local``, and leaves a checkpoint, metrics and a
bundle in the run folder; submitting the same command again resumes it."""
from __future__ import annotations

import json
import re

import pytest

from jobs import JobStatus, make_scheduler
from tests.conftest import SHARED, ligan, wait_until

LONDON = SHARED / "faces" / "london"
pytestmark = pytest.mark.skipif(not LONDON.is_dir(),
                                reason=f"{LONDON} is absent (shared test photos)")


def _submit(slurm_cluster, run, kimg: str) -> str:
    r = ligan("train", "stylegan2", "--data", str(LONDON), "--run-dir", str(run),
              "--resolution", "32", "--batch", "4", "--z-dim", "32", "--w-dim", "32",
              "--mapping-layers", "2", "--channel-base", "1024", "--channel-max", "64",
              "--tick-kimg", "0.008", "--snapshot-kimg", "0.008", "--kimg", kimg,
              "--metrics", str(LONDON), "--metrics-samples", "4", "--no-progress",
              "--slurm", "--gpus", "0", "--cpus", "1", "--memory", "3000", "--time", "5",
              "--partition", "cpu", env=slurm_cluster.env)
    assert r.returncode == 0, r.stderr[-2000:]
    found = re.search(r"submitted SLURM job (\d+)", r.stdout)
    assert found, r.stdout
    job = found.group(1)
    assert f"squeue -j {job}" in r.stdout and str(run / "slurm" / f"{job}.out") in r.stdout
    return job


def _wait(sched, job: str, log, timeout: float = 240):
    """The job's final state and log. The timeout stays under the job's 5-minute limit but far
    above its usual ~40 s: on two loaded cores (TensorFlow's start, three compiled step
    variants, the snapshot's metrics) it once took over 80 s."""
    st = wait_until(lambda: (lambda s: s if s.final else None)(sched.state(job)), timeout,
                    f"job {job} finished", interval=0.5)
    text = log.read_text() if log.exists() else "(no log)"
    assert st.status is JobStatus.COMPLETED, f"{st}\n{text[-3000:]}"
    return text


def test_training_submitted_to_slurm_runs_and_resumes(slurm_cluster, tmp_path):
    sched = make_scheduler("slurm", script_dir=tmp_path / "scripts",
                           slurm_conf=slurm_cluster.conf, use_json="yes")
    run = tmp_path / "run"
    job = _submit(slurm_cluster, run, "0.008")
    scripts = list((run / "slurm").glob("*.sbatch"))
    assert scripts, list((run / "slurm").iterdir())
    text = scripts[0].read_text()
    assert "--local" in text and "--slurm" not in text and "#SBATCH --partition=cpu" in text
    assert "--signal=B:TERM@120" in text
    out = _wait(sched, job, run / "slurm" / f"{job}.out")
    assert "finished: 0.008 kimg" in out, out[-2000:]
    assert any(p.name.startswith("ckpt-8") for p in (run / "checkpoints").iterdir())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["kimg"] for x in lines if x.get("snapshot")] == [0.008]
    assert (run / "bundle" / "manifest.json").is_file()

    job2 = _submit(slurm_cluster, run, "0.016")  # the same command, longer: resumes
    out2 = _wait(sched, job2, run / "slurm" / f"{job2}.out")
    assert "finished: 0.016 kimg" in out2, out2[-2000:]
    log = (run / "log.txt").read_text()
    assert "resumed from" in log and "at 0.0 kimg" in log  # 8 images = 0.008 kimg → "0.0"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["kimg"] for x in lines if x.get("snapshot")] == [0.008, 0.016]
