import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from workflow_scripts.png_decoder import decode_gray

COLOUR_TYPES = {0: 1, 2: 3, 4: 2, 6: 4}  # gray, RGB, gray+alpha, RGBA -> channels


def chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def filter_rows(rows, filters, bytes_per_pixel):
    """PNG's forward filters (spec section 9), written plainly, as the reference."""
    height, width = rows.shape
    previous = np.zeros(width, np.int64)
    out = np.zeros((height, width + 1), np.uint8)
    for y in range(height):
        row = rows[y].astype(np.int64)
        left = np.concatenate([np.zeros(bytes_per_pixel, np.int64), row[:-bytes_per_pixel]])
        above_left = np.concatenate([np.zeros(bytes_per_pixel, np.int64),
                                     previous[:-bytes_per_pixel]])
        estimate = left + previous - above_left
        distances = [np.abs(estimate - left), np.abs(estimate - previous),
                     np.abs(estimate - above_left)]
        paeth = np.where((distances[0] <= distances[1]) & (distances[0] <= distances[2]), left,
                         np.where(distances[1] <= distances[2], previous, above_left))
        predicted = [np.zeros(width, np.int64), left, previous, (left + previous) // 2,
                     paeth][filters[y]]
        out[y, 0] = filters[y]
        out[y, 1:] = (row - predicted) & 0xFF
        previous = row
    return out


def encode(samples, colour_type, filters, idat_parts=1):
    """PNG bytes of (height, width, channels) uint8 or uint16 samples, with the given filter
    type on each row and the zlib stream cut into `idat_parts` IDAT chunks."""
    height, width, channels = samples.shape
    bit_depth = 16 if samples.dtype == np.uint16 else 8
    rows = samples.astype(samples.dtype.newbyteorder(">")).view(np.uint8).reshape(height, -1)
    stream = zlib.compress(filter_rows(rows, filters, channels * bit_depth // 8).tobytes())
    cuts = np.linspace(0, len(stream), idat_parts + 1).astype(int)
    parts = [stream[start:end] for start, end in zip(cuts[:-1], cuts[1:], strict=True)]
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + b"".join(chunk(b"IDAT", part) for part in parts)
            + chunk(b"IEND", b""))


def expected_gray(samples):
    """8-bit gray as the cache defines it: high byte of 16-bit samples, BT.601 luma, no alpha."""
    if samples.dtype == np.uint16:
        samples = (samples >> 8).astype(np.uint8)
    if samples.shape[2] <= 2:
        return samples[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(samples[:, :, :3]), cv2.COLOR_RGB2GRAY)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_every_filter_layout_and_depth_decodes_exactly(data):
    height = data.draw(st.integers(1, 12))
    width = data.draw(st.integers(1, 12))
    colour_type = data.draw(st.sampled_from(sorted(COLOUR_TYPES)))
    dtype = data.draw(st.sampled_from([np.uint8, np.uint16]))
    seed = data.draw(st.integers(0, 2**32 - 1))
    filters = data.draw(st.lists(st.integers(0, 4), min_size=height, max_size=height))
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, np.iinfo(dtype).max + 1, (height, width, COLOUR_TYPES[colour_type]),
                           dtype=dtype)
    png = encode(samples, colour_type, filters, idat_parts=data.draw(st.integers(1, 3)))
    np.testing.assert_array_equal(decode_gray(png), expected_gray(samples))


@pytest.mark.parametrize("png_filter", ["NONE", "SUB", "UP", "AVG", "PAETH"])
def test_radiograph_sized_gray_matches_libpng(png_filter):
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 256, (1024, 1024), dtype=np.uint8), (0, 0), 3)
    image = cv2.add(image, rng.integers(0, 12, image.shape, dtype=np.uint8))
    flag = getattr(cv2, f"IMWRITE_PNG_FILTER_{png_filter}")
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_FILTER, flag])
    assert ok
    np.testing.assert_array_equal(decode_gray(png.tobytes()), image)


def test_palette_and_low_bit_depths_go_through_wuffs():
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    for mode in ("P", "1"):
        buffer = io.BytesIO()
        Image.fromarray(gray).convert(mode).save(buffer, format="PNG")
        reference = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))
        assert np.abs(decode_gray(buffer.getvalue()).astype(int) - reference).max() <= 1, mode


def test_damaged_files_raise_a_value_error_that_says_why():
    samples = np.random.default_rng(2).integers(0, 256, (32, 32, 1), dtype=np.uint8)
    png = encode(samples, 0, [4] * 32)
    with pytest.raises(ValueError, match="not a PNG file"):
        decode_gray(b"GIF89a" + png[6:])
    with pytest.raises(ValueError, match="truncated file"):
        decode_gray(png[:len(png) // 2])
    body = bytearray(png)
    body[60] ^= 0xFF  # inside the zlib stream: the Adler-32 no longer matches
    with pytest.raises(ValueError, match="corrupt image data"):
        decode_gray(bytes(body))
    stream = bytearray(filter_rows(samples[:, :, 0], [1] * 32, 1).tobytes())
    stream[5 * 33] = 7  # row 5's filter type
    header = struct.pack(">IIBBBBB", 32, 32, 8, 0, 0, 0, 0)
    bad_filter = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                  + chunk(b"IDAT", zlib.compress(bytes(stream))) + chunk(b"IEND", b""))
    with pytest.raises(ValueError, match="row 5 has filter type 7"):
        decode_gray(bad_filter)
