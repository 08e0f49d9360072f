"""Playing trained networks:

    evaluation.py   the paper's test protocol for any policy over one or many games
    policies.py     any checkpoint (expert, AMN, MDQN, MCDQN) as one act(obs, game_ids)
    video.py        colour or observation videos of chosen envs, grids of games
"""
