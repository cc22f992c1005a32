"""The workflow's configuration: checked against config/schema.yaml, and split into what a
training job computes and what only shapes the job.

A config that does not match the schema stops the workflow with one line per problem, each
naming the key path (`train.epoch`) and pointing to the schema, rather than the validator's
dump of the whole schema. Snakemake hands values inside a nested `--config` over as text
(`--config 'train={runtime: 20}'` gives the string '20'), so where the schema wants a number,
a boolean or null and the text reads as one, it is converted in place first.

Of the train settings, `JOB_SETTINGS` size the job (threads, GPUs, memory, wall time) or say
which files it keeps (save_model); they never change what it computes. They are no rule
params, since Snakemake reruns a finished job whose params changed, and no part of a
checkpoint's fingerprint, so that a job retried with more time or memory resumes.
"""

import difflib
import math
from collections.abc import Sequence
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from workflow_scripts.stage import InputError

SCHEMA = "config/schema.yaml"
JOB_SETTINGS = ("threads", "gpus", "mem_mb", "runtime", "save_model")
NOT_PARSED = object()


def computation_settings(train_settings):
    """The train settings that decide what a run computes (everything but JOB_SETTINGS)."""
    return {key: value for key, value in train_settings.items() if key not in JOB_SETTINGS}


def check_config(config, schema_path=SCHEMA):
    """Convert text that reads as the wanted type, then raise InputError for what is left."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = Draft202012Validator(schema)
    while True:
        errors = list(validator.iter_errors(config))
        if not any([convert_text(config, error) for error in errors]):
            break
    if errors:
        raise InputError("\n".join(sorted({line for error in errors
                                           for line in describe(error)})))


def convert_text(config, error):
    """Replace a string the schema wants as another type by its value; True if it did."""
    if error.validator != "type" or not isinstance(error.instance, str):
        return False
    wanted = error.validator_value
    for kind in [wanted] if isinstance(wanted, str) else wanted:
        value = parse_text(error.instance.strip(), kind)
        if value is not NOT_PARSED:
            *parents, key = error.absolute_path
            container = config
            for parent in parents:
                container = container[parent]
            container[key] = value
            return True
    return False


def parse_text(text, kind):
    """`text` as a JSON-schema `kind` (integer, number, boolean, null), or NOT_PARSED."""
    if kind in ("integer", "number"):
        for parse in (int, float) if kind == "number" else (int,):
            try:
                value = parse(text)
            except ValueError:
                continue
            if math.isfinite(value):
                return value
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind == "null" and text.lower() in ("null", "none", "~"):
        return None
    return NOT_PARSED


def describe(error):
    """One line per problem: the key path, what is wrong, where the keys are declared."""
    path = key_path(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = list(error.schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(known)):
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {key_path([*error.absolute_path, close[0]])}?)" if close \
                else ""
            yield (f"{key_path([*error.absolute_path, key])}: unknown key{hint}; every key is "
                   f"declared in {SCHEMA}")
        return
    if error.validator == "enum" and isinstance(error.instance, str):
        allowed = [str(value) for value in error.validator_value]
        close = difflib.get_close_matches(error.instance, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        yield (f"{path or 'config'}: {error.instance!r} is not one of {', '.join(allowed)}"
               f"{hint}; see {SCHEMA}")
        return
    yield f"{path or 'config'}: {error.message} (see {SCHEMA})"


def key_path(parts: Sequence):
    """['train', 'epochs'] -> 'train.epochs'; list positions as [i]."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text
