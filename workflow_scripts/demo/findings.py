"""The fourteen findings: how severe, where, and the pattern a radiologist would look for.

A finding's severity is drawn per image, with a tail of very subtle cases; its site is drawn
from (seed, patient, finding), so a lesion stays in place across follow-ups. Cardiomegaly,
Emphysema, Atelectasis and Fibrosis change the anatomy itself (`reshaped_by_findings`); every
finding but Cardiomegaly draws its pattern onto the normal chest's maps (`draw_findings`), with
one function per finding. Each takes the severity s in [0, 1], `site`, the patient's lesion
generator (same place every visit), and `rng`, the image's.
"""

import math
from dataclasses import replace

import cv2
import numpy as np

from workflow_scripts.demo import STREAM_LESION
from workflow_scripts.demo.anatomy import (
    SIDE_SIGN,
    hilum,
    lung_height,
    lung_level,
    point_in_lung,
)
from workflow_scripts.demo.chest import fill_effusion, lung_field
from workflow_scripts.demo.shapes import disc, ramp, segment_distance, smooth_field
from workflow_scripts.labels import DISEASES


def finding_severity(rng):
    """Severity in [0, 1]: mostly mild to moderate (mean about 0.4), with a fifth of cases so
    subtle (below 0.12) that they barely differ from normal anatomy."""
    if rng.random() < 0.2:
        return rng.uniform(0.0, 0.12)
    return 0.1 + 0.9 * rng.beta(1.4, 1.6)


def lesion_site(seed, patient_id, finding):
    """Where a patient's lesion sits: the same generator, hence the same place, every visit."""
    return np.random.default_rng([seed, STREAM_LESION, patient_id, DISEASES.index(finding)])


def reshaped_by_findings(anatomy, severity, seed, patient_id):
    """Findings that change the anatomy itself: the heart's size, lung volume, the domes."""
    a = anatomy
    if "Cardiomegaly" in severity:
        s = severity["Cardiomegaly"]
        ratio = 0.5 + 0.17 * s
        widened = max(a.heart_half_width, ratio * float(np.mean(a.lung_outer)))
        a = replace(a, heart_half_width=widened)
    if "Emphysema" in severity:
        s = severity["Emphysema"]
        a = replace(a, diaphragm=tuple(d + 0.05 + 0.08 * s for d in a.diaphragm),
                    dome_height=tuple(h * (1 - 0.75 * s) for h in a.dome_height),
                    lung_top=a.lung_top - 0.04 * s,
                    lung_outer=tuple(t + 0.03 * s for t in a.lung_outer),
                    lung_air=a.lung_air * (1 + 0.3 * s), markings=a.markings * (1 - 0.5 * s),
                    heart_half_width=a.heart_half_width * (1 - 0.12 * s))
    if "Atelectasis" in severity:
        side = int(lesion_site(seed, patient_id, "Atelectasis").integers(2))
        raised = list(a.diaphragm)
        raised[side] -= 0.01 + 0.07 * severity["Atelectasis"]
        a = replace(a, diaphragm=tuple(raised))
    if "Fibrosis" in severity:
        s = severity["Fibrosis"]
        a = replace(a, diaphragm=tuple(d - 0.05 * s for d in a.diaphragm),
                    lung_outer=tuple(t - 0.02 * s for t in a.lung_outer))
    return a


def draw_findings(chest, severity, seed, patient_id, rng):
    """Draw every finding in `severity` (name: severity) onto `chest`, each at its site."""
    for name, s in severity.items():
        if name in DRAW_FINDING:
            DRAW_FINDING[name](chest, s, lesion_site(seed, patient_id, name), rng)


def lesion_sides(site, bilateral):
    """One side, or both with probability `bilateral`."""
    if site.random() < bilateral:
        return (0, 1)
    return (int(site.integers(2)),)


def lesion_in_lung(chest, site, **ranges):
    """A lesion's side, drawn at random, and its (u, v) in that lung (`ranges` as for
    `point_in_lung`)."""
    side = int(site.integers(2))
    return side, point_in_lung(chest.anatomy, side, site, **ranges)


def draw_atelectasis(chest, s, site, rng):
    """Plate-like linear opacity in a lower zone; with severity, a denser basal wedge."""
    # The side is the one whose dome `reshaped_by_findings` raised: the same first draw.
    side, center = lesion_in_lung(chest, site, vn_range=(0.55, 0.78), across_range=(0.3, 0.7))
    angle = site.uniform(-0.35, 0.35)
    half_length = site.uniform(0.1, 0.18) * (0.8 + 0.4 * s)
    du, dv = half_length * math.cos(angle), half_length * math.sin(angle)
    start = (center[0] - du, center[1] - dv)
    end = (center[0] + du, center[1] + dv)
    thickness = 0.008 + 0.025 * s
    band = ramp(thickness - segment_distance(chest.u, chest.v, start, end), chest.edge * 3)
    lung = chest.lungs[side]
    wedge = ramp(lung.vn - 0.6, 0.15) * ramp(0.55 - lung.across, 0.3) * lung.side()
    chest.opacity += (0.2 + 0.6 * s) * band + 0.6 * s * wedge


def draw_consolidation(chest, s, site, rng):
    """Dense, homogeneous lobar opacity; sharp along a fissure, effacing what it touches."""
    side = int(site.integers(2))
    lobe = site.choice(("lower", "upper", "middle"), p=(0.55, 0.3, 0.15))
    lung = chest.lungs[side]
    if lobe == "lower":  # below the oblique fissure, which falls toward the chest wall
        region = ramp(lung.vn - 0.38 - 0.35 * lung.across, 0.04)
    elif lobe == "upper":
        region = ramp(0.4 - lung.vn, 0.04)
    else:  # middle lobe: against the heart border
        region = ramp(lung.vn - 0.42, 0.04) * ramp(0.72 - lung.vn, 0.08) * ramp(
            0.6 - lung.across, 0.2)
    texture = 0.85 + 0.15 * smooth_field(rng, 12, chest.size)
    region = region * lung.side()
    chest.opacity += (0.2 + 0.7 * s) * region * texture
    chest.markings_kept *= 1.0 - 0.8 * region


def draw_edema(chest, s, site, rng):
    """Bilateral perihilar haze ('bat wing') with Kerley B lines at the lateral bases."""
    a = chest.anatomy
    for side in (0, 1):
        hu, hv = hilum(a, side)
        du, dv = chest.u - hu, chest.v - hv
        haze = np.exp((du * du * (1 / 0.09) + dv * dv * (1 / 0.14)) * -1.0)
        chest.opacity += (0.1 + 0.6 * s) * haze * chest.lungs[side].mask
    lines = np.zeros_like(chest.u)
    for side, sign in enumerate(SIDE_SIGN):
        for level in rng.uniform(0.65, 0.92, size=4 + int(5 * s)):
            v = lung_level(a, side, level)
            wall = a.midline + sign * (a.lung_outer[side] - 0.01)
            start, end = (wall, v), (wall - sign * rng.uniform(0.05, 0.09), v)
            lines = np.maximum(lines, ramp(0.006 + 0.006 * s
                                           - segment_distance(chest.u, chest.v, start, end),
                                           chest.edge))
    chest.opacity += (0.1 + 0.5 * s) * lines
    chest.markings *= 1.0 + 0.4 * s


def draw_effusion(chest, s, site, rng):
    """Fluid at the base: a blunted costophrenic angle, then a meniscus that rises with size."""
    a = chest.anatomy
    for side in lesion_sides(site, bilateral=0.35):
        height = (0.03 + 0.35 * s) * lung_height(a, side) * rng.uniform(0.8, 1.2)
        fill_effusion(chest, side, height, 0.03 + 0.05 * s)


def draw_emphysema(chest, s, site, rng):
    """Larger, darker lungs with sparse markings (see `reshaped_by_findings`), apical bullae."""
    a = chest.anatomy
    for side in lesion_sides(site, bilateral=0.5):
        if s > 0.4:
            center = point_in_lung(a, side, site, vn_range=(0.08, 0.3))
            bulla = disc(chest.u, chest.v, center, site.uniform(0.06, 0.12), chest.edge)
            chest.lucency += 0.4 * s * bulla
            chest.markings_kept *= 1.0 - bulla


def draw_fibrosis(chest, s, site, rng):
    """Reticular network of fine lines, worst at the lateral bases, with volume loss."""
    scale = chest.size / 90.0
    noise = rng.standard_normal((chest.size, chest.size), dtype=np.float32)
    band = cv2.GaussianBlur(noise, (0, 0), scale) - cv2.GaussianBlur(noise, (0, 0), 2 * scale)
    band *= 1.0 / (float(band.std()) + 1e-6)
    network = np.exp(band * band * -4.0)  # bright near the zero crossings: a mesh of lines
    upper = site.random() < 0.25
    for side in (0, 1):
        lung = chest.lungs[side]
        zone = ramp(0.5 - lung.vn, 0.4) if upper else ramp(lung.vn - 0.35, 0.4)
        zone = zone * (0.4 + 0.6 * lung.across) * lung.mask
        chest.opacity += (0.1 + 0.5 * s) * zone * (0.35 + 0.65 * network)


def draw_hernia(chest, s, site, rng):
    """Hiatus hernia: a round retrocardiac density holding an air-fluid level."""
    a = chest.anatomy
    radius = site.uniform(0.06, 0.1) * (0.8 + 0.5 * s)
    center = (a.midline + site.uniform(0.0, 0.1), a.diaphragm[1] - 0.06 - radius)
    sac = disc(chest.u, chest.v, center, radius, chest.edge)
    level = center[1] + site.uniform(-0.2, 0.4) * radius
    air = sac * ramp(level - chest.v, chest.edge)
    wall = sac - disc(chest.u, chest.v, center, radius - 0.012, chest.edge)
    chest.density += (0.04 + 0.04 * s) * (sac - air) + 0.04 * wall - (0.06 + 0.2 * s) * air


def draw_infiltration(chest, s, site, rng):
    """Patchy, ill-defined opacities over one or both lungs, mostly in the mid and lower zones."""
    field = smooth_field(rng, 9, chest.size)
    patches = np.clip(field - (0.7 - 0.6 * s), 0.0, 1.2)
    for side in lesion_sides(site, bilateral=0.5):
        lung = chest.lungs[side]
        zone_center = site.uniform(0.35, 0.8)
        zone = np.exp((lung.vn - zone_center) * (lung.vn - zone_center) * -6.0)
        chest.opacity += (0.25 + 0.55 * s) * patches * zone * lung.mask


def draw_mass(chest, s, site, rng):
    """A single large round opacity with a lobulated edge."""
    _, center = lesion_in_lung(chest, site, vn_range=(0.15, 0.65), across_range=(0.25, 0.75))
    radius = site.uniform(0.085, 0.15) * (0.5 + 0.7 * s)
    phases = site.uniform(0, 2 * math.pi, 2)
    angle = np.arctan2(chest.v - center[1], chest.u - center[0])
    outline = radius * (1.0 + 0.12 * np.cos(3 * angle + phases[0])
                        + 0.07 * np.cos(5 * angle + phases[1]))
    mass = disc(chest.u, chest.v, center, outline, 2 * chest.edge)
    chest.opacity += (0.15 + 0.8 * s) * mass


def draw_nodule(chest, s, site, rng):
    """One to four small, well-defined round opacities, more often in the upper zones."""
    for _ in range(1 + int(site.choice(4, p=(0.35, 0.3, 0.2, 0.15)))):
        _, center = lesion_in_lung(chest, site, vn_range=(0.1, 0.7))
        radius = site.uniform(0.04, 0.07) * (0.7 + 0.5 * s)
        chest.opacity += (0.2 + 0.85 * s) * disc(chest.u, chest.v, center, radius, chest.edge)


def draw_pleural_thickening(chest, s, site, rng):
    """A dense band along the chest wall, irregular on its inner side, or an apical cap."""
    a = chest.anatomy
    apical = site.random() < 0.3
    for side in lesion_sides(site, bilateral=0.4):
        lung = chest.lungs[side]
        width = (0.01 + 0.05 * s) * (1.0 + 0.35 * np.sin(lung.vn * site.uniform(8, 14)))
        if apical:
            rim = ramp(0.12 + 2 * width - lung.vn, chest.edge * 2)
        else:
            rim = ramp(lung.t - (a.lung_outer[side] - width), chest.edge * 2) * ramp(
                lung.vn - 0.15, 0.1) * ramp(0.9 - lung.vn, 0.1)
        chest.opacity += (0.4 + 0.5 * s) * rim * lung.side()


def draw_pneumonia(chest, s, site, rng):
    """Patchy consolidation: a confluent, ill-defined opacity centred in one lung region."""
    side, center = lesion_in_lung(chest, site, vn_range=(0.3, 0.8), across_range=(0.2, 0.8))
    spread = site.uniform(0.12, 0.2) * (0.8 + 0.4 * s)
    du, dv = chest.u - center[0], chest.v - center[1]
    focus = np.exp((du * du + dv * dv) * (-1.0 / (spread * spread)))
    texture = np.clip(0.65 + 0.5 * smooth_field(rng, 14, chest.size), 0.0, 1.3)
    region = focus * texture * chest.lungs[side].mask
    chest.opacity += (0.2 + 0.6 * s) * region
    chest.markings_kept *= 1.0 - 0.6 * np.clip(region, 0, 1)


def draw_pneumothorax(chest, s, site, rng):
    """Collapsed lung: a dark rim without markings at the apex and chest wall, bounded by a thin
    bright visceral pleural line. The collapsed lung is the lung field shrunk toward its hilum
    by the factor k = 1 - (0.06 + 0.42 s)."""
    a = chest.anatomy
    side = int(site.integers(2))
    k = 1.0 - (0.06 + 0.42 * s)
    hu, hv = hilum(a, side)
    collapsed = lung_field(hu + (chest.u - hu) * (1 / k), hv + (chest.v - hv) * (1 / k), a,
                           side, chest.edge).mask
    lung = chest.lungs[side]
    away_from_base = ramp(0.85 - lung.vn, 0.2)
    gap = lung.side() * (1.0 - collapsed) * away_from_base
    pleural_line = 4.0 * collapsed * (1.0 - collapsed) * away_from_base * lung.mask
    chest.lucency += (0.2 + 0.25 * s) * gap
    chest.markings_kept *= 1.0 - gap
    chest.opacity += 0.2 * s * collapsed
    chest.density += 0.1 * pleural_line


# Cardiomegaly is drawn by `reshaped_by_findings` alone: a heart wider than half the thorax.
DRAW_FINDING = {
    "Atelectasis": draw_atelectasis,
    "Consolidation": draw_consolidation,
    "Edema": draw_edema,
    "Effusion": draw_effusion,
    "Emphysema": draw_emphysema,
    "Fibrosis": draw_fibrosis,
    "Hernia": draw_hernia,
    "Infiltration": draw_infiltration,
    "Mass": draw_mass,
    "Nodule": draw_nodule,
    "Pleural_Thickening": draw_pleural_thickening,
    "Pneumonia": draw_pneumonia,
    "Pneumothorax": draw_pneumothorax,
}
