"""The GPU benchmark: MobileNetV1 and DenseNet121 at 224 px, bfloat16 and XLA on and off.

    python tests/benchmarks/gpu.py OUT_FOLDER [--quick]

For each model and setting it measures training images/s through the real input pipeline
(memory-mapped cache, tf.data, on-device augmentation) and from in-memory tensors (the
ceiling with no input at all), and their ratio; plus the input pipeline alone. Writes
OUT_FOLDER/gpu_benchmarks.json and OUT_FOLDER/gpu_benchmarks.md. Sized to finish within
eight minutes on one H200; --quick runs a few steps of each, to check the script on a CPU.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import measure

SETTINGS = [(False, False), (True, False), (False, True), (True, True)]  # (bf16, XLA)


def gpu_name():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "no GPU (CPU only)"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{len(gpus)} x {details.get('device_name', 'GPU')}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    out = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    quick = arguments.quick
    batch, steps, warmup = (8, 2, 1) if quick else (64, 60, 10)
    data_dir = out / "data"
    pngs = measure.write_radiographs(data_dir / "png1024", 16 if quick else 300)
    measure.cache_rates(pngs, [data_dir / "png1024"], data_dir / "cache", 224,
                        workers=os.cpu_count() or 1, repeats=1)
    images, data = measure.cached_split(data_dir / "cache", 2000)
    results = {"machine": f"{gpu_name()}; {os.cpu_count()} CPU cores, {platform.machine()}",
               "date": time.strftime("%Y-%m-%d"), "batch_size": batch, "steps": steps,
               "pipeline_images_per_second": measure.pipeline_images_per_second(
                   images, data, batch, epochs=1 if quick else 4),
               "runs": []}
    for arch in ("mobilenet", "densenet121"):
        for bf16, xla in SETTINGS:
            model = measure.compiled_model(arch, 224, jit_compile=xla, mixed_precision=bf16)
            memory = measure.train_images_per_second(
                model, measure.in_memory_dataset(images, data, batch), steps, warmup)
            real = measure.train_images_per_second(
                model, measure.real_dataset(images, data, batch, epochs=20), steps, warmup)
            row = {"arch": arch, "bf16": bf16, "xla": xla, "in_memory": memory, "real": real,
                   "real_over_memory": real / memory}
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
            tf.keras.backend.clear_session()
    (out / "gpu_benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "gpu_benchmarks.md").write_text(markdown(results))
    print(markdown(results))


def markdown(results):
    lines = [f"{results['machine']}, {results['date']}, batch {results['batch_size']}",
             "", f"Input pipeline alone: {results['pipeline_images_per_second']:.0f} images/s",
             "", "| model | bfloat16 | XLA | in-memory images/s | real pipeline images/s | "
             "ratio |", "|---|---|---|---|---|---|"]
    for row in results["runs"]:
        lines.append(f"| {row['arch']} | {'on' if row['bf16'] else 'off'} | "
                     f"{'on' if row['xla'] else 'off'} | {row['in_memory']:.0f} | "
                     f"{row['real']:.0f} | {row['real_over_memory']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
