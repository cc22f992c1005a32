"""Shared test helpers: write Data_Entry CSVs in both NIH dialects."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)


def data_entry_row(image, labels, follow_up, patient, age, sex="M", view="PA", dialect="v2020"):
    """One CSV line; the 2017 dialect zero-pads ids, writes ages as strings, ends with a comma."""
    if dialect == "2017":
        age_text = age if isinstance(age, str) else f"{age:03d}Y"
        return (f"{image},{labels},{follow_up:03d},{patient:08d},{age_text},{sex},{view},"
                f"2500,2048,0.143,0.143,")
    return f"{image},{labels},{follow_up},{patient},{age},{sex},{view},2500,2048,0.143,0.143"


def write_data_entry(path, rows, dialect="v2020"):
    """rows: (labels, patient, follow_up, age) tuples; returns the path."""
    lines = [HEADER + ("," if dialect == "2017" else "")]
    for labels, patient, follow_up, age in rows:
        image = f"{patient:08d}_{follow_up:03d}.png"
        lines.append(data_entry_row(image, labels, follow_up, patient, age, dialect=dialect))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


@pytest.fixture
def repo():
    return REPO
