
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from repository import REPO, with_schema_defaults

from workflow_scripts.labels import DISEASES, LABELS, MULTILABEL, NO_FINDING
from workflow_scripts.make_split import make_split, read_test_list, split_summary
from workflow_scripts.stage import InputError

SETTINGS = {"seed": 7, "test_fraction": 0.2, "val_fraction": 0.1, "negatives_per_positive": 1.0,
            "negatives": {}, "no_finding_vs_any": {"normal": None, "per_disease": None}}


def label_table(n_patients, seed, disease_rate=0.35):
    """Patients with 1-6 follow-ups; each image is 'No Finding' or carries 1-3 diseases."""
    rng = np.random.default_rng(seed)
    per_patient = rng.integers(1, 7, size=n_patients)
    patients = np.repeat(np.arange(1, n_patients + 1), per_patient)
    follow_up = np.concatenate([np.arange(k) for k in per_patient])
    flags = np.zeros((len(patients), len(LABELS)), dtype=bool)
    sick = rng.random(len(patients)) < disease_rate
    flags[~sick, 0] = True
    for row in np.flatnonzero(sick):
        flags[row, 1 + rng.choice(len(DISEASES), size=rng.integers(1, 4), replace=False)] = True
    table = pd.DataFrame(flags, columns=list(LABELS))
    names = [f"{p:08d}_{f:03d}.png" for p, f in zip(patients, follow_up, strict=True)]
    table.insert(0, "image_index", names)
    table.insert(1, "patient_id", patients.astype("int32"))
    return table


def check_split(labels, split, target):
    by_patient = split.groupby("patient_id")["split"].nunique()
    assert (by_patient == 1).all(), "a patient appears in two splits"
    carrying = labels["image_index"][labels[target]] if target in LABELS else None
    if carrying is not None:
        positives = set(split.loc[split["label"] == 1, "image_index"])
        assert positives == set(carrying), "every image carrying the disease is a positive"
        negatives = split.loc[split["label"] == 0, "image_index"]
        assert labels.set_index("image_index").loc[negatives, NO_FINDING].all()
    assert set(split["split"]) == {"train", "val", "test"}
    assert split["image_index"].is_unique


@settings(max_examples=25, deadline=None)
@given(n_patients=st.integers(150, 600), seed=st.integers(0, 10_000),
       target=st.sampled_from(["Effusion", "Atelectasis", "Mass", "no_finding_vs_any"]))
def test_patients_never_cross_splits_and_all_positives_are_used(n_patients, seed, target):
    labels = label_table(n_patients, seed)
    split = make_split(labels, target, SETTINGS)
    check_split(labels, split, target)
    assert list(split.columns) == ["image_index", "patient_id", "label", "split"]
    # Balance: one negative per positive, and every split keeps about that ratio.
    positives = int(split["label"].sum())
    assert abs(int((split["label"] == 0).sum()) - positives) <= 1
    test_share = (split["split"] == "test").mean()
    assert 0.1 < test_share < 0.3


def test_same_seed_same_split_and_other_seed_differs():
    labels = label_table(400, 1)
    first = make_split(labels, "Effusion", SETTINGS)
    pd.testing.assert_frame_equal(first, make_split(labels, "Effusion", SETTINGS))
    other = make_split(labels, "Effusion", {**SETTINGS, "seed": 8})
    assert not first["split"].equals(other["split"])


def test_fractions_are_met_by_whole_patients():
    labels = label_table(3000, 2)
    split = make_split(labels, "no_finding_vs_any", SETTINGS)
    shares = split["split"].value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.01)
    assert shares["val"] == pytest.approx(0.08, abs=0.01)  # 0.1 of the remaining 0.8
    positive_share = split.groupby("split")["label"].mean()
    assert positive_share.max() - positive_share.min() < 0.04


def test_explicit_negative_count_and_any_disease_counts():
    labels = label_table(2000, 3)
    split = make_split(labels, "Effusion", {**SETTINGS, "negatives": {"Effusion": 300}})
    assert int((split["label"] == 0).sum()) == 300
    options = {"normal": 500, "per_disease": 20}
    split = make_split(labels, "no_finding_vs_any", {**SETTINGS, "no_finding_vs_any": options})
    assert int((split["label"] == 0).sum()) == 500
    assert int(split["label"].sum()) == 20 * len(DISEASES)
    diseased = labels.set_index("image_index").loc[split.loc[split["label"] == 1, "image_index"]]
    assert not diseased[NO_FINDING].any()
    assert (diseased[list(DISEASES)].sum() >= 20).all(), "each disease is drawn at least 20 times"


def test_official_test_list_is_the_test_split(tmp_path):
    labels = label_table(800, 4)
    patients = labels["patient_id"].unique()
    listed_patients = set(patients[::4])
    listed = labels.loc[labels["patient_id"].isin(listed_patients), "image_index"]
    path = tmp_path / "test_list.txt"
    path.write_text("\n".join(listed) + "\nnot_in_csv.png\n")
    test_images = read_test_list(path, labels)
    split = make_split(labels, "Effusion", SETTINGS, test_images)
    check_split(labels, split, "Effusion")
    in_test = set(split.loc[split["split"] == "test", "image_index"])
    assert in_test == set(split["image_index"]) & set(listed)


def test_multilabel_takes_every_image_with_a_column_per_disease():
    labels = label_table(1500, 8)
    split = make_split(labels, MULTILABEL, SETTINGS)
    check_split(labels, split, MULTILABEL)
    assert list(split.columns) == ["image_index", "patient_id", "label", *DISEASES, "split"]
    assert len(split) == len(labels)
    expected = labels.set_index("image_index").loc[split["image_index"]]
    for disease in DISEASES:
        assert split[disease].dtype == np.int8
        np.testing.assert_array_equal(split[disease], expected[disease].astype(np.int8))
    np.testing.assert_array_equal(split["label"], ~expected[NO_FINDING].to_numpy())
    # Stratified by 'any disease': each split keeps about the images' share of it.
    any_disease = split.groupby("split")["label"].mean()
    assert any_disease.max() - any_disease.min() < 0.06
    shares = split["split"].value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.02)


def test_multilabel_with_the_test_list_has_exactly_the_listed_images_as_test(tmp_path):
    labels = label_table(600, 9)
    listed = labels.loc[labels["patient_id"] % 5 == 0, "image_index"]
    path = tmp_path / "test_list.txt"
    path.write_text("\n".join(listed) + "\n")
    split = make_split(labels, MULTILABEL, SETTINGS, read_test_list(path, labels))
    check_split(labels, split, MULTILABEL)
    assert set(split.loc[split["split"] == "test", "image_index"]) == set(listed)
    assert len(split) == len(labels)


def test_the_official_preset_puts_exactly_the_listed_images_into_every_targets_test_split(
        tmp_path):
    config = with_schema_defaults(yaml.safe_load((REPO / "config" / "official.yaml").read_text()))
    labels = label_table(2500, 10)
    # Disjoint by patient, as NIH's list: every fourth patient's images.
    listed = set(labels.loc[labels["patient_id"] % 4 == 0, "image_index"])
    path = tmp_path / "test_list.txt"
    path.write_text("".join(f"{name}\n" for name in sorted(listed)))
    test_images = read_test_list(path, labels)
    assert MULTILABEL in config["targets"] and len(config["targets"]) == len(DISEASES) + 1
    for target in config["targets"]:
        split = make_split(labels, target, config["splits"], test_images)
        check_split(labels, split, target)
        in_test = set(split.loc[split["split"] == "test", "image_index"])
        assert in_test == set(split["image_index"]) & listed, target
        if target == MULTILABEL:
            assert in_test == listed
        else:  # every listed image of the disease is a test positive
            carrying = set(labels.loc[labels[target], "image_index"])
            assert carrying & listed <= in_test


@pytest.mark.parametrize(
    ("target", "changes", "expected"),
    [
        ("Effusion", {"negatives": {"Effusion": 10**6}}, r"1000000 images requested but only"),
        ("Hernia", {}, r"target 'Hernia': the (train|val|test) split got no positive image"),
    ],
)
def test_bad_targets_and_counts(target, changes, expected):
    labels = label_table(300, 5)
    if target == "Hernia":  # two Hernia images from one patient cannot fill three splits
        labels["Hernia"] = False
        labels.loc[labels["patient_id"] == 1, "Hernia"] = True
        labels.loc[labels["patient_id"] == 1, NO_FINDING] = False
    with pytest.raises(InputError, match=expected):
        make_split(labels, target, {**SETTINGS, **changes})


def test_test_list_from_another_dataset_is_rejected(tmp_path):
    path = tmp_path / "test_list.txt"
    path.write_text("a.png\nb.png\n")
    with pytest.raises(InputError, match="none of its 2 image names is in the metadata"):
        read_test_list(path, label_table(50, 6))


def test_summary_counts():
    labels = label_table(500, 6)
    split = make_split(labels, "Effusion", SETTINGS)
    row = split_summary({"Effusion": split}).iloc[0]
    assert row["positives"] + row["negatives"] == len(split)
    assert row["train"] + row["val"] + row["test"] == len(split)
    assert row["test_positives"] == int(split.loc[split["split"] == "test", "label"].sum())
