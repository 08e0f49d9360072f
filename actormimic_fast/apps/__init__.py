"""Programs run with python -m: demo.py (the `make demo` pipeline) and engine_tour.py (the engine alone)."""
