"""Writes a report: README.md (GitHub-readable), index.html (one self-contained file), CSV, JSON, SVG plots.

Every string that came from a task, label, backbone or run goes through jinja2's autoescaping in HTML
and through `md_escape` in Markdown, so a name like `<script>` is shown, never run.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import UsageError
from harness.report import numbers
from harness.report.plots import differences_plot, frontier_plot, rank_plot, task_scores_plot
from harness.store import write_atomic

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|])")


def md_escape(value: Any) -> str:
    return _MD_SPECIAL.sub(r"\\\1", str(value))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def _environment(html: bool) -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "templates"), autoescape=html,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["md"] = md_escape
    env.filters.update(numbers.FILTERS)
    # Plots go into the page as <img> data URIs: an SVG shown through <img> can never run script.
    env.filters["data_uri"] = lambda svg: "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return env


def cells_frame(report: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for cell in report["cells"]:
        rows.append({"task": cell["task"], "model": cell["model"], "complete": cell["complete"],
                     "seeds": " ".join(map(str, cell["seeds"])), "estimate": cell["estimate"], "ci_low": cell["low"],
                     "ci_high": cell["high"], "interval_method": cell["method"],
                     **{f"metric_{k}": v for k, v in cell.get("secondary", {}).items()},
                     **{f"eff_{k}": v for k, v in cell.get("efficiency", {}).items()}})
    return pd.DataFrame(rows)


def check_folder(out: Path) -> None:
    """UsageError, one line naming it, when `out` cannot be a report folder: an existing file or device, or a
    place this process cannot write (checked on the nearest folder that exists). Creates nothing."""
    try:
        if out.exists() and not out.is_dir():
            raise UsageError(f"cannot write the report to {out}: it exists and is not a folder (choose another --out)")
        existing = out
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise UsageError(f"cannot write the report to {out}: {existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write the report to {out}: {existing} is not writable")
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out}: {exc.strerror or exc}") from None


def write_leaderboard(report: dict[str, Any], out: Path) -> list[Path]:
    plots = {"scores.svg": task_scores_plot(report), "ranks.svg": rank_plot(report)}
    plots |= {f["plot"]: frontier_plot(f) for f in report.get("frontiers", [])}
    return _write_folder(out, "leaderboard", report, plots, cells_frame(report))


def write_comparison(comparison: dict[str, Any], out: Path) -> list[Path]:
    plots = {"differences.svg": differences_plot(comparison)}
    plots |= {f["plot"]: frontier_plot(f) for f in comparison.get("frontiers", [])}
    return _write_folder(out, "comparison", comparison, plots, pd.DataFrame(comparison["rows"]))


def _write_folder(out: Path, kind: str, data: dict[str, Any], plots: dict[str, str | None],
                  table: pd.DataFrame) -> list[Path]:
    """`_write` into `out` (created): a place that cannot be written is one UsageError line naming it."""
    check_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _write(out, kind, data, plots, table)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(out) else ""
        raise UsageError(f"cannot write the report to {out}{where}: {exc.strerror or exc}") from None


def _explanation_images(out: Path, data: dict[str, Any]) -> tuple[dict[str, str], list[Path]]:
    """Copy each explanation visual (a PNG in a run's folder) into the report and return their data URIs
    (the HTML page stays one self-contained file; PNGs in <img> cannot run script)."""
    uris, written = {}, []
    for section in data.get("explanations", []):
        for visual in section["visuals"]:
            source = visual.pop("source", None)
            if visual.get("kind") != "image" or source is None:
                continue
            content = Path(source).read_bytes()
            write_atomic(out / visual["file"], content)
            written.append(out / visual["file"])
            uris[visual["file"]] = "data:image/png;base64," + base64.b64encode(content).decode()
    return uris, written


def _write(out: Path, kind: str, data: dict[str, Any], plots: dict[str, str | None], table: pd.DataFrame) -> list[Path]:
    written = []
    for name, svg in plots.items():
        if svg is not None:
            write_atomic(out / name, svg)
            written.append(out / name)
    images, copied = _explanation_images(out, data)
    written += copied
    context = {"r": data, "plots": {k: v for k, v in plots.items() if v is not None}, "images": images}
    for template, name, html in ((f"{kind}.md.j2", "README.md", False), (f"{kind}.html.j2", "index.html", True)):
        write_atomic(out / name, _environment(html).get_template(template).render(**context))
        written.append(out / name)
    write_atomic(out / f"{kind}.csv", table.to_csv(index=False))
    write_atomic(out / f"{kind}.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    written += [out / f"{kind}.csv", out / f"{kind}.json"]
    return written
