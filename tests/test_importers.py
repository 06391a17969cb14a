"""Importing published StyleGAN2 pickles: synthetic files in both official formats (random
weights, official names and shapes, 32 px) through the restricted unpickler and the mapping."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests import stylegan2_pickles as sp
from tests.conftest import ligan


@pytest.fixture(scope="module")
def tf_vars():
    return sp.tf_variables(seed=11)


@pytest.fixture(scope="module")
def ada_arrays(tf_vars):
    return sp.ada_from_tf(*tf_vars)


@pytest.fixture(scope="module")
def tf_imported(tf_vars):
    from models.importers import convert
    from models.importers.unpickle import load_restricted

    return convert(load_restricted(sp.tf_pickle(*tf_vars)))


def _ours_from_ada(g: dict, d: dict) -> tuple[dict, dict]:
    """Our variable arrays from ADA state_dict arrays, written out for the test: [in, out]
    dense weights, [kh, kw, in, out] kernels, the upsampling kernel in scatter layout
    [kh, kw, out, in] (no flip), [4, 4, C] constant, w_avg moved up, FIR buffers dropped."""
    def conv(name: str, w: np.ndarray) -> np.ndarray:
        if ".conv0." in name and name.startswith("synthesis."):
            return w.transpose(2, 3, 0, 1)
        return w.transpose(2, 3, 1, 0)

    gen = {}
    for name, value in g.items():
        if name.endswith("resample_filter"):
            continue
        ours = "w_avg" if name == "mapping.w_avg" else name
        if value.ndim == 2 and name.endswith("weight"):
            value = value.T
        elif value.ndim == 4:
            value = conv(name, value)
        elif name.endswith(".const"):
            value = value.transpose(1, 2, 0)
        gen[ours] = value
    disc = {name: (value.T if value.ndim == 2 else conv(name, value) if value.ndim == 4
                   else value) for name, value in d.items()}
    return gen, disc


def _direct(cfg_gen, cfg_disc, gen: dict, disc: dict):
    from models.bundle import assign_weights
    from models.stylegan2 import Discriminator, Generator

    g, d = Generator(cfg_gen, seed=99), Discriminator(cfg_disc, seed=98)
    assign_weights(g, gen, "test generator")
    assign_weights(d, disc, "test discriminator")
    return g, d


def _arrays(module) -> dict:
    return {name: var.numpy() for name, var in module.named_variables()}


def test_tf_pickle_maps_every_variable(tf_imported, ada_arrays):
    nets = tf_imported
    cfg = nets.generator.cfg
    assert (cfg.resolution, cfg.z_dim, cfg.w_dim, cfg.mapping_layers) == (32, 32, 32, 2)
    assert (cfg.channel_base, cfg.channel_max) == (1024, 64)
    assert nets.format == "stylegan2-tf" and nets.generator_source == "Gs"
    gen, disc = _ours_from_ada(*ada_arrays)
    g, d = _direct(cfg, nets.discriminator.cfg, gen, disc)
    for ours, direct in ((nets.generator, g), (nets.discriminator, d)):
        got, want = _arrays(ours), _arrays(direct)
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    z = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
    np.testing.assert_array_equal(nets.generator(z, 0.7).numpy(), g(z, 0.7).numpy())


@pytest.mark.parametrize("zip_format", [False, True], ids=["legacy-storage", "zip-storage"])
def test_ada_pickle_matches_tf_pickle(tf_imported, ada_arrays, zip_format):
    """The same weights in both official formats give identical networks and images."""
    from models.importers import convert
    from models.importers.unpickle import load_restricted

    nets = convert(load_restricted(sp.ada_pickle(*ada_arrays, zip_format=zip_format)))
    assert nets.format == "stylegan2-ada-pytorch" and nets.generator_source == "G_ema"
    assert nets.generator.cfg == tf_imported.generator.cfg
    assert nets.discriminator.cfg == tf_imported.discriminator.cfg
    for ours, other in ((nets.generator, tf_imported.generator),
                        (nets.discriminator, tf_imported.discriminator)):
        got, want = _arrays(ours), _arrays(other)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(nets.discriminator(x).numpy(),
                                  tf_imported.discriminator(x).numpy())


def _evil(module: str, name: str, arg: str):
    class Evil:
        def __reduce__(self):
            return (_target, (arg,))

    def _target(*args):  # stand-in: pickled under the foreign name, never called here
        raise AssertionError

    return Evil(), {_target: (module, name)}


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"),
                                         ("subprocess", "call")])
def test_foreign_global_is_refused_before_it_runs(tmp_path, module, name):
    from models.importers import RefusedGlobalError, import_pickle

    marker = tmp_path / "ran"
    evil, names = _evil(module, name, f"touch {marker}")
    path = tmp_path / "evil.pkl"
    path.write_bytes(sp.dumps({"G_ema": evil}, names))
    with pytest.raises(RefusedGlobalError) as info:
        import_pickle(path)
    assert str(info.value) == (f"refusing to load {module}.{name} from the pickle: a pickle is "
                               f"code; only StyleGAN2 network state is accepted")
    assert isinstance(info.value, ImportError)
    assert not marker.exists()


def test_foreign_global_inside_a_tensor_storage_is_refused():
    from models.importers import RefusedGlobalError
    from models.importers.torch_storage import load_storage_bytes

    evil, names = _evil("os", "system", "true")
    with pytest.raises(RefusedGlobalError, match="refusing to load os.system"):
        load_storage_bytes(sp.dumps(evil, names, protocol=2))


def test_tensor_outside_its_storage_is_refused():
    from models.importers import SourceFormatError
    from models.importers.torch_storage import Storage, rebuild_tensor

    storage = Storage(np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(rebuild_tensor(storage, 0, (2, 3), (1, 2)),
                                  np.arange(6, dtype=np.float32).reshape(3, 2).T)
    with pytest.raises(SourceFormatError, match="outside its storage"):
        rebuild_tensor(storage, 1, (2, 3), (3, 1))


def _tf_with(tf_vars, change):
    top, mapping, syn, disc = (dict(v) for v in tf_vars)
    change(top, mapping, syn, disc)
    return sp.tf_pickle(top, mapping, syn, disc)


def test_missing_extra_and_misshapen_variables_are_named(tf_vars):
    from models.importers import MappingError, convert
    from models.importers.unpickle import load_restricted

    def damage(top, mapping, syn, disc):
        del syn["8x8/Conv1/noise_strength"]
        syn["8x8/Conv2/weight"] = np.zeros((3, 3, 4, 4), np.float32)
        syn["16x16/ToRGB/bias"] = np.zeros(4, np.float32)

    with pytest.raises(MappingError) as info:
        convert(load_restricted(_tf_with(tf_vars, damage)))
    message = str(info.value)
    assert "missing in the pickle: G_synthesis/8x8/Conv1/noise_strength" in message
    assert "left over): G_synthesis/8x8/Conv2/weight" in message
    assert ("G_synthesis/16x16/ToRGB/bias [4] → synthesis.b16.torgb.bias [4], but the "
            "architecture needs [3]") in message

    def damage_d(top, mapping, syn, disc):
        del disc["32x32/Skip/weight"]

    with pytest.raises(MappingError, match="missing in the pickle: D/32x32/Skip/weight"):
        convert(load_restricted(_tf_with(tf_vars, damage_d)))


def test_ada_missing_and_extra_variables_are_named(ada_arrays):
    from models.importers import MappingError, convert
    from models.importers.unpickle import load_restricted

    g, d = dict(ada_arrays[0]), ada_arrays[1]
    del g["synthesis.b16.conv0.affine.bias"]
    g["synthesis.b16.extra"] = np.zeros(3, np.float32)
    with pytest.raises(MappingError) as info:
        convert(load_restricted(sp.ada_pickle(g, d)))
    assert "missing in the pickle: G_ema.synthesis.b16.conv0.affine.bias" in str(info.value)
    assert "left over): G_ema.synthesis.b16.extra" in str(info.value)


def test_conditional_and_unsupported_networks_are_refused(tf_vars, ada_arrays):
    from models.importers import SourceFormatError, convert
    from models.importers.unpickle import load_restricted

    conditional = sp.tf_pickle(*tf_vars, extra_g_kwargs={"label_size": 10})
    with pytest.raises(SourceFormatError, match=r"conditional \(label_size=10\)"):
        convert(load_restricted(conditional))
    with pytest.raises(SourceFormatError, match=r"conditional \(c_dim=5\)"):
        convert(load_restricted(sp.ada_pickle(*ada_arrays, c_dim=5)))
    resnet = sp.tf_pickle(*tf_vars, extra_g_kwargs={"architecture": "resnet"})
    with pytest.raises(SourceFormatError, match="'resnet' architecture"):
        convert(load_restricted(resnet))
    unknown = sp.tf_pickle(*tf_vars, extra_g_kwargs={"fancy_option": True})
    with pytest.raises(SourceFormatError, match="does not know: fancy_option"):
        convert(load_restricted(unknown))
    with pytest.raises(SourceFormatError, match="not an official StyleGAN2"):
        convert(load_restricted(sp.dumps({"weights": [1, 2]}, {})))


def test_generator_only_pickle(tf_vars, tmp_path):
    from models.importers import import_pickle

    path = tmp_path / "gs.pkl"
    path.write_bytes(sp.tf_pickle(*tf_vars, with_d=False))
    nets = import_pickle(path)
    assert nets.discriminator is None and nets.generator_source == "G"
    assert any("generator only" in note for note in nets.notes)


def test_cli_import_end_to_end(tf_vars, tf_imported, tmp_path):
    from models.bundle import load_bundle, sha256_file

    source = tmp_path / "stylegan2-test-config-f.pkl"
    source.write_bytes(sp.tf_pickle(*tf_vars))
    out = tmp_path / "imported"
    r = ligan("bundle", "import", str(source), "--out", str(out), "--name", "test-import",
              "--licence", "CC BY-NC 4.0", "--note", "synthetic test file")
    assert r.returncode == 0, r.stderr
    digest = sha256_file(source)
    assert f"source sha256  {digest}" in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == {"file": source.name, "sha256": digest, "format": "stylegan2-tf",
                                  "generator": "Gs", "discriminator": "D",
                                  "note": "synthetic test file"}
    assert manifest["licence"] == "CC BY-NC 4.0" and manifest["name"] == "test-import"
    bundle = load_bundle(out, parts=("generator", "discriminator"))
    assert f"bundle hash    {bundle.hash}" in r.stdout
    z = np.random.default_rng(2).standard_normal((2, 32)).astype(np.float32)
    np.testing.assert_array_equal(bundle.generator(z, 0.7).numpy(),
                                  tf_imported.generator(z, 0.7).numpy())
    r = ligan("bundle", "verify", str(out))
    assert r.returncode == 0, r.stderr


def test_cli_import_refuses_a_foreign_global(tmp_path):
    evil, names = _evil("os", "system", "true")
    source = tmp_path / "evil.pkl"
    source.write_bytes(sp.dumps((evil,), names))
    r = ligan("bundle", "import", str(source), "--out", str(tmp_path / "b"))
    assert r.returncode == 2
    assert "refusing to load os.system from the pickle: a pickle is code" in r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "b" / "manifest.json")
