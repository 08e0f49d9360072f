"""The experts shipped in experts/table1/ (ship-expert): each loads through the normal loader for its game and
action set, and plays: its short greedy game (the one recorded when it was shipped, replayed here on this CPU)
reaches the threshold recorded then, halfway between its own reward and random play's best on that budget."""

from pathlib import Path

import pytest

from actormimic_fast.agents.dqn import load_expert
from actormimic_fast.agents.shipping import EXPERT_FILE, play_greedy, read_shipped
from actormimic_fast.files.checkpoint import load_checkpoint
from actormimic_fast.native.pool import MultiGameEnvPool
from actormimic_fast.report.tables import PAPER_DQN_MEAN

from cli_runner import ROOT

SHIPPED = ROOT / "experts" / "table1"
FOLDERS = sorted(p for p in SHIPPED.iterdir() if p.is_dir()) if SHIPPED.is_dir() else []
SIZE_LIMIT = 40 * 2 ** 20


def test_the_shipped_experts_are_table_1_games_and_fit_the_size_limit():
    assert FOLDERS, f"no shipped experts under {SHIPPED}"
    assert {p.name for p in FOLDERS} <= set(PAPER_DQN_MEAN), "a folder is named after its Table-1 game"
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size < SIZE_LIMIT, f"experts/table1 holds {size / 2 ** 20:.1f} MB (limit 40 MB)"


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_a_shipped_expert_loads_for_its_game_and_plays_above_random(folder: Path, one_torch_thread):
    game = folder.name
    shipped = read_shipped(folder)
    network, meta = load_expert(folder / EXPERT_FILE, game=game)       # the game is checked on load
    assert load_checkpoint(folder / EXPERT_FILE)["meta"]["weights"] in ("float16", "bfloat16")
    pool = MultiGameEnvPool([game])
    try:
        assert meta["actions"] == pool.legal_actions(game).tolist()     # the action set the emulator has
    finally:
        pool.close()
    check, settings = shipped["check"], shipped["settings"]
    env = {"frame_skip": settings["frame_skip"], "noop_max": settings["noop_max"],
           "max_episode_frames": settings["max_episode_frames"]}
    reward = play_greedy(network, game, meta["actions"], check["frames"], env, check["seed"])
    if check["threshold"] is None:
        pytest.skip(f"{check['frames']} frames of greedy {game} could not tell this expert from random play "
                    f"when it was shipped (reward {check['reward']} against random {check['random_rewards']})")
    assert reward >= check["threshold"], (f"{game}: the greedy game got {reward}; shipped it got {check['reward']}, "
                                          f"random play at most {max(check['random_rewards'])}")
