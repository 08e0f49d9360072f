"""`make demo`: Actor-Mimic on the experts this package trained and ships, small enough for a 2-core CPU.

    python -m actormimic_fast.apps.demo [--out demo_out] [--experts experts/table1] [--quick]

1. distils the shipped experts (experts/table1/<game>/expert.pt: PQN experts trained on a 2-core CPU, scores in
   the README) into one multitask Actor-Mimic Network (distill, the paper's settings), testing the AMN after
   each epoch, and every expert once, on the same frame budget, with the AMN's policy agreement,
2. writes the report (report): Table 1 as Markdown and CSV, printed, and the learning curves as PNG; then
   the shipped AMN's own Table 1 (experts/amn, ship-amn: the full run), when one is shipped,
3. films the distilled AMN playing every game at once (play): one grid GIF, a tile per game.

The budget is 1/80 to 1/330 of the paper's 25M frames per game (2 to 8 experts), so the AMN is far from its experts' play; what
the demo shows is the AMN learning to act like experts that do play (the agreement column), on every game at
once. ``--quick`` (or ACTORMIMIC_DEMO_QUICK=1) shrinks every budget so the suite can run the demo in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

SHIPPED_EXPERTS = Path(__file__).resolve().parents[2] / "experts" / "table1"    # in a clone of the repository
SHIPPED_AMN = SHIPPED_EXPERTS.parent / "amn"                                    # ship-amn's, when there is one
VIDEO = "amn_playing.gif"


@dataclass(frozen=True)
class DemoBudget:
    """Frame budgets (emulator frames) of one demo size and the wall time they took on 2 cores. The
    distillation's frames are shared among the games, so that the demo's length depends little on how many
    experts are shipped; every game is tested for test_frames after each of the `epochs` (and its expert once)."""

    distill_frames: int             # summed over the games
    distill_learning_starts: int    # steps (every game's envs stepped once)
    epochs: int                     # training epochs; a test epoch follows each
    test_frames: int                # per game and test epoch, for the AMN and (once) for the experts
    video_frames: int               # of each game in the grid video
    minutes: str                    # measured on the 2-core development machine (AMD EPYC VM)

    def frames_per_game(self, games: int) -> int:
        return self.distill_frames // games // self.epochs * self.epochs


BUDGETS = {
    "default": DemoBudget(distill_frames=600_000, distill_learning_starts=2_000, epochs=3, test_frames=20_000,
                          video_frames=4_000, minutes="9-14 min (2-8 games)"),
    "quick": DemoBudget(distill_frames=6_000, distill_learning_starts=100, epochs=2, test_frames=500,
                        video_frames=200, minutes="1 min"),
}


def shipped_experts(folder: Path) -> list[Path]:
    """The expert.pt of every shipped expert under folder (one sub-folder per game), in game order;
    ValueError naming the folder when it holds none."""
    from ..agents.shipping import EXPERT_FILE

    found = sorted(p / EXPERT_FILE for p in Path(folder).iterdir() if (p / EXPERT_FILE).is_file()) \
        if Path(folder).is_dir() else []
    if not found:
        raise ValueError(f"--experts must be a folder of shipped experts (<game>/{EXPERT_FILE}), got "
                         f"{str(folder)!r}: none there (run the demo from a clone of the repository, or ship "
                         f"experts with `actormimic-fast ship-expert`)")
    return found


def distill_config(experts: list[Path], budget: DemoBudget, out: Path, progress: bool):
    """The paper's distillation settings (tau 1, epsilon 0.1, 8 samples per game, Adam), budgets shrunk."""
    from ..agents.distill import DistillConfig

    frames = budget.frames_per_game(len(experts))
    return DistillConfig(experts=",".join(str(p) for p in experts), frames_per_game=frames,
                         replay_capacity=50_000, learning_starts=budget.distill_learning_starts,
                         train_epoch_frames=frames // budget.epochs, test_epoch_frames=budget.test_frames,
                         log_every=frames // budget.epochs // 5, checkpoint_every=frames, out=str(out),
                         device="cpu", progress=progress, tensorboard=False)


def run_demo(out: Path, budget: DemoBudget, experts_folder: Path = SHIPPED_EXPERTS, progress: bool = True,
             shipped_amn: Path = SHIPPED_AMN) -> str:
    """Distillation of the shipped experts, report (and the shipped AMN's, when shipped_amn holds one), grid
    video; returns Table 1's Markdown. Output under out/."""
    from ..agents.amn_shipping import AMN_FILE
    from ..agents.distill import distill
    from ..agents.shipping import read_shipped
    from ..cli import main as cli
    from ..files.checkpoint import CHECKPOINT_NAME
    from ..report import load_runs, write_report

    start = time.perf_counter()

    def stage(text: str) -> None:
        print(f"\n[{(time.perf_counter() - start) / 60:4.1f} min] {text}", flush=True)

    experts = shipped_experts(experts_folder)
    print("The shipped experts (test mean of their last 3 test epochs when shipped):")
    for path in experts:
        shipped = read_shipped(path.parent)
        print(f"  {path.parent.name:>15}: {shipped['test']['mean_last_3']:8.1f} after {shipped['frames'] / 1e6:.1f}M "
              f"frames ({shipped['algorithm']}, {path})")

    games = [p.parent.name for p in experts]
    frames = budget.frames_per_game(len(games))
    stage(f"Step 1/3: distilling {len(games)} experts into one AMN for {frames:,} frames per game (a test "
          f"epoch of {budget.test_frames:,} frames per game every {frames // budget.epochs:,})")
    summary = distill(distill_config(experts, budget, out / "amn", progress))
    print(f"  {summary['updates']:,} updates of {len(games)} x 8 samples", flush=True)

    stage("Step 2/3: report")
    markdown, files = write_report(load_runs([out / "amn"]), out / "report")
    print(markdown, end="")
    print("Wrote " + ", ".join(str(f) for f in files))
    if (shipped_amn / AMN_FILE).is_file():
        shipped_markdown, files = write_report(load_runs([shipped_amn]), out / "shipped_amn_report")
        print(f"\nNext to it, the shipped AMN ({shipped_amn}: the full distillation run):\n")
        print(shipped_markdown, end="")
        print("Wrote " + ", ".join(str(f) for f in files))
    else:
        print(f"\n(No shipped AMN at {shipped_amn} yet: its Table 1 would be printed here.)")

    stage(f"Step 3/3: the AMN playing every game at once, {budget.video_frames:,} frames each")
    with contextlib.redirect_stdout(io.StringIO()) as played:
        code = cli(["play", str(out / "amn" / CHECKPOINT_NAME), "--record", str(out / VIDEO),
                    "--frames", str(budget.video_frames), "--every", "2"])
    if code != 0:
        raise RuntimeError(f"play exited with {code}")
    episodes = json.loads(played.getvalue())["episodes"]
    print("  points scored: " + ", ".join(f"{g} {sum(r['returns']) + (r['partial_return'] or 0):g}"
                                         for g, r in episodes.items()))
    print(f"Wrote {out / VIDEO}")
    stage("Done.")
    return markdown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    parser.add_argument("--experts", type=Path, default=SHIPPED_EXPERTS,
                        help=f"folder of shipped experts, one sub-folder per game (default {SHIPPED_EXPERTS})")
    parser.add_argument("--amn", type=Path, default=SHIPPED_AMN,
                        help=f"a shipped AMN folder whose Table 1 is printed next to the demo's (default {SHIPPED_AMN})")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("ACTORMIMIC_DEMO_QUICK") == "1",
                        help="tiny budgets (about a minute; what CI runs); also ACTORMIMIC_DEMO_QUICK=1")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out must be a folder, got {str(args.out)!r} (a file)")
    try:
        games = [p.parent.name for p in shipped_experts(args.experts)]
    except ValueError as exc:
        parser.error(str(exc))
    budget = BUDGETS["quick" if args.quick else "default"]
    print(f"Actor-Mimic demo on {', '.join(games)}: distillation of the shipped experts into one AMN "
          f"({budget.frames_per_game(len(games)):,} frames per game), per-game tests, the report and a video, "
          f"into {args.out}/. About {budget.minutes} on 2 CPU cores.", flush=True)
    run_demo(args.out, budget, args.experts, progress=args.progress, shipped_amn=args.amn)


if __name__ == "__main__":
    main()
