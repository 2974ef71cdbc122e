"""A benchmark's result as Markdown and JSON under benchmarks/results/ (one pair per benchmark and machine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from suite.machine import describe_line, slug

RESULTS = Path(__file__).resolve().parents[1] / "results"


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.0f}"


def summary_table(result: dict[str, Any]) -> list[str]:
    """One row per contender: median/min/max seconds, ratio to the reference, mean scores, median wall."""
    scores = result["score_names"]
    head = ["contender", "median s", "min s", "max s", f"x {result['reference']}", *scores, "wall s", "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, item in result["summary"].items():
        ratio = f"{item['ratio']:.2f}" if item["ratio"] is not None else "-"
        runs = f"{item['runs']}" + (f" ({item['failed']} failed)" if item["failed"] else "")
        cells = [name, fmt(item["median_s"]), fmt(item["min_s"]), fmt(item["max_s"]), ratio,
                 *(fmt(item["scores"].get(s), 4) for s in scores), fmt(item["wall_median_s"], 1), runs]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def runs_table(result: dict[str, Any]) -> list[str]:
    """Every run in the order it ran (the alternation is visible here)."""
    scores = result["score_names"]
    head = ["#", "round", "seed", "contender", "seconds", "wall s", *scores]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for number, run in enumerate(result["runs"], 1):
        if run["error"]:
            cells = [str(number), str(run["round"] + 1), str(run["seed"]), run["contender"],
                     "FAILED", fmt(run["wall_s"], 1), *([""] * len(scores))]
        else:
            cells = [str(number), str(run["round"] + 1), str(run["seed"]), run["contender"], fmt(run["seconds"]),
                     fmt(run["wall_s"], 1), *(fmt(run["scores"].get(s), 4) for s in scores)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def to_markdown(result: dict[str, Any], machine: dict[str, Any], command: str) -> str:
    tiny = " (--tiny: plumbing check, not a measurement)" if result["tiny"] else ""
    rounds = f"{result['rounds']} round" + ("s" if result["rounds"] != 1 else "")
    lines = [f"# Benchmark `{result['benchmark']}`: {result['title']}{tiny}", "",
             f"`{command}`", "", f"Machine: {describe_line(machine)}", "",
             f"Timed (`seconds`): {result['timed']}. {rounds}; round i runs every contender once, in the order "
             f"below, with seed i. Ratio: median over median of `{result['reference']}`; scores: mean over the "
             "rounds' seeds.", "", *summary_table(result), "", "Contenders:", ""]
    lines += [f"- `{c['name']}`: {c['note']}" for c in result["contenders"]]
    if result["notes"]:
        lines += ["", "Notes:", "", *(f"- {n}" for n in result["notes"])]
    lines += ["", "Every run, in the order it ran:", "", *runs_table(result)]
    errors = [r for r in result["runs"] if r["error"]]
    if errors:
        lines += ["", "Failures:", "", *(f"- round {r['round'] + 1} `{r['contender']}`: {r['error']}" for r in errors)]
    return "\n".join(lines) + "\n"


def write_result(result: dict[str, Any], machine: dict[str, Any], command: str,
                 out_dir: Path = RESULTS) -> tuple[Path, Path]:
    """`<benchmark>-<machine>[-tiny].md` and `.json` in `out_dir`; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{result['benchmark']}-{slug(machine)}" + ("-tiny" if result["tiny"] else "")
    markdown, data = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    markdown.write_text(to_markdown(result, machine, command), encoding="utf-8")
    document = {"command": command, "machine": machine} | result
    data.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    return markdown, data
