"""The demo dataset's metadata: patients, their label sets, the Data_Entry CSV and the split.

Each image's label set is drawn from a distribution over label sets whose single-label and
any-label frequencies are those of the paper's Table 1 (the v2020 CSV) and whose
co-occurrences follow the real data's strongest pairs (see `label_set_distribution`). A
patient's follow-ups repeat the previous label set with probability `LABEL_PERSISTENCE`, which
keeps every image's label distribution unchanged. For `LABEL_NOISE` of the images the findings
drawn on the film differ from the labels (see `with_label_noise`), like the NLP-mined labels of
the real data. Everything here derives from the seed alone.
"""

import functools
from itertools import combinations

import numpy as np
import pandas as pd

from workflow_scripts.demo import STREAM_METADATA
from workflow_scripts.labels import DISEASES, NO_FINDING

HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)

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


def normalized(weights):
    weights = np.asarray(weights, dtype=float)
    return weights / weights.sum()


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
    """The CSV text: HEADER, then 11 comma-separated fields per image, v2020 style (the pixel
    spacing twice, for x and y)."""
    fields = metadata[["image_index", "finding_labels", "follow_up", "patient_id", "age", "sex",
                       "view", "width", "height", "pixel_spacing", "pixel_spacing"]]
    return HEADER + "\n" + fields.to_csv(header=False, index=False, float_format="%.3f",
                                         lineterminator="\n")
