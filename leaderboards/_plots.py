"""Pareto plots beside a page: accuracy vs GMACs and vs measured inference throughput, each
point labelled with its configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import zoo  # noqa: E402
from leaderboards.schema import architecture  # noqa: E402

FAMILY_MARKERS = {"ResNet (basic)": "o", "ResNet (bottleneck)": "s", "pre-act ResNet": "D", "plain": "x", "VGG": "^"}


def save_figure(figure: Any, path: Path) -> None:
    """Write a plot as a page's tables are written, atomically (a killed regeneration leaves the
    committed PNG whole), with no version stamp: the same data gives the same bytes."""
    zoo.write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", metadata={"Software": None}))
    plt.close(figure)


def pareto_plots(ranked: pd.DataFrame, out_dir: Path, stem: str, measured: str = "validation") -> list[tuple[str, str]]:
    """Write the PNGs of ``measured`` (validation or test) accuracy and return (title, file name)
    for the page's links."""
    written = []
    for column, axis, suffix in (("gmacs", "GMACs (conv + linear, one image)", "accuracy-vs-gmacs"), ("inference", "inference images/s (eval, batch 256, measured)", "accuracy-vs-throughput")):
        figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
        for name, marker in FAMILY_MARKERS.items():
            rows = ranked[[architecture(r).legend == name for _, r in ranked.iterrows()]]
            if rows.empty:
                continue
            axes.errorbar(rows[column], rows["accuracy_mean"], yerr=rows["accuracy_std"].fillna(0), fmt=marker, label=name, capsize=3, markersize=7)
        label_points(axes, ranked[column].tolist(), ranked["accuracy_mean"].tolist(), ranked["label"].tolist())
        front = ranked[ranked["pareto"]].sort_values("gmacs")
        if column == "gmacs" and len(front) > 1:
            axes.plot(front["gmacs"], front["accuracy_mean"], "--", color="grey", linewidth=1, label="Pareto front")
        axes.set_xscale("log")
        axes.set_xlabel(axis)
        axes.set_ylabel(f"{measured} accuracy (mean over seeds)")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        name = f"{stem}-{suffix}.png"
        save_figure(figure, out_dir / name)
        written.append((f"{measured} accuracy vs {axis.split(' (')[0]}", name))
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
            text = axes.annotate(labels[i], (xs[i], ys[i]), xytext=(x, y), fontsize=7, va="center", arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5})
            text.set_in_layout(False)  # a label past the last point may overhang the axes; the layout ignores it


CURVE_FAMILIES = ("ResNet (basic)", "ResNet (bottleneck)", "pre-act ResNet", "plain")  # nets with a depth to compare at


def curve_plot(frame: pd.DataFrame, curves: pd.DataFrame, out_dir: Path, stem: str) -> str | None:
    """Training error (thin) and validation error (bold) against epochs, one panel per depth, one
    colour per configuration, the band spanning the seeds (He et al. Fig. 1, 4 and 6). Completed
    trials only; returns the PNG's name, or None when there is nothing to draw."""
    finished = frame[(frame["status"] == "completed") & frame["trial_id"].isin(set(curves["trial_id"]))]
    finished = finished[[architecture(r).legend in CURVE_FAMILIES for _, r in finished.iterrows()]]
    if finished.empty:
        return None
    labels = {r["trial_id"]: architecture(r).label for _, r in finished.iterrows()}
    table = curves[curves["trial_id"].isin(set(labels))].assign(label=lambda t: t["trial_id"].map(labels), val_error=lambda t: 1 - t["val_accuracy"])
    depths = sorted(finished["depth"].dropna().unique())
    figure, panels = plt.subplots(1, len(depths), figsize=(4.5 * len(depths), 4), dpi=100, squeeze=False, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axes, depth in zip(panels[0], depths):
        names = sorted({labels[t] for t in finished[finished["depth"] == depth]["trial_id"]})
        for index, name in enumerate(names):
            colour = colours[index % len(colours)]
            by_epoch = table[table["label"] == name].groupby("epoch")
            for column, width, suffix in (("train_error", 0.8, "train"), ("val_error", 2.0, "val")):
                if by_epoch[column].count().sum() == 0:
                    continue  # a run without a validation split: its training error only
                middle, low, high = by_epoch[column].mean(), by_epoch[column].min(), by_epoch[column].max()
                axes.plot(middle.index, middle.values, color=colour, linewidth=width, label=f"{name} {suffix}")
                axes.fill_between(middle.index, low.values, high.values, color=colour, alpha=0.12, linewidth=0)
        axes.set_title(f"depth {int(depth)}")
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
    panels[0][0].set_ylabel("error (thin: training, bold: validation)")
    figure.tight_layout()
    name = f"{stem}-curves.png"
    save_figure(figure, out_dir / name)
    return name
