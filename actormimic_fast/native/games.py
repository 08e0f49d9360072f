"""Game names, ROM lookup and the paper's game lists.

Names follow ale-py's ROM ids (snake_case, e.g. ``space_invaders``); ROM files come from the pinned
ale-py wheel (``ale_py.roms``), so no ROM is stored here.
"""

from __future__ import annotations

from functools import lru_cache

# Actor-Mimic, Table 1 (multitask) and section 5 / Table 2 (transfer).
PAPER_MULTITASK_GAMES = ("atlantis", "boxing", "breakout", "crazy_climber", "enduro", "pong", "seaquest",
                         "space_invaders")
PAPER_TRANSFER_SOURCE_GAMES = ("assault", "atlantis", "beam_rider", "boxing", "crazy_climber", "demon_attack",
                               "enduro", "fishing_derby", "kangaroo", "name_this_game", "pong", "seaquest",
                               "space_invaders")
PAPER_TRANSFER_TARGET_GAMES = ("breakout", "gopher", "krull", "road_runner", "robotank", "star_gunner",
                               "video_pinball")

# The full Atari action set; every game's actions are indices into it.
ACTION_MEANINGS = ("NOOP", "FIRE", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "DOWNRIGHT", "DOWNLEFT",
                   "UPFIRE", "RIGHTFIRE", "LEFTFIRE", "DOWNFIRE", "UPRIGHTFIRE", "UPLEFTFIRE", "DOWNRIGHTFIRE",
                   "DOWNLEFTFIRE")
NUM_ACTIONS = len(ACTION_MEANINGS)


@lru_cache(maxsize=1)
def available_games() -> tuple[str, ...]:
    """All game names whose ROM ships with the installed ale-py."""
    from ale_py import roms

    return tuple(sorted(roms.get_all_rom_ids()))


def canonical_name(game: str) -> str:
    """Accept 'SpaceInvaders', 'space-invaders' or 'space_invaders'; return the ROM id."""
    if not isinstance(game, str):
        raise TypeError(f"game names must be strings, got {game!r} of type {type(game).__name__}")
    name = game.strip()
    if any(c.isupper() for c in name[1:]) and "_" not in name:  # CamelCase -> snake_case
        name = "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))
    return name.lower().replace("-", "_").replace(" ", "_")


def rom_path(game: str) -> str:
    """Path of the game's ROM in the ale-py wheel; ValueError listing valid names for an unknown game."""
    from ale_py import roms

    name = canonical_name(game)
    if name not in available_games():
        raise ValueError(f"unknown game {game!r}; valid names are: {', '.join(available_games())}")
    return str(roms.get_rom_path(name))
