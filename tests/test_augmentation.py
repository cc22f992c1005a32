import keras
import numpy as np
import pytest
import tensorflow as tf

from workflow_scripts.augmentation import (
    PaperAugmentation,
    resample_and_brighten,
    resample_and_brighten_compiled,
)

NONE = {"rotation_degrees": 0, "zoom": 0, "shift": 0, "shear": 0, "horizontal_flip": False,
        "brightness": (1.0, 1.0)}


def images(batch=8, size=24, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 1)).astype("float32")


def test_inactive_at_inference_and_identity_with_zero_ranges():
    x = images()
    layer = PaperAugmentation(seed=1)
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_allclose(PaperAugmentation(**NONE, seed=1)(x, training=True), x, atol=1e-3)


def test_flip_mirrors_some_images_and_keeps_the_others():
    x = images(batch=32)
    layer = PaperAugmentation(**{**NONE, "horizontal_flip": True}, seed=3)
    out = np.asarray(layer(x, training=True))
    same = np.isclose(out, x, atol=1e-3).all(axis=(1, 2, 3))
    mirrored = np.isclose(out, x[:, :, ::-1], atol=1e-3).all(axis=(1, 2, 3))
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_brightness_is_multiplicative_and_clipped():
    x = np.full((64, 8, 8, 1), 200.0, "float32")
    layer = PaperAugmentation(**{**NONE, "brightness": (0.4, 1.5)}, seed=2)
    out = np.asarray(layer(x, training=True))
    factors = out[:, 0, 0, 0] / 200.0
    assert factors.min() >= 0.4 - 1e-6 and out.max() == pytest.approx(255.0)
    assert np.allclose(out, out[:, :1, :1, :]), "one factor per image"


def test_shift_moves_content_by_whole_pixels():
    x = np.zeros((1, 20, 20, 1), "float32")
    x[0, 10, 10, 0] = 255
    layer = PaperAugmentation(**{**NONE, "shift": 0.3}, seed=5)
    out = np.asarray(layer(x, training=True))[0, :, :, 0]
    assert out.sum() == pytest.approx(255.0, rel=1e-3), "a shifted image keeps its mass"


def test_resampling_matches_tensorflows_projective_transform():
    x = images(batch=16, size=32)
    rng = np.random.default_rng(7)
    angle, zoom = rng.uniform(-0.2, 0.2, 16), rng.uniform(0.9, 1.1, 16)
    inverse = np.stack([np.cos(angle) * zoom, -np.sin(angle), rng.uniform(-3, 3, 16),
                        np.sin(angle), np.cos(angle) * zoom, rng.uniform(-3, 3, 16)])
    inverse = inverse.astype("float32")
    reference = keras.ops.image.affine_transform(
        x, np.concatenate([inverse, np.zeros((2, 16), "float32")]).T,
        interpolation="bilinear", fill_mode="nearest")
    brightness = rng.uniform(0.5, 1.5, 16).astype("float32")
    expected = np.clip(np.asarray(reference) * brightness[:, None, None, None], 0, 255)
    for transform in (resample_and_brighten, resample_and_brighten_compiled):
        out = np.asarray(transform(tf.constant(x), tf.constant(inverse), tf.constant(brightness)))
        assert np.abs(out - expected).mean() < 0.5, transform


def test_augmentation_compiles_with_xla():
    layer = PaperAugmentation(seed=4, xla_compatible=True)
    compiled = tf.function(lambda batch: layer(batch, training=True), jit_compile=True)
    out = compiled(tf.constant(images()))
    assert out.shape == (8, 24, 24, 1) and np.isfinite(np.asarray(out)).all()


def test_config_round_trip():
    layer = PaperAugmentation(rotation_degrees=5, brightness=(0.5, 1.2), seed=9)
    clone = PaperAugmentation.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
