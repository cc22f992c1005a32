import io

import cv2
import numpy as np
import pytest
from PIL import Image

from workflow_scripts.build_image_cache import build_cache, decode_gray, load_cache, resize_area
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


def png(samples, mode=None):
    """PNG bytes of `samples` (gray, or RGB/RGBA in RGB order), 8 or 16 bits, or a PIL mode."""
    if mode:
        buffer = io.BytesIO()
        Image.fromarray(samples, mode).save(buffer, format="PNG")
        return buffer.getvalue()
    if samples.ndim == 3:  # OpenCV writes BGR(A)
        samples = samples[:, :, [2, 1, 0, 3][:samples.shape[2]]]
    return cv2.imencode(".png", samples)[1].tobytes()


def expected_gray(samples):
    """8-bit gray as the cache defines it: high byte of 16-bit samples, BT.601 luma, no alpha."""
    if samples.dtype == np.uint16:
        samples = (samples >> 8).astype(np.uint8)
    if samples.ndim == 2 or samples.shape[2] == 2:
        return samples if samples.ndim == 2 else samples[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(samples[:, :, :3]), cv2.COLOR_RGB2GRAY)


# (channels, bits): every colour type at both depths, but gray+alpha at 16 bits, which
# neither OpenCV nor PIL writes.
LAYOUTS = [(1, 8), (1, 16), (2, 8), (3, 8), (3, 16), (4, 8), (4, 16)]


@pytest.mark.parametrize(("channels", "bits"), LAYOUTS,
                         ids=[f"{channels}x{bits}bit" for channels, bits in LAYOUTS])
def test_every_colour_type_and_depth_becomes_8_bit_gray_exactly(channels, bits):
    dtype = np.uint16 if bits == 16 else np.uint8
    rng = np.random.default_rng(channels * bits)
    samples = rng.integers(0, np.iinfo(dtype).max + 1, (24, 40, channels), dtype=dtype)
    samples = samples[:, :, 0] if channels == 1 else samples
    data = png(samples, "LA") if channels == 2 else png(samples)
    np.testing.assert_array_equal(decode_gray(data), expected_gray(samples))


def test_palette_and_one_bit_pngs_decode_as_pil_sees_them():
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    for mode in ("P", "1"):
        data = png(np.asarray(Image.fromarray(gray).convert(mode)), mode)
        reference = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
        assert np.abs(decode_gray(data).astype(int) - reference).max() <= 1, mode


def test_damaged_pngs_raise_a_value_error_that_says_why():
    data = png(np.random.default_rng(2).integers(0, 256, (32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="not a PNG file"):
        decode_gray(b"GIF89a" + data[6:])
    with pytest.raises(ValueError, match="truncated or corrupt PNG"):
        decode_gray(data[:len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    with pytest.raises(ValueError, match="truncated or corrupt PNG"):
        decode_gray(bytes(flipped))


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
