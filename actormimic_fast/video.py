"""Write what an agent saw (84x84 grayscale frames) to a GIF or an MP4."""

from __future__ import annotations

from pathlib import Path


def write_video(path: str | Path, frames: list, scale: int = 3, fps: int = 15) -> None:
    """84x84 grayscale frames to a GIF (Pillow) or an MP4 (OpenCV, if installed)."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not frames:
        raise ValueError("no frames to record")
    big = [np.kron(f, np.ones((scale, scale), np.uint8)) for f in frames]
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in big]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return
    try:
        import cv2
    except ImportError:
        raise ValueError("--record to .mp4 needs opencv-python-headless (pip install opencv-python-headless); "
                         "use a .gif instead") from None
    h, w = big[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h), isColor=False)
    for f in big:
        writer.write(f)
    writer.release()
