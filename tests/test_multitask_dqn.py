"""Multitask DQN baselines (MDQN, MCDQN): the masked pieces against hand-computed values, per-game routing
against a per-row computation, a short in-process run, the CLI through subprocess (run, then resume)."""

import math

import pytest
import torch

from actormimic_fast.agents.dqn import td_target
from actormimic_fast.agents.multitask_dqn import MultitaskDQNConfig, load_multitask_dqn, q_values, train_multitask_dqn
from actormimic_fast.files.checkpoint import load_checkpoint
from actormimic_fast.cli import main
from actormimic_fast.files.run_info import read_run_info
from actormimic_fast.files.run_logs import read_csv
from actormimic_fast.models.networks import MultiHeadDQN
from cli_runner import cli_summary

PONG_ACTIONS, BREAKOUT_ACTIONS = [0, 1, 3, 4, 11, 12], [0, 1, 3, 4]
TINY = dict(replay_capacity=4_000, learning_starts=100, target_update=50, epsilon_decay_frames=1_000,
            train_epoch_frames=1_000, test_epoch_frames=400, checkpoint_every=1_000, log_every=500,
            device="cpu", torch_threads=1, progress=False, tensorboard=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the masked TD target ------------------------------------------------------------------------------
def test_masked_td_target_hand_values():
    legal_t = torch.zeros(3, 18, dtype=torch.bool)
    legal_t[0, [0, 1, 3, 4]] = True                   # a Breakout state
    legal_t[1, [0, 1, 3, 4, 11, 12]] = True           # a Pong state
    legal_t[2, :] = True                              # a Boxing state
    q_t_target = torch.zeros(3, 18)
    q_t_target[0, [0, 1, 3, 4]] = torch.tensor([0.5, 2.0, -1.0, 1.0])
    q_t_target[0, 17] = 50.0                          # illegal in Breakout: never bootstrapped from
    q_t_target[1, [0, 1, 3, 4, 11, 12]] = torch.tensor([-3.0, -2.0, -4.0, -5.0, -2.5, -6.0])
    q_t_target[1, 2] = 9.0                            # illegal in Pong; every legal value is negative
    q_t_target[2, 7] = 4.0
    r_t = torch.tensor([1.0, 0.0, -1.0])
    discount_t = torch.tensor([0.99, 0.99, 0.0])      # the Boxing transition ended at a termination
    y = td_target(r_t, discount_t, q_t_target, legal_t=legal_t)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.99 * 2.0, 0.99 * -2.0, -1.0]))

    q_t_online = torch.zeros(3, 18)
    q_t_online[0, 4] = 3.0                            # Double DQN: online picks action 4 (target 1.0) ...
    q_t_online[0, 17] = 99.0                          # ... not the illegal 17
    q_t_online[1, 12] = 1.0                           # picks 12 (target -6.0)
    q_t_online[1, 2] = 99.0
    y_double = td_target(r_t, discount_t, q_t_target, q_t_online, legal_t=legal_t)
    torch.testing.assert_close(y_double, torch.tensor([1.0 + 0.99 * 1.0, 0.99 * -6.0, -1.0]))


# -- MCDQN routing -------------------------------------------------------------------------------------
def test_mcdqn_routes_each_row_through_its_own_games_head():
    torch.manual_seed(0)
    network = MultiHeadDQN(num_games=3)
    obs = torch.randint(0, 256, (7, 4, 84, 84), dtype=torch.uint8)
    game_ids = torch.tensor([2, 0, 2, 1, 0, 2, 1])
    q = network(obs, game_ids)
    features = network.features(obs, game_ids)
    assert q.shape == (7, 18) and features.shape == (7, 512)
    with torch.no_grad():
        for row, g in enumerate(game_ids.tolist()):
            conv = network.convs(obs[row:row + 1].float() / 255)
            hidden = torch.relu(conv @ network.hidden[g].weight.T + network.hidden[g].bias)
            torch.testing.assert_close(features[row], hidden[0], rtol=1e-5, atol=1e-5)
            expected = hidden @ network.outputs[g].weight.T + network.outputs[g].bias
            torch.testing.assert_close(q[row], expected[0], rtol=1e-5, atol=1e-5)
    # rows already grouped by game (sample(per_game=...)) take the no-permutation path: same values
    order = torch.argsort(game_ids, stable=True)
    torch.testing.assert_close(network(obs[order], game_ids[order]), q[order])
    # a batch of games 0 and 2 trains their heads and the shared convolutions, never game 1's head
    keep = game_ids != 1
    network(obs[keep], game_ids[keep]).sum().backward()
    assert network.hidden[1].weight.grad is None and network.outputs[1].weight.grad is None
    assert network.hidden[0].weight.grad.abs().sum() > 0 and network.outputs[2].weight.grad.abs().sum() > 0
    assert network.convs[0].weight.grad.abs().sum() > 0
    with pytest.raises(IndexError, match=r"game_ids must be in \[0, 3\), got values from 0 to 3"):
        network(obs[:2], torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"game_ids must have shape \(2,\), got \(3,\)"):
        network(obs[:2], torch.tensor([0, 1, 2]))


# -- settings --------------------------------------------------------------------------------------------
def test_config_defaults_toml_and_clear_errors(tmp_path):
    cfg = MultitaskDQNConfig()
    assert len(cfg.game_list) == 8 and (cfg.batch_size, cfg.target_update, cfg.lr) == (32, 10_000, 2.5e-4)
    assert (cfg.optimizer, cfg.frames_per_game, cfg.replay_capacity) == ("rmsprop", 10_000_000, 1_000_000)
    path = tmp_path / "m.toml"
    path.write_text('[multitask_dqn]\nvariant = "mcdqn"\ngames = ["Pong", "space-invaders"]\n'
                    'frames_per_game = "4M"\n')
    cfg = MultitaskDQNConfig.from_toml(path)
    assert (cfg.variant, cfg.game_list, cfg.frames_per_game) == ("mcdqn", ["pong", "space_invaders"], 4_000_000)
    with pytest.raises(ValueError, match=r"variant must be one of \('mdqn', 'mcdqn'\), got 'mddqn'"):
        MultitaskDQNConfig(variant="mddqn")
    with pytest.raises(ValueError, match="games must be distinct games .*, got 'pong,boxing,Pong'"):
        MultitaskDQNConfig(games="pong,boxing,Pong")
    with pytest.raises(ValueError, match="games must be one or more game names"):
        MultitaskDQNConfig(games=" , ")
    with pytest.raises(ValueError, match="frames_per_game must be a count like 10M or 250k, got 'ten'"):
        MultitaskDQNConfig.from_dict({"frames_per_game": "ten"})
    with pytest.raises(ValueError, match="envs_per_game must be >= 1, got 0"):
        MultitaskDQNConfig(envs_per_game=0)
    with pytest.raises(ValueError, match=r"batch_size must be a multiple of the number of games \(3\)"):
        MultitaskDQNConfig(games="pong,boxing,enduro", batch_sampling="per_game")
    with pytest.raises(ValueError, match=r"replay_capacity must be >= number of games x batch_size \(8 x 32\)"):
        MultitaskDQNConfig(replay_capacity=100)


@pytest.mark.parametrize("args,message", [
    (["--games", "pong,pongg"], "unknown game 'pongg'; valid names are: "),
    (["--variant", "mxdqn"], "invalid choice: 'mxdqn'"),
    (["--games", "pong,pong"], "games must be distinct games"),
    (["--frames-per-game", "lots"], "frames_per_game must be a count like 10M or 250k, got 'lots'"),
    (["--batch-size", "-3"], "batch_size must be >= 1, got -3"),
])
def test_command_line_errors_name_the_argument(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train-multitask-dqn", *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


# -- short real runs ---------------------------------------------------------------------------------------
def test_mdqn_run_keeps_the_update_ratio_and_checkpoints_round_trip(tmp_path):
    cfg = MultitaskDQNConfig(variant="mdqn", games="pong,breakout", frames_per_game=2_000,
                             out=str(tmp_path / "mdqn"), **TINY)
    summary = train_multitask_dqn(cfg)
    # 2 games in lockstep: 500 agent steps each; updates from 100 steps of each game, one per 4 steps of all
    assert summary["frames_per_game"] == 2_000 and summary["agent_steps"] == 1_000
    assert summary["updates"] == (1_000 - 200 + 2) // 4 and summary["epochs"] == 2
    network, meta = load_multitask_dqn(summary["checkpoint"], variant="mdqn", games=["pong", "breakout"])
    assert meta["actions"] == [PONG_ACTIONS, BREAKOUT_ACTIONS] and meta["architecture"] == "nature"
    payload = load_checkpoint(summary["checkpoint"])
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, payload["online"][name])
    assert q_values(network, torch.zeros(2, 4, 84, 84, dtype=torch.uint8), torch.tensor([0, 1])).shape == (2, 18)
    tests = read_csv(tmp_path / "mdqn" / "test.csv")
    assert [(r["epoch"], r["game"], r["policy"]) for r in tests] == [
        ("1", "pong", "mdqn"), ("1", "breakout", "mdqn"), ("2", "pong", "mdqn"), ("2", "breakout", "mdqn")]
    assert all(int(r["test_frames"]) == 400 for r in tests)
    progress = read_csv(tmp_path / "mdqn" / "progress.csv")
    assert [int(r["frames"]) for r in progress] == [500, 1_000, 1_500, 2_000]
    assert math.isfinite(float(progress[-1]["loss"]))
    assert read_run_info(tmp_path / "mdqn")["kind"] == "mdqn"
    with pytest.raises(ValueError, match="was made for kind='mdqn', not kind='mcdqn'"):
        load_multitask_dqn(summary["checkpoint"], variant="mcdqn")
    with pytest.raises(ValueError, match="was made for kind='mdqn', not kind='mcdqn'"):
        train_multitask_dqn(cfg.replace(variant="mcdqn"), resume=True)
    with pytest.raises(ValueError, match=r"was made for games=\['pong', 'breakout'\], not games=\['pong'"):
        train_multitask_dqn(cfg.replace(games="pong,boxing"), resume=True)


def cli(*args, timeout=240):
    return cli_summary(*args, timeout=timeout, OMP_NUM_THREADS="1")


def test_mcdqn_cli_smoke_run_then_resume(tmp_path):
    out = tmp_path / "mcdqn"
    options = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if not isinstance(v, bool)]
    summary = cli("train-multitask-dqn", "--variant", "mcdqn", "--games", "pong,breakout", "--batch-sampling",
                  "per_game", "--frames-per-game", "2k", "--double-dqn", "--batch-size", "8", "--out", out,
                  "--no-progress",
                  "--no-tensorboard", *options)
    assert summary["variant"] == "mcdqn" and summary["games"] == ["pong", "breakout"]
    assert summary["frames_per_game"] == 2_000 and summary["updates"] == (1_000 - 200 + 2) // 4
    assert set(summary["last_test"]["games"]) == {"pong", "breakout"}
    payload = load_checkpoint(out / "checkpoint.pt", expect={"kind": "mcdqn", "games": ["pong", "breakout"]})
    assert payload["meta"]["actions"] == [PONG_ACTIONS, BREAKOUT_ACTIONS]
    assert payload["config"]["batch_sampling"] == "per_game" and payload["config"]["double_dqn"]

    # settings come from the checkpoint; the resumed run refills 100 transitions per game, then updates again
    resumed = cli("train-multitask-dqn", "--out", out, "--resume", "--frames-per-game", "3k")
    assert resumed["frames_per_game"] == 3_000 and resumed["resumes"] == 1 and resumed["epochs"] == 3
    assert summary["updates"] < resumed["updates"] <= summary["updates"] + 500 // 4
    network, meta = load_multitask_dqn(out / "checkpoint.pt", variant="mcdqn")
    assert isinstance(network, MultiHeadDQN) and network.num_games == 2
    tests = read_csv(out / "test.csv")
    assert {r["policy"] for r in tests} == {"mcdqn"} and len(tests) == 6
    frames = [int(r["frames"]) for r in read_csv(out / "progress.csv")]
    assert frames == sorted(frames) and frames[-1] == 3_000
