"""The image cache's format on disk, shared by the stage that builds it and the input
pipeline that reads it.

`images.npy` is one uint8 array of shape (images, size, size), which training memory-maps;
`index.parquet` maps each image name (`image_index`) to its row; `summary.json` is the
builder's data check. A cache lives in `CACHE`, one folder per image size.
"""

import numpy as np
import pandas as pd

CACHE = "results/cache/{size}"
FILES = {"images": "images.npy", "index": "index.parquet", "summary": "summary.json"}


def create_images(path, count, size):
    """An empty (count, size, size) uint8 array at `path`, to be filled in place."""
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, size, size))


def open_images(path, writable=False):
    return np.load(path, mmap_mode="r+" if writable else "r")


def keep_rows(path, rows, scratch):
    """Rewrite the array at `path` with only `rows` (through the file `scratch`)."""
    old = open_images(path)
    create_images(scratch, len(rows), old.shape[1])
    kept = open_images(scratch, writable=True)
    kept[:] = old[rows]
    kept.flush()
    del old, kept
    scratch.replace(path)


def write_index(path, names):
    """index.parquet: image `names` in row order."""
    pd.DataFrame({"image_index": pd.array(np.asarray(names, dtype=object), dtype="string"),
                  "row": np.arange(len(names), dtype=np.int64)}).to_parquet(path, index=False)


def load_cache(images_path, index_path):
    """The cache as (memory-mapped uint8 array, Series mapping image name to row)."""
    index = pd.read_parquet(index_path)
    return open_images(images_path), pd.Series(index["row"].to_numpy(),
                                               index=index["image_index"].to_numpy())
