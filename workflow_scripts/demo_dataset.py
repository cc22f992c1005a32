"""Stage `demo_dataset`: a synthetic dataset in the exact on-disk format of NIH ChestX-ray14.

With `data.source: demo` the workflow has no real data, so this stage writes what a user who
downloaded ChestX-ray14 has on disk, and every later stage runs unchanged:

    Data_Entry_2017_v2020.csv        one row per image, the v2020 header and field formats
    images_001/images/*.png          frontal radiographs, 8-bit gray (a few RGBA, as in NIH)
    train_val_list.txt, test_list.txt    an official-style split, disjoint by patient

Labels. Each image's label set is drawn from a distribution over label sets whose single-label
and any-label frequencies are those of the paper's Table 1 (the v2020 CSV) and whose
co-occurrences follow the real data's strongest pairs (see `label_set_distribution`). A
patient's follow-ups repeat the previous label set with probability `LABEL_PERSISTENCE`, which
keeps every image's label distribution unchanged.

Images. Each image is a frontal chest radiograph rendered analytically: body outline, lungs
with vascular markings, heart, mediastinum, trachea, spine, ribs, clavicles and diaphragm.
Anatomy is drawn once per patient and kept across follow-ups; pose, inspiration and exposure
vary per image, and AP views magnify the heart. Every finding the image carries is drawn as
the pattern a radiologist would look for, at a severity drawn per image with a tail of very
subtle cases. The CSV reports Table 1 labels, but for `LABEL_NOISE` of the images the drawn
findings differ from the reported ones (a finding missed or added), like the NLP-mined labels
of the real data. Together with normal anatomy that mimics findings (large hearts on AP films,
blunted costophrenic angles, nipple shadows, granulomas, linear scars, skin folds, soft-tissue
overlap), this keeps every finding learnable but never perfectly.

Determinism. The metadata derive from (seed), a patient's anatomy and lesion sites from
(seed, patient), an image's pose, exposure, severities and noise from (seed, image number).
Output is byte-identical for any number of workers.
"""

import functools
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from itertools import combinations
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from workflow_scripts.labels import DISEASES, NO_FINDING
from workflow_scripts.stage import InputError, log, run

METADATA_NAME = "Data_Entry_2017_v2020.csv"
IMAGES_FOLDER = Path("images_001") / "images"
TRAIN_VAL_LIST_NAME = "train_val_list.txt"
TEST_LIST_NAME = "test_list.txt"
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)

MIN_IMAGES = 200
PNG_SIZE_RANGE = (32, 1024)

# Table 1 of the paper, equal to the v2020 CSV: images with only this label, images with it.
REAL_IMAGES = 112_120
REAL_NO_FINDING_IMAGES = 60_361
TABLE1 = {
    "Atelectasis": (4215, 11559),
    "Cardiomegaly": (1093, 2776),
    "Consolidation": (1310, 4667),
    "Edema": (628, 2303),
    "Effusion": (3955, 13317),
    "Emphysema": (892, 2516),
    "Fibrosis": (727, 1686),
    "Hernia": (110, 227),
    "Infiltration": (9547, 19894),
    "Mass": (2139, 5782),
    "Nodule": (2705, 6331),
    "Pleural_Thickening": (1126, 3385),
    "Pneumonia": (322, 1431),
    "Pneumothorax": (2194, 5302),
}
# Log-odds added to a label set for each pair it holds: the real data's strongest associations
# (effusion with atelectasis, infiltration, edema, consolidation; pneumonia with infiltration).
PAIR_AFFINITY = {
    ("Atelectasis", "Effusion"): 1.0,
    ("Atelectasis", "Infiltration"): 0.6,
    ("Atelectasis", "Consolidation"): 0.6,
    ("Effusion", "Infiltration"): 0.6,
    ("Cardiomegaly", "Effusion"): 0.8,
    ("Consolidation", "Effusion"): 0.7,
    ("Consolidation", "Infiltration"): 0.6,
    ("Consolidation", "Pneumonia"): 0.6,
    ("Edema", "Effusion"): 0.9,
    ("Edema", "Infiltration"): 0.9,
    ("Edema", "Pneumonia"): 2.0,
    ("Infiltration", "Pneumonia"): 1.0,
    ("Mass", "Nodule"): 0.9,
    ("Emphysema", "Pneumothorax"): 1.0,
    ("Fibrosis", "Pleural_Thickening"): 0.8,
    ("Effusion", "Pleural_Thickening"): 0.4,
    ("Edema", "Emphysema"): -0.8,
}
# Prior weight of a label set by its number of labels, before fitting the label marginals;
# the fit then sets the mean (2.41 labels per multi-label image, as in the real data).
MAX_LABELS_PER_IMAGE = 6
LABEL_COUNT_PRIOR = {2: 1.0, 3: 0.34, 4: 0.09, 5: 0.02, 6: 0.005}

LABEL_PERSISTENCE = 0.3  # chance that a follow-up repeats the patient's previous label set
LABEL_NOISE = 0.03  # share of images whose drawn findings differ from the CSV labels
MALE_FRACTION = 0.565
PA_FRACTION = 0.6
AGE_MEAN, AGE_SD, AGE_RANGE = 45.0, 16.6, (1, 94)  # at the first visit
REAL_IMAGES_PER_PATIENT = REAL_IMAGES / 30_805
MOST_IMAGES_PER_PATIENT = 184  # the real maximum; scaled down for small datasets
TEST_FRACTION = 25_596 / REAL_IMAGES  # the official test list's share of images
# Detector formats: (width, height), pixel spacing in mm, relative frequency.
DETECTOR_FORMATS = (
    ((2500, 2048), 0.168, 3),
    ((2048, 2500), 0.168, 2),
    ((2992, 2991), 0.143, 5),
    ((2682, 2749), 0.143, 3),
    ((3056, 2544), 0.139, 2),
    ((2544, 3056), 0.139, 2),
    ((3056, 3056), 0.139, 1),
    ((2021, 2021), 0.194, 1),
)

# Independent random streams, mixed with the seed (and a patient or image number).
STREAM_METADATA, STREAM_ANATOMY, STREAM_LESION, STREAM_IMAGE = 1, 2, 3, 4
PNG_COMPRESSION = 1  # higher levels are slower and barely smaller on noisy films
CHUNK = 50  # images per worker task


def make_demo_dataset(out_dir, *, n_images=3000, png_size=256, seed=0, rgba_fraction=0.005,
                      workers=1):
    """Write a ChestX-ray14-shaped dataset of `n_images` images into `out_dir`.

    Writes `Data_Entry_2017_v2020.csv`, `images_001/images/<patient>_<follow-up>.png`
    (`png_size` square, 8-bit gray; round(`rgba_fraction` x `n_images`) of them RGBA),
    `train_val_list.txt` and `test_list.txt` (disjoint by patient, ~23% of images in test).
    Earlier outputs are removed first; the images are written into a temporary folder that
    replaces `images_001` when complete, and the CSV is written last, so an interrupted run
    leaves no CSV behind. Returns counts: images, patients, label sets, test/train_val
    images, RGBA images, images whose drawn findings differ from their labels, and seconds.
    """
    check_parameters(n_images=n_images, png_size=png_size, seed=seed,
                     rgba_fraction=rgba_fraction, workers=workers)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (METADATA_NAME, TRAIN_VAL_LIST_NAME, TEST_LIST_NAME):
        (out_dir / name).unlink(missing_ok=True)

    metadata = sample_metadata(n_images, seed, rgba_fraction)
    test_patients = official_test_patients(metadata, seed)
    write_images(metadata, out_dir, seed=seed, size=png_size, workers=workers)
    in_test = metadata["patient_id"].isin(test_patients)
    write_text_atomically(out_dir / TRAIN_VAL_LIST_NAME,
                          "".join(f"{name}\n" for name in metadata["image_index"][~in_test]))
    write_text_atomically(out_dir / TEST_LIST_NAME,
                          "".join(f"{name}\n" for name in metadata["image_index"][in_test]))
    write_text_atomically(out_dir / METADATA_NAME, data_entry_csv(metadata))
    return {
        "n_images": len(metadata),
        "n_patients": int(metadata["patient_id"].nunique()),
        "n_label_sets": int(metadata["finding_labels"].nunique()),
        "n_no_finding": int((metadata["finding_labels"] == NO_FINDING).sum()),
        "n_test_images": int(in_test.sum()),
        "n_train_val_images": int((~in_test).sum()),
        "n_test_patients": len(test_patients),
        "n_rgba_images": int(metadata["rgba"].sum()),
        "n_findings_differ_from_labels": sum(
            drawn != labelled for drawn, labelled in zip(
                metadata["drawn_findings"], metadata["label_findings"], strict=True)),
        "seconds": round(time.perf_counter() - start, 2),
    }


def check_parameters(*, n_images, png_size, seed, rgba_fraction, workers):
    """Raise InputError naming the first parameter out of its range, and the fix."""
    def is_integer(value):
        return isinstance(value, int | np.integer) and not isinstance(value, bool)

    if not is_integer(n_images) or n_images < MIN_IMAGES:
        raise InputError(f"demo.n_images is {n_images!r}: use an integer of at least "
                         f"{MIN_IMAGES}, so that every frequent finding has positives.")
    low, high = PNG_SIZE_RANGE
    if not is_integer(png_size) or not low <= png_size <= high:
        raise InputError(f"demo.png_size is {png_size!r}: use an integer from {low} to {high} "
                         "(pixels per side; the real images are 1024).")
    if not is_integer(seed) or seed < 0:
        raise InputError(f"demo.seed is {seed!r}: use a non-negative integer.")
    if (isinstance(rgba_fraction, bool) or not isinstance(rgba_fraction, int | float)
            or not 0 <= rgba_fraction < 1):
        raise InputError(f"demo.rgba_fraction is {rgba_fraction!r}: use a number in [0, 1), "
                         "e.g. 0.005 (the real data holds a few hundred RGBA images).")
    if not is_integer(workers) or workers < 1:
        raise InputError(f"workers is {workers!r}: use a positive integer (processes).")


# ---------------------------------------------------------------------------------------------
# Metadata: patients, label sets, the CSV and the official split
# ---------------------------------------------------------------------------------------------

@functools.cache
def label_set_distribution():
    """Label sets and their probabilities: Table 1's single-label and any-label frequencies.

    'No Finding' and each single-label set get their Table 1 share of images exactly. The
    remaining mass, 20,796 / 112,120 of images, goes to sets of 2 to MAX_LABELS_PER_IMAGE
    labels with the maximum-entropy log-linear weights

        p(S) proportional to prior(|S|) * exp( sum_{l in S} theta_l + sum_{pairs in S} a_ij )

    where a_ij is PAIR_AFFINITY and theta is fitted (Newton's method on the convex dual) so
    that every label's share of multi-label images is (any - single) / 112,120. Returns the
    label sets (tuples of names, alphabetical; `()` is 'No Finding') and a probability array.
    """
    n_labels = len(DISEASES)
    singles = np.array([TABLE1[name][0] for name in DISEASES], dtype=float) / REAL_IMAGES
    anys = np.array([TABLE1[name][1] for name in DISEASES], dtype=float) / REAL_IMAGES
    multi_share = 1.0 - REAL_NO_FINDING_IMAGES / REAL_IMAGES - singles.sum()
    target = anys - singles  # each label's share of all images, within multi-label images

    multi_sets = [combo for size in range(2, MAX_LABELS_PER_IMAGE + 1)
                  for combo in combinations(range(n_labels), size)]
    membership = np.zeros((len(multi_sets), n_labels))
    for row, combo in enumerate(multi_sets):
        membership[row, list(combo)] = 1.0
    affinity = np.zeros((n_labels, n_labels))
    for (first, second), value in PAIR_AFFINITY.items():
        i, j = DISEASES.index(first), DISEASES.index(second)
        affinity[i, j] = affinity[j, i] = value
    sizes = membership.sum(axis=1).astype(int)
    log_prior = (np.log([LABEL_COUNT_PRIOR[size] for size in sizes])
                 + 0.5 * np.einsum("si,ij,sj->s", membership, affinity, membership))

    def fitted(theta):
        logits = log_prior + membership @ theta
        weights = np.exp(logits - logits.max())
        return weights / weights.sum() * multi_share

    def dual(theta):  # convex; its gradient is (fitted marginals - target)
        logits = log_prior + membership @ theta
        top = logits.max()
        return multi_share * (top + np.log(np.exp(logits - top).sum())) - theta @ target

    theta = np.zeros(n_labels)
    for _ in range(100):
        probabilities = fitted(theta)
        gradient = membership.T @ probabilities - target
        if np.abs(gradient / target).max() < 1e-10:
            break
        centered = membership - (membership.T @ probabilities / multi_share)
        hessian = (centered * probabilities[:, None]).T @ centered
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while dual(theta - scale * step) > dual(theta) and scale > 1e-6:
            scale /= 2
        theta = theta - scale * step
    else:
        raise RuntimeError("the label-set distribution did not converge; check TABLE1")

    label_sets = [()] + [(name,) for name in DISEASES] + [
        tuple(DISEASES[i] for i in combo) for combo in multi_sets]
    probabilities = np.concatenate([[REAL_NO_FINDING_IMAGES / REAL_IMAGES], singles,
                                    fitted(theta)])
    return label_sets, probabilities / probabilities.sum()


def sample_metadata(n_images, seed, rgba_fraction=0.0):
    """One row per image, in CSV order (patient, then follow-up).

    Columns: the CSV's fields (`image_index, finding_labels, follow_up, patient_id, age, sex,
    view, width, height, pixel_spacing`), and for rendering `label_findings` (the labelled
    findings as a tuple), `drawn_findings` (what the image shows) and `rgba`.
    """
    rng = np.random.default_rng([seed, STREAM_METADATA])
    counts = images_per_patient(n_images, rng)
    n_patients = len(counts)
    patient_of_image = np.repeat(np.arange(n_patients), counts)
    first_of_patient = np.concatenate([[0], np.cumsum(counts)[:-1]])
    follow_up = np.arange(n_images) - np.repeat(first_of_patient, counts)

    male = rng.random(n_patients) < MALE_FRACTION
    base_age = np.clip(np.rint(rng.normal(AGE_MEAN, AGE_SD, n_patients)), *AGE_RANGE)
    # Follow-ups come every few months; the age in years grows with them.
    months_since_first = np.cumsum(rng.exponential(3.0, n_images) * (follow_up > 0))
    months_since_first -= np.repeat(months_since_first[first_of_patient], counts)
    age = np.minimum(base_age[patient_of_image] + months_since_first // 12, AGE_RANGE[1] + 5)
    # Some patients are imaged mostly at the bedside (AP), most mostly standing (PA).
    pa_tendency = rng.beta(PA_FRACTION * 2.5, (1 - PA_FRACTION) * 2.5, n_patients)
    view_pa = rng.random(n_images) < pa_tendency[patient_of_image]
    formats = rng.choice(len(DETECTOR_FORMATS), n_images,
                         p=normalized([weight for _, _, weight in DETECTOR_FORMATS]))

    label_sets, probabilities = label_set_distribution()
    fresh = rng.choice(len(label_sets), n_images, p=probabilities)
    repeat = (rng.random(n_images) < LABEL_PERSISTENCE) & (follow_up > 0)
    # Each image takes the label set of the last image (of the same patient) that drew afresh.
    source = np.maximum.accumulate(np.where(repeat, 0, np.arange(n_images)))
    label_findings = [label_sets[index] for index in fresh[source]]
    drawn_findings = with_label_noise(label_findings, rng)

    rgba = np.zeros(n_images, dtype=bool)
    rgba[rng.choice(n_images, round(rgba_fraction * n_images), replace=False)] = True
    patient_id = patient_of_image + 1
    return pd.DataFrame({
        "image_index": [f"{p:08d}_{f:03d}.png" for p, f in zip(patient_id, follow_up,
                                                                 strict=True)],
        "finding_labels": ["|".join(s) if s else NO_FINDING for s in label_findings],
        "follow_up": follow_up,
        "patient_id": patient_id,
        "age": age.astype(int),
        "sex": np.where(male, "M", "F")[patient_of_image],
        "view": np.where(view_pa, "PA", "AP"),
        "width": [DETECTOR_FORMATS[i][0][0] for i in formats],
        "height": [DETECTOR_FORMATS[i][0][1] for i in formats],
        "pixel_spacing": [DETECTOR_FORMATS[i][1] for i in formats],
        "label_findings": label_findings,
        "drawn_findings": drawn_findings,
        "rgba": rgba,
    })


def normalized(weights):
    weights = np.asarray(weights, dtype=float)
    return weights / weights.sum()


def images_per_patient(n_images, rng):
    """Images per patient, summing to `n_images`: a truncated power law, P(k) ~ k^-alpha.

    The largest count is MOST_IMAGES_PER_PATIENT scaled to the dataset (at least 20), and
    alpha is set so that the mean is the real data's 3.64 images per patient: most patients
    have one image, a few have dozens.
    """
    most = int(min(MOST_IMAGES_PER_PATIENT, max(20, n_images // 40)))
    k = np.arange(1, most + 1, dtype=float)
    low, high = 0.5, 4.0
    for _ in range(60):  # bisection: the mean falls as alpha grows
        alpha = (low + high) / 2
        weights = k ** -alpha
        if (k * weights).sum() / weights.sum() > REAL_IMAGES_PER_PATIENT:
            low = alpha
        else:
            high = alpha
    draws = rng.choice(k.astype(int), size=n_images, p=normalized(k ** -alpha))
    total = np.cumsum(draws)
    n_patients = int(np.searchsorted(total, n_images)) + 1
    counts = draws[:n_patients].copy()
    counts[-1] -= total[n_patients - 1] - n_images
    return counts


def with_label_noise(label_findings, rng):
    """What each image shows: its labels, except for LABEL_NOISE of images.

    A noisy 'No Finding' image shows one finding (drawn by Table 1 frequency); a noisy image
    with findings misses one of them.
    """
    any_share = normalized([TABLE1[name][1] for name in DISEASES])
    noisy = rng.random(len(label_findings)) < LABEL_NOISE
    added = rng.choice(len(DISEASES), len(label_findings), p=any_share)
    dropped = rng.random(len(label_findings))
    drawn = []
    for labels, is_noisy, add, drop in zip(label_findings, noisy, added, dropped, strict=True):
        if not is_noisy:
            drawn.append(labels)
        elif not labels:
            drawn.append((DISEASES[add],))
        else:
            missed = int(drop * len(labels))
            drawn.append(labels[:missed] + labels[missed + 1:])
    return drawn


def official_test_patients(metadata, seed):
    """Patients whose images form the test list: about TEST_FRACTION of images.

    Patients are drawn in a random order weighted by the square root of their image count
    (Efraimidis-Spirakis keys log(U) / sqrt(count)), which gives the real list's skew (9% of
    patients, 23% of images), and added while the list stays within its share of images.
    """
    counts = metadata.groupby("patient_id").size()
    rng = np.random.default_rng([seed, STREAM_METADATA, 1])
    keys = np.log(rng.random(len(counts))) / np.sqrt(counts.to_numpy())
    wanted = round(TEST_FRACTION * len(metadata))
    chosen, total = [], 0
    order = np.argsort(-keys)
    for patient, count in zip(counts.index[order], counts.to_numpy()[order], strict=True):
        if total + count <= wanted:
            chosen.append(int(patient))
            total += count
    return sorted(chosen)


def data_entry_csv(metadata):
    """The CSV text: HEADER, then 11 comma-separated fields per image, v2020 style."""
    spacing = [f"{value:.3f}" for value in metadata["pixel_spacing"]]
    lines = [HEADER] + [
        f"{name},{labels},{follow_up},{patient},{age},{sex},{view},{width},{height},{s},{s}"
        for name, labels, follow_up, patient, age, sex, view, width, height, s in zip(
            metadata["image_index"], metadata["finding_labels"], metadata["follow_up"],
            metadata["patient_id"], metadata["age"], metadata["sex"], metadata["view"],
            metadata["width"], metadata["height"], spacing, strict=True)
    ]
    return "\n".join(lines) + "\n"


def write_text_atomically(path, text):
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# ---------------------------------------------------------------------------------------------
# Writing the images
# ---------------------------------------------------------------------------------------------

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
    rgba: bool = False


def image_specs(metadata):
    return [ImageSpec(number, name, int(patient), view, sex, int(age), tuple(findings),
                      bool(rgba))
            for number, (name, patient, view, sex, age, findings, rgba) in enumerate(zip(
                metadata["image_index"], metadata["patient_id"], metadata["view"],
                metadata["sex"], metadata["age"], metadata["drawn_findings"], metadata["rgba"],
                strict=True))]


def write_images(metadata, out_dir, *, seed, size, workers):
    """Render every image into a fresh folder, then move it to `out_dir/images_001`."""
    final = out_dir / IMAGES_FOLDER.parts[0]
    partial = out_dir / f".{IMAGES_FOLDER.parts[0]}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    folder = partial / IMAGES_FOLDER.parts[1]
    folder.mkdir(parents=True)
    specs = image_specs(metadata)
    tasks = [(specs[start:start + CHUNK], seed, size, folder)
             for start in range(0, len(specs), CHUNK)]
    try:
        if workers > 1:
            # One process per core already: OpenCV's own threads would only contend.
            with ProcessPoolExecutor(workers, mp_context=get_context("fork"),
                                     initializer=cv2.setNumThreads, initargs=(1,)) as pool:
                list(pool.map(write_image_chunk, tasks))
        else:
            for task in tasks:
                write_image_chunk(task)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)


def write_image_chunk(task):
    """Worker: render and write the PNGs of one chunk of image specs."""
    specs, seed, size, folder = task
    for spec in specs:
        (folder / spec.file_name).write_bytes(
            encode_png(render_radiograph(spec, seed=seed, size=size), rgba=spec.rgba))


def encode_png(image, *, rgba=False):
    """PNG bytes of a uint8 gray image; as 4-channel RGBA (opaque) when `rgba`."""
    if rgba:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return buffer.tobytes()


# ---------------------------------------------------------------------------------------------
# Rendering: anatomy
# ---------------------------------------------------------------------------------------------

SIDE_SIGN = (-1.0, 1.0)  # side 0 is image left (the patient's right), side 1 image right


@dataclass(frozen=True)
class Spot:
    """A site in lung coordinates (see `lung_point`), with a size and a strength."""

    side: int
    vn: float
    across: float
    size: float
    strength: float


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


def lesion_site(seed, patient_id, finding):
    """Where a patient's lesion sits: the same generator, hence the same place, every visit."""
    return np.random.default_rng([seed, STREAM_LESION, patient_id, DISEASES.index(finding)])


def finding_severity(rng):
    """Severity in [0, 1]: mostly mild to moderate (mean about 0.4), with a fifth of cases so
    subtle (below 0.12) that they barely differ from normal anatomy."""
    if rng.random() < 0.2:
        return rng.uniform(0.0, 0.12)
    return 0.1 + 0.9 * rng.beta(1.4, 1.6)


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


# ---------------------------------------------------------------------------------------------
# Rendering: the normal chest
# ---------------------------------------------------------------------------------------------

@functools.cache
def pixel_grid(size):
    """Pixel centers in image coordinates, each in (-1, 1): (u by column, v by row)."""
    centers = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    u, v = np.meshgrid(centers, centers)
    u.flags.writeable = v.flags.writeable = False
    return u, v


def ramp(distance, width):
    """0 outside, 1 inside, linear across a band of `width` around distance 0."""
    return np.clip(distance * (1.0 / width) + 0.5, 0.0, 1.0)


def smooth_field(rng, cells, size):
    """Smooth random field (about unit variance) varying over size/cells pixels."""
    coarse = rng.standard_normal((cells, cells), dtype=np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


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
    height = a.diaphragm[side] - a.lung_top
    vn = (v - a.lung_top) * (1.0 / height)
    below_apex = 1.0 - np.clip(vn * (1.0 / a.apex_rounding), 0.0, 1.0)
    reach = np.sqrt(1.0 - below_apex * below_apex)
    inner = a.apex_t - (a.apex_t - a.mediastinum) * reach
    outer = a.apex_t + (a.lung_outer[side] - a.apex_t) * reach
    dome = (t - a.dome_peak) * (1.0 / (a.lung_outer[side] - a.dome_peak))
    floor = a.diaphragm[side] - a.dome_height[side] * (1.0 - dome * dome)
    mask = (ramp(t - inner, edge) * ramp(outer - t, edge) * ramp(floor - v, edge)
            * ramp(v - a.lung_top, edge))
    across = np.clip((t - inner) / np.maximum(outer - inner, 1e-3), 0.0, 1.0)
    centered = 2.0 * across - 1.0
    depth = (0.55 + 0.45 * (1.0 - centered * centered)) * (0.5 + 0.5 * reach)
    return Lung(mask=mask, t=t, vn=vn, across=across, depth=depth)


def hilum(a, side):
    """(u, v) of a hilum, where the pulmonary vessels enter the lung."""
    height = a.diaphragm[side] - a.lung_top
    return (a.midline + SIDE_SIGN[side] * (a.mediastinum + 0.07), a.lung_top + 0.42 * height)


def point_in_lung(a, side, rng, vn_range=(0.15, 0.75), across_range=(0.15, 0.85)):
    """A random (u, v) inside the lung on `side`, between the given lung coordinates."""
    return lung_point(a, side, rng.uniform(*vn_range), rng.uniform(*across_range))


def lung_point(a, side, vn, across):
    """(u, v) of the point at height `vn` and `across` the width of the lung on `side`."""
    reach = math.sqrt(1.0 - (1.0 - min(vn / a.apex_rounding, 1.0)) ** 2)
    inner = a.apex_t - (a.apex_t - a.mediastinum) * reach
    outer = a.apex_t + (a.lung_outer[side] - a.apex_t) * reach
    t = inner + across * (outer - inner)
    return a.midline + SIDE_SIGN[side] * t, a.lung_top + vn * (a.diaphragm[side] - a.lung_top)


def disc(u, v, center, radius, edge):
    du, dv = u - center[0], v - center[1]
    return ramp(radius - np.sqrt(du * du + dv * dv), edge)


def segment_distance(u, v, start, end):
    """Distance of every pixel from the line segment start-end."""
    (u0, v0), (u1, v1) = start, end
    du, dv = u1 - u0, v1 - v0
    along = np.clip(((u - u0) * du + (v - v0) * dv) * (1.0 / (du * du + dv * dv)), 0.0, 1.0)
    pu, pv = u - u0 - along * du, v - v0 - along * dv
    return np.sqrt(pu * pu + pv * pv)


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
        return 4.0 / self.size


def body_coordinates(size, anatomy, rng):
    """Pixel grid mapped into body coordinates: tilt, shift and scale differ per image."""
    u, v = pixel_grid(size)
    angle = anatomy.tilt
    scale = rng.uniform(0.9, 1.07)
    shift_u, shift_v = rng.normal(0, 0.04), rng.normal(0.0, 0.04)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    return (cos * (u - shift_u) + sin * (v - shift_v),
            -sin * (u - shift_u) + cos * (v - shift_v))


def normal_chest(u, v, a, rng, size):
    """A normal frontal chest: soft tissue, lungs, heart, mediastinum, bones, markings."""
    edge = 4.0 / size
    lungs = (lung_field(u, v, a, 0, 2.5 * edge), lung_field(u, v, a, 1, 2.5 * edge))
    x = u - a.midline
    t = np.abs(x)
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
    knob_v = a.lung_top + 0.3 * (a.diaphragm[1] - a.lung_top)
    heart = np.maximum(heart, disc(u, v, (a.midline + a.mediastinum - 0.015, knob_v), 0.05,
                                   3 * edge))
    carina = a.lung_top + 0.38 * (a.diaphragm[0] - a.lung_top)
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
    hilum_t = a.mediastinum + 0.07
    hilum_v = 0.5 * (hilum(a, 0)[1] + hilum(a, 1)[1])
    dt, dv = t - hilum_t, v - hilum_v
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
        center = lung_point(a, spot.side, spot.vn, spot.across)
        chest.opacity += spot.strength * disc(u, v, center, spot.size, chest.edge)
    if a.linear_scar is not None:
        spot = a.linear_scar
        center = lung_point(a, spot.side, spot.vn, spot.across)
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


# ---------------------------------------------------------------------------------------------
# Rendering: findings. Each draws its pattern at severity s in [0, 1]; `site` is the patient's
# lesion generator (same place every visit), `rng` the image's.
# ---------------------------------------------------------------------------------------------

def lesion_sides(site, bilateral):
    """One side, or both with probability `bilateral`."""
    if site.random() < bilateral:
        return (0, 1)
    return (int(site.integers(2)),)


def draw_atelectasis(chest, s, site, rng):
    """Plate-like linear opacity in a lower zone; with severity, a denser basal wedge."""
    a = chest.anatomy
    side = int(site.integers(2))  # the side whose dome `reshaped_by_findings` raised
    center = point_in_lung(a, side, site, vn_range=(0.55, 0.78), across_range=(0.3, 0.7))
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
            v = a.lung_top + level * (a.diaphragm[side] - a.lung_top)
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
        height = (0.03 + 0.35 * s) * (a.diaphragm[side] - a.lung_top) * rng.uniform(0.8, 1.2)
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
    a = chest.anatomy
    side = int(site.integers(2))
    center = point_in_lung(a, side, site, vn_range=(0.15, 0.65), across_range=(0.25, 0.75))
    radius = site.uniform(0.085, 0.15) * (0.5 + 0.7 * s)
    phases = site.uniform(0, 2 * math.pi, 2)
    du, dv = chest.u - center[0], chest.v - center[1]
    angle = np.arctan2(dv, du)
    outline = radius * (1.0 + 0.12 * np.cos(3 * angle + phases[0])
                        + 0.07 * np.cos(5 * angle + phases[1]))
    mass = ramp(outline - np.sqrt(du * du + dv * dv), 2 * chest.edge)
    chest.opacity += (0.15 + 0.8 * s) * mass


def draw_nodule(chest, s, site, rng):
    """One to four small, well-defined round opacities, more often in the upper zones."""
    a = chest.anatomy
    for _ in range(1 + int(site.choice(4, p=(0.35, 0.3, 0.2, 0.15)))):
        side = int(site.integers(2))
        center = point_in_lung(a, side, site, vn_range=(0.1, 0.7))
        radius = site.uniform(0.04, 0.07) * (0.7 + 0.5 * s)
        chest.opacity += (0.2 + 0.85 * s) * disc(chest.u, chest.v, center, radius, chest.edge)


def draw_pleural_thickening(chest, s, site, rng):
    """A dense band along the chest wall, irregular on its inner side, or an apical cap."""
    a = chest.anatomy
    apical = site.random() < 0.3
    for side in lesion_sides(site, bilateral=0.4):
        lung = chest.lungs[side]
        width = (0.01 + 0.05 * s) * (1.0 + 0.35 * np.sin(lung.vn * site.uniform(8, 14)))
        outer = a.lung_outer[side] if not apical else a.apex_t + 0.1
        if apical:
            rim = ramp(0.12 + 2 * width - lung.vn, chest.edge * 2)
        else:
            rim = ramp(lung.t - (outer - width), chest.edge * 2) * ramp(
                lung.vn - 0.15, 0.1) * ramp(0.9 - lung.vn, 0.1)
        chest.opacity += (0.4 + 0.5 * s) * rim * lung.side()


def draw_pneumonia(chest, s, site, rng):
    """Patchy consolidation: a confluent, ill-defined opacity centred in one lung region."""
    a = chest.anatomy
    side = int(site.integers(2))
    center = point_in_lung(a, side, site, vn_range=(0.3, 0.8), across_range=(0.2, 0.8))
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


# ---------------------------------------------------------------------------------------------
# Rendering: one radiograph
# ---------------------------------------------------------------------------------------------

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
    for name in spec.findings:
        if name in DRAW_FINDING:
            DRAW_FINDING[name](chest, severity[name], lesion_site(seed, spec.patient_id, name),
                               rng)
    density = composed_density(chest)
    if detail != size:
        density = cv2.resize(density, (size, size), interpolation=cv2.INTER_LINEAR)
    return exposed(density, rng, size)


def render_size(size):
    """Anatomy and findings are drawn at up to half the output size (at least 128 pixels):
    their edges are a few pixels soft anyway, and film blur and noise are added at full size.
    This quarters the drawing time of the default 256-pixel images."""
    return size if size <= 128 else max(128, size // 2)


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


# ---------------------------------------------------------------------------------------------
# Snakemake entry
# ---------------------------------------------------------------------------------------------

def main(snakemake):
    """Rule `demo_dataset`: params.demo holds the keyword arguments of `make_demo_dataset`
    (n_images, png_size, seed, rgba_fraction); the CSV's folder is the dataset's folder."""
    settings = dict(snakemake.params.demo)
    known = {"n_images", "png_size", "seed", "rgba_fraction"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise InputError(f"demo: unknown key(s) {', '.join(unknown)}; the known keys are "
                         f"{', '.join(sorted(known))}.")
    metadata = Path(snakemake.output.metadata)
    if metadata.name != METADATA_NAME:
        raise InputError(f"rule demo_dataset: output.metadata is {metadata}; name it "
                         f"{METADATA_NAME}, as the real download is named.")
    out_dir = metadata.parent
    written = {out_dir / name for name in (METADATA_NAME, IMAGES_FOLDER.parts[0],
                                           TRAIN_VAL_LIST_NAME, TEST_LIST_NAME)}
    unexpected = [path for path in map(Path, snakemake.output) if path not in written]
    if unexpected:
        raise InputError(f"rule demo_dataset: output(s) {', '.join(map(str, unexpected))} are "
                         f"not written by this stage; it writes {', '.join(map(str, written))}.")
    summary = make_demo_dataset(out_dir, workers=max(1, int(snakemake.threads)), **settings)
    log.info("demo dataset in %s: %d images of %d patients, %d label sets, %d 'No Finding'",
             out_dir, summary["n_images"], summary["n_patients"], summary["n_label_sets"],
             summary["n_no_finding"])
    log.info("official-style split: %d test images of %d patients, %d train_val images",
             summary["n_test_images"], summary["n_test_patients"],
             summary["n_train_val_images"])
    log.info("%d RGBA images; %d images whose drawn findings differ from their labels",
             summary["n_rgba_images"], summary["n_findings_differ_from_labels"])
    log.info("written in %.1f s on %d worker(s)", summary["seconds"], snakemake.threads)


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
