"""The normal chest as density maps (`Chest`) that findings add to, and how they combine.

`normal_chest` draws soft tissue, lungs with vascular markings, heart, mediastinum, trachea,
spine, ribs, clavicles and diaphragm for a posed anatomy, then the normal variants that mimic
findings (blunted costophrenic angles, nipple shadows, granulomas, linear scars, skin folds,
soft-tissue overlap), so that no finding can be told from normal anatomy perfectly.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

from workflow_scripts.demo.anatomy import (
    SIDE_SIGN,
    Anatomy,
    hilum,
    hilum_t,
    lung_height,
    lung_level,
    lung_point,
    lung_span,
)
from workflow_scripts.demo.shapes import disc, ramp, segment_distance, smooth_field, soft_edge


@dataclass
class Lung:
    """One lung field's mask and its own coordinates, as arrays over the image."""

    mask: np.ndarray  # soft, in [0, 1]
    t: np.ndarray  # lateral distance from the midline
    vn: np.ndarray  # 0 at the apex, 1 at the costophrenic angle
    across: np.ndarray  # 0 at the medial edge, 1 at the chest wall
    depth: np.ndarray  # relative thickness of aerated lung along the beam

    def side(self):
        """The half of the image this lung is on. Patterns that reach the lung's border are
        confined with it rather than with `mask`, which the composition applies already."""
        return ramp(self.t, 0.05)


def lung_field(u, v, a, side, edge):
    """The lung on `side`: a rounded apex, straight walls and a diaphragmatic dome below.

    With x = min(vn / apex_rounding, 1) and reach = sqrt(1 - (1 - x)^2) (a rounded apex), it spans
    t in [apex_t - (apex_t - mediastinum) reach, apex_t + (lung_outer - apex_t) reach] and lies
    above the dome v = diaphragm - dome_height (1 - ((t - dome_peak) / (lung_outer - dome_peak))^2).
    """
    t = SIDE_SIGN[side] * (u - a.midline)
    vn = (v - a.lung_top) * (1.0 / lung_height(a, side))
    below_apex = 1.0 - np.clip(vn * (1.0 / a.apex_rounding), 0.0, 1.0)
    reach = np.sqrt(1.0 - below_apex * below_apex)
    inner, outer = lung_span(a, side, reach)
    dome = (t - a.dome_peak) * (1.0 / (a.lung_outer[side] - a.dome_peak))
    floor = a.diaphragm[side] - a.dome_height[side] * (1.0 - dome * dome)
    mask = (ramp(t - inner, edge) * ramp(outer - t, edge) * ramp(floor - v, edge)
            * ramp(v - a.lung_top, edge))
    across = np.clip((t - inner) / np.maximum(outer - inner, 1e-3), 0.0, 1.0)
    centered = 2.0 * across - 1.0
    depth = (0.55 + 0.45 * (1.0 - centered * centered)) * (0.5 + 0.5 * reach)
    return Lung(mask=mask, t=t, vn=vn, across=across, depth=depth)


@dataclass
class Chest:
    """The maps a radiograph is composed from; findings add to them.

    Final density = base + density - lung_air * lungs * depth * (1 - heart shadow)
                    * (1 + lucency - opacity) + markings * kept,
    so `opacity` 1 fills aerated lung with tissue, `lucency` adds air (a pneumothorax).
    """

    u: np.ndarray
    v: np.ndarray
    size: int
    anatomy: Anatomy
    lungs: tuple[Lung, Lung]
    heart: np.ndarray
    base: np.ndarray
    markings: np.ndarray
    opacity: np.ndarray
    lucency: np.ndarray
    markings_kept: np.ndarray
    density: np.ndarray

    @property
    def edge(self):
        """A soft edge two pixels wide, in body coordinates."""
        return soft_edge(self.size)


def normal_chest(u, v, a, rng, size):
    """A normal frontal chest: soft tissue, lungs, heart, mediastinum, bones, markings."""
    edge = soft_edge(size)
    lungs = (lung_field(u, v, a, 0, 2.5 * edge), lung_field(u, v, a, 1, 2.5 * edge))
    t = np.abs(u - a.midline)
    # Soft tissue: a body with rounded shoulders narrowing into the neck, thicker in the middle.
    shoulders = np.clip((v - a.shoulder_level) * (1 / 0.25), 0.0, 1.0)
    half_width = a.neck_half_width + (a.body_half_width - a.neck_half_width) * (
        shoulders * shoulders * (3.0 - 2.0 * shoulders))
    across_body = t / half_width
    thickness = np.clip(1.0 - across_body * across_body, 0.0, 1.0)
    base = (0.42 + 0.36 * np.sqrt(thickness)) * ramp(1.0 - across_body, 0.06)
    # Heart: an ellipse whose long axis points down to the apex at the image right, resting
    # on the left dome; only its shadow over the lungs shows. Its horizontal extent is about
    # 2 heart_half_width, of which heart_shift lies right of the midline.
    long_axis = 1.05 * a.heart_half_width
    short_axis = a.heart_roundness * long_axis
    heart_center = (a.midline + a.heart_shift * a.heart_half_width,
                    a.diaphragm[1] - 0.7 * a.heart_half_width)
    cos, sin = math.cos(a.heart_angle), math.sin(a.heart_angle)
    hu, hv = u - heart_center[0], v - heart_center[1]
    along = (cos * hu + sin * hv) * (1.0 / long_axis)
    across = (-sin * hu + cos * hv) * (1.0 / short_axis)
    heart = ramp((1.0 - along * along - across * across) * short_axis * 0.5, 2 * edge)
    # Aortic knob, a bulge of the upper mediastinum; trachea, an air column to the carina.
    knob_v = lung_level(a, 1, 0.3)
    heart = np.maximum(heart, disc(u, v, (a.midline + a.mediastinum - 0.015, knob_v), 0.05,
                                   3 * edge))
    carina = lung_level(a, 0, 0.38)
    base -= 0.1 * ramp(0.028 - t, 2 * edge) * ramp(carina - v, 0.05)
    # Spine with faint vertebral bodies, seen through the mediastinum.
    vertebrae = 0.85 + 0.15 * np.cos(v * (2 * math.pi / 0.1))
    base += 0.08 * ramp(0.07 - t, 3 * edge) * vertebrae
    # Ribs: posterior ribs rise a little from the spine, then arc down to the chest wall;
    # anterior ribs, fainter, run from the chest wall down toward the midline. Both show
    # mainly over the lungs.
    in_thorax = (ramp(max(a.lung_outer) + 0.06 - t, 0.04) * ramp(t - 0.05, 0.05)
                 * ramp(v - a.lung_top + 0.1, 0.04) * ramp(max(a.diaphragm) + 0.02 - v, 0.08))
    posterior = 0.5 + 0.5 * np.cos((v - 0.3 * t + 0.75 * t * t)
                                   * (2 * math.pi / a.rib_spacing) + 2 * math.pi * a.rib_phase)
    posterior = posterior * posterior
    anterior = 0.5 + 0.5 * np.cos((v + 0.5 * t) * (2 * math.pi / (1.2 * a.rib_spacing)))
    anterior = anterior * anterior * ramp(t - 0.25, 0.15)
    lung_either = np.maximum(lungs[0].mask, lungs[1].mask)
    base += in_thorax * (0.3 + 0.7 * lung_either) * (
        0.065 * posterior * posterior + 0.03 * anterior * anterior)
    # Clavicles: from the sternal notch out and up to the shoulders, gently S-shaped.
    for sign in SIDE_SIGN:
        inner = (a.midline + sign * 0.06, a.clavicle_level + 0.05)
        middle = (a.midline + sign * 0.3, a.clavicle_level - 0.01)
        outer = (a.midline + sign * 0.55, a.clavicle_level - 0.05)
        bone = np.minimum(segment_distance(u, v, inner, middle),
                          segment_distance(u, v, middle, outer))
        base += 0.13 * ramp(0.03 - bone, 2 * edge)
    # Breast shadows add tissue over the lower lungs, with a curved lower edge.
    if a.breast > 0:
        for side, sign in enumerate(SIDE_SIGN):
            center = (a.midline + sign * 0.6 * a.lung_outer[side], a.diaphragm[side] - 0.1)
            base += a.breast * disc(u, v, center, 0.26, 0.08)
    # The stomach's air bubble under the left dome, flat where it meets the fluid below.
    if a.gastric_bubble > 0:
        center = (a.midline + 0.32, a.diaphragm[1] - a.dome_height[1] + 0.035
                  + a.gastric_bubble)
        base -= 0.2 * disc(u, v, center, a.gastric_bubble, 2 * edge) * ramp(
            center[1] + 0.3 * a.gastric_bubble - v, 2 * edge)
    # Vascular markings: vessels that branch out of each hilum and fade to the periphery.
    hilum_v = 0.5 * (hilum(a, 0)[1] + hilum(a, 1)[1])
    dt, dv = t - hilum_t(a), v - hilum_v
    radius = np.sqrt(dt * dt + dv * dv)
    wobble = 3.0 * smooth_field(rng, 14, size)
    vessels = 0.5 + 0.5 * np.cos(18.0 * np.arctan2(dv, dt) + wobble + 14.0 * radius)
    vessels = vessels * vessels
    vessels = vessels * vessels * np.clip(0.6 + smooth_field(rng, 16, size), 0.0, 1.0)
    texture = cv2.GaussianBlur(rng.standard_normal((size, size), dtype=np.float32), (0, 0),
                               size / 160)
    markings = a.markings * (
        (0.14 * vessels * ramp(radius - 0.08, 0.08) + 0.05 * texture) * np.exp(radius * -3.0)
        + 0.12 * np.exp((dt * dt + dv * dv * 0.5) * -90.0))
    zeros = np.zeros_like(u)
    chest = Chest(u=u, v=v, size=size, anatomy=a, lungs=lungs, heart=heart, base=base,
                  markings=markings, opacity=zeros.copy(), lucency=zeros.copy(),
                  markings_kept=np.ones_like(u), density=zeros)
    draw_normal_variants(chest, rng)
    return chest


def draw_normal_variants(chest, rng):
    """Normal findings that resemble disease: blunted angles, nipple shadows, a granuloma, a
    linear scar; per image, patchy soft-tissue overlap and, on AP films, a skin fold."""
    a, u, v = chest.anatomy, chest.u, chest.v
    for side, height in enumerate(a.costophrenic_fill):
        if height > 0:
            fill_effusion(chest, side, height, 0.02)
    if a.nipple_shadows > 0:
        for side in (0, 1):
            center = lung_point(a, side, 0.8, 0.6)
            chest.opacity += a.nipple_shadows * disc(u, v, center, 0.035, 2 * chest.edge)
    if a.granuloma is not None:
        spot = a.granuloma
        chest.opacity += spot.strength * disc(u, v, spot.center(a), spot.size, chest.edge)
    if a.linear_scar is not None:
        spot = a.linear_scar
        center = spot.center(a)
        start = (center[0] - spot.size, center[1] - 0.3 * spot.size)
        end = (center[0] + spot.size, center[1] + 0.3 * spot.size)
        chest.opacity += spot.strength * ramp(0.012 - segment_distance(u, v, start, end),
                                              2 * chest.edge)
    overlap = rng.uniform(0.0, 0.3)
    chest.opacity += overlap * np.clip(smooth_field(rng, 8, chest.size) - 0.8, 0.0, 1.0)
    if a.view_ap and rng.random() < 0.15:
        side = int(rng.integers(2))
        center = lung_point(a, side, 0.45, 0.85)
        fold = segment_distance(u, v, (center[0], center[1] - 0.3), (center[0], center[1] + 0.3))
        chest.density += 0.05 * ramp(0.006 - fold, chest.edge)


def fill_effusion(chest, side, height, softness):
    """Pleural fluid at the base of a lung: a meniscus, higher at the chest wall than medially.

    Fluid fills v > cp - height (0.55 + 0.45 across^2), cp being the costophrenic angle.
    """
    a, lung = chest.anatomy, chest.lungs[side]
    level = a.diaphragm[side] - height * (0.55 + 0.45 * lung.across * lung.across)
    chest.opacity += ramp(chest.v - level, softness) * lung.side()


def composed_density(chest):
    """The chest's maps combined into one density image (see `Chest`)."""
    a = chest.anatomy
    lungs = np.maximum(chest.lungs[0].mask, chest.lungs[1].mask)
    depth = np.where(chest.lungs[0].mask > chest.lungs[1].mask, chest.lungs[0].depth,
                     chest.lungs[1].depth)
    shadowed = lungs * (1.0 - 0.85 * chest.heart)
    aerated = np.clip(1.0 + chest.lucency - chest.opacity, 0.0, 1.6)
    visible = chest.markings_kept * np.clip(1.0 - chest.opacity, 0.0, 1.0)
    return (chest.base + chest.density - a.lung_air * shadowed * depth * aerated
            + chest.markings * shadowed * visible)
