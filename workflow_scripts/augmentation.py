"""On-device augmentation with the paper's ImageDataGenerator settings, as one Keras layer.

Keras' ImageDataGenerator augmented in a per-image Python loop on the CPU. This layer draws
the same transforms per image but applies them to the whole batch on the device, and fuses
rotation, zoom, shift, shear and flip into a single affine resampling (one interpolation pass
instead of five). The resampling is written with gathers and always compiled by XLA, which
fuses it into one loop over the output pixels: with the rest of the train step when that is
compiled with XLA (`xla_compatible=True`), on its own otherwise. On a CPU that is faster
than TensorFlow's projective-transform kernel (`make bench` measures both side by side).
Brightness is multiplicative, as ImageDataGenerator's `brightness_range` (PIL's
ImageEnhance.Brightness), not Keras' additive RandomBrightness.

Conventions follow ImageDataGenerator: `rotation_degrees` and `shear` are angles in degrees
(the paper's shear range of 0.05 is thus a twentieth of a degree), `zoom` z scales by a factor
in [1 - z, 1 + z] per axis, `shift` is a fraction of the image size, and pixels that come from
outside the image repeat the nearest edge (fill_mode 'nearest').
"""

import math

import keras
import tensorflow as tf
from keras import ops


def sample_bilinear(images, inverse):
    """Resample each image at its affine-mapped locations with bilinear interpolation.

    `inverse` = (a, b, c, d, e, f), shape (6, batch): the output pixel (x, y) reads the input
    at (a x + b y + c, d x + e y + f). Locations are clamped to the image, which repeats the
    nearest edge pixel. Written with gathers rather than ImageProjectiveTransform, which has
    no XLA kernel, so that XLA can compile it.
    """
    shape = ops.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    rows, cols = ops.meshgrid(ops.arange(height, dtype="float32"),
                              ops.arange(width, dtype="float32"), indexing="ij")
    rows, cols = ops.reshape(rows, (1, -1)), ops.reshape(cols, (1, -1))
    a, b, c, d, e, f = (ops.reshape(inverse[i], (-1, 1)) for i in range(6))
    w_max = ops.cast(width - 1, "float32")
    h_max = ops.cast(height - 1, "float32")
    source_x = ops.clip(a * cols + b * rows + c, 0.0, w_max)
    source_y = ops.clip(d * cols + e * rows + f, 0.0, h_max)
    x0, y0 = ops.floor(source_x), ops.floor(source_y)
    x1, y1 = ops.minimum(x0 + 1.0, w_max), ops.minimum(y0 + 1.0, h_max)
    weight_x, weight_y = source_x - x0, source_y - y0
    flat = ops.reshape(images, (batch, -1, channels))

    def pixels(y, x):
        index = ops.cast(y * ops.cast(width, "float32") + x, "int32")
        index = ops.broadcast_to(ops.expand_dims(index, -1), (batch, ops.shape(index)[1], channels))
        return ops.take_along_axis(flat, index, axis=1)

    top = pixels(y0, x0) * (1.0 - weight_x)[..., None] + pixels(y0, x1) * weight_x[..., None]
    bottom = pixels(y1, x0) * (1.0 - weight_x)[..., None] + pixels(y1, x1) * weight_x[..., None]
    mixed = top * (1.0 - weight_y)[..., None] + bottom * weight_y[..., None]
    return ops.reshape(mixed, (batch, height, width, channels))


def resample_and_brighten(images, inverse, brightness):
    """All of the layer's per-pixel work, for XLA to fuse into one pass over the output:
    `sample_bilinear` of the images as float32, times `brightness` (one factor per image),
    clipped to [0, 255]."""
    resampled = sample_bilinear(ops.cast(images, "float32"), inverse)
    return ops.clip(resampled * ops.reshape(brightness, (-1, 1, 1, 1)), 0.0, 255.0)


# For steps that are not compiled with XLA. One trace per batch shape (the last batch of an
# epoch is smaller), hence no retracing limit to worry about.
resample_and_brighten_compiled = tf.function(resample_and_brighten, jit_compile=True)


@keras.saving.register_keras_serializable(package="clr")
class PaperAugmentation(keras.layers.Layer):
    """Random affine transform + multiplicative brightness, active only when training.

    Per image: angle ~ U(-r, r) degrees, shear ~ U(-s, s) degrees, zoom_x, zoom_y ~ U(1-z, 1+z),
    shift_x, shift_y ~ U(-t, t) x size, flip with probability 1/2, brightness b ~ U(lo, hi).
    The output pixel at p samples the input at A^-1 (p - c - shift) + c, c the image centre,
    with A = R(angle) . Shear(shear) . diag(zoom) . Flip; then out = clip(b * out, 0, 255).
    Inputs are float images in [0, 255], shape (batch, height, width, channels).
    """

    def __init__(self, rotation_degrees=7.0, zoom=0.1, shift=0.1, shear=0.05,
                 horizontal_flip=True, brightness=(0.4, 1.5), seed=None, xla_compatible=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.rotation_degrees = float(rotation_degrees)
        self.zoom = float(zoom)
        self.shift = float(shift)
        self.shear = float(shear)
        self.horizontal_flip = bool(horizontal_flip)
        self.brightness = tuple(float(b) for b in brightness)
        self.seed = seed
        self.xla_compatible = bool(xla_compatible)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        shape = ops.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        dtype = images.dtype

        def uniform(low, high):
            return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

        angle = uniform(-1.0, 1.0) * math.radians(self.rotation_degrees)
        shear = uniform(-1.0, 1.0) * math.radians(self.shear)
        zoom_x = uniform(1.0 - self.zoom, 1.0 + self.zoom)
        zoom_y = uniform(1.0 - self.zoom, 1.0 + self.zoom)
        w = ops.cast(width, "float32")
        h = ops.cast(height, "float32")
        shift_x = uniform(-self.shift, self.shift) * w
        shift_y = uniform(-self.shift, self.shift) * h
        flip = ops.ones((batch,))
        if self.horizontal_flip:
            flip = ops.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0)

        # Forward map A = R . Shear . Zoom . Flip, inverted in closed form for the sampler,
        # which needs the input location of each output pixel.
        cos, sin = ops.cos(angle), ops.sin(angle)
        tan_shear = ops.tan(shear)
        a00 = cos * zoom_x * flip
        a01 = (cos * tan_shear - sin) * zoom_y
        a10 = sin * zoom_x * flip
        a11 = (sin * tan_shear + cos) * zoom_y
        det = a00 * a11 - a01 * a10
        i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
        cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
        # input = Inv . (output - c - shift) + c
        tx = cx - (i00 * (cx + shift_x) + i01 * (cy + shift_y))
        ty = cy - (i10 * (cx + shift_x) + i11 * (cy + shift_y))
        inverse = ops.stack([i00, i01, tx, i10, i11, ty])
        low, high = self.brightness
        transform = (resample_and_brighten if self.xla_compatible
                     else resample_and_brighten_compiled)
        return ops.cast(transform(images, inverse, uniform(low, high)), dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rotation_degrees": self.rotation_degrees,
            "zoom": self.zoom,
            "shift": self.shift,
            "shear": self.shear,
            "horizontal_flip": self.horizontal_flip,
            "brightness": list(self.brightness),
            "seed": self.seed,
            "xla_compatible": self.xla_compatible,
        }
