"""Playing trained networks (the test protocol itself is training's: actormimic_fast/run/evaluation.py):

    policies.py     any checkpoint (expert, AMN, MDQN, MCDQN) as one act(obs, game_ids)
    video.py        colour or observation videos of chosen envs, grids of games
"""
