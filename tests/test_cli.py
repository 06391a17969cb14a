"""The ``ligan`` command end to end, on a tiny randomly initialised bundle."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ligan

TINY_ARGS = ["--resolution", "32", "--z-dim", "32", "--w-dim", "32", "--mapping-layers", "2",
             "--channel-base", "1024", "--channel-max", "64"]


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
              "--outdir", str(out), "--grid", "--grid-cols", "2", "--batch-size", "3")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.glob("seed*.png"))
    assert names == [f"seed{s:010d}.png" for s in (3, 4, 5, 9)]
    assert Image.open(out / names[0]).size == (32, 32)
    assert Image.open(out / "grid.png").size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)
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


def test_up_starts_what_exists_and_names_what_is_missing(tmp_path):
    r = ligan("up", env={"LIGAN_BUNDLE": str(tmp_path / "none")})
    assert r.returncode == 0, r.stderr
    assert "master daemon" in r.stdout and "not built yet" in r.stdout
    assert "default model bundle" in r.stdout and "not there yet" in r.stdout


def test_up_checks_the_bundle_it_would_serve(cli_bundle):
    r = ligan("up", env={"LIGAN_BUNDLE": str(cli_bundle)})
    assert r.returncode == 0, r.stderr
    assert "default model bundle       ready" in r.stdout
