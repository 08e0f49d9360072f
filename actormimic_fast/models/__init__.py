"""The networks of the paper (networks.py) and the optimisers of its code (optimizers.py)."""
