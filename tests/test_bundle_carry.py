"""``ligan bundle carry-parts``: a bundle with a new generator reuses the face-reading parts
(attribute model, identity network, trait probe) of another; what belongs to a generator's W
is never carried."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import identity_bundle, ligan
from models.attributes.directions import Directions
from models.attributes.identity_probe import PROBE_PART, load_trait_probe
from models.attributes.model import ATTRIBUTES_PART, DIRECTION_PREFIX, load_attribute_model
from models.bundle import BundleFileMissingError, load_bundle, save_bundle, set_framing
from models.bundle_carry import carry_parts
from models.faces import UTKFACE_FRAMING
from models.faces.identity_net import IDENTITY_PART, load_identity_net
from models.stylegan2 import Generator


@pytest.fixture()
def source(tmp_path, trained_bundle):
    """The trained attribute bundle (with directions) plus an identity network and probe."""
    return identity_bundle(tmp_path, trained_bundle, probe=True)


@pytest.fixture()
def new_generator_bundle(tmp_path, tiny_cfg):
    path = tmp_path / "new"
    save_bundle(path, Generator(tiny_cfg, seed=11), name="retrained", creator="tests",
                description="another generator of the same size")
    return path


def test_carry_parts_command_copies_readers_and_drops_directions(source, new_generator_bundle):
    before = load_bundle(new_generator_bundle)
    done = ligan("bundle", "carry-parts", str(new_generator_bundle), "--from", str(source))
    assert done.returncode == 0, done.stderr
    assert "next: ligan attributes directions" in done.stdout

    src, dst = load_bundle(source, parts=()), load_bundle(new_generator_bundle)
    assert dst.hash != before.hash and dst.hash[:12] in done.stdout
    # The generator is the destination's own.
    for name, value in before.generator.named_variables():
        assert np.array_equal(dict(dst.generator.named_variables())[name].numpy(), value.numpy())
    for part in (ATTRIBUTES_PART, IDENTITY_PART, PROBE_PART):
        assert dst.manifest["parts"][part]["config"]["carried_from"] == src.hash
    # Readers carried verbatim; the directions in the old generator's W are not.
    src_attr, dst_attr = src.part_arrays(ATTRIBUTES_PART), dst.part_arrays(ATTRIBUTES_PART)
    assert any(k.startswith(DIRECTION_PREFIX) for k in src_attr)
    assert not any(k.startswith(DIRECTION_PREFIX) for k in dst_attr)
    assert all(np.array_equal(v, src_attr[k]) for k, v in dst_attr.items())
    with pytest.raises(BundleFileMissingError, match="no attribute directions"):
        Directions.from_bundle(dst)
    for part in (IDENTITY_PART, PROBE_PART):
        a, b = src.part_arrays(part), dst.part_arrays(part)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # ... and they load and read faces as they did in the source bundle.
    faces = before.generator.synthesize(
        before.generator.map_compiled(np.ones((2, before.generator.cfg.z_dim), np.float32)))
    faces = faces.numpy()
    assert np.allclose(load_identity_net(dst).embed(faces), load_identity_net(src).embed(faces))
    assert load_trait_probe(dst) is not None
    assert load_attribute_model(dst).cfg == load_attribute_model(src).cfg


@pytest.mark.parametrize("parts, message", [
    (("encoder",), "the encoder part cannot be carried"),
    (("pca",), "the pca part cannot be carried"),
])
def test_generator_bound_parts_are_refused(source, new_generator_bundle, parts, message):
    with pytest.raises(ValueError, match=message):
        carry_parts(source, new_generator_bundle, parts)


def test_mismatched_bundles_are_refused(source, new_generator_bundle, tiny_bundle_dir, tmp_path):
    with pytest.raises(ValueError, match="has no identity part"):
        carry_parts(tiny_bundle_dir, new_generator_bundle, (IDENTITY_PART,))
    set_framing(new_generator_bundle, UTKFACE_FRAMING)
    with pytest.raises(ValueError, match="frame faces differently"):
        carry_parts(source, new_generator_bundle)
    before = load_bundle(new_generator_bundle, parts=()).hash
    done = ligan("bundle", "carry-parts", str(new_generator_bundle), "--from", str(source),
                 "--parts", "identity,encoder")
    assert done.returncode != 0 and "the encoder part cannot be carried" in done.stderr
    assert load_bundle(new_generator_bundle, parts=()).hash == before  # nothing half-done
    packed = tmp_path / "packed.tar"
    assert ligan("bundle", "pack", str(source), str(packed)).returncode == 0
    done = ligan("bundle", "carry-parts", str(packed), "--from", str(source))
    assert done.returncode != 0 and "is not a bundle directory" in done.stderr
