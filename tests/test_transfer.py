"""Transfer from an AMN: what the initial DQN keeps of the AMN, the actions it sends, short runs, resume,
the command line and its errors. AMN checkpoints are fixtures written with save_checkpoint (the distill
trainer's contract: meta kind "amn", 18 outputs, state "online" and "feature_heads")."""


import numpy as np
import pytest
import torch
from torch import nn

from actormimic_fast import MultiGameEnvPool
from actormimic_fast.run import context as run_context
from actormimic_fast.agents.dqn import train_expert
from actormimic_fast.agents.transfer import init_from_amn, minimal_action_set, train_transfer
from actormimic_fast.files.checkpoint import load_checkpoint, save_checkpoint
from actormimic_fast.cli import main
from actormimic_fast.agents.dqn import DQNConfig
from actormimic_fast.agents.transfer import TransferConfig
from actormimic_fast.run.evaluation import greedy_act, masked_greedy_act
from actormimic_fast.files.run_info import read_run_info
from actormimic_fast.files.run_logs import read_csv
from actormimic_fast.models.networks import build_network
from cli_runner import cli_summary as cli

torch.set_num_threads(1)
BREAKOUT = [0, 1, 3, 4]                       # NOOP, FIRE, RIGHT, LEFT
PONG = [0, 1, 3, 4, 11, 12]
TINY = dict(replay_capacity=5_000, learning_starts=200, target_update=100, epsilon_decay_frames=2_000,
            test_epoch_frames=0, log_every=1_000, checkpoint_every=1_000, device="cpu", progress=False,
            tensorboard=False, torch_threads=1)
TINY_ARGS = ["--replay-capacity", "5k", "--learning-starts", "200", "--target-update", "100",
             "--epsilon-decay-frames", "2k", "--log-every", "1k", "--device", "cpu", "--torch-threads", "1",
             "--no-progress", "--no-tensorboard"]


def make_amn(path, architecture="nature", beta=0.0, seed=0, illegal_bias=0.0):
    """An AMN checkpoint as distill writes it; illegal_bias is added to the outputs Breakout cannot play,
    so that an unmasked argmax would pick them."""
    torch.manual_seed(seed)
    amn = build_network(architecture, 18)
    with torch.no_grad():
        amn.head.bias[[a for a in range(18) if a not in BREAKOUT]] += illegal_bias
    heads = {"pong": nn.Linear(amn.feature_dim, 512).state_dict()} if beta > 0 else {}
    meta = {"kind": "amn", "games": ["pong", "boxing"], "actions": [PONG, list(range(18))],
            "architecture": architecture, "num_actions": 18, "beta": beta}
    save_checkpoint(path, {"online": amn.state_dict(), "feature_heads": heads, "optimizer": {}}, meta)
    return amn.eval()


def transferred(state, architecture="nature", num_actions=len(BREAKOUT)):
    network = build_network(architecture, num_actions)
    network.load_state_dict(state)
    return network.eval()


# -- the initial network -----------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["nature", "large"])
def test_masked_init_keeps_the_trunk_and_the_legal_output_rows(tmp_path, architecture):
    amn = make_amn(tmp_path / "amn.pt", architecture, beta=0.01)
    state, meta = init_from_amn(tmp_path / "amn.pt", BREAKOUT, output="masked", seed=3)
    assert meta["architecture"] == architecture and meta["beta"] == 0.01
    network = transferred(state, architecture)
    trunk = dict(amn.trunk.named_parameters())
    assert len(trunk) == (8 if architecture == "nature" else 12)
    for name, parameter in network.trunk.named_parameters():
        assert torch.equal(parameter, trunk[name]), name
    assert torch.equal(network.head.weight, amn.head.weight[BREAKOUT])
    assert torch.equal(network.head.bias, amn.head.bias[BREAKOUT])
    if architecture == "nature":   # Q(s, i) is the AMN's output for full action BREAKOUT[i]
        obs = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
        with torch.no_grad():
            torch.testing.assert_close(network(obs), amn(obs)[:, BREAKOUT])


def test_fresh_output_is_the_random_runs_head_and_leaves_the_rng_alone(tmp_path):
    amn = make_amn(tmp_path / "amn.pt")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    state, _ = init_from_amn(tmp_path / "amn.pt", BREAKOUT, output="fresh", seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(3)                      # how train_expert seeds a random-init network
    random_init = build_network("nature", len(BREAKOUT))
    network = transferred(state)
    assert torch.equal(network.head.weight, random_init.head.weight)
    assert torch.equal(network.head.bias, random_init.head.bias)
    assert not torch.equal(network.head.weight, amn.head.weight[BREAKOUT])
    for (name, parameter), amn_parameter in zip(network.trunk.named_parameters(), amn.trunk.parameters()):
        assert torch.equal(parameter, amn_parameter), name


def test_greedy_actions_are_the_masked_amns_and_never_illegal(tmp_path):
    amn = make_amn(tmp_path / "amn.pt", illegal_bias=1e3)
    state, _ = init_from_amn(tmp_path / "amn.pt", minimal_action_set("breakout"))
    obs = torch.randint(0, 256, (16, 4, 84, 84), dtype=torch.uint8)
    game_ids = torch.zeros(16, dtype=torch.int64)
    mask = np.zeros((1, 18), bool)
    mask[0, BREAKOUT] = True
    with torch.no_grad():
        assert not np.isin(amn(obs).argmax(1).numpy(), BREAKOUT).any()   # unmasked, it would play illegal actions
    actions = greedy_act(transferred(state), BREAKOUT)(obs, game_ids)
    assert np.isin(actions, BREAKOUT).all()
    np.testing.assert_array_equal(actions, masked_greedy_act(amn, mask)(obs, game_ids))


# -- short runs --------------------------------------------------------------------------------------
class RecordingPool(MultiGameEnvPool):
    """The trainer's pool, recording every (observation, full action) pair it is sent, by whichever
    path the run loop takes (reset/step, or send/recv when updates overlap the envs)."""

    sent: list = []

    def _seen(self, out):
        self._obs = {**getattr(self, "_obs", {}), **{int(e): out.obs[i].copy() for i, e in enumerate(out.env_id)}}
        return out

    def reset(self):
        return self._seen(super().reset())

    def recv(self):
        return self._seen(super().recv())

    def step(self, actions):
        RecordingPool.sent += [(self._obs[e], int(a)) for e, a in enumerate(np.asarray(actions))]
        return self._seen(super().step(actions))

    def send(self, actions, env_ids):
        RecordingPool.sent += [(self._obs[int(e)], int(a)) for a, e in zip(actions, env_ids)]
        super().send(actions, env_ids)


def test_run_from_amn_acts_as_the_masked_amn_until_learning_starts(tmp_path, monkeypatch):
    amn = make_amn(tmp_path / "amn.pt", beta=0.01, illegal_bias=1e3)
    monkeypatch.setattr(run_context, "MultiGameEnvPool", RecordingPool)   # the pool every trainer makes
    monkeypatch.setattr(RecordingPool, "sent", [])
    cfg = TransferConfig(game="breakout", init=str(tmp_path / "amn.pt"), frames_per_game=1_600, epsilon_start=0.0,
                         epsilon_end=0.0, out=str(tmp_path / "run"), **{**TINY, "target_update": 10_000})
    summary = train_transfer(cfg)
    assert summary["init"] == "amn-feature" and summary["frames"] == 1_600 and summary["updates"] == 50
    obs = torch.from_numpy(np.stack([o for o, _ in RecordingPool.sent]))
    actions = np.array([a for _, a in RecordingPool.sent])
    assert len(actions) == 400 and np.isin(actions, BREAKOUT).all()
    mask = np.zeros((1, 18), bool)
    mask[0, BREAKOUT] = True
    expected = masked_greedy_act(amn, mask)(obs[:200], torch.zeros(200, dtype=torch.int64))
    np.testing.assert_array_equal(actions[:200], expected)      # epsilon 0, no update yet: the AMN's choices

    run_info = read_run_info(tmp_path / "run")
    assert run_info["kind"] == "transfer" and run_info["games"] == ["breakout"]
    assert run_info["init"] == "amn-feature" and run_info["output"] == "masked" and run_info["beta"] == 0.01
    assert run_info["source"] == str((tmp_path / "amn.pt").resolve()) and run_info["architecture"] == "nature"
    payload = load_checkpoint(tmp_path / "run" / "checkpoint.pt", expect={"kind": "expert", "game": "breakout"})
    assert payload["meta"]["actions"] == BREAKOUT and payload["meta"]["run"]["init"] == "amn-feature"
    assert payload["config"]["init"] == run_info["source"] and payload["config"]["output"] == "masked"
    initial, _ = init_from_amn(tmp_path / "amn.pt", BREAKOUT)
    for name, tensor in initial.items():      # 50 updates < target_update: the target is still the AMN's
        assert torch.equal(payload["target"][name], tensor), name
    assert not torch.equal(payload["online"]["head.weight"], initial["head.weight"])
    with pytest.raises(ValueError, match=r"'output': 'masked'.*not run=.*'output': 'fresh'"):
        train_transfer(cfg.replace(output="fresh"), resume=True)
    with pytest.raises(ValueError, match=r"'init': 'amn-feature'.*not run=.*'init': 'random'"):
        train_transfer(cfg.replace(init="random"), resume=True)


def test_initial_weights_never_replace_a_resumed_checkpoint(tmp_path):
    cfg = DQNConfig(game="breakout", frames_per_game=1_200, out=str(tmp_path / "run"), **TINY)
    first, second = build_network("nature", 4).state_dict(), build_network("nature", 4).state_dict()
    run_info = {"kind": "transfer", "init": "amn-policy", "source": "a.pt", "output": "masked"}
    train_expert(cfg, initial_online=first, run_info=run_info)
    trained = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["online"]
    train_expert(cfg, resume=True, initial_online=second, run_info=run_info)   # nothing left to train
    resumed = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert resumed["counters"]["resumes"] == 1
    for name, tensor in trained.items():
        assert torch.equal(resumed["online"][name], tensor), name
    with pytest.raises(ValueError, match=r"was made for run=\{.*'output': 'masked'.*\}, not run=\{.*'fresh'"):
        train_expert(cfg, resume=True, run_info={**run_info, "output": "fresh"})
    with pytest.raises(ValueError, match=r"was made for run=\{'kind': 'transfer'.*not run=\{'kind': 'expert'\}"):
        train_expert(cfg, resume=True)       # a transfer run cannot be continued as an expert


# -- command line ------------------------------------------------------------------------------------
def test_transfer_command_from_amn_resumes_without_init_and_from_random(tmp_path):
    make_amn(tmp_path / "amn.pt")
    out = tmp_path / "breakout_amn"
    summary = cli("transfer", "--init", tmp_path / "amn.pt", "--game", "breakout", "--frames", "2k", "--out", out,
                  "--train-epoch-frames", "1k", "--test-epoch-frames", "400", *TINY_ARGS)
    assert summary["init"] == "amn-policy" and summary["frames"] == 2_000 and summary["epochs"] == 2
    assert [r["policy"] for r in read_csv(out / "test.csv")] == ["dqn", "dqn"]
    summary = cli("transfer", "--out", out, "--resume", "--frames", "3k", "--no-progress")   # no --init
    assert summary["init"] == "amn-policy" and summary["frames"] == 3_000 and summary["resumes"] == 1
    assert read_run_info(out)["init"] == "amn-policy"

    out = tmp_path / "breakout_random"
    summary = cli("transfer", "--init", "random", "--game", "breakout", "--frames", "1200", "--out", out,
                  "--test-epoch-frames", "0", *TINY_ARGS)
    assert summary["init"] == "random" and summary["frames"] == 1_200
    run_info = read_run_info(out)
    assert (run_info["init"], run_info["source"], run_info["architecture"]) == ("random", None, "nature")


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_amn(tmp_path / "amn.pt")
    expert = build_network("nature", 4)
    save_checkpoint(tmp_path / "expert.pt", {"online": expert.state_dict()},
                    {"kind": "expert", "game": "breakout", "actions": BREAKOUT, "architecture": "nature",
                     "num_actions": 4})
    return tmp_path


@pytest.mark.parametrize("args,message", [
    ([], "init must be 'random' or the path of an AMN checkpoint, got ''"),
    (["--init", "missing.pt"], "does not exist"),
    (["--init", "expert.pt"], "was made for kind='expert', not kind='amn'"),
    (["--init", "amn.pt", "--output", "new"], "invalid choice: 'new'"),
    (["--init", "amn.pt", "--architecture", "large"], "architecture='large', but the AMN checkpoint"),
    (["--init", "amn.pt", "--game", "breakoutt"], "unknown game 'breakoutt'"),
])
def test_clear_errors(checkpoints, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--game", "breakout", "--out", str(checkpoints / "run"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (checkpoints / "run").exists()
