"""The C++ frame ops against OpenCV's INTER_AREA (the reference gymnasium uses): bit-identical, on both
the AVX2 and the portable code paths."""

import cv2
import numpy as np
import pytest

from actormimic_fast import _C

LEVELS = _C.simd_levels()  # the kernel sets this CPU has: portable, avx2, avx512 (VBMI)


@pytest.fixture(params=LEVELS)
def simd(request):
    before = _C.simd_level()
    _C.set_simd_level(request.param)
    yield request.param
    _C.set_simd_level(before)


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


def test_area_resize_rejects_too_wide_sources():
    with pytest.raises(ValueError, match="at most 512 pixels wide: got 600"):
        _C.area_resize(np.zeros((50, 600), np.uint8), 7, 500)


def test_area_resize_wide_downscale_falls_back(simd):
    # Taps more than 64 source pixels apart within 16 columns do not fit AVX-512's window: AVX2 serves them.
    frame = np.random.default_rng(1).integers(0, 256, (40, 512), dtype=np.uint8)
    expected = cv2.resize(frame, (20, 10), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(_C.area_resize(frame, 10, 20), expected)


def test_simd_levels_are_selectable_and_checked():
    before = _C.simd_level()
    assert LEVELS[0] == "portable" and before == LEVELS[-1]
    try:
        for level in LEVELS:
            _C.set_simd_level(level)
            assert _C.simd_level() == level and _C.simd_enabled() == (level != "portable")
    finally:
        _C.set_simd_level(before)
    with pytest.raises(ValueError, match="level must be 'portable', 'avx2' or 'avx512', got 'sse'"):
        _C.set_simd_level("sse")
    for missing in ("avx2", "avx512")[len(LEVELS) - 1:]:
        with pytest.raises(RuntimeError, match="has no"):
            _C.set_simd_level(missing)


@pytest.mark.parametrize("games", [("breakout", "pong"), ("space_invaders", "seaquest")])
def test_pool_observations_identical_on_every_level(games):
    """The whole preprocessing (grayscale, max-pool, resize, episode ends inside a frame skip) gives the same
    observations on every kernel set: each level runs the same seeds and actions."""
    from actormimic_fast import MultiGameEnvPool
    before = _C.simd_level()
    results = {}
    try:
        for level in LEVELS:
            _C.set_simd_level(level)
            with MultiGameEnvPool(list(games), envs_per_game=2, seed=3, num_threads=2) as pool:
                rng = np.random.default_rng(0)
                obs, ended = [pool.reset().obs.copy()], 0
                for _ in range(600):
                    actions = [rng.choice(np.flatnonzero(m)) for m in pool.env_action_masks]
                    out = pool.step(actions)
                    obs.append(out.obs.copy())
                    ended += int((out.terminated | out.truncated).sum())
                assert ended > 0  # episode ends and resets are part of what is compared
                results[level] = np.stack(obs)
    finally:
        _C.set_simd_level(before)
    for level in LEVELS[1:]:
        np.testing.assert_array_equal(results[level], results["portable"], err_msg=level)
