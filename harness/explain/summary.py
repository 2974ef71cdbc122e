"""One-line highlights of an explanation summary, per group (class, entity type, keyword, action): what the
CLI prints and what reports show beside the faithfulness numbers."""

from __future__ import annotations

from typing import Any

MAX_ITEMS = 5


def _words(words: list[dict[str, Any]]) -> str:
    return ", ".join(w["word"] for w in words[:MAX_ITEMS]) or "-"


def highlights(summary: dict[str, Any]) -> dict[str, str]:
    kind = summary.get("kind")
    out = {}
    for group, data in summary.get("groups", {}).items():
        n = data.get("items", 0)
        if kind == "top_words" and "entity_share" in data:
            line = (f"{data['entity_share']:.0%} of the attribution on the entity's own words "
                    f"({_words(data['top_words'])}); context: {_words(data['top_context_words'])}")
        elif kind == "top_words":
            line = f"top words: {_words(data['top_words'])}"
        elif kind == "class_heat_maps":
            centre = data.get("centre_of_mass")
            where = f"heat centred at {centre[0]:.0%} down, {centre[1]:.0%} across" if centre else "no heat"
            line = f"{where}; {data['coverage']:.0%} of the image above half the peak"
        elif kind == "time_frequency":
            low, high = data["top_time_ms"]
            line = f"most evidence at {low}-{high} ms and {data['top_band_hz'][0]}-{data['top_band_hz'][1]} Hz"
        elif kind == "observation_dimensions":
            line = ", ".join(f"{d['name']} {d['magnitude_share']:.0%}" for d in data["dimensions"][:MAX_ITEMS])
        elif kind == "frame_cells":
            line = "frame shares (oldest first): " + ", ".join(f"{v:.0%}" for v in data["frame_share"])
        else:
            line = ""
        out[group] = f"{line} (n={n})"
    return out
