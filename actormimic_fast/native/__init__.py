"""The Python faces of the C++/CUDA extension (actormimic_fast._C), one file each:

    pool.py             MultiGameEnvPool: many ALE emulators of different games, DQN preprocessing in C++
    vector_env.py       the pool as a gymnasium VectorEnv
    replay.py           ReplayMemory: one replay for many envs and games, each frame stored once
    ops.py              masked_softmax_xent: the fused Actor-Mimic policy loss (CPU and CUDA)
    games.py            game names, ROM lookup, the paper's game lists
    argument_checks.py  the argument checks these share (errors name the argument and its value)
"""
