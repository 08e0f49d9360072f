"""Checkpoints round-trip, refuse foreign or mismatched files; counts parse like people write them."""

import os
import pickle

import pytest
import torch

from actormimic_fast.files.checkpoint import load_checkpoint, save_checkpoint
from actormimic_fast.run.counts import format_count, parse_count


def test_round_trip_and_meta_check(tmp_path):
    net = torch.nn.Linear(3, 2)
    path = save_checkpoint(tmp_path / "ckpt.pt", {"model": net.state_dict(), "frames": 12}, {"game": "pong"})
    loaded = load_checkpoint(path, expect={"game": "pong"})
    assert loaded["frames"] == 12
    torch.testing.assert_close(loaded["model"]["weight"], net.weight.detach())
    with pytest.raises(ValueError, match="was made for game='pong', not game='breakout'"):
        load_checkpoint(path, expect={"game": "breakout"})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


def test_load_refuses_missing_foreign_and_pickled_objects(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="is not an actormimic_fast checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": 1, "meta": {}, "x": os.getcwd}, f, protocol=2)  # a callable: refused
    with pytest.raises(ValueError, match="not a readable actormimic_fast checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"step": 1}, {})

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_checkpoint(path, {"step": Unsaveable()}, {})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


@pytest.mark.parametrize("text,value", [("10M", 10_000_000), ("250k", 250_000), ("1.5M", 1_500_000),
                                        ("50_000", 50_000), ("1e6", 1_000_000), (7, 7), ("2G", 2_000_000_000)])
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text,match", [("ten", "frames must be a count like 10M or 250k, got 'ten'"),
                                        ("-5", "frames must be >= 0"), ("1.5k7", "frames must be a count"),
                                        ("0.5", "frames must be a whole number")])
def test_parse_count_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_count(text, "frames")


def test_format_count():
    assert [format_count(n) for n in (10_000_000, 250_000, 1234)] == ["10M", "250k", "1234"]
