import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from repository import SCHEMA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from workflow_scripts.build_image_cache import decode_gray
from workflow_scripts.configuration import check_config
from workflow_scripts.demo import writer
from workflow_scripts.demo.anatomy import patient_anatomy, posed
from workflow_scripts.demo.chest import composed_density, normal_chest
from workflow_scripts.demo.findings import draw_findings, reshaped_by_findings
from workflow_scripts.demo.metadata import TABLE1, label_set_distribution, sample_metadata
from workflow_scripts.demo.rendering import body_coordinates, render_radiograph
from workflow_scripts.demo.writer import image_specs, make_demo_dataset
from workflow_scripts.demo_dataset import main
from workflow_scripts.labels import DISEASES, NO_FINDING
from workflow_scripts.parse_metadata import parse_metadata
from workflow_scripts.stage import InputError

HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
FREQUENT = ("Effusion", "Infiltration", "Atelectasis", "Cardiomegaly", "Pneumothorax", "Nodule",
            "Mass")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small dataset: 240 images of 48 px, 2% RGBA."""
    folder = tmp_path_factory.mktemp("demo")
    summary = make_demo_dataset(folder, n_images=240, png_size=48, seed=3,
                                     rgba_fraction=0.02)
    return folder, summary


def small_dataset(folder, seed, n_images=200, workers=1):
    """A dataset of 32 px images with the schema's default share of RGBA images."""
    return make_demo_dataset(folder, n_images=n_images, png_size=32, seed=seed,
                             rgba_fraction=0.005, workers=workers)


def rows_of(folder):
    lines = (folder / "Data_Entry_2017_v2020.csv").read_text().splitlines()
    return lines[0], [line.split(",") for line in lines[1:]]


def list_of(path):
    return path.read_text().splitlines()


def all_files(folder):
    return {path.relative_to(folder): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


# --- the CSV -------------------------------------------------------------------------------

def test_csv_has_the_v2020_header_and_eleven_fields_per_row(dataset):
    folder, summary = dataset
    header, rows = rows_of(folder)
    assert header == HEADER
    assert len(rows) == summary["n_images"] == 240
    assert {len(row) for row in rows} == {11}


def test_csv_fields_follow_the_real_formats(dataset):
    folder, _ = dataset
    _, rows = rows_of(folder)
    follow_ups = {}
    for name, labels, follow_up, patient, age, sex, view, width, height, x, y in rows:
        assert re.fullmatch(r"\d{8}_\d{3}\.png", name)
        assert patient == str(int(patient)) and follow_up == str(int(follow_up))
        assert name == f"{int(patient):08d}_{int(follow_up):03d}.png"
        parts = labels.split("|")
        if NO_FINDING in parts:
            assert parts == [NO_FINDING]
        else:
            assert parts == sorted(parts) and set(parts) <= set(DISEASES)
            assert len(set(parts)) == len(parts)
        assert age == str(int(age)) and 1 <= int(age) <= 100
        assert sex in ("M", "F") and view in ("PA", "AP")
        assert 2000 <= int(width) <= 3100 and 2000 <= int(height) <= 3100
        assert x == y and re.fullmatch(r"0\.\d{3}", x)
        follow_ups.setdefault(int(patient), []).append(int(follow_up))
    assert sorted(follow_ups) == list(range(1, len(follow_ups) + 1))
    for numbers in follow_ups.values():
        assert numbers == list(range(len(numbers)))


def test_the_workflow_parses_the_csv(dataset):
    folder, summary = dataset
    table, parsed = parse_metadata(folder / "Data_Entry_2017_v2020.csv")
    assert len(table) == parsed["n_images"] == summary["n_images"]
    assert parsed["n_patients"] == summary["n_patients"]
    assert parsed["n_label_sets"] == summary["n_label_sets"]


# --- images and list files -------------------------------------------------------------------

def test_images_match_the_csv_and_decode(dataset):
    folder, summary = dataset
    _, rows = rows_of(folder)
    images = folder / "images_001" / "images"
    assert sorted(path.name for path in images.iterdir()) == sorted(row[0] for row in rows)
    channels = []
    for path in images.iterdir():
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.shape[:2] == (48, 48)
        channels.append(1 if image.ndim == 2 else image.shape[2])
    assert channels.count(4) == summary["n_rgba_images"] == round(0.02 * 240)
    assert channels.count(1) == 240 - summary["n_rgba_images"]


def test_rgba_images_are_opaque_and_read_as_gray(dataset):
    folder, _ = dataset
    rgba = [path for path in (folder / "images_001" / "images").iterdir()
            if cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ndim == 3]
    assert rgba
    for path in rgba:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert (image[:, :, 3] == 255).all()
        assert (image[:, :, 0] == image[:, :, 1]).all() and (image[:, :, 1] == image[:, :, 2]).all()
        gray, converted = decode_gray(path.read_bytes())  # the workflow's own reader
        assert converted
        assert np.abs(gray.astype(int) - image[:, :, 0]).max() <= 1


def test_list_files_split_the_images_by_patient(dataset):
    folder, summary = dataset
    train_val = list_of(folder / "train_val_list.txt")
    test = list_of(folder / "test_list.txt")
    _, rows = rows_of(folder)
    assert sorted(train_val + test) == sorted(row[0] for row in rows)
    assert not set(train_val) & set(test)
    patient = {row[0]: row[3] for row in rows}
    assert not {patient[name] for name in train_val} & {patient[name] for name in test}
    assert 0.18 <= len(test) / len(rows) <= 0.25
    assert len(test) == summary["n_test_images"]


def test_follow_ups_are_several_per_patient_for_many_patients():
    metadata = sample_metadata(3000, seed=1)
    per_patient = metadata.groupby("patient_id").size()
    assert 3.0 <= per_patient.mean() <= 4.5
    assert (per_patient == 1).mean() > 0.4, "most patients have one image, as in NIH"
    assert (per_patient >= 2).mean() > 0.3
    assert per_patient.max() >= 30


def test_metadata_proportions_are_like_the_real_data():
    metadata = sample_metadata(20_000, seed=2)
    assert 0.5 <= (metadata["view"] == "PA").mean() <= 0.7
    assert 0.45 <= (metadata["sex"] == "M").mean() <= 0.68
    assert 40 <= metadata["age"].mean() <= 55


# --- labels ----------------------------------------------------------------------------------

def test_label_set_distribution_reproduces_table1_exactly():
    label_sets, probabilities = label_set_distribution()
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities[label_sets.index(())] == pytest.approx(60_361 / 112_120)
    for name, (single, carrying) in TABLE1.items():
        assert probabilities[label_sets.index((name,))] == pytest.approx(single / 112_120)
        share = sum(p for labels, p in zip(label_sets, probabilities, strict=True)
                    if name in labels)
        assert share == pytest.approx(carrying / 112_120, rel=1e-6)


def test_sampled_labels_follow_table1_scaled():
    n_images = 20_000
    metadata = sample_metadata(n_images, seed=4)
    label_sets = metadata["label_findings"]
    # Follow-ups repeat label sets, so counts vary more than binomially: allow 5 sd with a
    # design effect of 3 (variance) over the binomial.
    def check(observed, real_count):
        p = real_count / 112_120
        expected = p * n_images
        tolerance = 5 * np.sqrt(3 * expected * (1 - p)) + 2
        assert abs(observed - expected) <= tolerance, (observed, expected)

    check(sum(len(labels) == 0 for labels in label_sets), 60_361)
    for name, (single, carrying) in TABLE1.items():
        check(sum(labels == (name,) for labels in label_sets), single)
        check(sum(name in labels for labels in label_sets), carrying)


def test_labels_co_occur_like_the_real_data():
    metadata = sample_metadata(20_000, seed=5)
    carrying = {name: metadata["label_findings"].map(lambda labels, n=name: n in labels)
                for name in DISEASES}

    def lift(first, second):
        both = (carrying[first] & carrying[second]).mean()
        return both / (carrying[first].mean() * carrying[second].mean())

    for pair in [("Atelectasis", "Effusion"), ("Edema", "Effusion"), ("Edema", "Pneumonia"),
                 ("Infiltration", "Pneumonia"), ("Consolidation", "Effusion"),
                 ("Consolidation", "Infiltration"), ("Edema", "Infiltration")]:
        assert lift(*pair) > 1.5, pair
    assert lift("Edema", "Emphysema") < lift("Edema", "Effusion")


def test_a_few_percent_of_images_show_other_findings_than_their_labels():
    metadata = sample_metadata(20_000, seed=6)
    differ = [(labels, drawn) for labels, drawn in zip(
        metadata["label_findings"], metadata["drawn_findings"], strict=True) if labels != drawn]
    assert 0.02 <= len(differ) / 20_000 <= 0.04
    for labels, drawn in differ:
        if labels:
            assert len(drawn) == len(labels) - 1 and set(drawn) < set(labels)
        else:
            assert len(drawn) == 1 and drawn[0] in DISEASES


# --- determinism -----------------------------------------------------------------------------

def test_same_seed_gives_identical_bytes_for_any_number_of_workers(tmp_path):
    outputs = []
    for workers in (1, 2):
        small_dataset(tmp_path / f"w{workers}", seed=5, workers=workers)
        outputs.append(all_files(tmp_path / f"w{workers}"))
    assert len(outputs[0]) == 203
    assert outputs[0] == outputs[1]


def test_a_rerun_replaces_the_dataset_identically(tmp_path):
    first = small_dataset(tmp_path, seed=8, n_images=220)
    before = all_files(tmp_path)
    small_dataset(tmp_path, seed=9)
    assert all_files(tmp_path) != before
    assert small_dataset(tmp_path, seed=8, n_images=220)["n_images"] == first["n_images"]
    assert all_files(tmp_path) == before, "no stale image of the 200-image run survives"


def test_a_different_seed_gives_a_different_dataset(tmp_path):
    for seed in (5, 6):
        small_dataset(tmp_path / str(seed), seed=seed)
    csv = [(tmp_path / str(seed) / "Data_Entry_2017_v2020.csv").read_text() for seed in (5, 6)]
    assert csv[0] != csv[1]
    image = [(tmp_path / str(seed) / "images_001" / "images" / "00000001_000.png").read_bytes()
             for seed in (5, 6)]
    assert image[0] != image[1]


def test_an_interrupted_run_leaves_no_csv(tmp_path, monkeypatch):
    small_dataset(tmp_path, seed=1)
    calls = []

    def failing_render(spec, *, seed, size):
        calls.append(spec)
        if len(calls) > 50:
            raise KeyboardInterrupt
        return np.zeros((size, size), np.uint8)

    monkeypatch.setattr(writer, "render_radiograph", failing_render)
    with pytest.raises(KeyboardInterrupt):
        small_dataset(tmp_path, seed=2)
    assert not (tmp_path / "Data_Entry_2017_v2020.csv").exists()
    assert not (tmp_path / "test_list.txt").exists()
    assert not (tmp_path / ".images_001.partial").exists()


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize(("settings", "named"), [
    ({"n_images": 199}, "demo.n_images: 199 is less than the minimum of 200"),
    ({"n_images": 500.5}, "demo.n_images: 500.5 is not of type 'integer'"),
    ({"png_size": 31}, "demo.png_size: 31 is less than the minimum of 32"),
    ({"png_size": 1025}, "demo.png_size: 1025 is greater than the maximum of 1024"),
    ({"seed": -1}, "demo.seed: -1 is less than the minimum of 0"),
    ({"rgba_fraction": 1.0}, "demo.rgba_fraction: 1.0 is greater than or equal to the maximum"),
])
def test_bad_settings_are_named_by_the_config_check(settings, named):
    with pytest.raises(InputError, match=re.escape(named)):
        check_config({"targets": ["Effusion"], "demo": settings},
                     str(SCHEMA))


# --- the Snakemake entry ---------------------------------------------------------------------

class Outputs(list):
    """Like Snakemake's named output list: iterable paths with attribute access."""

    def __init__(self, **named):
        super().__init__(named.values())
        self.__dict__.update(named)


def fake_snakemake(folder, demo_settings, **overrides):
    outputs = {"metadata": str(folder / "Data_Entry_2017_v2020.csv"),
               "images": str(folder / "images_001"),
               "train_val_list": str(folder / "train_val_list.txt"),
               "test_list": str(folder / "test_list.txt"), **overrides}
    return SimpleNamespace(params=SimpleNamespace(demo=demo_settings), threads=2,
                           output=Outputs(**outputs), log=[str(folder / "demo.log")])


def test_main_writes_the_rule_outputs(tmp_path):
    settings = {"n_images": 200, "png_size": 32, "seed": 0, "rgba_fraction": 0.01}
    main(fake_snakemake(tmp_path / "demo", settings))
    for name in ("Data_Entry_2017_v2020.csv", "train_val_list.txt", "test_list.txt"):
        assert (tmp_path / "demo" / name).is_file()
    assert len(list((tmp_path / "demo" / "images_001" / "images").glob("*.png"))) == 200


# --- the images carry the findings -----------------------------------------------------------

def chest_density(findings, severity=0.8, view="PA", size=128, image=0):
    """Density of one patient's chest with `findings` drawn at `severity` on film `image`."""
    rng = np.random.default_rng(image)
    severities = dict.fromkeys(findings, severity)
    anatomy = patient_anatomy(0, 1, "M", 50)
    anatomy = posed(reshaped_by_findings(anatomy, severities, 0, 1), view, rng)
    u, v = body_coordinates(size, anatomy, rng)
    chest = normal_chest(u, v, anatomy, rng, size)
    draw_findings(chest, severities, 0, 1, rng)
    lungs = np.maximum(chest.lungs[0].mask, chest.lungs[1].mask)
    return composed_density(chest), lungs, anatomy


@pytest.mark.parametrize("finding", DISEASES)
def test_every_finding_changes_the_image_visibly(finding):
    normal, lungs, _ = chest_density(())
    sick, _, _ = chest_density((finding,))
    change = sick - normal
    # Visible: a region changes by a tenth of the contrast between lung and soft tissue.
    assert np.abs(change).max() > 0.04
    if finding != "Hernia":  # a hernia holds both air (darker) and fluid (brighter)
        darker = finding in ("Pneumothorax", "Emphysema")
        assert (change[lungs > 0.5].mean() < 0) == darker


@pytest.mark.parametrize("severity", [0.0, 0.5, 1.0])
def test_cardiomegaly_means_a_cardiothoracic_ratio_above_one_half(severity):
    for patient in range(1, 30):
        anatomy = patient_anatomy(0, patient, "F", 60)
        enlarged = reshaped_by_findings(anatomy, {"Cardiomegaly": severity}, 0, patient)
        assert enlarged.heart_half_width / np.mean(enlarged.lung_outer) >= 0.5
        assert anatomy.heart_half_width / np.mean(anatomy.lung_outer) <= 0.54


def test_a_patients_anatomy_and_lesions_persist_across_follow_ups():
    first, later = (patient_anatomy(0, 7, "M", age) for age in (50, 52))
    assert (first.lung_outer, first.diaphragm, first.granuloma) == \
        (later.lung_outer, later.diaphragm, later.granuloma)
    assert patient_anatomy(0, 8, "M", 50).lung_outer != first.lung_outer
    # The nodule is in the same place on two films with different pose and exposure.
    places = []
    for image in (1, 2):
        normal, _, _ = chest_density((), image=image)
        sick, _, _ = chest_density(("Nodule",), image=image)
        places.append(np.unravel_index(np.argmax(sick - normal), normal.shape))
    assert np.abs(np.subtract(*places)).max() <= 0.1 * normal.shape[0]


# --- learnable, but not perfectly ------------------------------------------------------------

def cheap_features(image):
    """Standardized 16x16 pixels plus the brightest and darkest blob response (difference of
    Gaussians) in each 8x8 cell: what a CNN's first layers compute."""
    z = (image.astype(np.float32) - image.mean()) / (image.std() + 1e-6)
    pixels = cv2.resize(z, (16, 16), interpolation=cv2.INTER_AREA).ravel()
    blobs = cv2.GaussianBlur(z, (0, 0), 1.0) - cv2.GaussianBlur(z, (0, 0), 3.0)
    cells = blobs.reshape(8, 8, 8, 8)
    return np.concatenate([pixels, cells.max(axis=(1, 3)).ravel(), cells.min(axis=(1, 3)).ravel()])


def test_frequent_findings_are_learnable_but_not_perfectly():
    """Patient-grouped, out-of-fold AUROC of a linear model for each frequent finding against
    'No Finding', on 1,500 images at 64 px: clearly above chance, clearly below perfect."""
    metadata = sample_metadata(1500, seed=0)
    images = [render_radiograph(spec, seed=0, size=64) for spec in image_specs(metadata)]
    features = np.stack([cheap_features(image) for image in images])
    labels = metadata["label_findings"]
    normal = (labels.map(len) == 0).to_numpy()
    aurocs = {}
    for finding in FREQUENT:
        positive = labels.map(lambda found, f=finding: f in found).to_numpy()
        keep = positive | normal
        x, y = features[keep], positive[keep]
        groups = metadata["patient_id"].to_numpy()[keep]
        scores = np.zeros(len(y))
        for train, test in GroupKFold(5).split(x, y, groups):
            model = make_pipeline(StandardScaler(), LogisticRegression(
                C=0.005, max_iter=500, class_weight="balanced"))
            scores[test] = model.fit(x[train], y[train]).decision_function(x[test])
        aurocs[finding] = roc_auc_score(y, scores)
    assert all(0.65 < auroc < 0.995 for auroc in aurocs.values()), aurocs
