"""Soft-edged shapes on a square pixel grid whose coordinates run from -1 to 1.

Every drawing of the demo's radiographs is built from these: edges are linear ramps a few
pixels wide, so that shapes stay smooth when the image is drawn small and resized.
"""

import functools

import cv2
import numpy as np


@functools.cache
def pixel_grid(size):
    """Pixel centers in image coordinates, each in (-1, 1): (u by column, v by row)."""
    centers = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    u, v = np.meshgrid(centers, centers)
    u.flags.writeable = v.flags.writeable = False
    return u, v


def soft_edge(size):
    """A soft edge two pixels wide on a grid of `size` pixels, whose coordinates span 2."""
    return 4.0 / size


def ramp(distance, width):
    """0 outside, 1 inside, linear across a band of `width` around distance 0."""
    return np.clip(distance * (1.0 / width) + 0.5, 0.0, 1.0)


def disc(u, v, center, radius, edge):
    du, dv = u - center[0], v - center[1]
    return ramp(radius - np.sqrt(du * du + dv * dv), edge)


def segment_distance(u, v, start, end):
    """Distance of every pixel from the line segment start-end."""
    (u0, v0), (u1, v1) = start, end
    du, dv = u1 - u0, v1 - v0
    along = np.clip(((u - u0) * du + (v - v0) * dv) * (1.0 / (du * du + dv * dv)), 0.0, 1.0)
    pu, pv = u - u0 - along * du, v - v0 - along * dv
    return np.sqrt(pu * pu + pv * pv)


def smooth_field(rng, cells, size):
    """Smooth random field (about unit variance) varying over size/cells pixels."""
    coarse = rng.standard_normal((cells, cells), dtype=np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
