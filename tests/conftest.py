"""Shared fixtures and helpers: tiny networks and bundles, a way to run the ``ligan`` command,
one :func:`wait_until` for every poll, and the helpers several test modules share (the
backend's and the master daemon's APIs, a tiny training run, a trained attribute model).

Test modules import shared pieces from here or from a package's test kit
(``master_daemon.testing``, ``backend_server.testing``, ``frontend_server.testing``), never from
another test module (tests/test_architecture.py checks it).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import pytest

if TYPE_CHECKING:
    import requests

    from backend_server.testing import CallbackReceiver
    from master_daemon.testing import RunningDaemon

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEFAULT_BUNDLE = REPO / "models" / "bundles" / "default"
TINY = dict(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=1024,
            channel_max=64)
#: ``ligan bundle init`` arguments of the same tiny networks.
TINY_ARGS = ["--resolution", "32", "--z-dim", "32", "--w-dim", "32", "--mapping-layers", "2",
             "--channel-base", "1024", "--channel-max", "64"]
#: The shared photos the training tests train on.
TRAINING_FACES = SHARED / "faces" / "london"
needs_faces = pytest.mark.skipif(not TRAINING_FACES.is_dir(),
                                 reason=f"{TRAINING_FACES} is absent (shared test photos)")
T_ = TypeVar("T_")


#: Test folders whose modules share one session-wide resource, so that pytest-xdist runs all of
#: them on one worker: the SLURM cluster (tests/integration) and the web stack (tests/browser).
SHARED_RESOURCE_FOLDERS = {"integration": "slurm-cluster", "browser": "web-stack"}


def xdist_scope(nodeid: str) -> str:
    """The unit pytest-xdist gives one worker: the test's module, or its folder's shared
    resource (:data:`SHARED_RESOURCE_FOLDERS`). A module on one worker builds its module
    fixtures once and keeps its tests' order."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in SHARED_RESOURCE_FOLDERS:
        return SHARED_RESOURCE_FOLDERS[parts[1]]
    return path


if importlib.util.find_spec("xdist") is not None:
    def pytest_xdist_make_scheduler(config, log):
        """``./setup/test.sh`` runs on pytest-xdist workers: schedule by :func:`xdist_scope`."""
        from xdist.scheduler import LoadScopeScheduling

        class SharedResourceScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return xdist_scope(nodeid)

        return SharedResourceScheduling(config, log)


def _logged_in(stack, name: str):
    from frontend_server.testing import Browser

    browser = Browser(stack[0].url)
    browser.login(name)
    return browser


@pytest.fixture()
def alice(stack):
    """A browser logged in as alice on the test module's own ``stack`` (frontend first)."""
    return _logged_in(stack, "alice")


@pytest.fixture()
def bob(stack):
    """A browser logged in as bob on the test module's own ``stack``."""
    return _logged_in(stack, "bob")


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


# -- waiting ----------------------------------------------------------------------------------

def wait_until(predicate: Callable[[], T_], timeout: float, what: str,
               interval: float = 0.2) -> T_:
    """Call ``predicate`` every ``interval`` s until it returns something true, and return that;
    fail naming ``what`` (and the last answer) after ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


# -- training -----------------------------------------------------------------------------------

def tiny_train_config(**overrides: Any) -> Any:
    """A :class:`models.training.stylegan2.TrainConfig` of a few steps of the tiny networks on
    :data:`TRAINING_FACES`; ``overrides``: any of its fields."""
    from models.training.stylegan2 import TrainConfig

    settings = dict(data=str(TRAINING_FACES), resolution=32, batch_size=4, total_kimg=0.032,
                    z_dim=32, w_dim=32, mapping_layers=2, channel_base=1024, channel_max=64,
                    pl_interval=1, r1_interval=1, tick_kimg=0.008, snapshot_kimg=0.016,
                    deterministic=True, progress=False)
    settings.update(overrides)
    return TrainConfig(**settings)


def identity_bundle(tmp_path: Path, tiny_bundle_dir: Path, resolution: int = 32,
                    probe: bool = False) -> Path:
    """A copy of the tiny bundle with a randomly initialised identity network (and, with
    ``probe``, a random trait probe on its embeddings)."""
    import dataclasses
    import shutil

    import numpy as np

    from models.attributes.heads import CLASS_HEADS
    from models.attributes.identity_probe import PROBE_PART, PROBE_TRAITS, TraitProbe
    from models.bundle import add_part, module_arrays
    from models.faces.identity_net import (EMBEDDING_DIM, IDENTITY_PART, IdentityNet,
                                           IdentityNetConfig)

    path = tmp_path / f"with_identity_{resolution}{'_probe' if probe else ''}"
    shutil.copytree(tiny_bundle_dir, path)
    cfg = IdentityNetConfig(resolution=resolution, work_resolution=16, channel_base=256,
                            channel_max=32, features=32)
    add_part(path, IDENTITY_PART, module_arrays(IdentityNet(cfg, seed=4)),
             {"model": dataclasses.asdict(cfg)})
    if probe:
        rng = np.random.default_rng(5)
        coef = {t: rng.standard_normal((len(CLASS_HEADS[t]), EMBEDDING_DIM)) for t in PROBE_TRAITS}
        intercept = {t: np.zeros(len(CLASS_HEADS[t])) for t in PROBE_TRAITS}
        add_part(path, PROBE_PART, TraitProbe(coef, intercept).arrays(), {})
    return path


# -- a tiny trained attribute model -------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory, tiny_bundle_dir):
    """A copy of the tiny bundle with an attribute model whose Smiling head was trained (80
    Adam steps) on generated faces labelled ``mean brightness > median``, and fitted
    directions."""
    import shutil

    import numpy as np
    import tensorflow as tf

    from models.attributes.directions import fit_directions, save_directions
    from models.attributes.heads import CELEBA_HEADS
    from models.attributes.model import (ATTRIBUTES_PART, AttributeConfig, AttributeModel,
                                         attribute_part_config)
    from models.bundle import add_part, load_bundle, module_arrays
    from models.training.optim import Adam

    path = tmp_path_factory.mktemp("attr") / "bundle"
    shutil.copytree(tiny_bundle_dir, path)
    bundle = load_bundle(path)
    g = bundle.generator
    cfg = AttributeConfig(resolution=32, work_resolution=16, channel_base=256, channel_max=32,
                          features=32)
    model = AttributeModel(cfg, seed=1)
    opt = Adam(model.trainable_variables, 3e-3, betas=(0.9, 0.999))
    z = np.random.default_rng(0).standard_normal((512, g.cfg.z_dim)).astype(np.float32)
    images = np.concatenate([g.synthesize(g.map_compiled(z[i:i + 128])).numpy()
                             for i in range(0, 512, 128)])
    bright = images.mean(axis=(1, 2, 3))
    labels = (bright > np.median(bright)).astype(np.float32)
    j = CELEBA_HEADS.index("Smiling")

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logit = model.logits(x)["celeba"][:, j]
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logit))
        opt.apply(tape.gradient(loss, model.trainable_variables,
                                unconnected_gradients="zero"))
        return loss

    rng = np.random.default_rng(1)
    for _ in range(80):
        idx = rng.integers(0, 512, 32)
        step(tf.constant(images[idx]), tf.constant(labels[idx]))
    add_part(path, ATTRIBUTES_PART, module_arrays(model),
             attribute_part_config(cfg, training={"note": "test: brightness → Smiling"}))
    bundle = load_bundle(path)
    save_directions(bundle, fit_directions(bundle, num_samples=400, min_side=20, seed=3))
    return path


# -- the backend's API (a server from backend_server.testing) ----------------------------------

#: The job secret of the backends the tests start (their callbacks' and API's bearer token).
SECRET = "s3cret-for-tests"
BACKEND_AUTH = {"Authorization": f"Bearer {SECRET}"}
BACKEND_T = 30  # seconds: the longest any single wait on a backend may take


class Api:
    """Requests that validate every response against the OpenAPI document."""

    def __init__(self, url: str, openapi: Any) -> None:
        self.url = url
        self.openapi = openapi

    def call(self, method: str, path: str, *, headers: dict | None = None, check: bool = True,
             **kw: Any) -> requests.Response:
        """``method`` on ``path`` (the backend's secret unless ``headers``), validated."""
        import requests
        from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

        headers = BACKEND_AUTH if headers is None else headers
        resp = requests.request(method, self.url + path, headers=headers, timeout=BACKEND_T, **kw)
        if check:
            self.openapi.validate_response(RequestsOpenAPIRequest(resp.request),
                                           RequestsOpenAPIResponse(resp))
            assert resp.headers["Content-Type"].startswith("application/json")
            assert "error" in resp.json() or resp.status_code < 400
        return resp

    def post_task(self, type_: str, params: dict | None = None, expect: int = 202,
                  documented: bool = True, **kw: Any) -> str:
        """POST /tasks; the task id (``expect`` 202) or the error."""
        from openapi_core.contrib.requests import RequestsOpenAPIRequest

        body = {"type": type_} if params is None else {"type": type_, "params": params}
        resp = self.call("POST", "/tasks", json=body, **kw)
        assert resp.status_code == expect, resp.text
        if expect == 202:
            if documented:  # accepted requests are valid requests of the documented API
                self.openapi.validate_request(RequestsOpenAPIRequest(resp.request))
            return resp.json()["task_id"]
        return resp.json()["error"]

    def task(self, task_id: str) -> dict:
        """GET /tasks/<task_id>."""
        resp = self.call("GET", f"/tasks/{task_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()


def validate_callbacks(openapi: Any, receiver: CallbackReceiver,
                       task_id: str | None = None) -> None:
    """Every callback ``receiver`` got (of ``task_id``) against docs/api/backend.yaml."""
    import requests
    from openapi_core.contrib.requests import RequestsOpenAPIWebhookRequest

    for cb in receiver.callbacks:
        if task_id is not None and cb.body.get("task_id") != task_id:
            continue
        req = requests.Request("POST", f"{receiver.url}/{cb.kind}", data=cb.raw,
                               headers={"Content-Type": cb.content_type,
                                        "Authorization": cb.authorization})
        openapi.validate_request(RequestsOpenAPIWebhookRequest(req, cb.kind))
        assert cb.body["session_id"] == "s1" and cb.body["job_id"] == "j1"


def wait_backend_state(api: Api, task_id: str, predicate: Callable[[dict], Any],
                       timeout: float = BACKEND_T) -> dict:
    """The backend task ``task_id`` once ``predicate`` holds of it (TimeoutError after
    ``timeout`` s)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        task = api.task(task_id)
        if predicate(task):
            return task
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} stuck: {task['state']} {task['message']}")
        time.sleep(0.05)


# -- the master daemon's internal API (a daemon from master_daemon.testing) ----------------------

READY_S = 120  # a backend start: TensorFlow import + bundle load + warm-up, on 2 busy cores


def session(d: RunningDaemon, sid: str) -> dict:
    """GET /api/sessions/<sid> of the daemon ``d``."""
    r = d.api("GET", f"/api/sessions/{sid}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_state(d: RunningDaemon, sid: str, state: str, timeout: float = READY_S) -> dict:
    """The daemon's session ``sid`` once it is in ``state``."""
    return wait_until(lambda: (lambda s: s if s["state"] == state else None)(session(d, sid)),
                      timeout, f"session {sid} {state}")


def post_task(d: RunningDaemon, sid: str, type_: str, params: dict) -> dict:
    """Submit a task to the daemon's session ``sid`` (202 expected)."""
    r = d.api("POST", f"/api/sessions/{sid}/tasks", json={"type": type_, "params": params})
    assert r.status_code == 202, r.text
    return r.json()


def task(d: RunningDaemon, sid: str, tid: str) -> dict:
    """GET /api/sessions/<sid>/tasks/<tid> of the daemon ``d``."""
    r = d.api("GET", f"/api/sessions/{sid}/tasks/{tid}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_task(d: RunningDaemon, sid: str, tid: str,
              states: tuple[str, ...] = ("done", "failed", "cancelled"),
              timeout: float = 120) -> dict:
    """The daemon's task ``tid`` once it is in one of ``states``."""
    return wait_until(lambda: (lambda t: t if t["state"] in states else None)(task(d, sid, tid)),
                      timeout, f"task {tid} in {states}")


def current_backend(d: RunningDaemon, sid: str) -> Any:
    """The daemon's backend record of session ``sid`` (None: none)."""
    m = d.daemon.manager
    with m._lock:
        return m.backends.get(m.sessions[sid].backend_id)
