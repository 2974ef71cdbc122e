"""How the CLI shows things: plain-text tables, run summaries, explanation and seed summaries.

Pure formatting of records and dicts that `harness.api` returns; no work happens here.
"""

from __future__ import annotations

from typing import Any

from harness.errors import one_line
from harness.store import record_modality


def error_line(message: str) -> str:
    """The one line the CLI prints for an error (line breaks in the message become spaces)."""
    return f"harness: error: {one_line(message)}"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [columns] + [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def run_summary(record: dict[str, Any], reused: bool, detail: bool = False) -> str:
    head = (f"{record['task']}  backbone {record['backbone']}  adapt {record['adapt']}  "
            f"protocol {record['protocol']}  seed {record['seed']}")
    lines = [head, f"  run {record['run_id']}  status {record['status']}"
                   + ("  (stored result reused; --force reruns)" if reused else "")]
    if record.get("status") != "complete":
        lines.append(f"  error: {record.get('error', 'unfinished')}")
        return "\n".join(lines)
    metrics = record["metrics"]
    primary = record["primary_metric"]
    main = [f"{primary} {metrics[primary]:.4f}"] + [
        f"{k} {v:.4f}" for k, v in metrics.items() if k != primary and not k.startswith("f1_")]
    control = record_modality(record) == "control"
    what = "evaluation episodes" if control else "examples"
    lines.append(f"  test ({record['n_examples']} {what}): " + "  ".join(main))
    per_type = {k[3:]: v for k, v in metrics.items() if k.startswith("f1_")}
    if per_type:
        lines.append("  F1 per type: " + "  ".join(f"{k} {v:.3f}" for k, v in per_type.items()))
    timing = record.get("timing", {})
    if timing:
        unit = "env steps/s" if control else "train examples/s"
        lines.append(f"  time: train {timing.get('train_s', 0):.1f}s, test {timing.get('eval_s', 0):.1f}s, "
                     f"{timing.get('train_examples_per_s', 0):.1f} {unit}, "
                     f"peak memory {timing.get('peak_mem_mb', 0):.0f} MB")
        computed = {split: timing[f"features_compute_{split}_s"] for split in ("train", "dev", "test")
                    if f"features_compute_{split}_s" in timing}
        if computed:  # a head on frozen features: say what they cost, even when this run read them from the cache
            cached = record.get("execution", {}).get("feature_cache") == "hit"
            costs = ", ".join(f"{split} {'?' if s is None else f'{s:.1f}s'}" for split, s in computed.items())
            lines.append(f"  frozen features: {'read from the cache, computed' if cached else 'computed'} in {costs}")
    if detail and "explanation" in record:
        lines.append(explanation_summary(record["explanation"]))
    if detail:
        lines.append(f"  best epoch {record.get('best_epoch')}  config hash {record['config_hash'][:16]}  "
                     f"created {record['created_at']}")
        env = record.get("env", {})
        lines.append("  env: " + "  ".join(f"{k} {v}" for k, v in env.items() if v))
    return "\n".join(lines)


def _interval(entry: dict[str, Any] | None) -> str:
    return "-" if not entry else f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def explanation_summary(block: dict[str, Any]) -> str:
    """The explanation block of a run record: method, cost, faithfulness with 95% intervals, highlights."""
    f = block["faithfulness"]
    lines = [f"  explained {block['n_items']} x {block['target']} in {block['seconds']:.1f}s: {block['method']}"]
    for curve, better in (("deletion", "lower"), ("insertion", "higher")):
        if f"{curve}_auc" in f:
            versus = f.get(f"{curve}_vs_random", {})
            p = f", Wilcoxon p {versus['p_value']:.2g}" if versus else ""
            lines.append(f"  {curve} AUC {_interval(f[f'{curve}_auc'])} vs random ranking "
                         f"{_interval(f.get(f'{curve}_auc_random'))} ({better} is faithful{p})")
    lines.append(f"  comprehensiveness {_interval(f.get('comprehensiveness'))}, "
                 f"sufficiency {_interval(f.get('sufficiency'))} (ERASER AOPC; high, low are faithful)")
    lines.append(f"  randomisation check: Spearman {_interval(f.get('randomisation_spearman'))} "
                 f"({block['randomisation']}; low passes)")
    details = []
    if f.get("units"):
        details.append(f"{f['units']['median']:g} units per item (median)")
    if f.get("constant_attributions"):
        details.append(f"{f['constant_attributions']} constant attribution(s), ranked at random")
    if f.get("ig_completeness_gap"):
        details.append(f"integrated-gradients completeness gap {_interval(f['ig_completeness_gap'])}")
    if details:
        lines.append("  " + "; ".join(details))
    if block.get("prediction_agreement") is not None:
        lines.append(f"  rebuilt model agrees with the stored predictions on {block['prediction_agreement']:.0%}")
    for group, line in block.get("highlights", {}).items():
        lines.append(f"  {group}: {line}")
    return "\n".join(lines)


def seed_summary_line(summary: dict[str, Any] | None) -> str:
    """One line for `harness.api.seed_summary`: the estimate across seeds with its 95% interval and spread."""
    if summary is None:
        return "no complete runs"
    label = f"{summary['statistic']} of {summary['metric']}" if summary["statistic"] == "IQM" \
        else f"mean {summary['metric']}"
    spread = f", sd {summary['sd']:.4f}" if summary["sd"] is not None else ""
    return (f"{summary['task']} over {summary['n']} seeds: {label} {summary['estimate']:.4f}, "
            f"95% CI [{summary['low']:.4f}, {summary['high']:.4f}]{spread}, "
            f"min {summary['min']:.4f}, max {summary['max']:.4f}")


def precision_summary(check: dict[str, Any]) -> str:
    """The precision self-check as text: per seed, fp32 and bf16 scores, their paired difference, the speed-up."""
    lines = [f"precision check: {check['task']} / {check['backbone']} ({check['adapt']}), {check['metric']}, "
             "bf16 - fp32 per seed (paired over test examples, 95% interval)"]
    for row in check["seeds"]:
        interval = f" [{row['low']:+.4f}, {row['high']:+.4f}] p={row['p_value']:.3f}" if row["low"] is not None else ""
        speed = f", bf16 trains {row['speedup']:.2f}x as fast" if row["speedup"] else ""
        lines.append(f"  seed {row['seed']}: fp32 {row['fp32']:.4f}  bf16 {row['bf16']:.4f}  "
                     f"difference {row['difference']:+.4f}{interval}{speed}")
    lines.append(f"  mean difference {check['mean_difference']:+.4f}"
                 + (f", median speed-up {check['median_speedup']:.2f}x" if check["median_speedup"] else ""))
    return "\n".join(lines)


def frontier_lines(frontiers: list[dict[str, Any]]) -> list[str]:
    """Per task and cost, the models on the score-cost Pareto front, cheapest first, with score and cost."""
    from harness.report.numbers import cost as format_cost
    from harness.report.numbers import score

    lines = []
    for frontier in frontiers:
        by_model = {m["model"]: m for m in frontier["models"]}
        for cost in frontier["costs"]:
            front = ", ".join(f"{name} ({score(by_model[name]['score'])} at "
                              f"{format_cost(by_model[name]['costs'][cost['cost']], cost['cost'])})"
                              for name in cost["front"])
            lines.append(f"front {frontier['task']} / {cost['cost_words']}: {front}")
    return lines


def tuning_summary(block: dict[str, Any] | None, tested: list[dict[str, Any]]) -> str:
    """The grid with each point's mean dev score, the choice, and the tested runs' scores."""
    if block is None:
        return "no tuning was recorded (every tested run failed)"
    names = list(block["space"])
    rows = [dict(t["point"]) | {"mean dev": "-" if t["mean_dev"] is None else f"{t['mean_dev']:.4g}",
                                "": "<- chosen" if t["point"] == block["chosen"] else ""} for t in block["trials"]]
    chosen = ", ".join(f"{k}={v:g}" for k, v in block["chosen"].items())
    lines = [f"tuning: {len(block['trials'])} points, chosen {chosen} by {block['selected_by']}",
             table(rows, [*names, "mean dev", ""])]
    lines += [f"tested seed {t['seed']}: {t['metric']} {t['primary']:.4g}  ({t['run_id']})" for t in tested]
    return "\n".join(lines)
