"""`make demo`: the whole Actor-Mimic pipeline, small enough for a 2-core laptop-class CPU.

    python -m actormimic_fast.apps.demo [--out demo_out] [--quick]

1. trains an expert DQN for each demo game (train-expert, tiny budgets),
2. distils the experts into one multitask Actor-Mimic Network (distill), testing the AMN and every expert
   on the same frame budget after each epoch and measuring policy agreement,
3. writes the report (report): Table 1 as Markdown and CSV, printed, and the learning curves as PNG.

The budgets are about 1/300 of the paper's, so the experts barely beat random play; what the demo shows
is the pipeline working end to end and the AMN learning to act like its experts (the agreement column).
``--quick`` (or ACTORMIMIC_DEMO_QUICK=1) shrinks every budget so the suite can run the demo in CI.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

DEMO_GAMES = ("breakout", "space_invaders")


@dataclass(frozen=True)
class DemoBudget:
    """Frame budgets (emulator frames) of one demo size and the wall time they took on a 2-core CPU."""

    expert_frames: int              # per expert
    expert_learning_starts: int     # agent steps
    distill_frames_per_game: int
    distill_learning_starts: int    # steps (every game's envs stepped once)
    distill_epoch_frames: int       # per game; a test epoch follows each
    test_frames: int                # per game and test epoch, for the AMN and for the experts
    minutes: float                  # measured on the 2-core development machine (AMD EPYC VM)


BUDGETS = {
    "default": DemoBudget(expert_frames=80_000, expert_learning_starts=5_000, distill_frames_per_game=75_000,
                          distill_learning_starts=2_000, distill_epoch_frames=25_000, test_frames=10_000, minutes=11),
    "quick": DemoBudget(expert_frames=3_000, expert_learning_starts=250, distill_frames_per_game=3_000,
                        distill_learning_starts=100, distill_epoch_frames=1_500, test_frames=500, minutes=1),
}


def expert_config(game: str, budget: DemoBudget, out: Path, progress: bool):
    """The faithful expert settings, shrunk to the budget: replay, schedules and target period scale down;
    Adam (lr 1e-4, as CleanRL) instead of RMSProp because it learns faster in a short run."""
    from ..agents.dqn import DQNConfig

    return DQNConfig(game=game, frames_per_game=budget.expert_frames, envs_per_game=4, replay_capacity=50_000,
                     learning_starts=budget.expert_learning_starts, target_update=1_000,
                     epsilon_decay_frames=budget.expert_frames // 2, optimizer="adam", lr=1e-4,
                     train_epoch_frames=budget.expert_frames, test_epoch_frames=0, log_every=budget.expert_frames // 20,
                     checkpoint_every=budget.expert_frames, out=str(out), device="cpu", progress=progress,
                     tensorboard=False)


def distill_config(experts: list[Path], budget: DemoBudget, out: Path, progress: bool):
    """The paper's distillation settings (tau 1, epsilon 0.1, 8 samples per game, Adam), budgets shrunk."""
    from ..agents.distill import DistillConfig

    return DistillConfig(experts=",".join(str(p) for p in experts), frames_per_game=budget.distill_frames_per_game,
                         replay_capacity=20_000, learning_starts=budget.distill_learning_starts,
                         train_epoch_frames=budget.distill_epoch_frames, test_epoch_frames=budget.test_frames,
                         log_every=budget.distill_epoch_frames // 5, checkpoint_every=budget.distill_frames_per_game,
                         out=str(out), device="cpu", progress=progress, tensorboard=False)


def run_demo(out: Path, budget: DemoBudget, games=DEMO_GAMES, progress: bool = True) -> str:
    """Experts, distillation, report; returns Table 1's Markdown. Everything goes under out/."""
    from ..agents.distill import distill
    from ..agents.dqn import train_expert
    from ..files.checkpoint import CHECKPOINT_NAME
    from ..report import load_runs, write_report

    start = time.perf_counter()

    def stage(text: str) -> None:
        print(f"\n[{(time.perf_counter() - start) / 60:4.1f} min] {text}", flush=True)

    experts = []
    for i, game in enumerate(games, 1):
        stage(f"Step 1/3, expert {i}/{len(games)}: DQN on {game} for {budget.expert_frames:,} frames")
        summary = train_expert(expert_config(game, budget, out / "experts" / game, progress))
        experts.append(out / "experts" / game / CHECKPOINT_NAME)
        print(f"  {game}: {summary['updates']:,} updates, {summary['episodes']} training episodes, "
              f"recent return {summary['recent_return']:.1f}", flush=True)

    stage(f"Step 2/3: distilling {len(games)} experts into one AMN for {budget.distill_frames_per_game:,} frames "
          f"per game (a test epoch of {budget.test_frames:,} frames per game every "
          f"{budget.distill_epoch_frames:,})")
    summary = distill(distill_config(experts, budget, out / "amn", progress))
    print(f"  {summary['updates']:,} updates of {len(games)} x 8 samples", flush=True)

    stage("Step 3/3: report")
    markdown, files = write_report(load_runs([out / "amn"]), out / "report")
    print(markdown, end="")
    print("Wrote " + ", ".join(str(f) for f in files))
    stage("Done.")
    return markdown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("ACTORMIMIC_DEMO_QUICK") == "1",
                        help="tiny budgets (about a minute; what CI runs); also ACTORMIMIC_DEMO_QUICK=1")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out must be a folder, got {str(args.out)!r} (a file)")
    budget = BUDGETS["quick" if args.quick else "default"]
    print(f"Actor-Mimic demo on {', '.join(DEMO_GAMES)}: expert DQNs ({budget.expert_frames:,} frames each), "
          f"distillation into one AMN ({budget.distill_frames_per_game:,} frames per game), per-game tests "
          f"and the report, into {args.out}/. About {budget.minutes:g} min on 2 CPU cores.", flush=True)
    run_demo(args.out, budget, progress=args.progress)


if __name__ == "__main__":
    main()
