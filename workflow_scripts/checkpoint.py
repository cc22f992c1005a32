"""The resumable state of a training run, kept until Snakemake has committed the run.

A run's checkpoint lives under results/checkpoints/, mirroring its folder under
results/runs/, outside the declared outputs (which Snakemake deletes before a rerun). After
every epoch it holds the model with its optimizer state (step counter included), the history
so far, the elapsed time and the state of every random stream of the model, committed
atomically by writing state.json last. So a resumed run continues with the same weights,
learning rate, dropout masks and augmentations as an uninterrupted one; the batch order is
a pure function of (seed, epoch) and needs no saving.

The training job keeps the checkpoint of its last epoch after writing its outputs: only
Snakemake knows whether it then commits them (a SIGINT to Snakemake lets the job finish, but
leaves its outputs marked incomplete, and the rerun deletes them). A rerun that finds a
complete checkpoint only evaluates. The checkpoints of a target's runs are retired by their
own job (rule retire_checkpoints, which reads the runs' outputs as its inputs): Snakemake
starts a job only once its inputs are committed.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.runs import checkpoint_folder
from workflow_scripts.stage import atomic_path, log


def random_streams(model):
    """The state variables of the model's random streams (dropout, augmentation).

    These are the layers' SeedGenerator states: `model.variables` holds them, `model.weights`
    does not, and `model.save` saves only the latter. A loaded model would start every stream
    afresh (and dropout from a new seed).
    """
    weights = {id(weight) for weight in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def restore_random_streams(model, states):
    streams = random_streams(model)
    if len(streams) != len(states):
        raise ValueError(f"the checkpoint holds {len(states)} random streams, the model has "
                         f"{len(streams)}")
    for variable, state in zip(streams, states, strict=True):
        variable.assign(state)


@dataclass
class SavedRun:
    """What a checkpoint holds after its last finished epoch."""

    model_path: Path
    history: list
    seconds: float
    random_streams: list


class Checkpoint:
    def __init__(self, folder, fingerprint):
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    @property
    def state_path(self):
        return self.folder / "state.json"

    def load(self):
        """The SavedRun of the last finished epoch, or None."""
        if not self.state_path.exists():
            return None
        state = json.loads(self.state_path.read_text())
        if state.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint in %s is from other settings or data; starting afresh",
                        self.folder)
            self.clear()
            return None
        return SavedRun(self.folder / state["model"], state["history"], state["seconds"],
                        state["random_streams"])

    def save(self, model, history, seconds):
        self.folder.mkdir(parents=True, exist_ok=True)
        model_name = f"model-epoch{len(history):04d}.keras"
        model.save(self.folder / model_name)
        state = {"fingerprint": self.fingerprint, "model": model_name, "history": history,
                 "seconds": seconds,
                 "random_streams": [variable.numpy().tolist()
                                    for variable in random_streams(model)]}
        with atomic_path(self.state_path) as temporary:
            temporary.write_text(json.dumps(state))
        for old in self.folder.glob("model-epoch*.keras"):
            if old.name != model_name:
                old.unlink()

    def clear(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def retire_checkpoints(run_files):
    """Drop the checkpoints of the runs `run_files` belong to and return their folders: call
    it only from a job that reads them as inputs, whose inputs Snakemake has committed."""
    retired = []
    for run_folder in sorted({Path(path).parent for path in run_files}):
        folder = Path(checkpoint_folder(run_folder))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            retired.append(str(folder))
    log.info("retired the checkpoints of %d committed run(s)", len(retired))
    return retired
