"""Stage `retire_checkpoints`: drop the checkpoints of a target's finished runs.

A training job keeps its run's checkpoint after writing the outputs (see `checkpoint`), so
that a rerun of a job whose outputs Snakemake never committed only evaluates. This job reads
those outputs as its inputs, so Snakemake starts it only once they are committed; from then
on the checkpoint (the model with its optimizer state) is only disk space. Its output lists
the checkpoint folders it deleted.
"""

from pathlib import Path

from workflow_scripts.checkpoint import retire_checkpoints
from workflow_scripts.stage import atomic_path, run


def main(snakemake):
    retired = retire_checkpoints(snakemake.input.runs)
    with atomic_path(snakemake.output.retired) as temporary:
        Path(temporary).write_text("".join(f"{folder}\n" for folder in retired))


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
