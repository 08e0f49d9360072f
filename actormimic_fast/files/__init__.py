"""What a run writes and reads back:

    checkpoint.py   checkpoints, written atomically and loaded without unpickling code
    run_logs.py     progress.csv, episodes.csv, test.csv, TensorBoard and the progress bar (RunLogger)
    run_info.py     run.json: what a run folder holds
    provenance.py   what started each training segment (command, commit, machine), for run.json
"""
