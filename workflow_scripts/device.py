"""Device settings shared by the LR-finder and training jobs.

Mixed precision (bfloat16) and XLA pay off on a GPU and cost time on a CPU, so `auto` turns
them on exactly when a GPU is visible. `gpus: N` above one trains data-parallel with
MirroredStrategy. Thread counts must be set before TensorFlow runs its first op, so
`configure` is called before anything else touches TensorFlow.
"""

from dataclasses import dataclass

import keras
import tensorflow as tf

from workflow_scripts.stage import log


@dataclass
class Device:
    gpus: int  # GPUs in use; 0 = CPU
    mixed_precision: bool
    xla: bool
    strategy: tf.distribute.Strategy

    @property
    def description(self):
        where = f"{self.gpus} GPU(s)" if self.gpus else "CPU"
        return (f"{where}, mixed precision {'on' if self.mixed_precision else 'off'}, "
                f"XLA {'on' if self.xla else 'off'}")


def resolve(mode, has_gpu):
    return has_gpu if mode == "auto" else mode == "on"


def configure(settings, threads, gpus, seed):
    """Apply train settings (mixed_precision, xla, deterministic) for a job of `threads` and
    `gpus` (train.gpus), and return the Device."""
    visible = tf.config.list_physical_devices("GPU")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        for gpu in visible:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        # Only in a process where TensorFlow already ran (a notebook, the test suite): a
        # job calls this first.
        log.warning("TensorFlow is already initialized: thread and GPU-memory settings of "
                    "this process stay as they are")
    if not visible:
        log.warning("no GPU visible: training on the CPU with %d thread(s)", threads)
    elif len(visible) < gpus:
        log.warning("train.gpus is %d but %d GPU(s) are visible; using those", gpus,
                    len(visible))
    used = min(gpus, len(visible))
    keras.utils.set_random_seed(seed)
    if settings["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    mixed = resolve(settings["mixed_precision"], bool(visible))
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed else "float32")
    if used > 1:
        strategy = tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(used)])
    else:
        strategy = tf.distribute.get_strategy()
    return Device(gpus=used, mixed_precision=mixed, xla=resolve(settings["xla"], bool(visible)),
                  strategy=strategy)
