"""What every rule entry shares: logging to the rule's log file and clean failure on bad input.

A stage raises `InputError` for anything the user can fix (a malformed CSV row, a missing
image, an unknown target). The entry prints that message alone, without a traceback, to the
log and to stderr, so Snakemake's failed-job report shows the cause and the fix; any other
exception is a bug and keeps its traceback.

A rule's log is appended to, never overwritten: a retried or rerun job keeps the log of the
attempt that failed or was interrupted, and each attempt starts with a header line (its
number, the host, and the SLURM job id where there is one).
"""

import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("workflow")
ATTEMPT_HEADER = "===== attempt"


class InputError(ValueError):
    """Bad input the user can fix; the message names the file, row or key and the fix."""


def setup_logging(log_path=None, level=logging.INFO):
    """Log to stderr and, appending with a header line per attempt, to `log_path`."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        attempt = earlier_attempts(log_path) + 1
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=handlers,
        force=True,
    )
    if log_path:
        slurm_job = os.environ.get("SLURM_JOB_ID")
        log.info("%s %d on %s%s =====", ATTEMPT_HEADER, attempt, socket.gethostname(),
                 f", SLURM job {slurm_job}" if slurm_job else "")


def earlier_attempts(log_path):
    path = Path(log_path)
    if not path.exists():
        return 0
    with path.open(errors="replace") as lines:
        return sum(ATTEMPT_HEADER in line for line in lines)


def run(snakemake, stage: Callable[..., object]):
    """Run `stage(snakemake)` with logging to the rule's log; exit 1 on InputError."""
    setup_logging(snakemake.log[0] if len(snakemake.log) else None)
    try:
        stage(snakemake)
    except InputError as error:
        log.error("%s", error)
        sys.exit(1)
