"""One real stack for all browser tests: the master daemon (master_daemon.testing), the real
frontend server behind it, and real local backends with a tiny untrained bundle (with a PCA
part, so ``fillers`` works). Starting it costs a backend's TensorFlow start (~15 s), so it is
shared by the whole session; everything is stopped at the end."""
from __future__ import annotations

import json
import shutil

import pytest

from frontend_server.testing import PASSWORD, add_user
from tests.conftest import REPO, SHARED

LONDON = SHARED / "faces" / "london"


@pytest.fixture(scope="session")
def pca_bundle(tiny_bundle_dir, tmp_path_factory):
    from models.bundle import add_part, load_bundle
    from models.latent import fit_pca

    path = tmp_path_factory.mktemp("ui-bundle") / "bundle"
    shutil.copytree(tiny_bundle_dir, path)
    pca = fit_pca(load_bundle(path).generator, num_samples=1000, num_components=16)
    add_part(path, "pca", pca.arrays(), config=pca.config())
    # Licensed like the default bundle: the pages and exports must show the research notice.
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["licence"] = "non-commercial research use only (test bundle)"
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
    load_bundle(path)  # still a valid bundle
    return path


@pytest.fixture(scope="session")
def live(pca_bundle, tmp_path_factory):
    """The running daemon (``.url``) with users ``admin`` (admin) and ``officer``."""
    if not LONDON.exists():
        pytest.skip(f"{LONDON} is absent (shared photos)")
    from master_daemon.testing import start_daemon

    home = tmp_path_factory.mktemp("ui-home")
    for name, admin in (("admin", True), ("officer", False)):
        done = add_user(home, name, admin=admin)
        assert done.returncode == 0, done.stderr
    # the real frontend (the default command); the daemon passes it its LIGAN_HOME and bundle
    daemon = start_daemon(home, pca_bundle, wait_frontend_s=60, max_backends=2)
    try:
        assert daemon.wait_frontend(60), (home / "logs" / "frontend.log").read_text()[-3000:]
        daemon.password = PASSWORD
        yield daemon
    finally:
        daemon.stop(cancel_backends=True)


SHOTS = REPO / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
READY_TIMEOUT = 180_000      # ms: the backend's TensorFlow start on a busy machine
TASK_TIMEOUT = 240_000


@pytest.fixture(scope="module")
def page(live):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium); browser tests skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed in this environment")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800},
                                      accept_downloads=True)
        pg = context.new_page()
        pg.errors = []
        pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
        pg.set_default_timeout(30_000)
        try:
            yield pg
        finally:
            context.close()
            browser.close()
