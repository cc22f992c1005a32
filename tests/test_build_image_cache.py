import cv2
import numpy as np
import pytest

from workflow_scripts.build_image_cache import build_cache, load_cache, resize_area
from workflow_scripts.stage import InputError


def write_pngs(folder, count, size=128, seed=0):
    """Gray PNGs with distinct content, nested like the NIH mirrors (images_001/images/)."""
    rng = np.random.default_rng(seed)
    images = {}
    for i in range(count):
        name = f"{i + 1:08d}_000.png"
        sub = folder / f"images_{1 + i % 2:03d}" / "images"
        sub.mkdir(parents=True, exist_ok=True)
        image = cv2.GaussianBlur(rng.integers(0, 256, (size, size), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(sub / name), image)
        images[name] = image
    return images


def paths(tmp_path):
    return tmp_path / "cache" / "images.npy", tmp_path / "cache" / "index.parquet"


@pytest.mark.parametrize("workers", [1, 2])
def test_round_trip_matches_area_resize(tmp_path, workers):
    images = write_pngs(tmp_path / "png", 150)
    names = sorted(images)
    stats = build_cache(names, tmp_path / "png", 32, *paths(tmp_path), workers=workers)
    assert stats["images"] == 150 and stats["excluded"] == 0
    array, rows = load_cache(*paths(tmp_path))
    assert array.dtype == np.uint8 and array.shape == (150, 32, 32)
    assert isinstance(array, np.memmap), "training reads the cache memory-mapped"
    for name in names[::17]:
        expected = cv2.resize(images[name], (32, 32), interpolation=cv2.INTER_AREA)
        assert np.abs(array[rows[name]].astype(int) - expected).max() <= 1


@pytest.mark.timeout(60, method="thread")  # a hung fork ends the session instead of CI
def test_workers_fork_safely_after_opencv_has_used_its_threads(tmp_path):
    cv2.GaussianBlur(np.zeros((2048, 2048), np.float32), (0, 0), 5)  # starts OpenCV's pool
    threads = cv2.getNumThreads()
    images = write_pngs(tmp_path / "png", 80)
    stats = build_cache(sorted(images), tmp_path / "png", 32, *paths(tmp_path), workers=2)
    assert stats["images"] == 80
    assert cv2.getNumThreads() == threads, "the caller's OpenCV threads are left as they were"


def test_resize_handles_non_integer_factors_and_upscaling():
    image = np.full((1024, 1024), 200, np.uint8)
    assert resize_area(image, 224).shape == (224, 224)
    assert (resize_area(image, 224) == 200).all()
    assert resize_area(np.zeros((20, 30), np.uint8), 64).shape == (64, 64)


def test_rgba_and_16_bit_images_become_8_bit_gray(tmp_path):
    folder = tmp_path / "png"
    folder.mkdir()
    gray = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    cv2.imwrite(str(folder / "deep.png"), gray.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "gray.png"), gray)
    build_cache(["deep.png", "gray.png", "rgba.png"], folder, 64, *paths(tmp_path))
    array, rows = load_cache(*paths(tmp_path))
    for name in ("rgba.png", "deep.png"):
        assert np.abs(array[rows[name]].astype(int) - gray).max() <= 1, name


def test_missing_and_corrupt_images_are_listed(tmp_path):
    images = write_pngs(tmp_path / "png", 6)
    broken = tmp_path / "png" / "images_001" / "images" / "00000001_000.png"
    broken.write_bytes(broken.read_bytes()[:200])
    names = sorted(images) + ["99999999_000.png"]
    with pytest.raises(InputError, match=r"1 image\(s\) of the splits are not under .*"
                       r"99999999_000\.png.*data\.skip_unreadable"):
        build_cache(names, tmp_path / "png", 32, *paths(tmp_path))
    with pytest.raises(InputError, match=r"1 image\(s\) could not be decoded, e\.g\. "
                       r".*00000001_000\.png"):
        build_cache(sorted(images), tmp_path / "png", 32, *paths(tmp_path))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir()), \
        "a failed build leaves no partial output"


def test_skip_unreadable_excludes_and_keeps_the_rest(tmp_path, caplog):
    images = write_pngs(tmp_path / "png", 8)
    broken = tmp_path / "png" / "images_002" / "images" / "00000002_000.png"
    broken.write_bytes(b"not a png")
    names = sorted(images) + ["99999999_000.png"]
    stats = build_cache(names, tmp_path / "png", 32, *paths(tmp_path), skip_unreadable=True)
    assert stats["images"] == 7 and stats["excluded"] == 2
    array, rows = load_cache(*paths(tmp_path))
    assert len(array) == 7 and "00000002_000.png" not in rows.index
    expected = cv2.resize(images["00000003_000.png"], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(array[rows["00000003_000.png"]].astype(int) - expected).max() <= 1
    assert "excluded unreadable image" in caplog.text and "excluded missing image" in caplog.text


def test_image_root_without_pngs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no PNG files under .*empty"):
        build_cache(["a.png"], tmp_path / "empty", 32, *paths(tmp_path))
    with pytest.raises(InputError, match=r"is not a folder"):
        build_cache(["a.png"], tmp_path / "nowhere", 32, *paths(tmp_path))
