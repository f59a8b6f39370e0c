"""The crop-and-resize rule on arbitrary shapes, checked against what it must preserve."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from harness.data.decode import resize_array, square_resize


@settings(max_examples=30, deadline=None)
@given(width=st.integers(8, 300), height=st.integers(8, 300), size=st.sampled_from([28, 32, 64]),
       colour=st.tuples(*[st.integers(0, 255)] * 3))
def test_any_shape_becomes_a_square_of_the_same_colour(width: int, height: int, size: int, colour: tuple) -> None:
    out = np.asarray(square_resize(Image.new("RGB", (width, height), colour), size))
    assert out.shape == (size, size, 3)
    assert np.abs(out.astype(int) - colour).max() <= 1


@settings(max_examples=20, deadline=None)
@given(side=st.integers(8, 100), size=st.sampled_from([28, 32, 64]))
def test_centre_crop_keeps_the_middle_and_drops_the_margins(side: int, size: int) -> None:
    # A wide image: the central square is white, the margins either side black.
    image = np.zeros((side, 3 * side, 3), np.uint8)
    image[:, side:2 * side] = 255
    out = np.asarray(square_resize(Image.fromarray(image), size))
    assert out.min() >= 254


def test_resize_array_keeps_channels_and_returns_same_size_untouched() -> None:
    gray = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    assert resize_array(gray, 28) is gray
    big = resize_array(gray, 64)
    assert big.shape == (3, 64, 64, 1) and big.dtype == np.uint8
    # Bicubic enlargement keeps each image's mean brightness.
    assert np.abs(big.mean(axis=(1, 2, 3)) - gray.mean(axis=(1, 2, 3))).max() < 2
