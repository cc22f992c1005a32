"""What every rule entry shares: logging to the rule's log file and clean failure on bad input.

A stage raises `InputError` for anything the user can fix (a malformed CSV row, a missing
image, an unknown target). The entry prints that message alone, without a traceback, to the
log and to stderr, so Snakemake's failed-job report shows the cause and the fix; any other
exception is a bug and keeps its traceback.

A rule's log keeps every attempt of its job, each starting with a header line (its number,
the host, and the SLURM job id where there is one), so that a retried or rerun job keeps the
log of the attempt that failed or was interrupted. Snakemake deletes a job's log before it
runs the job, so every line also goes to a hidden sibling file that Snakemake does not know
(`.<log name>.attempts`), from which each attempt first restores the earlier ones.
"""

import logging
import os
import socket
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("workflow")
ATTEMPT_HEADER = "===== attempt"


class InputError(ValueError):
    """Bad input the user can fix; the message names the file, row or key and the fix."""


def setup_logging(log_path=None):
    """Log to stderr and to `log_path`, after the earlier attempts and a header line."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        log_path = Path(log_path)
        archive = log_path.with_name(f".{log_path.name}.attempts")
        earlier = next((path.read_text(errors="replace") for path in (archive, log_path)
                        if path.exists()), "")
        for path in (log_path, archive):
            path.write_text(earlier)
            handlers.append(logging.FileHandler(path, mode="a"))
        attempt = earlier.count(ATTEMPT_HEADER) + 1
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=handlers,
        force=True,
    )
    if log_path:
        slurm_job = os.environ.get("SLURM_JOB_ID")
        log.info("%s %d on %s%s =====", ATTEMPT_HEADER, attempt, socket.gethostname(),
                 f", SLURM job {slurm_job}" if slurm_job else "")


def run(snakemake, stage: Callable[..., object]):
    """Run `stage(snakemake)` with logging to the rule's log; exit 1 on InputError."""
    setup_logging(snakemake.log[0] if len(snakemake.log) else None)
    try:
        stage(snakemake)
    except InputError as error:
        log.error("%s", error)
        sys.exit(1)


@contextmanager
def atomic_path(path):
    """A temporary path beside `path` to write to; renamed to `path` when the block ends
    without an exception, removed otherwise. Nothing half-written ever carries the real name.
    The temporary name keeps the suffix (`.x.tmp.keras`): some writers insist on it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)

