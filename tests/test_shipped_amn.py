"""The AMN shipped in experts/amn/ (ship-amn), when there is one: it loads through the normal loader, was
distilled from the experts shipped beside it (their files' SHA-256), and still acts like them: on each game,
on the states its expert reaches in the game recorded when it was shipped (replayed here on this CPU), its
greedy action is the expert's on at least the recorded threshold (the agreement then, less a margin)."""

import pytest

from actormimic_fast.agents.amn_shipping import AMN_FILE, amn_agreement, read_shipped_amn, sha256
from actormimic_fast.agents.distill import action_masks, load_amn
from actormimic_fast.agents.dqn import load_expert
from actormimic_fast.agents.shipping import EXPERT_FILE
from actormimic_fast.files.checkpoint import load_checkpoint

from cli_runner import ROOT

SHIPPED_AMN = ROOT / "experts" / "amn"
EXPERTS = ROOT / "experts" / "table1"
SHIPPED = [SHIPPED_AMN] if (SHIPPED_AMN / AMN_FILE).is_file() else []


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_the_shipped_amn_acts_like_the_shipped_experts_on_their_states(folder, one_torch_thread):
    shipped = read_shipped_amn(folder)
    network, meta = load_amn(folder / AMN_FILE)
    assert load_checkpoint(folder / AMN_FILE)["meta"]["weights"] in ("float16", "bfloat16")
    games = meta["games"]
    experts = []
    for game in games:
        path = EXPERTS / game / EXPERT_FILE
        assert path.is_file(), f"the AMN plays {game}, but no expert of it is shipped at {path}"
        assert sha256(path) == shipped["experts"][game]["sha256"], \
            f"{path} is not the expert this AMN was distilled from: distil and ship-amn again"
        experts.append(load_expert(path, game=game))
    settings = shipped["settings"]
    env = {"frame_skip": settings["frame_skip"], "noop_max": settings["noop_max"],
           "max_episode_frames": settings["max_episode_frames"]}
    first = shipped["check"][games[0]]
    measured = amn_agreement(network, action_masks(meta["actions"]), games, [n for n, _ in experts],
                             [m["actions"] for _, m in experts], first["frames"], first["seed"] - 13, env)
    for game in games:
        check = shipped["check"][game]
        assert measured[game]["agreement"] >= check["threshold"], \
            f"{game}: agreement {measured[game]['agreement']:.3f}; shipped {check['agreement']:.3f}"
