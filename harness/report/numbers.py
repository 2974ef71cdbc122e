"""Numbers for people: scores to three significant digits, counts with k/M/G, seconds, rates and memory.

The JSON and CSV files keep full precision; only the Markdown and HTML tables use these.
"""

from __future__ import annotations

import math
from typing import Any

_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))
NONE = "–"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def score(value: Any) -> str:
    """0.45678 -> 0.457, -85.93 -> -85.9, 500.0 -> 500, 1234.5 -> 1,234."""
    if _missing(value):
        return NONE
    value = float(value)
    if abs(value) >= 999.5:
        return f"{value:,.0f}"
    text = f"{value:.3g}"
    return text if "e" not in text else f"{value:.2e}"


def compact(value: Any, unit: str = "") -> str:
    """22713216 -> 22.7 M, 33740 -> 33.7 k, 112.4 -> 112 (three significant digits, SI prefixes)."""
    if _missing(value):
        return NONE
    value = float(value)
    for size, prefix in _PREFIXES:
        if abs(value) >= size * 0.9995:  # 999.7 shows as 1 k, not 1e+03
            return f"{value / size:.3g} {prefix}{unit}".rstrip()
    text = f"{value:.3g}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    return f"{text} {unit}".rstrip() if unit else text


def seconds(value: Any) -> str:
    """0.93 -> 0.93 s, 12.34 -> 12.3 s, 233.6 -> 234 s, 5400 -> 1.5 h (minutes from 10 minutes on)."""
    if _missing(value):
        return NONE
    value = float(value)
    if value >= 3600 * 1.5:
        return f"{value / 3600:.3g} h"
    if value >= 600:
        return f"{value / 60:.3g} min"
    if value >= 99.95:
        return f"{value:.0f} s"
    return f"{value:.3g} s"


def rate(value: Any) -> str:
    """33740.2 -> 33.7 k/s, 112.4 -> 112 /s."""
    if _missing(value):
        return NONE
    text = compact(value)
    return f"{text}/s" if text[-1].isalpha() else f"{text} /s"


def megabytes(value: Any) -> str:
    """3949.2 -> 3.95 GB, 512.4 -> 512 MB."""
    if _missing(value):
        return NONE
    value = float(value)
    return f"{value / 1000:.3g} GB" if value >= 999.5 else f"{value:.3g} MB"


def pvalue(value: Any) -> str:
    """0.0001 -> < 0.001 (never "0": a p-value is not zero), 0.0412 -> 0.041."""
    if _missing(value):
        return NONE
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def cost(value: Any, key: str) -> str:
    """A cost by its efficiency key: seconds, a rate or a count."""
    return {"train_s": seconds, "eval_examples_per_s": rate, "train_examples_per_s": rate}.get(key, compact)(value)


FILTERS = {"cost": cost, "score": score, "compact": compact, "seconds": seconds, "rate": rate, "megabytes": megabytes,
           "pval": pvalue}
