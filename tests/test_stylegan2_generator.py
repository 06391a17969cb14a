"""Generator behaviour: input forms, truncation, noise, mixing, compilation, exactness."""
import numpy as np
import pytest
import tensorflow as tf

from models.stylegan2 import ConfigError, Generator, GeneratorConfig, mix_styles
from tests.reference_stylegan2 import map_one, synthesize_one


def z_batch(n, dim=32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_shapes_and_dtypes_for_z_w_and_w_plus(tiny_generator, tiny_cfg):
    g = tiny_generator
    ws = g.map_compiled(z_batch(3))
    assert ws.shape == (3, tiny_cfg.num_ws, tiny_cfg.w_dim) and ws.dtype == tf.float32
    assert tiny_cfg.num_ws == 8
    for latent in (ws, ws[:, 0]):  # w+ and a single w broadcast
        img = g.synthesize(latent)
        assert img.shape == (3, 32, 32, 3) and img.dtype == tf.float32
    np.testing.assert_array_equal(g.synthesize(ws).numpy(), g.synthesize(ws[:, 0]).numpy())
    eager = g(z_batch(3))
    np.testing.assert_allclose(eager.numpy(), g.synthesize(ws).numpy(), atol=1e-5)


def test_wrong_latent_shape_is_refused(tiny_generator):
    with pytest.raises(ValueError, match=r"ws must be \[N, 8, 32\]"):
        tiny_generator.synthesize(np.zeros((2, 5, 32), np.float32))


def test_official_config_f_variable_shapes():
    g = Generator(GeneratorConfig(resolution=1024))
    shapes = {name: tuple(v.shape) for name, v in g.named_variables()}
    assert g.num_ws == 18
    assert shapes["mapping.fc0.weight"] == (512, 512)
    assert shapes["synthesis.b4.const"] == (4, 4, 512)
    assert shapes["synthesis.b4.conv1.weight"] == (3, 3, 512, 512)
    assert shapes["synthesis.b64.conv0.weight"] == (3, 3, 512, 512)  # scatter layout (out, in)
    assert shapes["synthesis.b128.conv0.weight"] == (3, 3, 256, 512)
    assert shapes["synthesis.b1024.conv1.weight"] == (3, 3, 32, 32)
    assert shapes["synthesis.b1024.conv1.noise_const"] == (1024, 1024)
    assert shapes["synthesis.b1024.torgb.weight"] == (1, 1, 32, 3)
    assert shapes["w_avg"] == (512,)
    trainable = sum(int(np.prod(v.shape)) for v in g.trainable_variables)
    # Official config F: 30,370,060 generator parameters counting noise strengths (no buffers).
    assert trainable == 30_370_060


def test_resolution_limits():
    for bad in (16, 48, 2048):
        with pytest.raises(ConfigError, match="power of two from 32 to 1024"):
            GeneratorConfig(resolution=bad)


def test_matches_the_per_sample_equations(tiny_generator):
    g = tiny_generator
    z = z_batch(2, seed=7)
    ws = g.map_compiled(z).numpy()
    np.testing.assert_allclose(ws[:, 0], np.stack([map_one(g, zz) for zz in z]), atol=1e-5)
    for mode in ("const", "none"):
        got = g.synthesize(ws, mode).numpy()
        ref = np.stack([synthesize_one(g, w, mode) for w in ws])
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_psi_zero_gives_the_average_face(tiny_generator):
    g = tiny_generator
    ws = g.map_compiled(z_batch(4, seed=1), truncation_psi=0.0)
    np.testing.assert_allclose(ws.numpy(), np.broadcast_to(g.w_avg.numpy(), ws.shape), atol=1e-6)
    avg = g.synthesize(g.w_avg.numpy()[None]).numpy()
    imgs = g.synthesize(ws).numpy()
    np.testing.assert_allclose(imgs, np.broadcast_to(avg, imgs.shape), atol=1e-5)


def test_truncation_cutoff_only_touches_the_first_entries(tiny_generator):
    g = tiny_generator
    z = z_batch(2, seed=2)
    full = g.map_compiled(z).numpy()
    cut = g.map_compiled(z, truncation_psi=0.5, truncation_cutoff=3).numpy()
    np.testing.assert_array_equal(cut[:, 3:], full[:, 3:])
    expected = g.w_avg.numpy() + 0.5 * (full[:, :3] - g.w_avg.numpy())
    np.testing.assert_allclose(cut[:, :3], expected, atol=1e-6)


def test_same_inputs_same_images_and_noise_modes(tiny_generator):
    g = tiny_generator
    ws = g.map_compiled(z_batch(3, seed=4))
    a, b = g.synthesize(ws).numpy(), g.synthesize(ws).numpy()
    np.testing.assert_array_equal(a, b)
    r1 = g.synthesize(ws, "random", noise_seeds=[1, 2, 3]).numpy()
    r2 = g.synthesize(ws, "random", noise_seeds=[1, 2, 3]).numpy()
    r3 = g.synthesize(ws, "random", noise_seeds=[9, 2, 3]).numpy()
    np.testing.assert_array_equal(r1, r2)
    assert np.abs(r1[0] - r3[0]).max() > 1e-3  # new seed, new noise
    np.testing.assert_array_equal(r1[1:], r3[1:])  # other samples untouched by it
    none = g.synthesize(ws, "none").numpy()
    assert np.abs(none - a).max() > 1e-3
    with pytest.raises(ValueError, match="noise_mode"):
        g.synthesize(ws, "sometimes")


def test_a_face_does_not_depend_on_its_batch(tiny_generator):
    g = tiny_generator
    ws = g.map_compiled(z_batch(5, seed=5))
    batch = g.synthesize(ws, "random", noise_seeds=[10, 11, 12, 13, 14]).numpy()
    alone = g.synthesize(ws[2:3], "random", noise_seeds=[12]).numpy()
    np.testing.assert_allclose(batch[2:3], alone, atol=1e-5)


def test_no_retracing_per_batch_size(tiny_generator):
    g = tiny_generator
    for n in (1, 2, 3, 7):
        g.synthesize(g.map_compiled(z_batch(n)))
    assert g._compiled_fn("synth:const:float32").experimental_get_tracing_count() == 1
    assert g._compiled_fn("map").experimental_get_tracing_count() == 1


def test_style_mixing_changes_only_the_chosen_layers(tiny_generator, tiny_cfg):
    g = tiny_generator
    wa = g.map_compiled(z_batch(1, seed=10)).numpy()
    wb = g.map_compiled(z_batch(1, seed=11)).numpy()
    fine = range(*tiny_cfg.style_ranges()["middle"])
    mixed = mix_styles(wa, wb, fine).numpy()
    chosen = np.zeros(tiny_cfg.num_ws, bool)
    chosen[list(fine)] = True
    np.testing.assert_array_equal(mixed[:, chosen], wb[:, chosen])
    np.testing.assert_array_equal(mixed[:, ~chosen], wa[:, ~chosen])
    img_a, img_m = g.synthesize(wa).numpy(), g.synthesize(mixed).numpy()
    assert np.abs(img_a - img_m).max() > 1e-3
    all_b = mix_styles(wa, wb, range(tiny_cfg.num_ws))
    np.testing.assert_array_equal(g.synthesize(all_b).numpy(), g.synthesize(wb).numpy())
    with pytest.raises(ValueError, match="outside 0..7"):
        mix_styles(wa, wb, [8])


def test_style_ranges_follow_the_resolutions():
    assert GeneratorConfig(resolution=1024).style_ranges() == {
        "coarse": [0, 4], "middle": [4, 8], "fine": [8, 18]}
    assert GeneratorConfig(resolution=32).style_ranges()["fine"] == [8, 8]


def test_w_avg_update_moves_toward_the_batch_mean(tiny_cfg):
    g = Generator(tiny_cfg)
    w = np.ones((4, tiny_cfg.w_dim), np.float32)
    g.update_w_avg(tf.constant(w))
    np.testing.assert_allclose(g.w_avg.numpy(), 1 - tiny_cfg.w_avg_beta, atol=1e-7)


def test_conv_clamp_limits_activations(tiny_cfg):
    import dataclasses

    cfg = dataclasses.replace(tiny_cfg, conv_clamp=0.05)
    g = Generator(cfg, seed=3)
    img = g.synthesize(g.map_compiled(z_batch(2))).numpy()
    # Each ToRGB output is clamped to ±0.05; the skip sum over 4 resolutions (upsampling with
    # a filter of gain 4 over its 4 phases) cannot exceed a few times that.
    assert np.abs(img).max() <= 0.05 * 4 + 1e-6
