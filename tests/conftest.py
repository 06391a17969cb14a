"""Shared fixtures: tiny networks and bundles, and a way to run the ``ligan`` command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEFAULT_BUNDLE = REPO / "models" / "bundles" / "default"
TINY = dict(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=1024,
            channel_max=64)


#: Test folders whose modules share one session-wide resource, so that pytest-xdist runs all of
#: them on one worker: the SLURM cluster (tests/integration) and the web stack (tests/browser).
SHARED_RESOURCE_FOLDERS = {"integration": "slurm-cluster", "browser": "web-stack"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep each module on one pytest-xdist worker (``./setup/test.sh`` runs with
    ``--dist loadgroup``): module fixtures are then built once, tests that rely on their file's
    order keep it, and the folders in :data:`SHARED_RESOURCE_FOLDERS` stay together."""
    tests = Path(__file__).resolve().parent
    for item in items:
        path = Path(item.fspath).resolve()
        rel = path.relative_to(tests) if path.is_relative_to(tests) else path
        group = SHARED_RESOURCE_FOLDERS.get(rel.parts[0], rel.as_posix())
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="module")
def default_bundle():
    """The committed default bundle, loaded once per test module."""
    from models.bundle import load_bundle

    return load_bundle(DEFAULT_BUNDLE)


@pytest.fixture(scope="session")
def tiny_cfg():
    from models.stylegan2 import GeneratorConfig

    return GeneratorConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_generator(tiny_cfg):
    """A randomly initialised generator whose noise and w_avg are non-trivial."""
    import numpy as np

    from models.stylegan2 import Generator

    g = Generator(tiny_cfg, seed=3)
    for i, layer in enumerate(g.synthesis.noise_layers):
        layer.noise_strength.assign(0.1 + 0.05 * i)
    g.w_avg.assign(np.random.default_rng(5).standard_normal(tiny_cfg.w_dim).astype("float32"))
    return g


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory, tiny_generator):
    from models.bundle import save_bundle
    from models.stylegan2 import Discriminator, DiscriminatorConfig

    path = tmp_path_factory.mktemp("bundles") / "tiny"
    d = Discriminator(DiscriminatorConfig(resolution=32, channel_base=1024, channel_max=64))
    save_bundle(path, tiny_generator, d, name="tiny-test", creator="tests",
                description="random weights for tests")
    return path


def ligan_command() -> list[str]:
    """The installed ``ligan`` entry point (the same one users run)."""
    exe = Path(sys.executable).parent / "ligan"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "setup.cli"]


def ligan(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``ligan`` with ``args`` and capture its output."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([*ligan_command(), *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or REPO, timeout=300)


def run_bench(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``tests/bench/<script>`` with ``args`` as a script, the way its docstring says, and
    fail with its stderr if it does not exit 0."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, f"tests/bench/{script}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
