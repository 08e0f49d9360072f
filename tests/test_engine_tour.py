"""The engine tour (`python -m actormimic_fast.apps.engine_tour`): a reduced run works end to end."""

import subprocess
import sys

import numpy as np

from PIL import Image


def test_demo_runs_and_writes_the_observation_grid(tmp_path):
    result = subprocess.run([sys.executable, "-m", "actormimic_fast.apps.engine_tour", "--steps", "30", "--envs-per-game", "1",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "frames/s" in result.stdout
    image = Image.open(tmp_path / "observations.png")
    assert image.size == ((4 * 86 - 2) * 2, (8 * 86 - 2) * 2)
    assert len(np.unique(np.asarray(image))) > 10  # real frames, not a blank canvas


def test_demo_rejects_bad_arguments(tmp_path):
    result = subprocess.run([sys.executable, "-m", "actormimic_fast.apps.engine_tour", "--steps", "0", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--steps must be >= 1, got 0" in result.stderr
