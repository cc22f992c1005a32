"""One radiograph: a patient's anatomy, posed, with its findings drawn, exposed onto film.

`render_radiograph` is a pure function of (spec, seed): the image's own random stream gives its
pose, severities, exposure and noise, so the output does not depend on the order or the process
in which images are rendered.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

from workflow_scripts.demo import STREAM_IMAGE
from workflow_scripts.demo.anatomy import patient_anatomy, posed
from workflow_scripts.demo.chest import composed_density, normal_chest
from workflow_scripts.demo.findings import draw_findings, finding_severity, reshaped_by_findings
from workflow_scripts.demo.shapes import pixel_grid


@dataclass(frozen=True)
class ImageSpec:
    """What the renderer needs to know about one image."""

    image_number: int  # row in the CSV, from 0
    file_name: str
    patient_id: int
    view: str  # PA or AP
    sex: str  # M or F
    age: int
    findings: tuple[str, ...]  # what the image shows (the labels, but for label noise)
    rgba: bool


def render_radiograph(spec, *, seed, size):
    """The `size` x `size` uint8 radiograph of one image, a pure function of (spec, seed)."""
    rng = np.random.default_rng([seed, STREAM_IMAGE, spec.image_number])
    severity = {name: finding_severity(rng) for name in spec.findings}
    anatomy = patient_anatomy(seed, spec.patient_id, spec.sex, spec.age)
    anatomy = posed(reshaped_by_findings(anatomy, severity, seed, spec.patient_id), spec.view,
                    rng)
    detail = render_size(size)
    u, v = body_coordinates(detail, anatomy, rng)
    chest = normal_chest(u, v, anatomy, rng, detail)
    draw_findings(chest, severity, seed, spec.patient_id, rng)
    density = composed_density(chest)
    if detail != size:
        density = cv2.resize(density, (size, size), interpolation=cv2.INTER_LINEAR)
    return exposed(density, rng, size)


def render_size(size):
    """Anatomy and findings are drawn at up to half the output size (at least 128 pixels):
    their edges are a few pixels soft anyway, and film blur and noise are added at full size.
    This quarters the drawing time of the default 256-pixel images."""
    return size if size <= 128 else max(128, size // 2)


def body_coordinates(size, anatomy, rng):
    """Pixel grid mapped into body coordinates: tilt, shift and scale differ per image."""
    u, v = pixel_grid(size)
    scale = rng.uniform(0.9, 1.07)
    shift_u, shift_v = rng.normal(0, 0.04), rng.normal(0.0, 0.04)
    cos, sin = math.cos(anatomy.tilt) / scale, math.sin(anatomy.tilt) / scale
    return (cos * (u - shift_u) + sin * (v - shift_v),
            -sin * (u - shift_u) + cos * (v - shift_v))


def exposed(density, rng, size):
    """Density to an 8-bit film: gain, offset and a heel-effect gradient, blur, quantum noise,
    then a gamma curve; all vary per image. Noise grows with sqrt(size), as a smaller film
    stands for a larger one averaged down."""
    gain = rng.uniform(0.78, 1.18)
    offset = rng.uniform(-0.1, 0.07)
    heel = rng.normal(0, 0.03)
    _, v = pixel_grid(size)
    film = density * gain + (offset + heel * v)
    film = cv2.GaussianBlur(film, (0, 0), size / 256 * rng.uniform(0.5, 1.1))
    noise = rng.uniform(0.008, 0.03) * math.sqrt(size / 256)
    film += rng.standard_normal((size, size), dtype=np.float32) * noise
    pixels = np.clip(film * 255.0 + 0.5, 0, 255).astype(np.uint8)
    gamma = rng.uniform(0.75, 1.35)
    curve = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(pixels, curve)
