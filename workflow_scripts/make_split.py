"""Stage `make_split`: one target's images, labels and patient-grouped train/val/test split.

Positives are every image carrying the disease; negatives are 'No Finding' images sampled to
`negatives_per_positive` x positives or to an explicit count (the paper's Table 2). For
`no_finding_vs_any` the positives are images with any disease (optionally `per_disease` of
each) and the negatives 'No Finding' images (optionally `normal` of them). `multilabel` takes
every image of the metadata, with one 0/1 column per disease (named as the disease) beside
`label`, which there says whether the image carries any disease.

Images are split by patient, so no patient appears in two splits: patients are shuffled
(seeded per target) and cut where the cumulative image count crosses the requested fraction,
separately for patients with a positive image and for the rest, so that every split keeps
about the target's class balance (for `multilabel`: its share of images with any disease).
With an official test list, the listed images are the test
split and train/val come from the patients not in it.
"""

import zlib

import numpy as np
import pandas as pd

from workflow_scripts.labels import ANY_DISEASE, DISEASES, MULTILABEL, NO_FINDING, SPLITS
from workflow_scripts.stage import InputError, log, run


def target_rng(seed, target):
    """A generator per (seed, target): reproducible, and different for each target."""
    return np.random.default_rng([seed, zlib.crc32(target.encode())])


def sample_rows(frame, count, rng, what):
    if count > len(frame):
        raise InputError(
            f"{what}: {count} images requested but only {len(frame)} exist. "
            "Lower the count in the config (splits.negatives / splits.no_finding_vs_any)."
        )
    return frame.iloc[np.sort(rng.choice(len(frame), size=count, replace=False))]


def negative_count(target, positives, settings):
    explicit = settings.get("negatives", {}).get(target)
    if explicit:
        return int(explicit)
    return max(1, round(settings["negatives_per_positive"] * positives))


def select_images(labels, target, settings, rng):
    """The target's images: image_index, patient_id, label (1 = disease, 0 = No Finding), and
    for MULTILABEL (all images) one 0/1 column per disease."""
    if target == MULTILABEL:
        return pd.DataFrame({
            "image_index": labels["image_index"].to_numpy(),
            "patient_id": labels["patient_id"].to_numpy(),
            "label": (~labels[NO_FINDING].to_numpy()).astype(np.int8),
            **{disease: labels[disease].to_numpy().astype(np.int8) for disease in DISEASES}})
    normal = labels[labels[NO_FINDING]]
    if target == ANY_DISEASE:
        options = settings.get("no_finding_vs_any", {})
        diseased = labels[~labels[NO_FINDING]]
        per_disease = options.get("per_disease")
        if per_disease:
            chosen = np.zeros(len(diseased), dtype=bool)
            # In the paper's order, each disease adds up to `per_disease` images not yet drawn.
            for disease in DISEASES:
                available = np.flatnonzero(diseased[disease].to_numpy() & ~chosen)
                take = min(per_disease, len(available))
                if take < per_disease:
                    log.warning("%s: only %d images of %s left for %d requested",
                                target, take, disease, per_disease)
                chosen[rng.choice(available, size=take, replace=False)] = True
            diseased = diseased[chosen]
        n_normal = options.get("normal") or negative_count(target, len(diseased), settings)
        positives, negatives = diseased, sample_rows(normal, n_normal, rng, f"{target} normal")
    else:
        positives = labels[labels[target]]
        if positives.empty:
            raise InputError(f"target {target!r}: no image carries this label in the metadata.")
        n_negative = negative_count(target, len(positives), settings)
        negatives = sample_rows(normal, n_negative, rng, f"{target} negatives")
    selected = pd.concat([positives.assign(label=1), negatives.assign(label=0)])
    return selected[["image_index", "patient_id", "label"]].reset_index(drop=True)


def cut_by_patient(image_counts, fraction, rng):
    """Shuffle patients and return a mask of those whose images fill `fraction` of all images.

    A patient is taken when the middle of its block of images lies before the cut, so the
    split's image count lands as close to the fraction as whole patients allow.
    """
    order = rng.permutation(len(image_counts))
    counts = image_counts.to_numpy()[order]
    middles = np.cumsum(counts) - counts / 2
    taken = np.zeros(len(counts), dtype=bool)
    taken[order] = middles < fraction * counts.sum()
    return taken


def split_patients(selected, test_fraction, val_fraction, rng, test_patients=None):
    """Map each patient to train/val/test, stratified by whether it has a positive image."""
    per_patient = selected.groupby("patient_id")["label"].agg(["size", "max"])
    split = pd.Series("train", index=per_patient.index, dtype=object)
    if test_patients is not None:
        split[split.index.isin(test_patients)] = "test"
    for has_positive in (1, 0):
        stratum = per_patient[(per_patient["max"] == has_positive) & (split == "train")]
        if test_patients is None:
            in_test = cut_by_patient(stratum["size"], test_fraction, rng)
            split[stratum.index[in_test]] = "test"
            stratum = stratum[~in_test]
        in_val = cut_by_patient(stratum["size"], val_fraction, rng)
        split[stratum.index[in_val]] = "val"
    return split


def read_test_list(path, labels):
    names = pd.read_csv(path, header=None, names=["image_index"], dtype=str)["image_index"]
    names = names.str.strip()
    known = names.isin(labels["image_index"])
    if not known.any():
        raise InputError(
            f"{path}: none of its {len(names)} image names is in the metadata CSV. "
            "data.test_list must be NIH's test_list.txt (one file name per line) for this CSV."
        )
    if not known.all():
        log.warning("%s: %d listed images are not in the metadata and are ignored",
                    path, int((~known).sum()))
    return set(names[known])


def make_split(labels, target, settings, test_images=None):
    """The split table of one target: image_index, patient_id, label, split (and for
    MULTILABEL the disease columns between label and split)."""
    rng = target_rng(settings["seed"], target)
    selected = select_images(labels, target, settings, rng)
    test_patients = None
    if test_images is not None:
        listed = selected["image_index"].isin(test_images)
        test_patients = set(selected.loc[listed, "patient_id"])
        # The official list is disjoint by patient; a patient's unlisted images must not
        # enter train/val beside its listed ones.
        leaking = ~listed & selected["patient_id"].isin(test_patients)
        if leaking.any():
            log.warning("%s: %d images of test-list patients are not listed; dropped so no "
                        "patient is in two splits", target, int(leaking.sum()))
            selected = selected[~leaking]
    patient_split = split_patients(selected, settings["test_fraction"], settings["val_fraction"],
                                   rng, test_patients)
    selected = selected.assign(split=selected["patient_id"].map(patient_split).to_numpy())
    check_every_split_has_both_classes(selected, target, settings)
    if target == MULTILABEL:
        warn_of_diseases_missing_from_a_split(selected)
    order = selected["split"].map({name: i for i, name in enumerate(SPLITS)})
    selected = selected.iloc[np.lexsort((selected["image_index"].to_numpy(), order.to_numpy()))]
    return selected.astype({"label": "int8", "split": "string"}).reset_index(drop=True)


def check_every_split_has_both_classes(selected, target, settings):
    counts = selected.groupby(["split", "label"]).size()
    for split in SPLITS:
        for label, name in ((1, "positive"), (0, "negative")):
            if counts.get((split, label), 0) == 0:
                positives = int(selected["label"].sum())
                raise InputError(
                    f"target {target!r}: the {split} split got no {name} image "
                    f"({positives} positive images of "
                    f"{selected.loc[selected['label'] == 1, 'patient_id'].nunique()} patients, "
                    f"test_fraction {settings['test_fraction']}, val_fraction "
                    f"{settings['val_fraction']}). Too few to split: use more data, raise the "
                    f"fractions, or remove {target} from targets."
                )


def warn_of_diseases_missing_from_a_split(selected):
    """A disease without positive images in a split cannot be learned (train) or scored (test,
    its AUROC is undefined and left out of the mean): say so, without stopping."""
    counts = selected.groupby("split")[list(DISEASES)].sum()
    for split in SPLITS:
        absent = [d for d in DISEASES if counts.at[split, d] == 0] if split in counts.index \
            else list(DISEASES)
        if absent:
            log.warning("%s: no image of %s in the %s split", MULTILABEL, ", ".join(absent),
                        split)


def split_summary(splits):
    """One row per target: positives, negatives, and the size of each split."""
    rows = []
    for target, frame in splits.items():
        sizes = frame.groupby("split").size()
        positives = frame[frame["label"] == 1].groupby("split").size()
        rows.append({
            "target": target,
            "positives": int(frame["label"].sum()),
            "negatives": int((frame["label"] == 0).sum()),
            **{split: int(sizes.get(split, 0)) for split in SPLITS},
            **{f"{split}_positives": int(positives.get(split, 0)) for split in SPLITS},
            "patients": int(frame["patient_id"].nunique()),
        })
    return pd.DataFrame(rows)


def write_split(snakemake):
    labels = pd.read_parquet(snakemake.input.labels)
    target = snakemake.wildcards.target
    test_images = None
    if snakemake.params.test_list:
        test_images = read_test_list(snakemake.params.test_list, labels)
    split = make_split(labels, target, snakemake.params.settings, test_images)
    split.to_parquet(snakemake.output.split, index=False)
    sizes = split.groupby("split").size()
    log.info("%s: %d positives, %d negatives; train %d, val %d, test %d images",
             target, int(split["label"].sum()), int((split["label"] == 0).sum()),
             sizes.get("train", 0), sizes.get("val", 0), sizes.get("test", 0))


def write_summary(snakemake):
    paths = zip(snakemake.params.targets, snakemake.input.splits, strict=True)
    splits = {target: pd.read_parquet(path) for target, path in paths}
    split_summary(splits).to_csv(snakemake.output.summary, index=False)


ENTRIES = {"make_split": write_split, "split_summary": write_summary}

if __name__ == "__main__":
    run(snakemake, ENTRIES[snakemake.rule])  # noqa: F821 - `snakemake` is injected by the rule's script directive
