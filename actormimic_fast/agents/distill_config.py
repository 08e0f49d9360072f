"""Actor-Mimic distillation settings: one dataclass, the paper's values by default (SPEC section 2).

Units. Frame counts (``frames_per_game``, ``train_epoch_frames``, ``test_epoch_frames``, ``checkpoint_every``,
``log_every``) are emulator frames *per game*, summed over every process under torchrun: the paper's
"25 million frames per source game" is ``frames_per_game = 25M``. ``learning_starts`` and ``update_every``
count *steps*: one step plays one agent step in every env of the pool (the authors' lockstep loop, one env
per game); with ``envs_per_game = E`` a step is E agent steps per game and the update credit grows by E,
so the updates per agent step of a game stay ``1 / update_every`` whatever E is.

    cfg = DistillConfig.from_toml("amn.toml", overrides={"experts": "runs/pong/checkpoint.pt,runs/boxing/checkpoint.pt"})
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings, setting as _f


@dataclass
class DistillConfig(Settings):
    """Every setting of an Actor-Mimic run; defaults follow the paper (values of the authors' code noted)."""

    # -- what and how long ----------------------------------------------------------------------
    experts: str = _f("", "expert checkpoints (from train-expert), comma-separated, one per game; the games "
                          "and their order come from the checkpoints")
    games: str = _f("", "optional comma-separated game list; if given it must name exactly the experts' games")
    architecture: str = _f("nature", "AMN network: nature (the experts', multitask section 5.1) or large "
                           "(appendix D, for transfer)", choices=("nature", "large"))
    frames_per_game: int = _f(25_000_000, "training length in emulator frames per game (Table 1: 100 epochs = "
                              "25M; the transfer AMNs: 4M)", count=True)
    seed: int = _f(0, "seed of the envs, the AMN initialisation, exploration and replay sampling")
    device: str = _f("auto", "torch device: auto (cuda when available; cuda:LOCAL_RANK under torchrun), cpu, cuda")
    # -- environment ----------------------------------------------------------------------------
    envs_per_game: int = _f(1, "envs of each game in the pool (the authors' code: 1, all games in lockstep)")
    env_threads: int = _f(0, "pool worker threads (0: one per env, at most the CPU count)")
    frame_skip: int = _f(4, "emulator frames per agent step (max over the last two)")
    noop_max: int = _f(30, "up to this many random no-op frames at every episode start")
    max_episode_frames: int = _f(108_000, "episode cap in emulator frames (30 minutes)", count=True)
    # -- Actor-Mimic objective -------------------------------------------------------------------
    tau: float = _f(1.0, "softmax temperature of the expert policy softmax(Q / tau)")
    beta: float = _f(0.0, "feature-regression weight (eq. 6): 0 for multitask (AMN-policy), 0.01 for AMN-feature")
    loss_reduction: str = _f("sum", "sum over the minibatch (the authors' code backpropagates every sample's "
                             "gradient unscaled) or mean", choices=("sum", "mean"))
    actor: str = _f("amn", "who plays while training: amn (the paper's choice) or expert",
                    choices=("amn", "expert"))
    epsilon: float = _f(0.1, "constant exploration epsilon, random actions over the game's legal set")
    # -- replay and learning ----------------------------------------------------------------------
    replay_capacity: int = _f(100_000, "replay memory per game, in transitions", count=True)
    per_game: int = _f(8, "minibatch rows per game (a minibatch holds per_game x games rows)")
    update_every: int = _f(4, "steps per gradient update (a step = every env stepped once)")
    learning_starts: int = _f(10_000, "steps before the first update", count=True)
    optimizer: str = _f("adam", "adam (the paper: torch.optim.Adam) or authors_adam (the authors' code: "
                        "beta1 = beta2 = 0.95, eps 0.01 inside the sqrt, no bias correction)",
                        choices=("adam", "authors_adam"))
    lr: float = _f(2.5e-4, "learning rate (the authors' code: 2.5e-4)")
    adam_eps: float = _f(1e-8, "torch Adam epsilon (used with optimizer=adam)")
    amp: bool = _f(False, "bfloat16 autocast for the forward passes (meant for GPUs)")
    torch_threads: int = _f(0, "torch intra-op threads on CPU (0: the cores the pool's threads leave free, at least 1)")
    # -- evaluation (the paper's protocol) --------------------------------------------------------
    train_epoch_frames: int = _f(250_000, "emulator frames per game per training epoch; a test epoch follows each",
                                 count=True)
    test_epoch_frames: int = _f(125_000, "emulator frames per game per test epoch (0: no test epochs)", count=True)
    test_epsilon: float = _f(0.05, "epsilon during test epochs")
    test_envs: int = _f(1, "envs per game playing each test epoch (they share its frame budget)")
    test_experts: bool = _f(True, "also test every expert once (first test epoch, same budget): test.csv rows "
                            "with policy=expert")
    # -- output ---------------------------------------------------------------------------------
    out: str = _f("runs/amn", "output folder: checkpoint.pt, CSV files, run.json, TensorBoard events")
    checkpoint_every: int = _f(1_000_000, "emulator frames per game between checkpoints (one is also written "
                               "at the end)", count=True)
    save_replay: bool = _f(False, "put the replay memories in the checkpoint (about 7 KB per transition)")
    log_every: int = _f(10_000, "emulator frames per game between progress rows", count=True)
    progress: bool = _f(True, "show a progress bar (only on a terminal)")
    tensorboard: bool = _f(True, "write TensorBoard event files")

    TOML_TABLE = "distill"

    def expert_paths(self) -> list[str]:
        return [p.strip() for p in self.experts.split(",") if p.strip()]

    def game_list(self) -> list[str]:
        return [g.strip() for g in self.games.split(",") if g.strip()]

    def validate(self) -> None:
        super().validate()
        need = self.need
        for name in ("frames_per_game", "envs_per_game", "frame_skip", "replay_capacity", "per_game",
                     "update_every", "train_epoch_frames", "test_envs", "checkpoint_every", "log_every"):
            need(getattr(self, name) >= 1, name, ">= 1")
        for name in ("seed", "env_threads", "noop_max", "max_episode_frames", "learning_starts",
                     "test_epoch_frames", "torch_threads"):
            need(getattr(self, name) >= 0, name, ">= 0")
        for name in ("epsilon", "test_epsilon"):
            need(0 <= getattr(self, name) <= 1, name, "in [0, 1]")
        for name in ("tau", "lr", "adam_eps"):
            need(getattr(self, name) > 0, name, "> 0")
        need(self.beta >= 0, "beta", ">= 0")
        need(self.per_game <= self.replay_capacity, "per_game", f"<= replay_capacity ({self.replay_capacity})")
