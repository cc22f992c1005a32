"""The paper's published numbers (workflow_scripts/paper_numbers.yaml) beside ours.

Tables 1-4 join them column by column (`beside_paper`), Tables 5-8 row by row
(`with_paper`), keeping the rows only the paper has so that every published number shows.
"""

from functools import cache
from pathlib import Path

import pandas as pd
import yaml

from workflow_scripts.report_runs import ordered

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")


@cache
def paper_numbers():
    return yaml.safe_load(PAPER_NUMBERS.read_text())


def paper_frame(section, keys, numbers):
    """A section of paper_numbers.yaml as a DataFrame: its `keys`, and each of its `numbers`
    as column `paper_<name>`. The paper's accuracies are training accuracies in percent:
    they become `paper_train_accuracy`, a fraction."""
    frame = pd.DataFrame(paper_numbers()[section])
    if "accuracy" in numbers:
        frame["accuracy"] = frame["accuracy"] / 100
    return frame[[*keys, *numbers]].rename(columns={
        name: "paper_train_accuracy" if name == "accuracy" else f"paper_{name}"
        for name in numbers})


def beside_paper(table, section, key, compared):
    """Tables 1-4: `table` with the paper's numbers of `section` joined on column `key`, each
    in a `paper_<name>` column right after ours; `compared` maps our column to the paper's
    name of the number it compares with."""
    paper = paper_frame(section, [key], list(compared.values()))
    table = table.merge(paper, on=key, how="left", sort=False)
    columns = [column for column in table.columns if column not in paper.columns[1:]]
    for ours, name in compared.items():
        columns.insert(columns.index(ours) + 1, f"paper_{name}")
    return table[columns]


def paper_rows(section, target, keys, numbers):
    """Tables 5-8: the paper's rows of `target` in `section` (see `paper_frame`)."""
    paper = paper_frame(section, keys, numbers)
    return paper[paper["target"] == target]


def with_paper(table, paper, keys, columns, grid):
    """Tables 5-8: `table`, one target's rows, with the paper's rows of that target joined on
    `keys`, keeping those only the paper has (none when `table` has no rows) so that every
    published number shows; as `columns` in the configured order."""
    paper = paper[paper["target"].isin(table["target"].unique())]
    table = table.merge(paper, on=keys, how="outer", sort=False)
    return ordered(table.reindex(columns=columns), grid)
