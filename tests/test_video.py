"""video.py: GIF/MP4 files hold the frames given (exact colours in a GIF), tiles, grids, PoolVideo's
captions and scores, errors."""

import numpy as np
import pytest
from PIL import Image

from actormimic_fast import MultiGameEnvPool
from actormimic_fast.play.video import (CAPTION_HEIGHT, GRID_GAP, PoolVideo, VideoWriter, captioned, check_video_path, grid,
                                   grid_shape, observation_tile, upscale)


def gif_frames(path):
    """Decoded GIF frames (RGB) and their durations in ms."""
    frames, durations = [], []
    with Image.open(path) as image:
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(image.info["duration"])
    return np.stack(frames), durations


def expand(frames, durations, base):
    """One frame per `base` ms: undo the GIF writer's merging of identical consecutive frames."""
    assert all(d % base == 0 for d in durations), durations
    return np.concatenate([np.repeat(f[None], d // base, axis=0) for f, d in zip(frames, durations)])


def mp4_frames(path):
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    capture.release()
    return np.stack(frames)


def atari_frames(count=12, game="breakout", seed=0):
    """Real colour screens of a game under random play (some identical in a row, as in real videos)."""
    pool = MultiGameEnvPool([game], seed=seed)
    pool.capture_screens([0])
    rng = np.random.default_rng(seed)
    legal = np.flatnonzero(pool.action_masks[0])
    pool.reset()
    frames = []
    for _ in range(count):
        pool.step([rng.choice(legal)])
        frames.append(captioned(pool.screens[0].copy(), game, str(len(frames))))
    return frames


def test_gif_holds_exactly_the_frames_given_in_order(tmp_path):
    frames = atari_frames(12)
    frames.insert(3, frames[3].copy())               # a repeat: merged into one frame of twice the duration
    with VideoWriter(tmp_path / "a.gif", fps=20) as video:
        for f in frames:
            video.add(f)
    assert video.frames == 13 and video.closed
    decoded, durations = gif_frames(tmp_path / "a.gif")
    assert decoded.shape[1:] == (210 + CAPTION_HEIGHT, 160, 3)
    assert len(decoded) < len(frames) and sum(durations) == 50 * len(frames)
    np.testing.assert_array_equal(expand(decoded, durations, 50), np.stack(frames))


def test_gif_with_more_than_256_colours_still_has_every_frame(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(5)]
    with VideoWriter(tmp_path / "noise.gif", fps=10) as video:
        for f in frames:
            video.add(f)
    decoded, durations = gif_frames(tmp_path / "noise.gif")
    assert decoded.shape == (5, 20, 30, 3) and durations == [100] * 5
    assert np.abs(decoded.astype(int) - np.stack(frames)).mean() < 40   # quantised, not exact


def test_mp4_has_the_frame_count_size_and_roughly_the_colours(tmp_path):
    frames = atari_frames(10)
    with VideoWriter(tmp_path / "a.mp4", fps=15) as video:
        for f in frames:
            video.add(f)
    decoded = mp4_frames(tmp_path / "a.mp4")
    assert decoded.shape == (10, 210 + CAPTION_HEIGHT, 160, 3)
    assert np.abs(decoded.astype(int) - np.stack(frames)).mean() < 12    # lossy codec


def test_mp4_pads_odd_sizes_to_even(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4") as video:
        for value in (0, 120, 240):
            video.add(np.full((21, 33, 3), value, np.uint8))
    assert mp4_frames(tmp_path / "odd.mp4").shape == (3, 22, 34, 3)


def test_tiles_captions_and_grid_layout():
    assert [grid_shape(n) for n in (1, 2, 3, 4, 5, 8, 9, 13)] == [(1, 1), (1, 2), (2, 2), (2, 2), (2, 3),
                                                                   (3, 3), (3, 3), (4, 4)]
    screen = np.full((210, 160, 3), 7, np.uint8)
    tile = captioned(screen, "space_invaders", "1230")
    assert tile.shape == (210 + CAPTION_HEIGHT, 160, 3)
    np.testing.assert_array_equal(tile[:210], screen)
    strip = tile[210:]
    assert strip[:, :80].max() == 255 and strip[:, 100:].max() == 255      # name on the left, score on the right
    assert not captioned(screen, "pong")[210:, 80:].any()                   # no score: nothing on the right
    tiles = [np.full((4, 3, 3), i + 1, np.uint8) for i in range(5)]
    out = grid(tiles)
    h, w = 4 + GRID_GAP, 3 + GRID_GAP                                       # a tile and the gap after it
    assert out.shape == (h + 4, 2 * w + 3, 3)
    np.testing.assert_array_equal(out[h:h + 4, w:w + 3], tiles[4])          # row 1, column 1
    assert not out[h:, 2 * w:].any()                                        # the empty cell is black
    assert not out[4:h].any() and not out[:, 3:w].any()                     # black gaps between tiles
    assert grid(tiles[:1]).shape == (4, 3, 3)                               # one tile: no gap
    obs = np.arange(84 * 84, dtype=np.uint8).reshape(84, 84)
    shown = observation_tile(obs)
    assert shown.shape == (168, 168, 3)
    np.testing.assert_array_equal(shown[::2, ::2, 1], obs)
    np.testing.assert_array_equal(upscale(obs, 3)[1::3, 2::3], obs)


def test_pool_video_scores_captions_and_frames(tmp_path):
    pool = MultiGameEnvPool(["pong", "breakout"], envs_per_game=2, seed=1)
    video = PoolVideo(pool, [1, 2], tmp_path / "grid.gif", fps=20, every=2)
    assert list(pool.capturing) == [False, True, True, False]
    rng = np.random.default_rng(0)
    masks = pool.env_action_masks
    expected_scores = np.zeros(4)
    frames, scores = [], []
    out = pool.reset()
    for step in range(400):
        out = pool.step([rng.choice(np.flatnonzero(m)) for m in masks])
        expected_scores = np.where(out.episode_start, 0, expected_scores + out.reward)
        video.add_step()
        np.testing.assert_array_equal(video.scores, expected_scores[[1, 2]])
        if step % 2 == 0:
            frames.append(video.frame())
            np.testing.assert_array_equal(frames[-1][:210, :160], pool.screens[1])
            np.testing.assert_array_equal(frames[-1][:210, 160 + GRID_GAP:], pool.screens[2])
            scores.append(video.scores.copy())
    assert (np.array(scores) != 0).any()              # pong gives points (mostly -1) within 400 steps
    assert video.close() == 200
    assert not pool.capturing.any()                   # close() stops the capture
    decoded, durations = gif_frames(tmp_path / "grid.gif")
    assert decoded.shape[1:] == (210 + CAPTION_HEIGHT, 320 + GRID_GAP, 3)
    np.testing.assert_array_equal(expand(decoded, durations, 50), np.stack(frames))
    # the caption changes exactly when a tile's score does
    changed = [not np.array_equal(a[210:, :160], b[210:, :160]) for a, b in zip(frames, frames[1:])]
    assert changed == [bool(a[0] != b[0]) for a, b in zip(scores, scores[1:])]


def test_pool_video_observation_view_and_scale(tmp_path):
    pool = MultiGameEnvPool(["pong"], seed=2)
    video = PoolVideo(pool, [0], tmp_path / "obs.mp4", view="observation", scale=2)
    assert not pool.capturing.any()                   # the observation view needs no screens
    pool.reset()
    for _ in range(5):
        pool.step([0])
        video.add_step()
        np.testing.assert_array_equal(video.frame()[:168:2, ::2, 0], pool.env_tensors.obs[0, -1].numpy())
    assert video.close() == 5
    assert mp4_frames(tmp_path / "obs.mp4").shape == (5, 2 * (168 + CAPTION_HEIGHT), 2 * 168, 3)


@pytest.mark.parametrize("path,match", [
    ("run.avi", "--record must end in .gif or .mp4, got 'run.avi'"),
    ("run", "--record must end in .gif or .mp4, got 'run'"),
])
def test_bad_video_paths(tmp_path, path, match):
    with pytest.raises(ValueError, match=match):
        check_video_path(path, "--record")


def test_unwritable_video_paths(tmp_path):
    (tmp_path / "folder.gif").mkdir()
    with pytest.raises(ValueError, match=r"--record '.*folder.gif' is a folder"):
        check_video_path(tmp_path / "folder.gif", "--record")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"--record '.*file/sub/x.gif' cannot be written: '.*file' is a file"):
        check_video_path(tmp_path / "file" / "sub" / "x.gif", "--record")
    assert check_video_path(tmp_path / "new" / "deep" / "x.mp4").name == "x.mp4"   # folders are made later


def test_writer_and_pool_video_errors(tmp_path):
    with pytest.raises(ValueError, match="fps must be > 0, got 0"):
        VideoWriter(tmp_path / "a.gif", fps=0)
    video = VideoWriter(tmp_path / "a.gif")
    with pytest.raises(ValueError, match=r"frame must be uint8 \[H, W, 3\], got float64"):
        video.add(np.zeros((4, 4, 3)))
    video.add(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="frame must be 4x4 like the video's first, got 4x6"):
        video.add(np.zeros((4, 6, 3), np.uint8))
    video.close()
    with pytest.raises(RuntimeError, match="is closed"):
        video.add(np.zeros((4, 4, 3), np.uint8))
    empty = VideoWriter(tmp_path / "empty.gif")
    assert empty.close() == 0 and not (tmp_path / "empty.gif").exists()
    pool = MultiGameEnvPool(["pong"])
    with pytest.raises(ValueError, match="view must be one of"):
        PoolVideo(pool, [0], tmp_path / "b.gif", view="rgb")
    with pytest.raises(ValueError, match="scale must be an integer >= 1, got 0"):
        PoolVideo(pool, [0], tmp_path / "b.gif", scale=0)
    with pytest.raises(ValueError, match="every must be an integer >= 1, got 1.5"):
        PoolVideo(pool, [0], tmp_path / "b.gif", every=1.5)
    with pytest.raises(ValueError, match="env_ids must name at least one env"):
        PoolVideo(pool, [], tmp_path / "b.gif")
    with pytest.raises(IndexError, match=r"env_ids: env id 1 is out of range \[0, 1\)"):
        PoolVideo(pool, [0, 1], tmp_path / "b.gif")
