"""The bundle format: round trip, packing, hashes, and every way a bundle can be broken."""
import json
import shutil

import numpy as np
import pytest

from models import bundle as B


@pytest.fixture()
def bundle_copy(tiny_bundle_dir, tmp_path):
    path = tmp_path / "copy"
    shutil.copytree(tiny_bundle_dir, path)
    return path


def rewrite_manifest(path, change):
    manifest = json.loads((path / B.MANIFEST).read_text())
    change(manifest)
    (path / B.MANIFEST).write_text(json.dumps(manifest))


def rehash(path, name):
    rewrite_manifest(path, lambda m: m["files"][name].update(sha256=B.sha256_file(path / name)))


def test_round_trip_gives_the_same_weights_and_images(tiny_bundle_dir, tiny_generator):
    loaded = B.load_bundle(tiny_bundle_dir, parts=("generator", "discriminator"))
    for (name, a), (_, b) in zip(tiny_generator.named_variables(),
                                 loaded.generator.named_variables()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    z = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
    np.testing.assert_array_equal(
        tiny_generator.synthesize(tiny_generator.map_compiled(z)).numpy(),
        loaded.generator.synthesize(loaded.generator.map_compiled(z)).numpy())
    assert loaded.discriminator is not None
    assert loaded.resolution == 32 and loaded.style_layers["coarse"] == [0, 4]
    assert len(loaded.hash) == 64


def test_manifest_records_every_file(tiny_bundle_dir):
    m = B.read_manifest(tiny_bundle_dir)
    assert m["format_version"] == B.FORMAT_VERSION
    assert set(m["files"]) == {"generator.npz", "discriminator.npz"}
    for name, entry in m["files"].items():
        assert entry["sha256"] == B.sha256_file(tiny_bundle_dir / name)
    assert m["num_ws"] == 8 and m["w_dim"] == 32 and m["resolution"] == 32


def test_packed_bundle_loads_with_the_same_hash(tiny_bundle_dir, tmp_path):
    packed = B.pack_bundle(tiny_bundle_dir, tmp_path / "tiny.ligan.tar")
    a = B.load_bundle(tiny_bundle_dir)
    b = B.load_bundle(packed)
    assert a.hash == b.hash
    np.testing.assert_array_equal(a.generator.w_avg.numpy(), b.generator.w_avg.numpy())


def test_adding_a_part_changes_the_hash(bundle_copy):
    before = B.load_bundle(bundle_copy).hash
    after = B.add_part(bundle_copy, "pca", {"mean": np.zeros(4, np.float32)},
                       config={"components": 1})
    assert after != before
    loaded = B.load_bundle(bundle_copy)
    assert loaded.hash == after
    np.testing.assert_array_equal(loaded.part_arrays("pca")["mean"], np.zeros(4))
    with pytest.raises(ValueError, match="unknown bundle part"):
        B.add_part(bundle_copy, "weights2", {})


def test_missing_path(tmp_path):
    with pytest.raises(B.BundleNotFoundError, match="does not exist"):
        B.load_bundle(tmp_path / "nowhere")


def test_not_a_bundle(tmp_path):
    with pytest.raises(B.BundleFileMissingError, match="manifest.json is missing"):
        B.load_bundle(tmp_path)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file at all" * 40)
    with pytest.raises(B.BundleFormatError, match="neither a bundle directory nor a packed"):
        B.load_bundle(junk)


def test_missing_file(bundle_copy):
    (bundle_copy / "discriminator.npz").unlink()
    with pytest.raises(B.BundleFileMissingError, match="discriminator.npz is missing"):
        B.load_bundle(bundle_copy)


def test_hash_mismatch(bundle_copy):
    path = bundle_copy / "generator.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(B.BundleHashMismatchError, match="generator.npz does not match"):
        B.load_bundle(bundle_copy)


def test_newer_format_version(bundle_copy):
    rewrite_manifest(bundle_copy, lambda m: m.update(format_version=B.FORMAT_VERSION + 1))
    with pytest.raises(B.BundleVersionError, match="newer than this LiGAN reads"):
        B.load_bundle(bundle_copy)


def test_invalid_manifest_json(bundle_copy):
    (bundle_copy / B.MANIFEST).write_text("{not json")
    with pytest.raises(B.BundleFormatError, match="not valid JSON"):
        B.load_bundle(bundle_copy)


def test_architecture_that_does_not_fit_the_weights(bundle_copy):
    rewrite_manifest(bundle_copy,
                     lambda m: m["parts"]["generator"]["config"].update(channel_max=32))
    with pytest.raises(B.BundleShapeError, match=r"synthesis\.b4\.const has shape \(4, 4, 64\)"):
        B.load_bundle(bundle_copy)


def test_missing_and_unexpected_variables_are_named(bundle_copy):
    name = "generator.npz"
    with np.load(bundle_copy / name) as data:
        arrays = {k: data[k] for k in data.files}
    del arrays["w_avg"]
    arrays["synthesis.b4.extra"] = np.zeros(3, np.float32)
    with open(bundle_copy / name, "wb") as f:
        np.savez(f, **arrays)
    rehash(bundle_copy, name)
    with pytest.raises(B.BundleShapeError, match="missing w_avg; unexpected synthesis.b4.extra"):
        B.load_bundle(bundle_copy)


def test_invalid_config(bundle_copy):
    rewrite_manifest(bundle_copy, lambda m: m["parts"]["generator"]["config"].update(resolution=48))
    with pytest.raises(B.BundleFormatError, match="generator config is invalid"):
        B.load_bundle(bundle_copy)


def test_weights_are_never_unpickled(bundle_copy):
    name = "generator.npz"
    with open(bundle_copy / name, "wb") as f:
        np.savez(f, w_avg=np.array([object()], dtype=object))
    rehash(bundle_copy, name)
    with pytest.raises(B.BundleFormatError, match="not a readable weights archive"):
        B.load_bundle(bundle_copy)


def test_saving_over_an_existing_bundle_is_refused(tiny_bundle_dir, tiny_generator):
    with pytest.raises(B.BundleError, match="already holds a bundle"):
        B.save_bundle(tiny_bundle_dir, tiny_generator, name="again")


def test_set_info_says_what_a_bundle_is_and_leaves_its_weights(tiny_bundle_dir, tmp_path):
    """``ligan bundle set-info`` rewrites the manifest's free-text fields (a research-only
    licence then puts the notice on lineups), keeps every file's hash, and refuses an empty or
    missing field in one line."""
    import shutil

    from models.bundle import read_manifest, research_only_notice, verify_files
    from tests.conftest import ligan

    path = tmp_path / "b"
    shutil.copytree(tiny_bundle_dir, path)
    before = read_manifest(path)
    done = ligan("bundle", "set-info", str(path), "--name", "ligan-default-test",
                 "--licence", "non-commercial research use only")
    assert done.returncode == 0, done.stderr
    after = read_manifest(path)
    assert after["name"] == "ligan-default-test" and after["files"] == before["files"]
    assert after["description"] == before["description"]
    verify_files(path, after)
    assert "RESEARCH ONLY" in research_only_notice(after)
    for args, message in ((["--name", " "], "cannot be empty: name"),
                          ([], "nothing to set")):
        r = ligan("bundle", "set-info", str(path), *args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert read_manifest(path) == after
