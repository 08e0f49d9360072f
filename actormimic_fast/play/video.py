"""Videos of agents playing: the emulator's colour screen (or the agent's 84x84 view) of chosen envs,
each tile captioned with its game and running episode score, tiles in a near-square grid, written to a
GIF (Pillow) or an MP4 (OpenCV, opencv-python-headless).

    video = PoolVideo(pool, env_ids=[0, 1, 2], path="grid.gif")   # switches on the pool's screen capture
    out = pool.step(actions)
    video.add_step()          # one video frame per agent step (every ``every``-th), read from the pool
    video.close()             # writes the file; returns the number of video frames

The screen of a step is ALE's RGB screen after the step's last emulator frame (``pool.screens``, not
max-pooled); the score is the sum of the episode's rewards so far (0 again from an episode's first step).
GIF frames use one exact palette while the video has at most 256 colours (Atari games have at most 128),
so a decoded GIF frame equals the recorded frame; a GIF is kept in memory (compressed) until close() and
Pillow holds every frame while encoding (about height x width bytes each): use MP4 for long videos.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

VIDEO_SUFFIXES = (".gif", ".mp4")
VIEWS = ("screen", "observation")
CAPTION_HEIGHT = 14                  # pixels under each tile, at scale 1
GRID_GAP = 4                         # black pixels between the tiles of a grid, at scale 1
OBSERVATION_SCALE = 2                # an 84x84 observation tile is shown at 168x168
_TEXT, _CAPTION_BACKGROUND = (255, 255, 255), (0, 0, 0)


def check_video_path(path: str | os.PathLike, name: str = "path") -> Path:
    """The path as a Path; ValueError (naming ``name`` and the path) unless it ends in .gif or .mp4, is not
    a folder, its folder is a folder or can be made, and OpenCV is installed for an .mp4."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{name} must end in .gif or .mp4, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a folder; give a file name ending in .gif or .mp4")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{name} {str(path)!r} cannot be written: {str(folder)!r} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{name} {str(path)!r} cannot be written: no write permission in {str(folder)!r}")
    if path.suffix.lower() == ".mp4":
        try:
            import cv2  # noqa: F401
        except ImportError:
            raise ValueError(f"{name} {str(path)!r}: writing .mp4 needs opencv-python-headless "
                             "(pip install opencv-python-headless); use a .gif instead") from None
    return path


# -- frames -------------------------------------------------------------------------------------------
def upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale of [H, W(, C)] by an integer factor."""
    if scale == 1:
        return frame
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def observation_tile(frame: np.ndarray) -> np.ndarray:
    """An 84x84 grayscale observation as an RGB image at OBSERVATION_SCALE."""
    return np.repeat(upscale(frame, OBSERVATION_SCALE)[..., None], 3, axis=2)


def captioned(frame: np.ndarray, left: str, right: str = "") -> np.ndarray:
    """[H, W, 3] -> [H + CAPTION_HEIGHT, W, 3]: a black strip below with ``left`` and right-aligned ``right``
    in Pillow's default font."""
    from PIL import Image, ImageDraw

    height, width = frame.shape[:2]
    strip = Image.new("RGB", (width, CAPTION_HEIGHT), _CAPTION_BACKGROUND)
    draw = ImageDraw.Draw(strip)
    draw.fontmode = "1"     # no anti-aliasing: text adds one colour, so a GIF's palette stays exact
    font = _default_font()
    draw.text((2, 1), left, fill=_TEXT, font=font)
    if right:
        draw.text((width - 2 - draw.textlength(right, font=font), 1), right, fill=_TEXT, font=font)
    return np.concatenate([frame, np.asarray(strip)], axis=0)


_FONT = None


def _default_font():
    global _FONT
    if _FONT is None:
        from PIL import ImageFont

        _FONT = ImageFont.load_default()
    return _FONT


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of the near-square grid for count tiles: ceil(sqrt(count)) columns."""
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def grid(tiles: Sequence[np.ndarray]) -> np.ndarray:
    """Equal-size [H, W, 3] tiles laid out row by row in grid_shape(len(tiles)), GRID_GAP black pixels apart;
    empty cells are black."""
    if not tiles:
        raise ValueError("tiles must hold at least one tile, got none")
    height, width = tiles[0].shape[:2]
    rows, columns = grid_shape(len(tiles))
    out = np.zeros((rows * (height + GRID_GAP) - GRID_GAP, columns * (width + GRID_GAP) - GRID_GAP, 3), np.uint8)
    for i, tile in enumerate(tiles):
        if tile.shape != tiles[0].shape:
            raise ValueError(f"tiles must share one shape, got {tiles[0].shape} and {tile.shape} (tile {i})")
        r, c = divmod(i, columns)
        top, left = r * (height + GRID_GAP), c * (width + GRID_GAP)
        out[top:top + height, left:left + width] = tile
    return out


# -- files --------------------------------------------------------------------------------------------
class _ExactPalette:
    """RGB -> palette index, exact, for videos of at most 256 colours; the palette only grows, so indices
    given to earlier frames stay valid."""

    def __init__(self):
        self.colours = np.zeros((0, 3), np.uint8)   # palette order
        self._keys = np.zeros(0, np.uint32)         # sorted packed colours ...
        self._index = np.zeros(0, np.uint8)         # ... and their palette indices

    def indices(self, frame: np.ndarray) -> np.ndarray | None:
        """uint8 [H, W] indices of frame's colours, or None once the video would need over 256 colours."""
        packed = (frame[..., 0].astype(np.uint32) << 16) | (frame[..., 1].astype(np.uint32) << 8) | frame[..., 2]
        pos, hit = self._lookup(packed)
        if not hit.all():
            new = np.unique(packed[~hit])
            if len(self.colours) + len(new) > 256:
                return None
            rgb = np.stack([(new >> 16) & 255, (new >> 8) & 255, new & 255], axis=1).astype(np.uint8)
            self.colours = np.concatenate([self.colours, rgb])
            keys = np.concatenate([self._keys, new])
            index = np.concatenate([self._index, np.arange(len(self._index), len(keys), dtype=np.uint8)])
            order = np.argsort(keys, kind="stable")
            self._keys, self._index = keys[order], index[order]
            pos, _ = self._lookup(packed)
        return self._index[pos]

    def _lookup(self, packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(self._keys):
            return np.zeros(packed.shape, np.intp), np.zeros(packed.shape, bool)
        pos = np.minimum(np.searchsorted(self._keys, packed), len(self._keys) - 1)
        return pos, self._keys[pos] == packed


class VideoWriter:
    """RGB frames (uint8 [H, W, 3], all one size) to a .gif or .mp4, one add() per frame.

    MP4 frames are encoded as they come (OpenCV's mp4v codec; odd sizes are padded to even with black);
    GIF frames are kept, compressed, until close(), which writes the file. ``fps`` sets the frame duration
    (a GIF stores it in 10 ms units); a GIF merges identical consecutive frames into one longer frame.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 15, name: str = "path"):
        self.path = check_video_path(path, name)
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.fps = fps
        self.frames = 0
        self.closed = False
        self._gif = self.path.suffix.lower() == ".gif"
        self._size: tuple[int, int] | None = None
        self._palette = _ExactPalette()
        self._stored: list = []        # GIF: ("exact", zlib bytes) or ("image", quantised PIL image)
        self._mp4 = None

    def add(self, frame: np.ndarray) -> None:
        if self.closed:
            raise RuntimeError(f"video {str(self.path)!r} is closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        if self._size is None:
            self._size = frame.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self._gif:
                self._open_mp4()
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame must be {self._size[0]}x{self._size[1]} like the video's first, got "
                             f"{frame.shape[0]}x{frame.shape[1]}")
        if self._gif:
            indices = self._palette.indices(frame)
            if indices is not None:
                self._stored.append(("exact", zlib.compress(indices.tobytes(), 1)))
            else:
                from PIL import Image

                self._stored.append(("image", Image.fromarray(frame).quantize(256)))
        else:
            self._mp4.write(np.ascontiguousarray(self._even(frame)[..., ::-1]))   # OpenCV wants BGR
        self.frames += 1

    def close(self) -> int:
        """Finish the file (nothing is written for a video without frames); returns the frame count."""
        if self.closed:
            return self.frames
        self.closed = True
        if self._gif and self._stored:
            self._write_gif()
        if self._mp4 is not None:
            self._mp4.release()
        return self.frames

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _even(self, frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        if height % 2 == 0 and width % 2 == 0:
            return frame
        return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)))

    def _open_mp4(self) -> None:
        import cv2

        height, width = self._even(np.zeros((*self._size, 3), np.uint8)).shape[:2]
        self._mp4 = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), float(self.fps),
                                    (width, height))
        if not self._mp4.isOpened():
            raise ValueError(f"OpenCV could not open {str(self.path)!r} for writing an mp4v video")

    def _write_gif(self) -> None:
        from PIL import Image

        palette = np.zeros((256, 3), np.uint8)
        palette[:len(self._palette.colours)] = self._palette.colours
        palette = palette.tobytes()
        height, width = self._size

        def images():
            for kind, data in self._stored:
                if kind == "image":
                    yield data
                    continue
                image = Image.frombytes("P", (width, height), zlib.decompress(data))
                image.putpalette(palette)
                yield image

        frames = images()
        first = next(frames)
        first.save(self.path, save_all=True, append_images=frames, duration=max(10, round(1000 / self.fps)),
                   loop=0)


class PoolVideo:
    """Records chosen envs of a MultiGameEnvPool: per agent step, one captioned tile per env (its game's name
    and the running episode score) in a near-square grid (a single env gives a single tile).

    view: "screen" (the emulator's 210x160 colour screen; switches on the pool's screen capture for
    env_ids, and close() switches it off) or "observation" (the newest 84x84 grayscale frame the agent
    sees, shown at 168x168). scale: integer upscale of the whole frame. every: keep one step in ``every``
    (the scores still count every step). Call add_step() after each pool.reset()/step(): it reads the
    pool's per-env outputs (sync mode).
    """

    def __init__(self, pool, env_ids: Sequence[int], path: str | os.PathLike, *, view: str = "screen",
                 fps: float = 15, scale: int = 1, every: int = 1, name: str = "path"):
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        for arg, value in (("scale", scale), ("every", every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be an integer >= 1, got {value!r}")
        self.env_ids = [int(e) for e in env_ids]
        if not self.env_ids:
            raise ValueError(f"env_ids must name at least one env, got {env_ids!r}")
        bad = [e for e in self.env_ids if not 0 <= e < pool.num_envs]
        if bad:
            raise IndexError(f"env_ids: env id {bad[0]} is out of range [0, {pool.num_envs})")
        self.writer = VideoWriter(path, fps=fps, name=name)
        self.pool, self.view, self.scale, self.every = pool, view, scale, every
        self.names = [pool.games[pool.game_ids[e]] for e in self.env_ids]
        self.scores = np.zeros(len(self.env_ids), np.float64)
        self.steps = 0
        if view == "screen":
            pool.capture_screens(self.env_ids)

    @property
    def closed(self) -> bool:
        return self.writer.closed

    def add_step(self) -> None:
        """Count the pool's latest rewards into the running scores and, every ``every`` steps, add a frame."""
        outputs = self.pool.env_tensors
        ids = np.asarray(self.env_ids)
        start = outputs.episode_start.numpy()[ids]
        self.scores = np.where(start, 0.0, self.scores + outputs.reward.numpy()[ids])
        if self.steps % self.every == 0:
            self.writer.add(upscale(self.frame(), self.scale))
        self.steps += 1

    def frame(self) -> np.ndarray:
        """The current video frame, at scale 1."""
        if self.view == "screen":
            pictures = [self.pool.screens[e] for e in self.env_ids]
        else:
            pictures = [observation_tile(self.pool.env_tensors.obs[e, -1].numpy()) for e in self.env_ids]
        return grid([captioned(p, name, f"{score:.0f}") for p, name, score in zip(pictures, self.names, self.scores)])

    def close(self) -> int:
        """Write the file, stop the screen capture; returns the number of video frames."""
        if self.view == "screen" and not self.pool.closed and not self.closed:
            self.pool.capture_screens([])
        return self.writer.close()
