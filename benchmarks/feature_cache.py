"""Benchmark: how much the frozen-feature cache saves on a seed sweep. Now one benchmark of the suite:

    python benchmarks/feature_cache.py [--rounds N] [--tiny] [--out DIR]

is `python benchmarks/run.py --only feature-cache [...]`: a 5-seed `harness run --task keywords --adapt frozen`
sweep with an empty cache per seed, against one shared cache (one command per seed, and one `--seeds`
command), contenders alternating over rounds, each in a fresh process; see benchmarks/README.md.
"""

from __future__ import annotations

import sys

from run import main

if __name__ == "__main__":
    sys.exit(main(["--only", "feature-cache", *sys.argv[1:]]))
