"""The demo's pretrained backbone: what it may see, and loading a backbone weights file."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_make_split import SETTINGS, label_table

from workflow_scripts.labels import DISEASES
from workflow_scripts.make_split import make_split
from workflow_scripts.models import backbone_of, build_model
from workflow_scripts.pretrain import pretraining_diseases, pretraining_split
from workflow_scripts.stage import InputError


@settings(max_examples=20, deadline=None)
@given(n_patients=st.integers(300, 600), seed=st.integers(0, 10_000),
       targets=st.lists(st.sampled_from(["Effusion", "Atelectasis", "Mass",
                                         "no_finding_vs_any"]), min_size=1, max_size=3,
                        unique=True))
def test_pretraining_sees_no_image_or_patient_of_any_target_s_val_or_test_split(
        n_patients, seed, targets):
    labels = label_table(n_patients, seed)
    target_splits = {target: make_split(labels, target, SETTINGS) for target in targets}
    diseases = pretraining_diseases(targets)
    split = pretraining_split(labels, target_splits, diseases, 0.1, seed)
    for frame in target_splits.values():
        held_out = frame[frame["split"].isin(["val", "test"])]
        assert not set(split["image_index"]) & set(held_out["image_index"])
        assert not set(split["patient_id"]) & set(held_out["patient_id"])
    # Everything else is used: every image of a patient no target holds out.
    held_out_patients = set().union(*(set(f.loc[f["split"] != "train", "patient_id"])
                                      for f in target_splits.values()))
    expected = labels.loc[~labels["patient_id"].isin(held_out_patients), "image_index"]
    assert sorted(split["image_index"]) == sorted(expected)
    assert split.groupby("patient_id")["split"].nunique().max() == 1
    assert list(split.columns) == ["image_index", "patient_id", *diseases, "split"]
    assert not set(targets) & set(diseases)


def test_pretraining_learns_the_diseases_that_are_no_target_unless_told():
    assert pretraining_diseases(["Effusion"]) == [d for d in DISEASES if d != "Effusion"]
    assert pretraining_diseases(["Effusion"], ["Mass", "Nodule"]) == ["Mass", "Nodule"]
    with pytest.raises(InputError, match="every disease is a target"):
        pretraining_diseases(list(DISEASES))
    with pytest.raises(InputError, match="Tumour not among"):
        pretraining_diseases(["Effusion"], ["Tumour"])


@pytest.fixture(scope="module")
def mobilenet_quarter_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "mobilenet.weights.h5"
    model = build_model("mobilenet", 32, head="simple", mobilenet_alpha=0.25, seed=3)
    backbone_of(model).save_weights(path)
    return path, backbone_of(model).get_weights()


def test_a_backbone_weights_file_is_loaded_into_the_backbone(mobilenet_quarter_file):
    path, saved = mobilenet_quarter_file
    # Another image size: MobileNet's weights do not depend on it.
    model = build_model("mobilenet", 64, head="simple", mobilenet_alpha=0.25, seed=0,
                        weights=str(path))
    loaded = backbone_of(model).get_weights()
    assert len(loaded) == len(saved)
    assert all(np.array_equal(a, b) for a, b in zip(loaded, saved, strict=True))


def test_the_arch_placeholder_names_one_file_per_architecture(mobilenet_quarter_file):
    path, saved = mobilenet_quarter_file
    model = build_model("mobilenet", 32, head="simple", mobilenet_alpha=0.25,
                        weights=str(path.parent / "{arch}.weights.h5"))
    assert np.array_equal(backbone_of(model).get_weights()[0], saved[0])


@pytest.mark.parametrize(("arch", "alpha"), [("mobilenet", 0.5), ("alexnet", 1.0),
                                             ("densenet121", 1.0)])
def test_a_weights_file_of_another_backbone_or_alpha_is_an_error_naming_the_file(
        mobilenet_quarter_file, arch, alpha):
    path, _ = mobilenet_quarter_file
    with pytest.raises(InputError, match=rf"{path}.*does not fit the {arch}.*"
                       "another architecture or another model.mobilenet_alpha"):
        build_model(arch, 32, head="simple", mobilenet_alpha=alpha, weights=str(path))


def test_a_missing_or_foreign_weights_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(InputError, match=rf"{tmp_path}/none.weights.h5 does not exist"):
        build_model("mobilenet", 32, mobilenet_alpha=0.25,
                    weights=str(tmp_path / "none.weights.h5"))
    with pytest.raises(InputError, match=r"model.h5 is not a Keras backbone weights file"):
        build_model("mobilenet", 32, mobilenet_alpha=0.25, weights=str(tmp_path / "model.h5"))
