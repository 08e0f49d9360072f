"""The C++ frame ops against OpenCV's INTER_AREA (the reference gymnasium uses): bit-identical, on both
the AVX2 and the portable code paths."""

import cv2
import numpy as np
import pytest

from actormimic_fast import _C

PATHS = [False] + ([True] if _C.simd_enabled() else [])


@pytest.fixture(params=PATHS, ids=lambda simd: "avx2" if simd else "portable")
def simd(request):
    before = _C.simd_enabled()
    _C.set_simd_enabled(request.param)
    yield request.param
    _C.set_simd_enabled(before)


@pytest.mark.parametrize("levels", [256, 8, 2])
def test_area_resize_matches_opencv_on_random_frames(simd, levels):
    rng = np.random.default_rng(levels)
    for _ in range(50):
        frame = (rng.integers(0, levels, (210, 160)) * (255 // (levels - 1))).astype(np.uint8)
        expected = cv2.resize(frame, (84, 84), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(_C.area_resize(frame, 84, 84), expected)


@pytest.mark.parametrize("shape,size", [((210, 160), (42, 42)), ((100, 90), (33, 71)), ((84, 84), (84, 84)),
                                        ((37, 13), (5, 3))])
def test_area_resize_other_sizes(simd, shape, size):
    frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    expected = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(_C.area_resize(frame, *size), expected)


def test_area_resize_rejects_upscaling():
    with pytest.raises(ValueError, match="only downscales"):
        _C.area_resize(np.zeros((10, 10), np.uint8), 20, 20)
