"""What every rule entry shares: logging to the rule's log file and clean failure on bad input.

A stage raises `InputError` for anything the user can fix (a malformed CSV row, a missing
image, an unknown target). The entry prints that message alone, without a traceback, to the
log and to stderr, so Snakemake's failed-job report shows the cause and the fix; any other
exception is a bug and keeps its traceback.
"""

import logging
import sys
from collections.abc import Callable

log = logging.getLogger("workflow")


class InputError(ValueError):
    """Bad input the user can fix; the message names the file, row or key and the fix."""


def setup_logging(log_path=None, level=logging.INFO):
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=handlers,
        force=True,
    )


def run(snakemake, stage: Callable[..., object]):
    """Run `stage(snakemake)` with logging to the rule's log; exit 1 on InputError."""
    setup_logging(snakemake.log[0] if len(snakemake.log) else None)
    try:
        stage(snakemake)
    except InputError as error:
        log.error("%s", error)
        sys.exit(1)
