import json

import numpy as np
import pandas as pd
import pytest
from conftest import DIALECTS, HEADER, PUBLISHED_HEADS, data_entry_bytes, write_data_entry

from workflow_scripts.labels import DISEASES, LABELS
from workflow_scripts.parse_metadata import label_counts, parse_metadata, write_outputs
from workflow_scripts.stage import InputError

ROWS = [
    ("No Finding", 1, 0, 57),
    ("Cardiomegaly|Effusion", 1, 1, 58),
    ("Effusion|Cardiomegaly", 1, 2, 58),
    ("Effusion", 2, 0, 31),
    ("Nodule|Mass|Effusion", 2, 1, 31),
    ("No Finding", 3, 0, 8),
    ("Pleural_Thickening", 4, 0, 70),
]


@pytest.mark.parametrize("dialect", ["v2020", "2017"])
def test_fixtures_reproduce_the_published_files_byte_for_byte(dialect):
    age = 57 if dialect == "v2020" else 58
    first_row = [("Cardiomegaly", 1, 0, age, (2682, 2749))]
    assert data_entry_bytes(first_row, dialect) == PUBLISHED_HEADS[dialect]


def test_the_padded_2017_fixture_ends_every_line_with_a_comma():
    lines = data_entry_bytes(ROWS, "2017 padded").split(b"\n")
    assert lines[-1] == b"" and all(line.endswith(b",") for line in lines[:-1])
    assert all(line.count(b",") == 11 for line in lines[:-1])


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_every_published_form_gives_the_same_typed_table(tmp_path, dialect):
    table, summary = parse_metadata(write_data_entry(tmp_path / "d.csv", ROWS, dialect))
    assert summary["dialect"] == dialect
    assert list(table["image_index"]) == [f"{p:08d}_{f:03d}.png" for _, p, f, _ in ROWS]
    assert table["patient_id"].tolist() == [1, 1, 1, 2, 2, 3, 4]
    assert table["follow_up"].tolist() == [0, 1, 2, 0, 1, 0, 0]
    assert table["age_years"].tolist() == [57, 58, 58, 31, 31, 8, 70]
    assert table["patient_id"].dtype == np.int32 and table["age_years"].dtype == np.float32
    assert set(LABELS) <= set(table.columns) and table["Effusion"].dtype == bool
    assert table["n_labels"].tolist() == [0, 2, 2, 1, 3, 0, 1]
    assert table.loc[4, "label_set"] == "Effusion|Mass|Nodule"
    assert table.loc[1, "label_set"] == table.loc[2, "label_set"] == "Cardiomegaly|Effusion"
    assert table.loc[6, "Pleural_Thickening"] and not table.loc[6, "No Finding"]
    assert summary["n_images"] == 7 and summary["n_patients"] == 4
    assert summary["n_label_sets"] == 6, "label sets as written, the paper's count"
    assert summary["n_label_combinations"] == 5


def test_2017_ages_in_months_days_and_impossible_values(tmp_path):
    rows = [("No Finding", 1, 0, "058Y"), ("No Finding", 2, 0, "003M"),
            ("No Finding", 3, 0, "010D"), ("Effusion", 4, 0, "414Y")]
    table, summary = parse_metadata(write_data_entry(tmp_path / "d.csv", rows, "2017"))
    ages = table["age_years"].tolist()
    assert ages[0] == 58 and ages[1] == pytest.approx(0.25)
    assert ages[2] == pytest.approx(10 / 365.25)
    assert np.isnan(ages[3]), "an impossible age is kept as missing, not dropped"
    assert len(table) == 4
    assert summary["implausible_ages_set_missing"] == 1
    assert summary["ages_in_months"] == 1 and summary["ages_in_days"] == 1


def test_label_counts_are_table_1(tmp_path):
    table, _ = parse_metadata(write_data_entry(tmp_path / "d.csv", ROWS))
    counts = label_counts(table).set_index("label")
    assert list(counts.columns) == ["single_label_images", "images"]
    assert list(counts.index) == list(LABELS)
    assert counts.loc["No Finding"].tolist() == [2, 2]
    assert counts.loc["Effusion"].tolist() == [1, 4]
    assert counts.loc["Cardiomegaly"].tolist() == [0, 2]
    assert counts.loc["Pleural_Thickening"].tolist() == [1, 1]
    assert counts.loc[list(DISEASES), "images"].sum() == table["n_labels"].sum()


def test_outputs_follow_the_contract(tmp_path):
    table, summary = parse_metadata(write_data_entry(tmp_path / "d.csv", ROWS))
    out = tmp_path / "labels"
    write_outputs(table, summary, out / "labels.parquet", out / "label_counts.csv",
                  out / "summary.json")
    assert sorted(p.name for p in out.iterdir()) == ["label_counts.csv", "labels.parquet",
                                                     "summary.json"]
    assert pd.read_csv(out / "label_counts.csv").columns.tolist() == [
        "label", "single_label_images", "images"]
    loaded = json.loads((out / "summary.json").read_text())
    assert {"n_images", "n_patients", "n_label_sets"} <= loaded.keys()
    back = pd.read_parquet(out / "labels.parquet")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


def write_text(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_bytes(text.encode())
    return path


ROW_2017 = "00000001_000.png,Mass,000,00000001,057Y,M,PA,2500,2048,0.143,0.143"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", r"bad\.csv: the file is empty"),
        (HEADER + "\n", r"header but no rows"),
        (HEADER.replace("Patient ID,", "") + "\n", r"lacks required column\(s\) 'Patient ID'"),
        (HEADER + "\n00000001_000.png,Effusion,0,1,57,M,PA,2500,2048,0.143\n",
         r"1 malformed row\(s\), e\.g\. line 2: expected 11 fields, found 10"),
        (HEADER + "\n00000001_000.png,Efusion,0,1,57,M,PA,2500,2048,0.143,0.143\n",
         r"unknown label 'Efusion' in 'Finding Labels' on line\(s\) \[2\]"),
        (HEADER + "\n00000001_000.png,No Finding|Mass,0,1,57,M,PA,2500,2048,0.143,0.143\n",
         r"'No Finding' combined with other labels"),
        (HEADER + "\n00000001_000.png,Mass,0,1,57,M,PA,2500,2048,0.143,0.143"
         "\n00000001_000.png,Mass,1,1,57,M,PA,2500,2048,0.143,0.143\n",
         r"appear more than once, e\.g\. '00000001_000\.png' on line\(s\) \[2, 3\]"),
        (HEADER + "\n00000001_000.png,Mass,0,1,fifty,M,PA,2500,2048,0.143,0.143\n",
         r"unreadable ages on line\(s\) \[2\], e\.g\. 'fifty'"),
        (HEADER + "\n00000001_000.png,Mass,zero,1,50,M,PA,2500,2048,0.143,0.143\n",
         r"column 'follow_up' holds non-numeric values on line\(s\) \[2\]"),
        (HEADER + "\n00000001_000.png,Mass,0,1,50,X,PA,2500,2048,0.143,0.143\n",
         r"column 'sex' must be one of M, F"),
        (HEADER + ",\r\n" + ROW_2017 + "\r\n" + ROW_2017.replace("_000", "_001")
         + ",\r\n",
         r"1 malformed row\(s\), e\.g\. line 3: expected 11 fields, found 12.*2017 form"),
        (HEADER + ",\n" + ROW_2017 + ",\n" + ROW_2017.replace("_000", "_001") + "\n",
         r"line 3: expected 12 fields, found 11.*2017 padded form"),
        (HEADER + ",\r\n" + ROW_2017.replace(",0.143,0.143", ",0.143") + "\r\n",
         r"line 2: expected 11 fields, found 10"),
        (HEADER + ",\n" + ROW_2017 + ",\n" + ROW_2017.replace("_000", "_001") + ",x\n",
         r"line\(s\) \[3\] hold a value in the 12th field"),
    ],
    ids=["empty", "header-only", "missing-column", "malformed-row", "unknown-label",
         "no-finding-combined", "duplicate-image", "bad-age", "bad-number", "bad-sex",
         "2017-row-padded", "padded-row-not", "2017-row-short", "padded-field-filled"],
)
def test_bad_input_names_the_file_and_the_row(tmp_path, content, expected):
    with pytest.raises(InputError, match=expected):
        parse_metadata(write_text(tmp_path, content))
