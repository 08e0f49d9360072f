"""checkpoint_policy.load_policy for every checkpoint kind, and the videos of `evaluate --record` and `play`
(in-process, with untrained networks saved through the trainers' own meta writers)."""

import json
import re

import numpy as np
import pytest
import torch

from actormimic_fast.agents.distill import amn_meta
from actormimic_fast.agents.multitask_dqn import MultitaskDQNConfig, build_multitask_network, multitask_meta
from actormimic_fast.files.checkpoint import save_checkpoint
from actormimic_fast.play.policies import check_pool_matches, load_policy
from actormimic_fast.cli import main
from actormimic_fast.models.networks import build_network
from actormimic_fast.play.video import CAPTION_HEIGHT, GRID_GAP
from test_video import gif_frames, mp4_frames

LEGAL = {"pong": [0, 1, 3, 4, 11, 12], "breakout": [0, 1, 3, 4], "boxing": list(range(18))}
TILE = (210 + CAPTION_HEIGHT, 160)
CELL = (TILE[0] + GRID_GAP, TILE[1] + GRID_GAP)      # a tile of a grid and the gap after it


def save_expert(path, game, seed=0):
    torch.manual_seed(seed)
    network = build_network("nature", len(LEGAL[game]))
    meta = {"kind": "expert", "game": game, "actions": LEGAL[game], "architecture": "nature",
            "num_actions": len(LEGAL[game])}
    save_checkpoint(path, {"online": network.state_dict()}, meta)
    return network.eval()


def save_amn(path, games, seed=0):
    torch.manual_seed(seed)
    network = build_network("nature", 18)
    save_checkpoint(path, {"online": network.state_dict(), "feature_heads": {}},
                    amn_meta(games, [LEGAL[g] for g in games], "nature", 0.0))
    return network.eval()


def save_multitask(path, variant, games, seed=0):
    torch.manual_seed(seed)
    network = build_multitask_network(variant, len(games))
    masks = np.zeros((len(games), 18), bool)
    for g, game in enumerate(games):
        masks[g, LEGAL[game]] = True
    cfg = MultitaskDQNConfig(variant=variant, games=",".join(games))
    save_checkpoint(path, {"online": network.state_dict()}, multitask_meta(cfg, masks))
    return network.eval()


def masked_argmax(q, game_ids, games):
    masks = torch.zeros(len(games), 18, dtype=torch.bool)
    for g, game in enumerate(games):
        masks[g, LEGAL[game]] = True
    return q.masked_fill(~masks[game_ids], -torch.inf).argmax(1).numpy()


def random_obs(n, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 4, 84, 84), dtype=np.uint8))


def run_cli(capsys, *args):
    """main(args) in this process: (exit code, stdout, stderr); argparse errors exit with 2."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- one policy from any checkpoint ---------------------------------------------------------------------
def test_amn_policy_is_the_masked_argmax(tmp_path):
    games = ["pong", "breakout", "boxing"]
    network = save_amn(tmp_path / "amn.pt", games)
    policy = load_policy([tmp_path / "amn.pt"])
    assert policy.kind == "amn" and policy.games == tuple(games)
    obs, ids = random_obs(12), torch.tensor([0, 1, 2] * 4)
    with torch.no_grad():
        expected = masked_argmax(network(obs), ids, games)
    np.testing.assert_array_equal(policy.act(obs, ids), expected)
    assert all(a in LEGAL[games[g]] for a, g in zip(expected, ids))


@pytest.mark.parametrize("variant", ["mdqn", "mcdqn"])
def test_multitask_dqn_policy_is_the_masked_argmax_of_its_q_values(tmp_path, variant):
    games = ["breakout", "pong"]
    network = save_multitask(tmp_path / "m.pt", variant, games)
    policy = load_policy([tmp_path / "m.pt"])
    assert policy.kind == variant and policy.games == tuple(games)
    obs, ids = random_obs(8, seed=1), torch.tensor([1, 0, 0, 1, 1, 0, 1, 0])
    with torch.no_grad():
        q = network(obs, ids) if variant == "mcdqn" else network(obs)
    np.testing.assert_array_equal(policy.act(obs, ids), masked_argmax(q, ids, games))


def test_experts_policy_sends_each_row_to_its_games_expert(tmp_path):
    pong, breakout = save_expert(tmp_path / "p.pt", "pong", 0), save_expert(tmp_path / "b.pt", "breakout", 1)
    policy = load_policy([tmp_path / "p.pt", tmp_path / "b.pt"])
    assert policy.kind == "experts" and policy.games == ("pong", "breakout")
    np.testing.assert_array_equal(policy.action_masks.sum(1), [6, 4])
    obs, ids = random_obs(7, seed=2), torch.tensor([1, 1, 0, 1, 0, 0, 1])
    with torch.no_grad():
        expected = [LEGAL["pong"][pong(obs[b:b + 1]).argmax()] if g == 0 else
                    LEGAL["breakout"][breakout(obs[b:b + 1]).argmax()] for b, g in enumerate(ids.tolist())]
    np.testing.assert_array_equal(policy.act(obs, ids), expected)


def test_policy_errors(tmp_path):
    save_amn(tmp_path / "amn.pt", ["pong", "breakout"])
    save_expert(tmp_path / "p.pt", "pong")
    save_expert(tmp_path / "p2.pt", "pong", seed=1)
    save_checkpoint(tmp_path / "odd.pt", {}, {"kind": "replay"})
    with pytest.raises(ValueError, match=r"checkpoints must name one AMN/MDQN/MCDQN checkpoint or one expert per game, got \[\]"):
        load_policy([])
    with pytest.raises(FileNotFoundError, match="checkpoint '.*missing.pt' does not exist"):
        load_policy([tmp_path / "missing.pt"])
    with pytest.raises(ValueError, match=r"a multi-game checkpoint \(amn '.*amn.pt'\) plays alone; got 2 checkpoints"):
        load_policy([tmp_path / "p.pt", tmp_path / "amn.pt"])
    with pytest.raises(ValueError, match=r"experts must be for different games, got \['pong'\] more than once"):
        load_policy([tmp_path / "p.pt", tmp_path / "p2.pt"])
    with pytest.raises(ValueError, match=r"checkpoint '.*odd.pt' has kind='replay'; play takes kinds"):
        load_policy([tmp_path / "odd.pt"])
    policy = load_policy([tmp_path / "amn.pt"])
    wrong = np.array(policy.action_masks)
    wrong[1, 5] = True
    with pytest.raises(ValueError, match=r"legal actions for 'breakout' \[0, 1, 3, 4\] differ from the emulator's "
                                         r"\[0, 1, 3, 4, 5\]"):
        check_pool_matches(policy, wrong)


# -- play -------------------------------------------------------------------------------------------------
def test_play_amn_writes_a_grid_gif_with_a_tile_per_game(tmp_path, capsys):
    save_amn(tmp_path / "amn.pt", ["pong", "breakout", "boxing"])
    code, out, err = run_cli(capsys, "play", tmp_path / "amn.pt", "--record", tmp_path / "grid.gif",
                             "--frames", "240", "--fps", "20")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["kind"] == "amn" and summary["games"] == ["pong", "breakout", "boxing"]
    assert summary["video_frames"] == 60 and summary["frames_per_game"] == 240
    assert set(summary["episodes"]) == {"pong", "breakout", "boxing"}
    frames, durations = gif_frames(tmp_path / "grid.gif")
    assert frames.shape[1:] == (CELL[0] + TILE[0], CELL[1] + TILE[1], 3)     # 3 games: a 2x2 grid
    assert sum(durations) == 60 * 50
    assert not frames[:, CELL[0]:, CELL[1]:].any()                    # the 4th cell stays black
    for r, c in [(0, 0), (0, 1), (1, 0)]:                             # every game's tile shows a screen
        assert frames[-1, r * CELL[0]:r * CELL[0] + 210, c * CELL[1]:c * CELL[1] + 160].any()


def test_play_mcdqn_to_mp4_every_third_step_scaled(tmp_path, capsys):
    save_multitask(tmp_path / "m.pt", "mcdqn", ["pong", "breakout"])
    code, out, err = run_cli(capsys, "play", tmp_path / "m.pt", "--record", tmp_path / "grid.mp4", "--frames", "160",
                             "--every", "3", "--scale", "2", "--epsilon", "0")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["video_frames"] == 14     # 40 steps, one in 3
    assert mp4_frames(tmp_path / "grid.mp4").shape == (14, 2 * TILE[0], 2 * (CELL[1] + TILE[1]), 3)


def test_play_a_set_of_experts_in_the_observation_view(tmp_path, capsys):
    save_expert(tmp_path / "p.pt", "pong")
    save_expert(tmp_path / "b.pt", "breakout", seed=1)
    code, out, err = run_cli(capsys, "play", tmp_path / "p.pt", tmp_path / "b.pt", "--record", tmp_path / "x.gif",
                             "--frames", "80", "--view", "observation")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["kind"] == "experts" and summary["games"] == ["pong", "breakout"]
    frames, _ = gif_frames(tmp_path / "x.gif")
    assert frames.shape[1:] == (168 + CAPTION_HEIGHT, 2 * 168 + GRID_GAP, 3)


@pytest.mark.parametrize("args,message", [
    (["--record", "grid.avi"], "--record must end in .gif or .mp4, got 'grid.avi'"),
    (["--record", "g.gif", "--frames", "0"], "--frames must be >= 1, got '0'"),
    (["--record", "g.gif", "--every", "0"], "--every must be >= 1, got 0"),
    (["--record", "g.gif", "--scale", "-1"], "--scale must be >= 1, got -1"),
    (["--record", "g.gif", "--fps", "0"], "--fps must be > 0, got 0.0"),
    (["--record", "g.gif", "--epsilon", "2"], r"--epsilon must be in \[0, 1\], got 2.0"),
    (["--record", "g.gif", "--view", "rgb"], "invalid choice: 'rgb'"),
    ([], "the following arguments are required: --record"),
])
def test_play_errors(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    save_amn(tmp_path / "amn.pt", ["pong"])
    code, _, err = run_cli(capsys, "play", "amn.pt", *args)
    assert code == 2 and re.search(message, err), err


def test_play_checkpoint_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_amn(tmp_path / "amn.pt", ["pong"])
    save_expert(tmp_path / "p.pt", "pong")
    for args, message in [(["missing.pt"], "checkpoint 'missing.pt' does not exist"),
                          (["p.pt", "amn.pt"], "plays alone"),
                          (["p.pt", "p.pt"], "experts must be for different games")]:
        code, _, err = run_cli(capsys, "play", *args, "--record", "g.gif")
        assert code == 2 and message in err, err
    (tmp_path / "taken").write_text("")
    code, _, err = run_cli(capsys, "play", "amn.pt", "--record", "taken/g.gif")
    assert code == 2 and "cannot be written: 'taken' is a file, not a folder" in err, err
    assert not list(tmp_path.glob("*.gif"))


# -- evaluate --record -------------------------------------------------------------------------------------
def test_evaluate_records_the_first_episode_in_colour(tmp_path, capsys):
    save_expert(tmp_path / "b.pt", "breakout")
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "b.pt", "--episodes", "1", "--max-frames", "20k",
                             "--epsilon", "1", "--record", tmp_path / "b.mp4")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["episodes"] == 1                     # random play loses Breakout's 5 lives well within 20k
    assert result["video_frames"] == result["frames"] // 4           # every agent step of the episode
    assert mp4_frames(tmp_path / "b.mp4").shape == (result["video_frames"], 2 * TILE[0], 2 * TILE[1], 3)


def test_evaluate_recording_does_not_change_the_result(tmp_path, capsys):
    save_expert(tmp_path / "p.pt", "pong")
    args = ["evaluate", tmp_path / "p.pt", "--episodes", "1", "--max-frames", "800", "--envs", "2"]
    _, plain, _ = run_cli(capsys, *args)
    code, recorded, err = run_cli(capsys, *args, "--record", tmp_path / "p.gif", "--view", "observation",
                                  "--scale", "1", "--fps", "20")
    assert code == 0, err
    recorded = json.loads(recorded)
    assert {k: v for k, v in recorded.items() if not k.startswith("video")} == json.loads(plain)
    frames, durations = gif_frames(tmp_path / "p.gif")
    steps = 800 // (4 * 2)                             # the game's frame budget is shared by its 2 envs
    assert recorded["episodes"] == 0 and recorded["video_frames"] == steps
    assert frames.shape[1:] == (168 + CAPTION_HEIGHT, 168, 3) and sum(durations) == steps * 50
