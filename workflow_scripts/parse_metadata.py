"""Stage `parse_metadata`: the NIH Data_Entry CSV to typed label tables.

Reads every published form of the metadata file:

- `Data_Entry_2017_v2020.csv`: 11 fields per row (the header's brackets hold commas, so
  `OriginalImage[Width,Height]` is two fields), plain integer ids and ages.
- `Data_Entry_2017.csv` as NIH published it: the same 11 fields per row with zero-padded ids
  and ages as strings in years, months or days (`058Y`, `003M`, `010D`), but a header that
  ends with a comma (12 fields) and CRLF line ends.
- the same file as some copies redistribute it, every row padded with the empty 12th field.

Writes `labels.parquet` (one typed row per image, one boolean column per label),
`label_counts.csv` (the paper's Table 1: images carrying only that label, and images carrying
it in any combination) and `summary.json`. Everything is vectorized over the ~112k rows; the
only Python loop runs over the few hundred distinct label sets.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from workflow_scripts.labels import DISEASES, LABELS, NO_FINDING
from workflow_scripts.stage import InputError, atomic_path, log, run

# Header fields as a CSV reader splits them, and the column each becomes.
FIELDS = {
    "Image Index": "image_index",
    "Finding Labels": "finding_labels",
    "Follow-up #": "follow_up",
    "Patient ID": "patient_id",
    "Patient Age": "age",
    "Patient Gender": "sex",
    "View Position": "view",
    "OriginalImage[Width": "width",
    "Height]": "height",
    "OriginalImagePixelSpacing[x": "pixel_spacing_x",
    "y]": "pixel_spacing_y",
}
SEXES = ("M", "F")
VIEWS = ("PA", "AP")
# No verified human has lived past 122; the 2017 file holds a few ages like 414Y.
MAX_PLAUSIBLE_AGE_YEARS = 120
AGE_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1 / 12, "D": 1 / 365.25}
SHOWN = 5  # offending rows or names quoted in an error message


def read_header(path):
    """Return the header fields and the dialect of a Data_Entry CSV: 'v2020', '2017' (only
    the header ends with a comma) or '2017 padded' (every row does)."""
    with open(path, encoding="utf-8-sig") as handle:
        first = handle.readline().rstrip("\r\n")
        second = handle.readline().rstrip("\r\n")
    if not first:
        raise InputError(
            f"{path}: the file is empty. Point data.metadata at the NIH Data_Entry CSV."
        )
    fields = first.split(",")
    trailing_comma = fields[-1] == ""
    if trailing_comma:
        fields = fields[:-1]
    missing = [name for name in FIELDS if name not in fields]
    if missing:
        raise InputError(
            f"{path}: header lacks required column(s) {', '.join(map(repr, missing))}. "
            f"Expected the NIH header: {','.join(FIELDS)}."
        )
    if not trailing_comma:
        return fields, "v2020"
    # The first row tells which 2017 form this is; a row unlike it is malformed.
    return fields, ("2017 padded" if second.endswith(",") else "2017")


def read_rows(path):
    """Read the CSV as strings, one column per header field; malformed rows are an error."""
    fields, dialect = read_header(path)
    padded = dialect == "2017 padded"
    names = [f"field_{i}" for i in range(len(fields))] + (["trailing"] if padded else [])
    bad_rows = []

    def reject(row):
        where = f"line {row.number}" if row.number is not None else "a row"
        bad_rows.append(f"{where}: expected {row.expected_columns} fields, "
                        f"found {row.actual_columns}: {row.text[:80]!r}")
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            # Single-threaded parsing keeps physical row numbers for the error message.
            read_options=pacsv.ReadOptions(skip_rows=1, column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=reject),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise InputError(f"{path}: not a readable CSV ({error}).") from error
    if bad_rows:
        raise InputError(
            f"{path}: {len(bad_rows)} malformed row(s), e.g. " + "; ".join(bad_rows[:SHOWN])
            + f". Read as the {dialect} form, in which every row has {len(names)} fields "
            "(the first data row decides whether rows end with an empty 12th field); "
            "re-download the file or fix those lines."
        )
    if table.num_rows == 0:
        raise InputError(f"{path}: the CSV has a header but no rows.")
    frame = table.to_pandas()
    renamed = {f"field_{i}": FIELDS[name] for i, name in enumerate(fields) if name in FIELDS}
    frame = frame.rename(columns=renamed)[list(FIELDS.values())]
    if padded:
        filled = table.column("trailing").to_pandas() != ""
        if filled.any():
            raise InputError(f"{path}: line(s) {line_numbers(filled)} hold a value in the 12th "
                             "field, after the trailing comma; it must be empty.")
    return frame, dialect


def line_numbers(mask):
    """CSV line numbers (the header is line 1) of the rows selected by a boolean mask."""
    return (np.flatnonzero(np.asarray(mask)) + 2)[:SHOWN].tolist()


def to_numbers(frame, column, path, integer):
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    bad = values.isna() | (integer & (values != values.round()))
    if bad.any():
        raise InputError(
            f"{path}: column {column!r} holds non-numeric values on line(s) "
            f"{line_numbers(bad)}, e.g. {frame.loc[bad, column].iloc[0]!r}. Fix those rows."
        )
    return values.astype("int64") if integer else values.astype("float32")


def parse_ages(ages, path):
    """Ages in years: integers (v2020) or strings like 058Y/003M/010D (2017); implausible -> NaN."""
    parts = ages.str.strip().str.upper().str.extract(r"^(\d+)([YMD]?)$")
    unparsed = parts[0].isna()
    if unparsed.any():
        raise InputError(
            f"{path}: column 'Patient Age' has unreadable ages on line(s) "
            f"{line_numbers(unparsed)}, e.g. {ages[unparsed].iloc[0]!r}. "
            "Ages are integers in years or strings like 058Y, 003M, 010D."
        )
    years = parts[0].astype("float64") * parts[1].map(AGE_UNIT_YEARS)
    implausible = years > MAX_PLAUSIBLE_AGE_YEARS
    return years.mask(implausible).astype("float32"), int(implausible.sum()), parts[1]


def label_matrix(finding_labels, path):
    """One boolean column per label, computed once per distinct label set and then gathered."""
    codes, label_sets = pd.factorize(finding_labels.str.strip())
    matrix = np.zeros((len(label_sets), len(LABELS)), dtype=bool)
    canonical = []
    for row, label_set in enumerate(label_sets):
        parts = [part.strip() for part in label_set.split("|")]
        unknown = [part for part in parts if part not in LABELS]
        if unknown:
            first = line_numbers(codes == row)
            raise InputError(
                f"{path}: unknown label {unknown[0]!r} in 'Finding Labels' on line(s) {first}. "
                f"Labels are joined with '|' and spelled as: {', '.join(LABELS)}."
            )
        if NO_FINDING in parts and len(parts) > 1:
            raise InputError(
                f"{path}: {NO_FINDING!r} combined with other labels ({label_set!r}) on line(s) "
                f"{line_numbers(codes == row)}; it must stand alone."
            )
        matrix[row, [LABELS.index(part) for part in parts]] = True
        canonical.append("|".join(sorted(set(parts))))
    table = pd.DataFrame(matrix[codes], columns=list(LABELS), index=finding_labels.index)
    return table, pd.Series(np.asarray(canonical, dtype=object)[codes], index=finding_labels.index)


def parse_metadata(path):
    """Parse a Data_Entry CSV into (labels table, summary dict)."""
    path = Path(path)
    frame, dialect = read_rows(path)

    names = frame["image_index"].str.strip()
    if (names == "").any():
        raise InputError(f"{path}: empty 'Image Index' on line(s) {line_numbers(names == '')}.")
    duplicated = names.duplicated(keep=False)
    if duplicated.any():
        example = names[duplicated].iloc[0]
        raise InputError(
            f"{path}: {int(names[duplicated].nunique())} image name(s) appear more than once, "
            f"e.g. {example!r} on line(s) {line_numbers(names == example)}. "
            "Each image must have exactly one row; remove the duplicates."
        )
    for column, allowed in (("sex", SEXES), ("view", VIEWS)):
        values = frame[column].str.strip()
        bad = ~values.isin(allowed)
        if bad.any():
            raise InputError(
                f"{path}: column {column!r} must be one of {', '.join(allowed)}; line(s) "
                f"{line_numbers(bad)} hold {values[bad].iloc[0]!r}."
            )

    age_years, implausible_ages, age_units = parse_ages(frame["age"], path)
    labels, label_set = label_matrix(frame["finding_labels"], path)
    table = pd.DataFrame({
        "image_index": names.astype("string"),
        "patient_id": to_numbers(frame, "patient_id", path, integer=True).astype("int32"),
        "follow_up": to_numbers(frame, "follow_up", path, integer=True).astype("int32"),
        "age_years": age_years,
        "sex": pd.Categorical(frame["sex"].str.strip(), categories=SEXES),
        "view": pd.Categorical(frame["view"].str.strip(), categories=VIEWS),
        "width": to_numbers(frame, "width", path, integer=True).astype("int32"),
        "height": to_numbers(frame, "height", path, integer=True).astype("int32"),
        "pixel_spacing_x": to_numbers(frame, "pixel_spacing_x", path, integer=False),
        "pixel_spacing_y": to_numbers(frame, "pixel_spacing_y", path, integer=False),
    })
    table = pd.concat([table, labels], axis=1)
    table["n_labels"] = labels[list(DISEASES)].sum(axis=1).astype("int8")
    table["label_set"] = label_set.astype("string")

    summary = {
        "source": str(path),
        "dialect": dialect,
        "n_images": len(table),
        "n_patients": int(table["patient_id"].nunique()),
        # As written in the CSV: the paper's count (836 in v2020). A few rows list the same
        # labels in another order, so the order-free combinations are fewer (801).
        "n_label_sets": int(frame["finding_labels"].str.strip().nunique()),
        "n_label_combinations": int(table["label_set"].nunique()),
        "n_no_finding": int(table[NO_FINDING].sum()),
        "n_multi_label": int((table["n_labels"] > 1).sum()),
        "implausible_ages_set_missing": implausible_ages,
        "ages_in_months": int((age_units == "M").sum()),
        "ages_in_days": int((age_units == "D").sum()),
    }
    return table, summary


def label_counts(table):
    """The paper's Table 1: per label, images with only that label and images carrying it."""
    single = table["n_labels"] <= 1
    return pd.DataFrame({
        "label": list(LABELS),
        "single_label_images": [int((table[label] & single).sum()) for label in LABELS],
        "images": [int(table[label].sum()) for label in LABELS],
    })


def write_outputs(table, summary, labels_path, counts_path, summary_path):
    """Write the three outputs through temporary names so a failure leaves none half-written."""
    with (atomic_path(labels_path) as labels, atomic_path(counts_path) as counts,
          atomic_path(summary_path) as summary_file):
        table.to_parquet(labels, index=False)
        label_counts(table).to_csv(counts, index=False)
        summary_file.write_text(json.dumps(summary, indent=2) + "\n")


def main(snakemake):
    table, summary = parse_metadata(snakemake.input.metadata)
    write_outputs(table, summary, snakemake.output.labels, snakemake.output.counts,
                  snakemake.output.summary)
    log.info("parsed %s (%s dialect): %d images, %d patients, %d label sets, "
             "%d implausible ages set missing", summary["source"], summary["dialect"],
             summary["n_images"], summary["n_patients"], summary["n_label_sets"],
             summary["implausible_ages_set_missing"])


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
