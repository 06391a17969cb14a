"""The real single-node SLURM cluster for integration tests (setup/slurm/start.sh).

``slurm_cluster`` starts munged, slurmctld and slurmd in a fresh state directory on free ports
for the whole test session and stops them afterwards. The tests using it are skipped, with
Slurm's or munge's own error printed, only when the Debian packages cannot be installed or the
daemons cannot start; a cluster that starts but misbehaves fails the tests.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START = REPO / "setup" / "slurm" / "start.sh"
STOP = REPO / "setup" / "slurm" / "stop.sh"


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    state_dir: Path
    conf: Path

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SLURM_CONF=str(self.conf))

    @property
    def cgroups(self) -> bool:
        """Whether the cluster tracks jobs with cgroups (and so enforces memory limits)."""
        return "TaskPlugin=task/cgroup" in self.conf.read_text()

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=30)


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> SlurmCluster:
    state = tmp_path_factory.mktemp("slurm")
    ctld, slurmd = _free_ports(2)
    # 4 declared CPUs: the time-limit job runs for a minute beside the other tests' jobs.
    env = dict(os.environ, LIGAN_SLURM_CTLD_PORT=str(ctld), LIGAN_SLURM_SLURMD_PORT=str(slurmd),
               LIGAN_SLURM_CPUS="4")
    try:
        r = subprocess.run([str(START), str(state)], capture_output=True, text=True, env=env,
                           timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("setup/slurm/start.sh did not finish in 10 minutes")
    if r.returncode != 0:
        reason = (f"the single-node SLURM cluster could not start (start.sh exit {r.returncode}):"
                  f"\n{r.stderr.strip()}")
        print(reason)
        pytest.skip(reason)
    cluster = SlurmCluster(state_dir=state, conf=state / "etc" / "slurm.conf")
    yield cluster
    subprocess.run([str(STOP), str(state)], capture_output=True, text=True, timeout=60)
