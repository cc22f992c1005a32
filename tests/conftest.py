"""Shared test helpers: write Data_Entry CSVs byte for byte in each published form."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from repository import REPO  # noqa: E402 - importable once tests/ is on the path

HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
# Each form of the metadata file as published (shared/DESIGN.md, "The real data"):
# whether the header and every row end with a comma, and the line end.
DIALECTS = {
    "v2020": {"header_comma": False, "row_comma": False, "newline": "\n"},
    "2017": {"header_comma": True, "row_comma": False, "newline": "\r\n"},
    "2017 padded": {"header_comma": True, "row_comma": True, "newline": "\n"},
}

# The first two lines of NIH's 2017 file and of the v2020 file, verbatim (their first row's
# pixel spacing, 0.14300000000000002 in v2020, shortened here: no parser sees the difference).
PUBLISHED_HEADS = {
    "v2020": HEADER.encode() + b"\n00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,"
             b"0.143,0.143\n",
    "2017": HEADER.encode() + b",\r\n00000001_000.png,Cardiomegaly,000,00000001,058Y,M,PA,"
            b"2682,2749,0.143,0.143\r\n",
}


def data_entry_row(image, labels, follow_up, patient, age, sex="M", view="PA", dialect="v2020",
                   size=(2500, 2048), spacing="0.143"):
    """One CSV line without its line end; the 2017 forms zero-pad ids and write ages as
    strings (`058Y`), and the padded one ends every row with a comma."""
    width, height = size
    tail = f"{sex},{view},{width},{height},{spacing},{spacing}"
    if dialect == "v2020":
        return f"{image},{labels},{follow_up},{patient},{age},{tail}"
    age_text = age if isinstance(age, str) else f"{age:03d}Y"
    row = f"{image},{labels},{follow_up:03d},{patient:08d},{age_text},{tail}"
    return row + ("," if DIALECTS[dialect]["row_comma"] else "")


def data_entry_bytes(rows, dialect="v2020"):
    """The file's bytes. rows: (labels, patient, follow_up, age) tuples, optionally followed
    by a (width, height) size."""
    form = DIALECTS[dialect]
    lines = [HEADER + ("," if form["header_comma"] else "")]
    for labels, patient, follow_up, age, *size in rows:
        image = f"{patient:08d}_{follow_up:03d}.png"
        lines.append(data_entry_row(image, labels, follow_up, patient, age, dialect=dialect,
                                    **({"size": size[0]} if size else {})))
    return "".join(line + form["newline"] for line in lines).encode()


def write_data_entry(path, rows, dialect="v2020"):
    """Write `data_entry_bytes(rows, dialect)` to `path`; returns the path."""
    Path(path).write_bytes(data_entry_bytes(rows, dialect))
    return Path(path)


@pytest.fixture
def repo():
    return REPO
