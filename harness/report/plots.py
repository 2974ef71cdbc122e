"""Plots as SVG text (matplotlib, Agg backend): embedded inline in the HTML and written beside it."""

from __future__ import annotations

import io
from typing import Any


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG is embedded in HTML


def task_scores_plot(report: dict[str, Any]) -> str:
    """One panel per task: each model's primary metric with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = report["tasks"]
    columns = min(4, len(tasks))
    rows = -(-len(tasks) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns + 1, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        cells = [c for c in report["cells"] if c["task"] == task["name"] and c["estimate"] is not None]
        y = range(len(cells))
        estimates = [c["estimate"] for c in cells]
        errors = [[c["estimate"] - c["low"] for c in cells], [c["high"] - c["estimate"] for c in cells]]
        colors = ["#2b6cb0" if c["complete"] else "#a0aec0" for c in cells]
        ax.barh(list(y), estimates, xerr=errors, color=colors, capsize=3)
        ax.set_yticks(list(y), [c["model"] for c in cells], fontsize=7)
        ax.set_title(f"{task['name']} v{task['version']}", fontsize=9)
        ax.set_xlabel(task["primary_metric"] + ("" if task["higher_is_better"] else " (lower is better)"), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.invert_yaxis()
    fig.tight_layout()
    return _svg(fig)


def rank_plot(report: dict[str, Any]) -> str | None:
    """Mean rank with its bootstrap interval, for models ranked within their group."""
    rows = [r for r in report["aggregate"] if r["mean_rank"] is not None]
    if not rows:
        return None
    return _interval_dots([(r["model"], r["mean_rank"], r["rank_low"], r["rank_high"]) for r in rows],
                          "mean rank within its group (1 = best), 95% interval", width=5, row_height=0.4)


def differences_plot(comparison: dict[str, Any]) -> str | None:
    """Per task and seed: the paired difference A - B with its interval."""
    rows = comparison["rows"]
    if not rows:
        return None
    return _interval_dots([(f"{r['task']} s{r['seed']}: {r['a']} - {r['b']}", r["difference"], r["low"], r["high"])
                           for r in rows],
                          "difference of the primary metric (A - B), 95% paired bootstrap interval", width=6,
                          row_height=0.35, zero_line=True)


def _interval_dots(rows: list[tuple[str, float, float, float]], xlabel: str, width: float, row_height: float,
                   zero_line: bool = False) -> str:
    """One labelled dot per row with its interval as error bars: (label, estimate, low, high)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, 0.5 + 0.1 * zero_line + row_height * len(rows)))
    y = range(len(rows))
    ax.errorbar([r[1] for r in rows], list(y), fmt="o", capsize=3,
                xerr=[[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]])
    if zero_line:
        ax.axvline(0, color="#718096", linewidth=1)
    ax.set_yticks(list(y), [r[0] for r in rows], fontsize=7)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    return _svg(fig)


def _cost_axis(ax: Any, values: list[float]) -> None:
    """A log axis where the costs span a decade or more; within less, matplotlib's log axis labels every minor
    tick in scientific notation (1.1x10^2 1.2x10^2 ... on top of each other), so the axis stays linear. Tick
    labels are the report's own compact numbers (22.7 M, 1.2 k)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from harness.report.numbers import compact

    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) >= 10:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: compact(v)))


def frontier_plot(frontier: dict[str, Any]) -> str | None:
    """One task: one panel per cost, each model's score (95% interval) against the cost (log axis over a decade), the
    Pareto front joined by a line and its models filled."""
    costs = frontier["costs"]
    if not costs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(costs), figsize=(3.6 * len(costs) + 0.6, 2.9), squeeze=False)
    for ax, cost in zip(axes.flat, costs, strict=True):
        points = [m for m in frontier["models"] if m["costs"][cost["cost"]] is not None]
        for m in points:
            on_front = m["model"] in cost["front"]
            x = m["costs"][cost["cost"]]
            ax.errorbar([x], [m["score"]], yerr=[[m["score"] - m["low"]], [m["high"] - m["score"]]], fmt="o",
                        capsize=3, color="#2b6cb0" if on_front else "#a0aec0",
                        markerfacecolor="#2b6cb0" if on_front else "white")
            ax.annotate(m["model"], (x, m["score"]), textcoords="offset points", xytext=(4, 4), fontsize=6)
        front = sorted((m for m in points if m["model"] in cost["front"]), key=lambda m: m["costs"][cost["cost"]])
        ax.plot([m["costs"][cost["cost"]] for m in front], [m["score"] for m in front], color="#2b6cb0",
                linewidth=1, alpha=0.6)
        _cost_axis(ax, [m["costs"][cost["cost"]] for m in points])
        better = "cheaper to the left" if cost["lower_cost_is_better"] else "cheaper to the right"
        ax.set_xlabel(f"{cost['cost_words']} ({better})", fontsize=7)
        ax.tick_params(labelsize=7)
    axes.flat[0].set_ylabel("score" + ("" if frontier["higher_is_better"] else " (lower is better)"), fontsize=7)
    fig.suptitle(frontier["task"], fontsize=9)
    fig.tight_layout()
    return _svg(fig)
