"""Small PNG figures of explanations (matplotlib, Agg backend): heat-map overlays, class averages,
spectrogram maps, per-action bars. Written atomically into the run's explanations folder."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from harness.store import write_atomic

DPI = 80


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def _resize(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    tensor = torch.as_tensor(np.asarray(values, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def heat_overlay_figure(picture: np.ndarray, heat: np.ndarray, title: str, path: Path, signed: bool = False) -> None:
    """The picture, and the picture under the heat map (resized to it)."""
    plt = _pyplot()
    heat = _resize(heat, picture.shape[:2])
    fig, axes = plt.subplots(1, 2, figsize=(4.4, 2.4))
    axes[0].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
    axes[1].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
    if signed:
        bound = float(np.abs(heat).max()) or 1.0
        overlay = axes[1].imshow(heat, cmap="RdBu_r", vmin=-bound, vmax=bound, alpha=0.6)
    else:
        overlay = axes[1].imshow(heat, cmap="jet", vmin=0, vmax=float(heat.max()) or 1.0, alpha=0.5)
    fig.colorbar(overlay, ax=axes[1], fraction=0.046, pad=0.04)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def class_average_figure(by_class: dict[str, list[tuple[np.ndarray, np.ndarray]]], path: Path) -> None:
    """Per class: the mean image and the mean Grad-CAM (each map scaled to max 1) over it."""
    plt = _pyplot()
    labels = sorted(by_class)
    fig, axes = plt.subplots(1, len(labels), figsize=(1.5 * len(labels), 1.9), squeeze=False)
    for ax, label in zip(axes[0], labels, strict=True):
        pictures = [p for p, _ in by_class[label]]
        shape = pictures[0].shape[:2]
        heats = [_resize(h, shape) for _, h in by_class[label]]
        heats = [h / h.max() if h.max() > 0 else h for h in heats]
        ax.imshow(np.mean(pictures, axis=0), cmap="gray")
        ax.imshow(np.mean(heats, axis=0), cmap="jet", vmin=0, vmax=1, alpha=0.5)
        ax.set_title(f"{label} (n={len(pictures)})", fontsize=7)
        ax.set_axis_off()
    _save(fig, path)


def spectrogram_figure(log_mel: np.ndarray, block_map: np.ndarray, centres: np.ndarray, frame_ms: int, title: str,
                       path: Path) -> None:
    """The log-mel spectrogram, and the occlusion map over time (ms) and frequency (Hz)."""
    plt = _pyplot()
    n_mels, frames = log_mel.shape
    extent = (0, frames * frame_ms, 0, n_mels)
    fig, axes = plt.subplots(1, 2, figsize=(6.0, 2.4), sharey=True)
    axes[0].imshow(log_mel, origin="lower", aspect="auto", extent=extent, cmap="magma")
    bound = float(np.abs(block_map).max()) or 1.0
    shown = axes[1].imshow(block_map, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r", vmin=-bound,
                           vmax=bound)
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04, label="probability drop")
    ticks = np.linspace(0, n_mels - 1, 5).astype(int)
    axes[0].set_yticks(ticks + 0.5, [f"{centres[t]:.0f}" for t in ticks])
    axes[0].set_ylabel("Hz (mel scale)", fontsize=8)
    for ax in axes:
        ax.set_xlabel("ms", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def dimension_bars_figure(groups: dict[str, dict[str, Any]], path: Path) -> None:
    """Per chosen action: the mean signed share of each observation dimension."""
    plt = _pyplot()
    actions = sorted(groups)
    fig, axes = plt.subplots(1, len(actions), figsize=(3.0 * len(actions), 2.2), squeeze=False, sharey=True)
    for ax, action in zip(axes[0], actions, strict=True):
        dims = groups[action]["dimensions"]
        ax.barh([d["name"] for d in dims][::-1], [d["mean_share"] for d in dims][::-1],
                color=["tab:red" if d["mean_share"] > 0 else "tab:blue" for d in dims][::-1])
        ax.axvline(0, color="black", linewidth=0.5)
        ax.set_title(f"{action} (n={groups[action]['items']})", fontsize=8)
        ax.tick_params(labelsize=7)
    _save(fig, path)
