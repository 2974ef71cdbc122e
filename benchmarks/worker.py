"""One contender run (or a benchmark's setup) in a fresh process: `python benchmarks/worker.py CONTEXT.json`.

The runner (suite/core.py) writes the context file: the target ("suite.module:function"), the RunContext
fields and where to write the result. The function's Measurement (or the setup's dict) is written as JSON
to that path; a failure is a non-zero exit with the traceback in the log the runner keeps.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from suite.context import Measurement, RunContext


def resolve(target: str) -> Callable[[RunContext], Any]:
    """The function a "module:function" string names."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    context = RunContext.from_dict(spec["context"])
    result = resolve(spec["target"])(context)
    payload = result.to_dict() if isinstance(result, Measurement) else result
    Path(spec["out"]).write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
