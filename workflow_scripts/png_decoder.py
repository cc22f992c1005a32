"""PNG to 8-bit gray for the image cache, faster than general-purpose decoders on radiographs.

Decoding a 1024x1024 radiograph spends its time in two loops: inflating the zlib stream and
undoing PNG's per-row filters. Here libdeflate inflates (it may, because IHDR gives the exact
output size), and the filter loops are compiled by Numba. With one byte per pixel, the Sub,
Average and Paeth filters predict each byte from the one just decoded, so a row is one chain
of dependent steps; keeping that byte in a register instead of reading it back from the
output shortens every step. Average matters most: libpng picks it for noisy films.

The fast path covers what ChestX-ray14 ships and the usual writers produce: non-interlaced
gray, gray+alpha, RGB and RGBA at 8 or 16 bits. Palette images, bit depths below 8 and Adam7
interlacing go to Wuffs. Colour becomes gray by ITU-R BT.601 luma, 16-bit samples keep their
high byte, and alpha is dropped (radiographs are opaque).

Integrity: the zlib stream's Adler-32 is checked (libdeflate does so while inflating); chunk
CRCs are not, since the Adler-32 already covers every pixel byte.
"""

import functools
import struct

import cv2
import deflate
import numba
import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (3, palette: Wuffs)
NONE, SUB, UP, AVERAGE, PAETH = range(5)  # filter types, PNG spec section 9.2


def decode_gray(data):
    """A 2-D uint8 array from PNG bytes; raises ValueError naming what is wrong."""
    header, compressed = read_chunks(data)
    width, height, bit_depth, colour_type, interlace = header
    if colour_type not in CHANNELS or bit_depth not in (8, 16) or interlace:
        return decode_with_wuffs(data)
    bytes_per_pixel = CHANNELS[colour_type] * bit_depth // 8
    row_bytes = width * bytes_per_pixel
    try:
        raw = deflate.zlib_decompress(compressed, height * (1 + row_bytes))
    except deflate.DeflateError:
        raise ValueError("corrupt image data: the zlib stream does not inflate to the "
                         f"{height} rows of {width} pixels that IHDR declares") from None
    if len(raw) != height * (1 + row_bytes):
        raise ValueError(f"truncated image data: {len(raw)} bytes where IHDR declares "
                         f"{height * (1 + row_bytes)}")
    filtered = np.frombuffer(raw, np.uint8).reshape(height, 1 + row_bytes)
    if filtered[:, 0].max() > PAETH:
        row = int(np.argmax(filtered[:, 0] > PAETH))
        raise ValueError(f"corrupt image data: row {row} has filter type {filtered[row, 0]}")
    samples = unfilter(filtered, bytes_per_pixel).reshape(height, width, -1)
    if bit_depth == 16:
        samples = samples[:, :, 0::2]  # big-endian: the high byte comes first
    if colour_type in (0, 4):
        return np.ascontiguousarray(samples[:, :, 0])
    return cv2.cvtColor(np.ascontiguousarray(samples[:, :, :3]), cv2.COLOR_RGB2GRAY)


def read_chunks(data):
    """(IHDR fields, the concatenated IDAT payload) of PNG bytes."""
    if data[:8] != SIGNATURE:
        raise ValueError("not a PNG file (the first 8 bytes are not the PNG signature)")
    header, parts, position = None, [], 8
    view = memoryview(data)  # slices of a view are not copies; the join below is the one copy
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        start = position + 8
        if start + length + 4 > len(data):
            break
        if kind == b"IHDR":
            if length != 13:
                raise ValueError("corrupt IHDR chunk")
            width, height, bit_depth, colour_type, _, _, interlace = struct.unpack_from(
                ">IIBBBBB", data, start)
            if width == 0 or height == 0:
                raise ValueError(f"IHDR declares an empty image ({width}x{height})")
            header = (width, height, bit_depth, colour_type, interlace)
        elif kind == b"IDAT":
            parts.append(view[start:start + length])
        elif kind == b"IEND":
            if header is None or not parts:
                raise ValueError("no IHDR or no IDAT chunk before IEND")
            return header, b"".join(parts)
        position = start + length + 4
    raise ValueError("truncated file: it ends before the IEND chunk")


@numba.njit(cache=True, nogil=True)
def unfilter(filtered, bytes_per_pixel):
    """Undo the per-row filters: `filtered` is (height, 1 + row bytes), each row led by its
    filter type; returns (height, row bytes). Filters predict each byte from the byte one
    pixel to the left (a), the byte above (b) and the byte above-left (c), all zero outside
    the image; the stored byte is the difference mod 256."""
    height, row_bytes = filtered.shape[0], filtered.shape[1] - 1
    image = np.empty((height, row_bytes), np.uint8)
    above = np.zeros(row_bytes, np.uint8)
    for y in range(height):
        kind = filtered[y, 0]
        row = filtered[y, 1:]
        out = image[y]
        if kind == NONE:
            out[:] = row
        elif kind == UP:
            for x in range(row_bytes):
                out[x] = row[x] + above[x]
        elif bytes_per_pixel == 1:
            undo_gray8(kind, row, above, out)
        else:
            undo_wide(kind, row, above, out, bytes_per_pixel)
        above = out
    return image


@numba.njit(inline="always")
def paeth(a, b, c):
    """The neighbour nearest to a + b - c (ties: a, then b), as the PNG spec says, in
    libpng's form, which shares the differences and compiles to fewer dependent steps."""
    from_b, from_a = b - c, a - c
    distance_a, distance_b, distance_c = abs(from_b), abs(from_a), abs(from_b + from_a)
    nearest = a
    if distance_b < distance_a:
        distance_a, nearest = distance_b, b
    if distance_c < distance_a:
        nearest = c
    return nearest


@numba.njit(inline="always")
def predict(kind, left, up, above_left):
    """The Sub, Average or Paeth prediction of a byte from its neighbours."""
    if kind == SUB:
        return left
    if kind == AVERAGE:
        return (left + up) >> 1
    return paeth(left, up, above_left)


@numba.njit(inline="always")
def undo_gray8(kind, row, above, out):
    """Sub, Average and Paeth for one byte per pixel. The left neighbour is the byte just
    written, so it stays in a register instead of being read back from `out`."""
    left = 0
    above_left = 0
    for x in range(row.size):
        up = np.int64(above[x])
        left = (np.int64(row[x]) + predict(kind, left, up, above_left)) & 0xFF
        out[x] = left
        above_left = up


@numba.njit(inline="always")
def undo_wide(kind, row, above, out, step):
    """Sub, Average and Paeth for `step` bytes per pixel (16-bit or several channels)."""
    for x in range(row.size):
        left = np.int64(out[x - step]) if x >= step else 0
        above_left = np.int64(above[x - step]) if x >= step else 0
        out[x] = (np.int64(row[x]) + predict(kind, left, np.int64(above[x]), above_left)) & 0xFF


def compile_decoder():
    """Compile (or load from Numba's cache) the filter loops before worker processes fork."""
    unfilter(np.zeros((1, 2), np.uint8), 1)


@functools.cache
def wuffs_decoder():
    from pywuffs import ImageDecoderType, PixelFormat
    from pywuffs.aux import ImageDecoder, ImageDecoderConfig

    config = ImageDecoderConfig()
    config.enabled_decoders = [ImageDecoderType.PNG]
    config.pixel_format = PixelFormat.Y
    return ImageDecoder(config)


def decode_with_wuffs(data):
    """The PNGs outside the fast path (palette, 1-4 bits, interlaced), through Wuffs."""
    result = wuffs_decoder().decode(data)
    if result.error_message:
        raise ValueError(result.error_message)
    return np.ascontiguousarray(result.pixbuf[:, :, 0])
