"""The training core every trainer shares (one job per file):

    settings.py      the settings dataclass base and the field groups configs compose
    context.py       device and threads, the run folder, a resumed checkpoint, counters, the pool
    loop.py          the actor loop and the cadence of tests, progress rows and checkpoints
    evaluation.py    the paper's test protocol (evaluate, one test epoch of a run, greedy act functions)
    learner.py       minibatches to the device and the update (inline, or on its own thread; CUDA graphs)
    rate_limiter.py  the replay-ratio contract between the actor and the learner threads
    acting.py        epsilon schedule, masked argmax, random legal actions, the actor's weight copy
    state.py         RNG states in checkpoints
    per_game_replays.py  one replay per game, seeded as each game's own run (experts trained together)
    processes.py     torchrun's ranks: each process's device and share of the games
    counts.py        counts as people write them: 10M, 250k

An algorithm (agents/) gives the loop its act step, update step, test epoch and state.
"""
