"""Pages for the probes (``search.probe``): gradient flow, the lesion study and layer responses, from their tables.

Verdicts follow stated rules: paired comparisons use the same rule as the search pages (at least 3
pairs of batches or seeds, a 95% t-interval that excludes zero); a lesion claim states its threshold
and is decided over at least 3 seeds by the same interval, which must lie past the threshold.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import zoo  # noqa: E402
from leaderboards._claims import HOLDS, RULE, Claim, paired_difference, verdict  # noqa: E402
from leaderboards._page import PageInfo, claims_section, markdown_table  # noqa: E402
from leaderboards._plots import save_figure  # noqa: E402
from leaderboards._tables import ResultsError, check_space_name, read_csv_table, read_record  # noqa: E402

GRADIENT_COLUMNS = ("model", "family", "depth", "unit", "position", "grad_norm", "correlation", "grad_norm_by_batch", "correlation_by_batch")
LESION_COLUMNS = ("run", "model", "label", "family", "depth", "seed", "num_classes", "images", "kind", "k", "units", "draw", "changes_shape", "status", "accuracy")
PROBE_RULE = (
    "A comparison of two models holds when at least 3 batches pair them (the same images through both) and the "
    "95% confidence interval (Student t) of the mean paired difference excludes zero in the claimed direction; it "
    "does not hold when the interval excludes zero the other way; otherwise there is not enough evidence. A claim "
    "with a threshold states it and holds when the measured value passes it."
)
LESION_RULE = (
    "Each net is one number: the share of its margin above chance (1 / classes) that its single lesions keep on "
    "average; a net within 2 standard errors of chance (binomial, on the images evaluated) has no margin and is "
    "left out. A claim states its threshold and holds when at least 3 seeds of the design measure it and the 95% "
    "confidence interval (Student t) of their mean lies past the threshold; it does not hold when the interval lies "
    "on the other side; otherwise there is not enough evidence. One net can only ever say \"not enough evidence\": "
    "the page shows its numbers, but a verdict needs seeds."
)
# Lesion thresholds, on the margin above chance (1 / classes) so they mean the same at any budget:
BARELY_HURTS = 0.9  # Veit et al.'s "barely hurts": single lesions keep 90% or more of the margin
CATASTROPHIC = 0.2  # "catastrophic": single lesions keep 20% or less of the margin


def _provenance(settings: dict[str, Any]) -> list[str]:
    return [
        f"- data: {settings.get('data', '-')}, splits {json.dumps(settings.get('splits', {}), sort_keys=True)}",
        f"- probed on: {settings.get('hardware', '-')}; torch {settings.get('torch_version', '-')}; git commit {settings.get('git_commit', '-')}; started {settings.get('started_at', '-')}",
        *_trained_by(settings.get("trained")),
        f"- reproduce: `{settings.get('command', '-')}`",
        *_additions(settings.get("additions", [])),
    ]


def _additions(additions: list[dict[str, Any]]) -> list[str]:
    """One line per later ``search.probe --add``: its nets, where it ran, and its command."""
    return [
        f"- added later: {', '.join(f'`{run}`' for run in addition['runs'])}, probed on {addition.get('hardware', '-')}; torch {addition.get('torch_version', '-')}; "
        f"git commit {addition.get('git_commit', '-')}; started {addition.get('started_at', '-')}; reproduce: `{addition.get('command', '-')}`"
        for addition in additions
    ]


def _trained_by(trained: list[dict[str, Any]] | None) -> list[str]:
    """One line per distinct way the probed nets were trained (commit, hardware, device,
    precision, torch), naming the runs: a probe may read nets another commit or machine trained."""
    if trained is None:  # a probe of nets at initialisation (gradients) trained none
        return []
    groups: dict[str, list[str]] = {}
    for run in trained:
        how = f"{run.get('hardware', '-')}, {run.get('device', '-')} {run.get('precision', '-')}; torch {run.get('torch_version', '-')}; git commit {run.get('git_commit', '-')}"
        groups.setdefault(how, []).append(f"`{run['run']}`")
    return [f"- trained on: {how}: {', '.join(runs)}" for how, runs in groups.items()]


# One line style per design on every probe plot: plain dashed, residual solid, pre-activation dotted.
LINE_STYLES = {"plain": "--", "residual": "-", "pre-activation": ":"}


def _finish_axes(*axes_list: Any) -> None:
    for axes in axes_list:
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    save_figure(figure, path)


def _by_batch(table: pd.DataFrame, model: str, unit: int, column: str) -> pd.Series:
    row = table[(table["model"] == model) & (table["unit"] == unit)].iloc[0]
    return pd.Series(json.loads(row[column]), dtype=float)


def gradient_claims(table: pd.DataFrame) -> list[Claim]:
    claims = []
    models = list(dict.fromkeys(table["model"]))
    families = {m: table.loc[table["model"] == m, "family"].iloc[0] for m in models}
    depths = {m: int(table.loc[table["model"] == m, "depth"].iloc[0]) for m in models}
    last = {m: int(table.loc[table["model"] == m, "unit"].max()) for m in models}
    for model in models:
        if families[model] != "plain":
            continue
        ratio = _by_batch(table, model, 0, "grad_norm_by_batch") / _by_batch(table, model, last[model], "grad_norm_by_batch")
        mean = float(ratio.mean())
        ruling = HOLDS if mean < 0.1 else "does not hold"
        direction = "grows toward the input" if mean > 1 else "shrinks toward the input"
        claims.append(Claim(
            f"{model}: gradients vanish in a plain net (first-unit norm under a tenth of the last unit's)",
            f"first/last gradient norm {mean:.3g} (mean of {len(ratio)} batches): the gradient {direction}",
            ruling,
        ))
    for model in models:
        if families[model] == "plain":
            continue
        twins = [m for m in models if families[m] == "plain" and depths[m] == depths[model]]
        for plain in twins:
            # Norm uniformity: |log10(first/last)| per batch, plain minus residual (positive: shortcuts help).
            spread = {m: (_by_batch(table, m, 0, "grad_norm_by_batch") / _by_batch(table, m, last[m], "grad_norm_by_batch")).map(lambda v: abs(math.log10(v))) for m in (model, plain)}
            n, mean, low, high = paired_difference(spread[plain], spread[model])
            claims.append(Claim(
                f"depth {depths[model]}: shortcuts keep gradient norms more uniform across depth ({model} vs {plain})",
                f"|log10(first/last norm)| {spread[model].mean():.2f} vs {spread[plain].mean():.2f}; paired difference {mean:+.2f}, 95% CI [{low:+.2f}, {high:+.2f}], n={n} batches",
                verdict(n, low, high),
            ))
            correlation = {m: _by_batch(table, m, 0, "correlation_by_batch") for m in (model, plain)}
            n, mean, low, high = paired_difference(correlation[model], correlation[plain])
            claims.append(Claim(
                f"depth {depths[model]}: gradients at the first unit stay correlated between nearby inputs with shortcuts and shatter without ({model} vs {plain}; Balduzzi et al.)",
                f"correlation {correlation[model].mean():.3f} vs {correlation[plain].mean():.3f}; paired difference {mean:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}], n={n} batches",
                verdict(n, low, high),
            ))
    return claims


def render_gradients_page(table: pd.DataFrame, settings: dict[str, Any], out_dir: Path, name: str, table_file: str) -> str:
    figure, (norms, correlations) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    for model, rows in table.groupby("model", sort=False):
        style = LINE_STYLES.get(rows["family"].iloc[0], "-")
        norms.plot(rows["position"], rows["grad_norm"], style, label=model)
        correlations.plot(rows["position"], rows["correlation"], style, label=model)
    norms.set_yscale("log")
    norms.set_ylabel("gradient norm at the unit's input")
    correlations.set_ylabel("gradient correlation, nearby inputs")
    for axes in (norms, correlations):
        axes.set_xlabel("unit position (0 = first unit after the stem, 1 = last)")
    _finish_axes(norms, correlations)
    _save(figure, out_dir / f"{name}-by-depth.png")
    summary = []
    for model, rows in table.groupby("model", sort=False):
        summary.append([model, rows["family"].iloc[0], int(rows["depth"].iloc[0]), len(rows), rows["grad_norm"].iloc[0], rows["grad_norm"].iloc[-1], rows["grad_norm"].iloc[0] / rows["grad_norm"].iloc[-1], rows["correlation"].iloc[0], rows["correlation"].iloc[-1]])
    parts = [
        "# Probe: gradient flow at initialisation", "",
        f"Generated by `python -m leaderboards` from `{table_file}`, written by `search.probe gradients`. "
        "For each model at initialisation (BN in training mode, real validation batches): the norm of the mean "
        "cross-entropy's gradient at each residual unit's input, and the correlation of that gradient between an "
        f"input and a copy perturbed by Gaussian noise of std {0.05} (normalised units): Balduzzi et al.'s shattered gradients.", "",
        "## Provenance", "", *_provenance(settings), "",
        "## Per model", "",
        markdown_table(["model", "family", "depth", "units", "norm at first unit", "norm at last unit", "first / last", "correlation at first unit", "correlation at last unit"], summary), "",
        f"![gradient norm and correlation against depth position]({name}-by-depth.png)", "",
    ]
    parts += claims_section(gradient_claims(table), [
        "He et al. (section 4.1) report healthy gradient norms in their plain BN nets and blame optimisation difficulty; "
        "the first claims above test the vanishing reading, the last ones the shattering reading.",
    ], PROBE_RULE)
    return "\n".join(parts).rstrip() + "\n"


def clearly_above_chance(accuracy: float, num_classes: int, images: int) -> bool:
    """Whether an accuracy on ``images`` images lies more than 2 binomial standard errors above
    chance (1 / classes): below that a net has learned nothing a probe could compare (an
    untrained net at 10.4% on 1000 images of 10 classes)."""
    chance = 1.0 / num_classes
    return accuracy - chance > 2 * math.sqrt(chance * (1 - chance) / images)


def lesion_per_net(table: pd.DataFrame) -> pd.DataFrame:
    """One row per lesioned run: its label, seed, intact accuracy, its single lesions' mean and
    worst, and the share of its margin above chance (1 / classes) the single lesions keep."""
    rows = []
    for run, group in table.groupby("run", sort=False):
        base = float(group.loc[group["kind"] == "none", "accuracy"].iloc[0])
        single = group[(group["kind"] == "single") & (group["status"] == "ok") & (~group["changes_shape"].astype(bool))]
        chance = 1.0 / float(group["num_classes"].iloc[0])
        mean = float(single["accuracy"].mean())  # NaN when no unit could be deleted alone
        # A margin within noise of chance (on the images evaluated) has no share to keep.
        trained = clearly_above_chance(base, int(group["num_classes"].iloc[0]), int(group["images"].iloc[0]))
        kept = (mean - chance) / (base - chance) if trained else math.nan
        rows.append({"run": run, "label": group["label"].iloc[0], "family": group["family"].iloc[0], "seed": int(group["seed"].iloc[0]), "intact": base, "single_mean": mean, "single_worst": float(single["accuracy"].min()), "singles": len(single), "chance": chance, "kept": kept})
    return pd.DataFrame(rows)


def lesion_claims(table: pd.DataFrame) -> list[Claim]:
    """One threshold claim per net design, decided over its seeds: the t-interval of the kept
    share (the seeds' mean) must lie past the threshold, as a paired claim's must exclude zero."""
    per_net = lesion_per_net(table)
    claims = []
    for label, nets in per_net[per_net["singles"] > 0].groupby("label", sort=False):
        # A net not clearly above chance has no margin to keep: it is listed and left out of the interval.
        kept = nets.groupby("seed")["kept"].mean().dropna()
        plain = nets["family"].iloc[0] == "plain"
        bar = pd.Series(CATASTROPHIC if plain else BARELY_HURTS, index=kept.index)
        n, mean, low, high = paired_difference(bar, kept) if plain else paired_difference(kept, bar)  # positive: past the bar
        half = high - mean  # the interval's half-width, the same for the kept share as for its distance to the bar
        interval = f"[{kept.mean() - half:.1%}, {kept.mean() + half:.1%}]" if not math.isnan(low) else "n/a"
        # The kept share to one decimal: 89.7% rounded to "90%" would read as meeting the 90% bar.
        if n:
            measured = f"{kept.mean():.1%} of the margin above chance kept (mean over {n} seed(s): {', '.join(f'{share:.1%}' for share in kept)}; 95% CI {interval})"
            if len(nets) > n:
                measured += f"; {len(nets) - n} net(s) not clearly above chance left out"
        else:
            measured = "no net clearly above chance, so no margin to keep"
        evidence = (
            f"{label}: {measured}; intact {nets['intact'].mean():.4f}, single lesions {nets['single_mean'].mean():.4f} on average "
            f"(worst {nets['single_worst'].min():.4f}; chance {nets['chance'].iloc[0]:.2f})"
        )
        if plain:
            statement = f"{label}: deleting one layer block of a plain net is catastrophic (keeps {CATASTROPHIC:.0%} or less of its margin above chance)"
        else:
            statement = f"{label}: deleting one residual branch barely hurts (keeps {BARELY_HURTS:.0%} or more of its margin above chance; Veit et al.)"
        claims.append(Claim(statement, evidence, verdict(n, low, high)))
    return claims


def render_lesion_page(table: pd.DataFrame, settings: dict[str, Any], out_dir: Path, name: str, table_file: str) -> str:
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    curves = []
    for label, rows in table.groupby("label", sort=False):
        # k = 0 is each seed's intact net; k >= 1 pools every draw of every seed.
        by_k = pd.concat([rows[rows["kind"] == "none"], rows[rows["kind"] == "random"]]).groupby("k")["accuracy"]
        means, spreads, counts = by_k.mean(), by_k.std(ddof=1).fillna(0), by_k.count()
        axes.errorbar(means.index, means.values, yerr=spreads.values, fmt="--o" if rows["family"].iloc[0] == "plain" else "-o", capsize=3, label=label)
        curves += [[label, int(k), means[k], int(counts[k])] for k in means.index]
    axes.set_xlabel("blocks removed at random")
    axes.set_ylabel("validation accuracy")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, out_dir / f"{name}-accuracy-vs-removed.png")
    per_net = lesion_per_net(table)
    net_rows = [[r["label"], r["seed"], r["intact"], r["single_mean"], r["single_worst"], "-" if math.isnan(r["kept"]) else f"{r['kept']:.1%}"] for _, r in per_net.iterrows()]
    singles = table[table["kind"] == "single"].groupby(["label", "units"], sort=False)
    single_rows = [
        [label, unit, "yes" if rows["changes_shape"].astype(bool).iloc[0] else "no", rows["accuracy"].mean(), rows["accuracy"].min(), len(rows), rows["status"].iloc[0]]
        for (label, unit), rows in singles
    ]
    recipe = settings.get("recipe", {})
    parts = [
        "# Probe: lesion study", "",
        f"Generated by `python -m leaderboards` from `{table_file}`, written by `search.probe lesion`. Each "
        "residual unit in turn has its branch deleted (the shortcut stays: identity, or the projection / zero-padding "
        "of a unit that changes shape, reported apart); for a plain net the unit becomes the identity where its shape "
        "allows and is refused elsewhere. Then k random units that keep their shape are deleted together. Nets of "
        "one design trained with different seeds are pooled by design.", "",
        "## Provenance", "", *_provenance(settings),
        f"- trained with budget {settings.get('budget', '-')}: recipe `{json.dumps(recipe, sort_keys=True)}`"
        + (f"; each lesion evaluated on {settings['images']} validation images" if "images" in settings else ""), "",
        *([] if settings.get("budget") == "paper" else [
            f"These nets trained at the {settings.get('budget', '-')} budget, not the papers' schedule: a `--budget paper` run "
            "would train them to convergence, where Veit et al. measured.", "",
        ]),
        "## Per net", "",
        markdown_table(["model", "seed", "intact accuracy", "single lesions' mean", "worst single lesion", "margin above chance kept"], net_rows), "",
        "## Accuracy against blocks removed", "",
        markdown_table(["model", "k", "mean validation accuracy", "evaluations (seeds x draws)"], curves), "",
        f"![accuracy vs blocks removed]({name}-accuracy-vs-removed.png)", "",
        "## Single lesions", "",
        markdown_table(["model", "unit", "changes shape", "mean validation accuracy", "worst", "seeds", "status"], single_rows), "",
    ]
    parts += claims_section(lesion_claims(table), [], LESION_RULE)
    return "\n".join(parts).rstrip() + "\n"


RESPONSE_COLUMNS = ("run", "model", "label", "family", "depth", "seed", "budget", "num_classes", "val_accuracy", "val_images", "images", "layer", "name", "std", "rank")
RESPONSE_RULE = (
    "Each net is one number: the mean over its 3x3 layers of the response std. A net whose validation accuracy is "
    "within 2 standard errors of chance (binomial, on its validation split) has learned no function to compare: it is "
    "listed, and its seed's pair is left out. A comparison of two nets holds when "
    "at least 3 seeds pair them (same seed and data split, same budget) and the 95% confidence interval (Student t) "
    "of the mean paired difference excludes zero in the claimed direction; it does not hold when the interval "
    "excludes zero the other way; otherwise there is not enough evidence. One pair of nets can only ever say "
    "\"not enough evidence\": the page shows its numbers, but a verdict needs seeds."
)


def mean_responses(table: pd.DataFrame) -> pd.DataFrame:
    """One row per trained run: its label, design, depth, seed, mean layer-response std, and
    whether it learned anything (``trained``: clearly above chance on its validation split)."""
    per_run = (
        table.groupby("run", sort=False)
        .agg(label=("label", "first"), family=("family", "first"), depth=("depth", "first"), seed=("seed", "first"), budget=("budget", "first"), num_classes=("num_classes", "first"), val_accuracy=("val_accuracy", "first"), val_images=("val_images", "first"), layers=("std", "size"), mean_std=("std", "mean"), min_std=("std", "min"), max_std=("std", "max"))
        .reset_index()
    )
    trained = [clearly_above_chance(r["val_accuracy"], int(r["num_classes"]), int(r["val_images"])) for _, r in per_run.iterrows()]
    return per_run.assign(trained=trained)


def _smaller(per_run: pd.DataFrame, smaller: str, larger: str, statement: str) -> Claim:
    """Claim that ``smaller``'s mean response is below ``larger``'s, paired by seed over the
    seeds where both nets learned something."""
    by_seed = {label: per_run[per_run["label"] == label].groupby("seed")["mean_std"].mean() for label in (smaller, larger)}
    untrained = set(per_run.loc[per_run["label"].isin([smaller, larger]) & ~per_run["trained"], "seed"])
    kept = {label: seeds.drop(index=list(untrained), errors="ignore") for label, seeds in by_seed.items()}
    n, mean, low, high = paired_difference(kept[larger], kept[smaller])  # positive: smaller responses
    interval = f"[{low:+.4f}, {high:+.4f}]" if not math.isnan(low) else "n/a"
    evidence = f"mean layer std {by_seed[smaller].mean():.4f} ({smaller}) vs {by_seed[larger].mean():.4f} ({larger}); "
    evidence += f"paired difference {mean:+.4f}, 95% CI {interval}, n={n} paired seed(s)" if n else "no seed pairs two nets that learned"
    if untrained:
        evidence += f"; left out: seed(s) {', '.join(map(str, sorted(untrained)))}, where a net is not clearly above chance"
    return Claim(statement, evidence, verdict(n, low, high))


def response_claims(table: pd.DataFrame) -> list[Claim]:
    per_run = mean_responses(table)
    labels = per_run.drop_duplicates("label")
    claims = []
    for _, residual in labels[labels["family"] == "residual"].iterrows():
        for _, plain in labels[(labels["family"] == "plain") & (labels["depth"] == residual["depth"])].iterrows():
            claims.append(_smaller(per_run, residual["label"], plain["label"], f"{residual['label']} has smaller responses than {plain['label']} (He et al. section 4.2: residual functions are generally closer to zero than non-residual ones)"))
    for family in ("residual", "pre-activation"):
        group = labels[labels["family"] == family]
        # Deeper vs shallower within one design and shortcut: the label without its depth.
        group = group.assign(design=group["label"].str.replace(r"-\d+", "-D", regex=True)).sort_values("depth")
        for _, same in group.groupby("design", sort=False):
            rows = same.to_dict("records")
            for shallow, deep in zip(rows, rows[1:]):
                claims.append(_smaller(per_run, deep["label"], shallow["label"], f"deeper nets have smaller responses: {deep['label']} below {shallow['label']} (He et al. section 4.2, Fig. 7)"))
    return claims


def render_responses_page(table: pd.DataFrame, settings: dict[str, Any], out_dir: Path, name: str, table_file: str) -> str:
    figure, (by_layer, by_rank) = plt.subplots(2, 1, figsize=(8, 7), dpi=100)
    for label, rows in table.groupby("label", sort=False):
        style = LINE_STYLES.get(rows["family"].iloc[0], "-")
        over_seeds = rows.groupby("layer")["std"].mean()  # the seeds' mean, per layer
        by_layer.plot(over_seeds.index, over_seeds.values, style, label=label)
        ranked = rows.groupby("rank")["std"].mean()
        by_rank.plot(ranked.index, ranked.values, style, label=label)
    by_layer.set_xlabel("layer index (original order)")
    by_rank.set_xlabel("layer index (sorted by magnitude)")
    for axes in (by_layer, by_rank):
        # Log scale: a net that diverged (responses in the hundreds) leaves the trained ones readable.
        axes.set_yscale("log")
        axes.set_ylabel("std of the layer's response (log scale)")
    _finish_axes(by_layer, by_rank)
    _save(figure, out_dir / f"{name}-by-layer.png")
    per_run = mean_responses(table)
    rows = [[r["label"], int(r["seed"]), r["val_accuracy"], "yes" if r["trained"] else "no", int(r["layers"]), r["mean_std"], r["min_std"], r["max_std"]] for _, r in per_run.iterrows()]
    recipe = settings.get("recipe", {})
    parts = [
        "# Probe: layer responses", "",
        f"Generated by `python -m leaderboards` from `{table_file}`, written by `search.probe responses`. "
        "For each trained net, on validation images with the net in evaluation mode: the standard deviation of every "
        "3x3 layer's response, taken after its BN and before the ReLU or the addition (He et al. section 4.2, Fig. 7). "
        "In a full pre-activation unit the BN after a conv belongs to the next layer's pre-activation, so there the "
        "conv's output is the response.", "",
        "## Provenance", "", *_provenance(settings),
        f"- trained with budget {settings.get('budget', '-')}: recipe `{json.dumps(recipe, sort_keys=True)}`; {settings.get('images', '-')} validation images per net", "",
        "## Per net", "",
        markdown_table(["net", "seed", "validation accuracy", "clearly above chance", "3x3 layers", "mean std", "min std", "max std"], rows), "",
        f"![response std by layer, in network order and sorted]({name}-by-layer.png)", "",
    ]
    parts += claims_section(response_claims(table), [], RESPONSE_RULE)
    return "\n".join(parts).rstrip() + "\n"


__all__ = ["GRADIENT_COLUMNS", "LESION_COLUMNS", "RESPONSE_COLUMNS", "RULE", "render_gradients_page", "render_lesion_page", "render_responses_page"]


@dataclass(frozen=True)
class ProbeSource:
    """What a probe page is made from, read and checked before any page is written."""

    table: pd.DataFrame
    settings: dict[str, Any]
    kind: str  # gradients, lesion or responses
    name: str
    directory: Path  # the table's folder, where its page goes unless told otherwise


def read_probe_source(table_path: Path, name: str | None = None) -> ProbeSource:
    """``gradients.csv``, ``lesion.csv`` or ``responses.csv`` and the ``probe.json`` beside it, and
    the page's name (default: the probe's); ResultsError in one line when any is bad."""
    kind = table_path.stem
    required = {"gradients": GRADIENT_COLUMNS, "lesion": LESION_COLUMNS, "responses": RESPONSE_COLUMNS}.get(kind)
    if required is None or not table_path.exists():
        raise ResultsError(f"no probe table at {table_path} (expected gradients.csv, lesion.csv or responses.csv)")
    page_name = name or kind
    check_space_name(page_name, table_path)
    table = read_csv_table(table_path)
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ResultsError(f"{table_path} lacks column(s) {', '.join(missing)}")
    settings = read_record(table_path.parent / "probe.json", "a probe's record (probe.json, written by search.probe)")
    return ProbeSource(table, settings, kind, page_name, table_path.parent)


def write_probe_page(table_path: Path | ProbeSource, out_dir: Path, name: str | None = None) -> PageInfo:
    """Render a probe table (a path, or one read by ``read_probe_source``) into ``out_dir`` as
    ``NAME.md`` with its plot (default NAME: the probe's; two probes of one kind, such as a CPU
    one and the GPU campaign's, need two names)."""
    source = table_path if isinstance(table_path, ProbeSource) else read_probe_source(table_path, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    render, claims_of = PROBE_PAGES[source.kind]
    # Its folder and file, the same wherever the page is written: leaderboards/NAME/KIND.csv
    # reads NAME/KIND.csv.
    table_file = f"{source.directory.resolve().name}/{source.kind}.csv"
    text = render(source.table, source.settings, out_dir, source.name, table_file)
    page = out_dir / f"{source.name}.md"
    zoo.write_atomically(page, text)
    claims = claims_of(source.table)
    headline = f"{sum(c.verdict == HOLDS for c in claims)} of {len(claims)} claims hold"
    return PageInfo(page, source.name, str(source.settings.get("started_at", "-")), str(source.settings.get("budget", "at initialisation")), headline, "")


PROBE_PAGES = {
    "gradients": (render_gradients_page, gradient_claims),
    "lesion": (render_lesion_page, lesion_claims),
    "responses": (render_responses_page, response_claims),
}
