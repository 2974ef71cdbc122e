"""The benchmark suite behind `python benchmarks/run.py`: contenders, the engine, the reports.

Modules: `core` (schedule, fresh-process runs, statistics), `worker` (what a fresh process runs),
`machine` (the machine description), `report` (Markdown and JSON), `definitions` (the benchmarks),
and the contenders: `harness_cli`, `text`, `vision`, `feature_cache`, `startup`.
"""
