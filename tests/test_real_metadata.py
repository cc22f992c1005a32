"""parse_metadata on NIH's real metadata files: Data_Entry_2017_v2020.csv against the
paper's Table 1, and the original Data_Entry_2017.csv exactly as NIH published it.

Both come from torchxrayvision wheels on PyPI, which redistribute them (1.5.7 the v2020 file,
0.0.20 the 2017 file); `make test` downloads the wheels (without installing them) into
.venv/nih-metadata/.
"""

import gzip
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import PUBLISHED_HEADS
from repository import REPO

from workflow_scripts.parse_metadata import label_counts, parse_metadata

WHEELS = REPO / ".venv" / "nih-metadata"
V2020 = "torchxrayvision/data/Data_Entry_2017_v2020.csv.gz"
ORIGINAL_2017 = "torchxrayvision/Data_Entry_2017.csv.gz"


def extract(member, folder):
    """The CSV `member` of whichever downloaded wheel holds it, written into `folder`."""
    for wheel in sorted(WHEELS.glob("torchxrayvision-*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            if member in archive.namelist():
                path = folder / Path(member).name.removesuffix(".gz")
                path.write_bytes(gzip.decompress(archive.read(member)))
                return path
    pytest.skip(f"{member} not fetched: `make test` downloads it into .venv/nih-metadata")


@pytest.fixture(scope="module")
def real_csv(tmp_path_factory):
    return extract(V2020, tmp_path_factory.mktemp("nih"))


@pytest.fixture(scope="module")
def original_csv(tmp_path_factory):
    return extract(ORIGINAL_2017, tmp_path_factory.mktemp("nih"))


def test_real_v2020_csv_gives_the_papers_table_1_and_counts(real_csv):
    table, summary = parse_metadata(real_csv)
    paper = yaml.safe_load((REPO / "workflow_scripts" / "paper_numbers.yaml").read_text())
    expected = {row["label"]: [row["single_label_images"], row["images"]]
                for row in paper["table1_label_counts"]}
    counts = label_counts(table).set_index("label")
    assert {label: row.tolist() for label, row in counts.iterrows()} == expected
    assert summary["dialect"] == "v2020"
    assert (summary["n_images"], summary["n_patients"], summary["n_label_sets"]) == \
        (112_120, 30_805, 836)


def test_the_2017_file_is_in_the_published_form(original_csv):
    data = original_csv.read_bytes()
    lines = data.split(b"\r\n")
    assert data.startswith(PUBLISHED_HEADS["2017"]), "the fixtures' 2017 form is this file's"
    assert lines[-1] == b"" and b"\n" not in b"".join(lines), "every line ends with CRLF"
    assert lines[0].count(b",") == 11 and lines[0].endswith(b",")
    assert len(lines) - 2 == 112_120
    assert all(line.count(b",") == 10 for line in lines[1:-1]), "rows have 11 fields"


def test_the_2017_file_parses_with_its_own_counts(original_csv, real_csv):
    table, summary = parse_metadata(original_csv)
    assert summary["dialect"] == "2017"
    assert (summary["n_images"], summary["n_patients"], summary["n_label_sets"]) == \
        (112_120, 30_805, 790)
    assert (summary["implausible_ages_set_missing"], summary["ages_in_months"],
            summary["ages_in_days"]) == (16, 26, 1)
    v2020, _ = parse_metadata(real_csv)
    both = table[["image_index", "label_set"]].merge(v2020[["image_index", "label_set"]],
                                                     on="image_index")
    assert len(both) == 112_120
    assert (both["label_set_x"] != both["label_set_y"]).sum() == 181, \
        "the 2017 file labels 181 images differently from v2020"
