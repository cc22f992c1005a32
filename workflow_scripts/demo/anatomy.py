"""A patient's chest as numbers: drawn once per patient, posed per image.

Follow-ups show the same chest, so `patient_anatomy` depends on (seed, patient) only; what
varies per film (breath, tilt, and the magnification of an AP view) is applied by `posed`.
Findings and normal variants are placed in lung coordinates (`lung_point`): `vn` from the apex
(0) to the costophrenic angle (1), `across` from the medial edge (0) to the chest wall (1).
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from workflow_scripts.demo import STREAM_ANATOMY

SIDE_SIGN = (-1.0, 1.0)  # side 0 is image left (the patient's right), side 1 image right


@dataclass(frozen=True)
class Spot:
    """A site in lung coordinates (see `lung_point`), with a size and a strength."""

    side: int
    vn: float
    across: float
    size: float
    strength: float

    def center(self, anatomy):
        """(u, v) of the spot in `anatomy`."""
        return lung_point(anatomy, self.side, self.vn, self.across)


@dataclass(frozen=True)
class Anatomy:
    """A patient's chest in body coordinates: u from -1 (image left) to 1, v from -1 (top) to 1.

    Lateral distances `t` are measured from the midline, positive toward the side in question;
    pairs are (image left, image right). The cardiothoracic ratio is
    heart_half_width / mean(lung_outer).
    """

    midline: float
    body_half_width: float
    neck_half_width: float
    shoulder_level: float  # v where the neck widens into the shoulders
    lung_top: float  # v of the apices
    apex_t: float  # t of the apices
    apex_rounding: float  # share of lung height over which a lung reaches its full width
    mediastinum: float  # t of the lungs' medial edges
    lung_outer: tuple[float, float]  # t of the lateral chest wall
    diaphragm: tuple[float, float]  # v of the costophrenic angles
    dome_height: tuple[float, float]  # how far each dome rises above its costophrenic angle
    dome_peak: float  # t of the domes' highest points
    heart_half_width: float
    heart_shift: float  # heart center right of the midline, in heart half widths
    heart_angle: float  # radians; the long axis points down to the image right (the apex)
    heart_roundness: float  # short axis / long axis of the heart's ellipse
    lung_air: float  # density that aerated lung removes at full depth
    markings: float  # strength of the vascular markings
    rib_spacing: float
    rib_phase: float
    clavicle_level: float
    breast: float  # density of breast shadows over the lower lungs (0 for men)
    gastric_bubble: float  # radius of the stomach's air bubble under the left dome
    tilt: float  # radians
    # Normal variants that mimic findings, as on real films.
    costophrenic_fill: tuple[float, float]  # slightly blunted angles (mimic effusion)
    nipple_shadows: float  # opacity of two small round shadows at the bases (mimic nodules)
    granuloma: Spot | None  # a small calcified scar (mimics a nodule)
    linear_scar: Spot | None  # a thin band of old scarring (mimics plate atelectasis)
    view_ap: bool = False  # set per image by `posed`


def patient_anatomy(seed, patient_id, sex, age):
    """Anatomy drawn once per patient, so that follow-ups show the same chest."""
    rng = np.random.default_rng([seed, STREAM_ANATOMY, patient_id])
    lung_outer = rng.uniform(0.64, 0.78)
    right_diaphragm = rng.uniform(0.34, 0.5)
    # Normal cardiothoracic ratios reach 0.5, and more in the old: some overlap cardiomegaly.
    ratio = float(np.clip(rng.normal(0.45 + 0.001 * (age - 45), 0.035), 0.36, 0.54))
    return Anatomy(
        midline=rng.normal(0.0, 0.02),
        body_half_width=lung_outer + rng.uniform(0.12, 0.24),
        neck_half_width=rng.uniform(0.22, 0.3),
        shoulder_level=rng.uniform(-1.05, -0.9),
        lung_top=rng.uniform(-0.8, -0.66),
        apex_t=rng.uniform(0.28, 0.36),
        apex_rounding=rng.uniform(0.4, 0.55),
        mediastinum=rng.uniform(0.08, 0.12),
        lung_outer=(lung_outer + rng.normal(0, 0.015), lung_outer + rng.normal(0, 0.015)),
        diaphragm=(right_diaphragm, right_diaphragm + rng.uniform(0.02, 0.08)),
        dome_height=(rng.uniform(0.1, 0.17), rng.uniform(0.08, 0.15)),
        dome_peak=rng.uniform(0.28, 0.38),
        heart_half_width=ratio * lung_outer,
        heart_shift=rng.uniform(0.25, 0.4),
        heart_angle=rng.uniform(0.4, 0.7),
        heart_roundness=rng.uniform(0.66, 0.8),
        lung_air=rng.uniform(0.42, 0.52),
        markings=rng.uniform(0.7, 1.1) * (1 + 0.004 * (age - 45)),
        rib_spacing=rng.uniform(0.115, 0.14),
        rib_phase=rng.uniform(0, 1),
        clavicle_level=rng.uniform(-0.66, -0.56),
        breast=rng.uniform(0.03, 0.08) if sex == "F" else 0.0,
        gastric_bubble=rng.uniform(0.03, 0.09) * (rng.random() < 0.7),
        tilt=rng.normal(0, 0.03),
        costophrenic_fill=tuple(rng.uniform(0, 0.08) * (rng.random() < 0.2) for _ in range(2)),
        nipple_shadows=rng.uniform(0.15, 0.4) * (rng.random() < 0.25),
        granuloma=random_spot(rng, 0.1, size=(0.015, 0.03), strength=(0.5, 1.0)),
        linear_scar=random_spot(rng, 0.08, size=(0.08, 0.16), strength=(0.2, 0.5)),
    )


def random_spot(rng, probability, *, size, strength):
    """A Spot anywhere in the lungs with the given probability, else None."""
    spot = Spot(side=int(rng.integers(2)), vn=rng.uniform(0.2, 0.8),
                across=rng.uniform(0.2, 0.8), size=rng.uniform(*size),
                strength=rng.uniform(*strength))
    return spot if rng.random() < probability else None


def posed(anatomy, view, rng):
    """This image's pose: inspiration varies; AP (bedside, front to back) magnifies the heart,
    raises the domes (shallower breath) and projects the clavicles higher."""
    a = anatomy
    breath = rng.normal(0, 0.025)
    a = replace(a, diaphragm=tuple(d + breath for d in a.diaphragm),
                tilt=a.tilt + rng.normal(0, 0.02))
    if view == "AP":
        a = replace(a, view_ap=True, heart_half_width=a.heart_half_width * 1.12,
                    diaphragm=tuple(d - 0.05 for d in a.diaphragm),
                    clavicle_level=a.clavicle_level - 0.1,
                    body_half_width=a.body_half_width * 1.04)
    return a


def lung_point(a, side, vn, across):
    """(u, v) of the point at height `vn` and `across` the width of the lung on `side`."""
    reach = math.sqrt(1.0 - (1.0 - min(vn / a.apex_rounding, 1.0)) ** 2)
    inner, outer = lung_span(a, side, reach)
    t = inner + across * (outer - inner)
    return a.midline + SIDE_SIGN[side] * t, lung_level(a, side, vn)


def point_in_lung(a, side, rng, vn_range, across_range=(0.15, 0.85)):
    """A random (u, v) inside the lung on `side`, between the given lung coordinates."""
    return lung_point(a, side, rng.uniform(*vn_range), rng.uniform(*across_range))


def hilum(a, side):
    """(u, v) of a hilum, where the pulmonary vessels enter the lung."""
    return a.midline + SIDE_SIGN[side] * hilum_t(a), lung_level(a, side, 0.42)


def hilum_t(a):
    """Lateral distance t of both hila, just outside the mediastinum."""
    return a.mediastinum + 0.07


def lung_span(a, side, reach):
    """t of the medial and lateral edges of the lung on `side` where its rounded apex has
    widened to `reach` (0 at the apex, 1 at full width); scalars or arrays alike."""
    return (a.apex_t - (a.apex_t - a.mediastinum) * reach,
            a.apex_t + (a.lung_outer[side] - a.apex_t) * reach)


def lung_level(a, side, vn):
    """v at height `vn` of the lung on `side` (0 at the apex, 1 at the costophrenic angle)."""
    return a.lung_top + vn * lung_height(a, side)


def lung_height(a, side):
    """Height of the lung on `side`, from the apex to the costophrenic angle."""
    return a.diaphragm[side] - a.lung_top
