import gzip
import io
import json
import tarfile

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workflow_scripts.build_image_cache import (
    build_cache,
    data_check,
    decode_gray,
    images_in_splits,
    resize_area,
)
from workflow_scripts.image_cache import load_cache
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
    stats = build_cache(["deep.png", "gray.png", "rgba.png"], folder, 64, *paths(tmp_path))
    assert stats["converted_from_rgba"] == 1
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
    gray, converted = decode_gray(data)
    np.testing.assert_array_equal(gray, expected_gray(samples))
    assert converted == (channels > 1)


def test_palette_and_one_bit_pngs_decode_as_pil_sees_them():
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    for mode in ("P", "1"):
        data = png(np.asarray(Image.fromarray(gray).convert(mode)), mode)
        reference = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
        assert np.abs(decode_gray(data)[0].astype(int) - reference).max() <= 1, mode


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
    with pytest.raises(InputError, match=r"1 image\(s\) could not be read, e\.g\. "
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
    assert (stats["missing"], stats["unreadable"], stats["found_as_files"]) == (1, 1, 8)
    array, rows = load_cache(*paths(tmp_path))
    assert len(array) == 7 and "00000002_000.png" not in rows.index
    expected = cv2.resize(images["00000003_000.png"], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(array[rows["00000003_000.png"]].astype(int) - expected).max() <= 1
    assert "excluded unreadable image" in caplog.text and "excluded missing image" in caplog.text


def test_image_root_without_pngs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no PNG files and no \.tar\.gz archives under .*empty"):
        build_cache(["a.png"], tmp_path / "empty", 32, *paths(tmp_path))
    with pytest.raises(InputError, match=r"is not a folder"):
        build_cache(["a.png"], tmp_path / "nowhere", 32, *paths(tmp_path))


# -- images read straight from NIH's archives ---------------------------------------------

def write_archives(folder, pngs, archives=2):
    """images_001.tar.gz ... in NIH's layout (an images/ folder entry, then images/<name>.png)
    holding the PNG files `pngs` (name -> path), dealt out in turn; returns the archive paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"images_{number:03d}.tar.gz" for number in range(1, archives + 1)]
    names = sorted(pngs)
    for number, path in enumerate(paths):
        with tarfile.open(path, "w:gz") as tar:
            folder_entry = tarfile.TarInfo("images")
            folder_entry.type = tarfile.DIRTYPE
            tar.addfile(folder_entry)
            for name in names[number::archives]:
                tar.add(pngs[name], arcname=f"images/{name}")
    return paths


def loose_pngs(folder):
    return {path.name: path for path in folder.rglob("*.png")}


def cache_bytes(tmp_path, name):
    array, index = paths(tmp_path / name)
    return array.read_bytes(), pd.read_parquet(index)


@pytest.mark.parametrize("workers", [1, 2])
def test_cache_from_archives_is_byte_identical_to_the_cache_from_files(tmp_path, workers):
    images = write_pngs(tmp_path / "png", 40, size=64)
    write_archives(tmp_path / "archives", loose_pngs(tmp_path / "png"), archives=3)
    names = sorted(images)
    from_files = build_cache(names, tmp_path / "png", 32, *paths(tmp_path / "files"))
    from_archives = build_cache(names, tmp_path / "archives", 32, *paths(tmp_path / "tars"),
                                workers=workers)
    assert cache_bytes(tmp_path, "tars")[0] == cache_bytes(tmp_path, "files")[0]
    pd.testing.assert_frame_equal(cache_bytes(tmp_path, "tars")[1],
                                  cache_bytes(tmp_path, "files")[1])
    assert (from_files["found_as_files"], from_files["found_in_archives"]) == (40, 0)
    assert (from_archives["found_as_files"], from_archives["found_in_archives"]) == (0, 40)
    assert from_archives["archives"] == 3 and from_archives["images"] == 40


def test_archives_and_files_mix_and_a_file_wins_over_its_archive_copy(tmp_path, caplog):
    images = write_pngs(tmp_path / "png", 30, size=64)
    pngs = loose_pngs(tmp_path / "png")
    root = tmp_path / "nih"
    write_archives(root, {name: pngs[name] for name in sorted(pngs)[:20]}, archives=2)
    # Images 16-30 unpacked, 16-20 of them also in an archive; the files differ from the
    # archive's copies, so the cache shows which one was read.
    unpacked = root / "images_003" / "images"
    unpacked.mkdir(parents=True)
    for name in sorted(pngs)[15:]:
        cv2.imwrite(str(unpacked / name), 255 - images[name])
    stats = build_cache(sorted(images), root, 64, *paths(tmp_path))
    assert (stats["found_in_archives"], stats["found_as_files"],
            stats["found_as_files_and_in_archives"], stats["images"]) == (15, 15, 5, 30)
    array, rows = load_cache(*paths(tmp_path))
    for name in sorted(images):
        expected = 255 - images[name] if name in sorted(pngs)[15:] else images[name]
        np.testing.assert_array_equal(array[rows[name]], expected)


def truncate(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


def test_a_truncated_archive_names_the_archive_and_the_member(tmp_path):
    images = write_pngs(tmp_path / "png", 12, size=64)
    archive, _ = write_archives(tmp_path / "nih", loose_pngs(tmp_path / "png"))
    truncate(archive, 0.6)
    with pytest.raises(InputError, match=r"1 image\(s\) could not be read, e\.g\. .*"
                       r"images_001\.tar\.gz \(truncated or corrupt at member "
                       r"images/\d{8}_000\.png .*data\.skip_unreadable"):
        build_cache(sorted(images), tmp_path / "nih", 32, *paths(tmp_path), workers=2)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir()), \
        "a failed build leaves no partial output"


def test_skip_unreadable_skips_and_counts_a_truncated_member(tmp_path, caplog):
    images = write_pngs(tmp_path / "png", 12, size=64)
    archive, _ = write_archives(tmp_path / "nih", loose_pngs(tmp_path / "png"))
    truncate(archive, 0.6)
    stats = build_cache(sorted(images), tmp_path / "nih", 64, *paths(tmp_path),
                        skip_unreadable=True)
    # images_001 holds 6 images: some read before the cut, one cut, the rest never reached.
    assert stats["unreadable"] == 1 and 1 <= stats["missing"] <= 4
    assert stats["images"] == 12 - stats["unreadable"] - stats["missing"] >= 7
    array, rows = load_cache(*paths(tmp_path))
    for name in rows.index:
        np.testing.assert_array_equal(array[rows[name]], images[name])
    assert "truncated or corrupt at member images/" in caplog.text


def test_a_corrupt_member_and_a_gzip_stream_cut_between_members_are_named(tmp_path):
    images = write_pngs(tmp_path / "png", 4, size=64)
    pngs = loose_pngs(tmp_path / "png")
    broken = tmp_path / "broken" / "00000002_000.png"
    broken.parent.mkdir()
    broken.write_bytes(pngs["00000002_000.png"].read_bytes()[:100])
    (archive,) = write_archives(tmp_path / "nih", {**pngs, broken.name: broken}, archives=1)
    with pytest.raises(InputError, match=r"images_001\.tar\.gz, member 00000002_000\.png "
                       r"\(truncated or corrupt PNG"):
        build_cache(sorted(images), tmp_path / "nih", 32, *paths(tmp_path))
    # Whole members, but the gzip stream ends before its end: the tar structure alone would
    # not notice.
    (archive,) = write_archives(tmp_path / "nih", pngs, archives=1)
    with tarfile.open(archive) as tar:
        last = tar.getmembers()[-1]
        end_of_members = last.offset_data + -(-last.size // 512) * 512
    whole = gzip.decompress(archive.read_bytes())[:end_of_members]
    archive.write_bytes(gzip.compress(whole)[:-8])  # the gzip trailer (CRC, size) cut off
    with pytest.raises(InputError, match=r"images_001\.tar\.gz \(truncated or corrupt at the "
                       r"member after images/00000004_000\.png"):
        build_cache(sorted(images), tmp_path / "nih", 32, *paths(tmp_path))


def test_an_image_in_neither_form_or_in_two_archives_is_reported(tmp_path):
    images = write_pngs(tmp_path / "png", 6, size=64)
    pngs = loose_pngs(tmp_path / "png")
    write_archives(tmp_path / "nih", pngs)
    names = sorted(images) + ["99999999_000.png"]
    with pytest.raises(InputError, match=r"1 image\(s\) of the splits are not under .*neither "
                       r"as PNG files nor in the archives, e\.g\. 99999999_000\.png"):
        build_cache(names, tmp_path / "nih", 32, *paths(tmp_path))
    stats = build_cache(names, tmp_path / "nih", 32, *paths(tmp_path), skip_unreadable=True)
    assert (stats["missing"], stats["images"]) == (1, 6)
    copy = tmp_path / "nih" / "again" / "images_001.tar.gz"
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "nih" / "images_001.tar.gz").read_bytes())
    with pytest.raises(InputError, match=r"3 image\(s\) of the splits are in more than one "
                       r"archive, e\.g\. 00000001_000\.png in .*images_001\.tar\.gz and "):
        build_cache(names, tmp_path / "nih", 32, *paths(tmp_path), skip_unreadable=True)


def test_the_data_check_counts_each_split(tmp_path):
    images = write_pngs(tmp_path / "png", 10, size=64)
    names = sorted(images)
    (tmp_path / "png" / "images_001" / "images" / names[0]).write_bytes(b"not a png")
    splits = {"Effusion": names[:6], "Mass": names[4:] + ["99999999_000.png"]}
    split_paths = []
    for target, split_names in splits.items():
        split_paths.append(tmp_path / f"{target}.parquet")
        pd.DataFrame({"image_index": split_names}).to_parquet(split_paths[-1])
    needed = sorted(set(splits["Effusion"]) | set(splits["Mass"]))
    stats = build_cache(needed, tmp_path / "png", 32, *paths(tmp_path), skip_unreadable=True)
    summary = data_check(stats, images_in_splits(split_paths), paths(tmp_path)[1], 32, workers=1)
    assert summary["splits"] == {"Effusion": {"needed": 6, "cached": 5},
                                 "Mass": {"needed": 7, "cached": 6}}
    assert (summary["needed"], summary["found_as_files"], summary["missing"],
            summary["unreadable"], summary["images"]) == (11, 10, 1, 1, 9)
    assert summary["image_size"] == 32 and summary["seconds"] > 0
    json.dumps(summary)  # summary.json holds it as it is
