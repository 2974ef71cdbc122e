"""Where a leaderboard's cells run: in this process one after another (`local.py`), or as Ray tasks on
the GPUs and machines of a Ray cluster (`ray_executor.py`); `base.py` is what both promise, `choose.py`
picks one from the command line's settings. `execution.run_leaderboard` plans the cells, skips complete
ones and counts what an executor reports. (Nothing is imported here: `execution` imports `base`.)"""
