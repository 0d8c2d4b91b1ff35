"""Pareto plots beside a page: accuracy vs GMACs and vs measured inference throughput, each
point labelled with its configuration."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from leaderboards.schema import architecture  # noqa: E402

FAMILY_MARKERS = {"ResNet (basic)": "o", "ResNet (bottleneck)": "s", "pre-act ResNet": "D", "plain": "x", "VGG": "^"}


def pareto_plots(ranked: pd.DataFrame, out_dir: Path, stem: str) -> list[tuple[str, str]]:
    """Write the PNGs and return (title, file name) for the page's links."""
    written = []
    for column, axis, suffix in (("gmacs", "GMACs (conv + linear, one image)", "accuracy-vs-gmacs"), ("inference", "inference images/s (eval, batch 256, measured)", "accuracy-vs-throughput")):
        figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
        for name, marker in FAMILY_MARKERS.items():
            rows = ranked[[architecture(r).legend == name for _, r in ranked.iterrows()]]
            if rows.empty:
                continue
            axes.errorbar(rows[column], rows["val_mean"], yerr=rows["val_std"].fillna(0), fmt=marker, label=name, capsize=3, markersize=7)
        label_points(axes, ranked[column].tolist(), ranked["val_mean"].tolist(), ranked["label"].tolist())
        front = ranked[ranked["pareto"]].sort_values("gmacs")
        if column == "gmacs" and len(front) > 1:
            axes.plot(front["gmacs"], front["val_mean"], "--", color="grey", linewidth=1, label="Pareto front")
        axes.set_xscale("log")
        axes.set_xlabel(axis)
        axes.set_ylabel("validation accuracy (mean over seeds)")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        name = f"{stem}-{suffix}.png"
        figure.savefig(out_dir / name, metadata={"Software": None})  # no version stamp: same data, same bytes
        plt.close(figure)
        written.append((f"validation accuracy vs {axis.split(' (')[0]}", name))
    return written


def label_points(axes: plt.Axes, xs: list[float], ys: list[float], labels: list[str]) -> None:
    """Name every point (which dot is ResNet-20 (B)?). Points of nearly the same x (the shortcut
    options of one depth differ by a few MACs) get a column of labels to their right, moved
    apart vertically and joined to their points by a thin line."""
    low, high = min(ys), max(ys)
    gap = max(high - low, 1e-9) * 0.06  # a label's height, in accuracy units
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))
    clusters: list[list[int]] = []
    for i in order:
        if clusters and xs[i] <= xs[clusters[-1][0]] * 1.15:  # log axis: within 15%
            clusters[-1].append(i)
        else:
            clusters.append([i])
    for cluster in clusters:
        placed = None
        for i in sorted(cluster, key=lambda i: -ys[i]):
            y = ys[i] if placed is None else min(ys[i], placed - gap)
            placed = y
            x = max(xs[j] for j in cluster) * 1.04
            axes.annotate(labels[i], (xs[i], ys[i]), xytext=(x, y), fontsize=7, va="center", arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5})
