"""The repository under test: where it is, its config schema, and its workflow run in a
scratch copy, so that tests never touch the checkout's results/."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"


def schema():
    return yaml.safe_load(SCHEMA.read_text())


def with_schema_defaults(config):
    """`config` validated, with the schema's defaults filled in (in place; returned)."""
    validate(config, str(SCHEMA))
    return config


def schema_config(**changes):
    """The full config the workflow would see for Effusion: schema defaults plus `changes`
    per section."""
    return with_schema_defaults(
        {"targets": ["Effusion"], **{key: dict(value) for key, value in changes.items()}})
WORKFLOW_PARTS = ("Snakefile", "rules", "workflow_scripts", "config", "envs", "profiles",
                  "report")


def copy_workflow(destination):
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, destination / part,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination / part)
    return destination


def snakemake_command(*args):
    return [sys.executable, "-m", "snakemake", *map(str, args)]


def run_snakemake(workdir, *args, timeout=1200, check=True):
    """Run snakemake in `workdir`; returns the CompletedProcess (stdout and stderr merged)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The venv's bin first: SLURM jobs inherit PATH and start `python -m snakemake` from it.
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    result = subprocess.run(snakemake_command(*args), cwd=workdir, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed:\n{result.stdout}")
    return result
