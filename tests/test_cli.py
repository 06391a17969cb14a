"""The ``ligan`` command end to end, on a tiny randomly initialised bundle."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, TINY_ARGS, ligan, ligan_command, wait_until


@pytest.fixture(scope="module")
def cli_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "b"
    r = ligan("bundle", "init", str(path), *TINY_ARGS, "--seed", "4")
    assert r.returncode == 0, r.stderr
    assert "created untrained bundle" in r.stdout
    return path


def test_help_explains_every_command():
    r = ligan("--help")
    assert r.returncode == 0
    for command in ("up", "generate", "bundle"):
        assert command in r.stdout
    r = ligan("generate", "--help")
    assert "--seeds" in r.stdout and "--noise-mode" in r.stdout and "--grid" in r.stdout
    r = ligan("bundle", "--help")
    for action in ("inspect", "verify", "init", "pack"):
        assert action in r.stdout


def test_inspect_and_verify(cli_bundle):
    r = ligan("bundle", "inspect", str(cli_bundle))
    assert r.returncode == 0, r.stderr
    assert "resolution  32 px" in r.stdout and "UNTRAINED" in r.stdout
    info = json.loads(ligan("bundle", "inspect", str(cli_bundle), "--json").stdout)
    assert info["num_ws"] == 8 and set(info["parts"]) == {"generator", "discriminator"}
    r = ligan("bundle", "verify", str(cli_bundle))
    assert r.returncode == 0, r.stderr
    assert info["hash"] in r.stdout


def test_verify_reports_corruption(cli_bundle, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(cli_bundle, broken)
    with open(broken / "generator.npz", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    r = ligan("bundle", "verify", str(broken))
    assert r.returncode == 2
    assert "generator.npz does not match its recorded sha256" in r.stderr
    assert "Traceback" not in r.stderr


def test_generate_writes_images_records_and_grid(cli_bundle, tmp_path):
    out = tmp_path / "faces"
    r = ligan("generate", "--bundle", str(cli_bundle), "--seeds", "3-5,9", "--psi", "0.7",
              "--outdir", str(out), "--grid", "--grid-cols", "2", "--grid-zoom", "3",
              "--batch-size", "3")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.glob("seed*.png"))
    assert names == [f"seed{s:010d}.png" for s in (3, 4, 5, 9)]
    assert Image.open(out / names[0]).size == (32, 32)
    # 2 × 2 faces, each 3× by nearest neighbour, 2 × 3 pixels apart
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape[:2] == (2 * 96 + 3 * 6, 2 * 96 + 3 * 6)
    last = np.asarray(Image.open(out / names[3]))[..., :3]
    np.testing.assert_array_equal(grid[6 + 96 + 6:, 6 + 96 + 6:][:96, :96, :3],
                                  last.repeat(3, axis=0).repeat(3, axis=1))
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [rec["parameters"]["seed"] for rec in records] == [3, 4, 5, 9]
    expected_z = np.random.RandomState(9).randn(32).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(records[3]["latent"], np.float32), expected_z)
    manifest_hash = json.loads(ligan("bundle", "inspect", str(cli_bundle), "--json").stdout)["hash"]
    assert all(rec["bundle_hash"] == manifest_hash for rec in records)
    assert all(rec["truncation_psi"] == 0.7 and rec["latent_space"] == "z" for rec in records)
    assert len({rec["id"] for rec in records}) == 4


def test_generation_is_reproducible_and_packing_changes_nothing(cli_bundle, tmp_path):
    packed = tmp_path / "b.tar"
    assert ligan("bundle", "pack", str(cli_bundle), str(packed)).returncode == 0
    a, b = tmp_path / "a", tmp_path / "b"
    for bundle, out in ((cli_bundle, a), (packed, b)):
        r = ligan("generate", "--bundle", str(bundle), "--seeds", "1-2", "--noise-mode", "random",
                  "--outdir", str(out), "--no-progress")
        assert r.returncode == 0, r.stderr
    for name in ("seed0000000001.png", "seed0000000002.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--seeds", "5-2"], "the end is before the start"),
    (["--seeds", "a,b"], "bad seed 'a'"),
    (["--psi", "nan"], "truncation psi must be a number from -2 to 2"),
    (["--psi", "7"], "truncation psi must be a number from -2 to 2"),
    (["--cutoff", "99"], "truncation cutoff must be from 0 to 8"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--grid", "--grid-zoom", "0"], "--grid-zoom must be at least 1"),
])
def test_bad_arguments_get_clear_errors(cli_bundle, tmp_path, args, message):
    r = ligan("generate", "--bundle", str(cli_bundle), "--outdir", str(tmp_path / "x"), *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_bundle_is_a_clear_error(tmp_path):
    r = ligan("generate", "--bundle", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert "no bundle at" in r.stderr and "does not exist" in r.stderr


def test_bad_setting_is_a_clear_error():
    r = ligan("bundle", "--help", env={"LIGAN_TF_INTER_THREADS": "many"})
    assert r.returncode == 2
    assert "LIGAN_TF_INTER_THREADS must be an integer" in r.stderr


def test_up_check_names_a_missing_bundle_and_what_to_do(tmp_path):
    r = ligan("up", "--check", env={"LIGAN_BUNDLE": str(tmp_path / "none"),
                                   "LIGAN_HOME": str(tmp_path / "home")})
    assert r.returncode == 0, r.stderr
    for part in ("master daemon", "frontend server + web UI", "backend server"):
        assert f"{part}" in r.stdout and "MISSING" not in r.stdout
    assert "not there" in r.stdout and "Sessions will fail to start" in r.stdout
    assert not (tmp_path / "home").exists()  # --check starts and creates nothing


def test_up_check_verifies_the_bundle_it_would_serve(cli_bundle, tmp_path):
    r = ligan("up", "--check", env={"LIGAN_BUNDLE": str(cli_bundle),
                                   "LIGAN_HOME": str(tmp_path / "home")})
    assert r.returncode == 0, r.stderr
    assert "model bundle               ready" in r.stdout
    broken = tmp_path / "broken"
    shutil.copytree(cli_bundle, broken)
    (broken / "manifest.json").write_text("{")
    r = ligan("up", "--check", env={"LIGAN_BUNDLE": str(broken)})
    assert r.returncode == 1 and "UNUSABLE" in r.stdout


def test_up_serves_the_web_app_creates_the_first_admin_and_stops_on_ctrl_c(cli_bundle,
                                                                           tmp_path):
    import signal
    import socket
    import threading
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LIGAN_BUNDLE=str(cli_bundle), LIGAN_HOME=str(tmp_path / "home"),
               LIGAN_PORT=str(port))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as an operator starts it: the launcher quiets TF

    def start() -> tuple[subprocess.Popen, list[str]]:
        proc = subprocess.Popen([*ligan_command(), "up"], env=env, cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
        def running() -> bool:
            assert proc.poll() is None, "".join(lines)
            return any("LiGAN runs. Open" in line for line in lines)

        wait_until(running, 120, "'LiGAN runs. Open' printed", interval=0.2)
        return proc, lines

    def stop(proc: subprocess.Popen, lines: list[str]) -> None:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, "".join(lines)
        time.sleep(0.2)
        assert any("Stopped." in line for line in lines), "".join(lines)

    proc, lines = start()
    try:
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}" in out
        # The first screen holds what an operator needs: no TensorFlow/absl/oneDNN notices
        # and no proxy warnings (they used to appear twice during start-up).
        noise = [line for line in lines if any(word in line for word in (
            "oneDNN", "absl", "cuda", "TensorFlow binary", "proxy", "W0000", "I0000"))]
        assert not noise, "".join(noise)
        assert sum("devices:" in line for line in lines) == 1, out
        assert "created the administrator account 'admin'" in out
        password = lines[[i for i, line in enumerate(lines) if "with the password" in line][0]
                         + 1].strip()
        note = tmp_path / "home" / "frontend" / "initial-admin-password"
        assert note.read_text().strip() == password and (note.stat().st_mode & 0o077) == 0
        # the daemon answers, and proxies the web app of the frontend server it started
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        if proc.poll() is None:
            stop(proc, lines)
    proc, lines = start()  # a second start keeps the account and prints no password
    stop(proc, lines)
    assert "created the administrator" not in "".join(lines)


def test_settings_pass_to_a_child_process_whole():
    import dataclasses

    from setup.config import load_settings, to_env

    settings = dataclasses.replace(load_settings({}), port=9123, secure_cookies=True,
                                   session_idle_timeout=12.5, scheduler="slurm",
                                   slurm_partition="gpu", login_rate_limit="3 per minute")
    assert settings.tf_inter_threads is None  # unset: chosen by workload, in the child too
    assert load_settings(to_env(settings)) == settings
    explicit = dataclasses.replace(settings, tf_inter_threads=3)
    assert load_settings(to_env(explicit)) == explicit
