"""Markdown pages from results tables: provenance, the ranked table, trials not ranked, and the
papers' figures beside the measured ones. Deterministic: the same inputs give the same bytes."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import zoo
from leaderboards._claims import RULE, Claim, complexity_claims, per_parameter_gain, trained_claims
from leaderboards._plots import curve_plot, pareto_plots
from leaderboards._tables import (
    ResultsError,
    check_space_name,
    load_results,
    rank_configurations,
    read_csv_table,
    read_record,
)
from leaderboards.schema import (
    ACCURACY_NAMES,
    CURVE_COLUMNS,
    CURVES_FILE,
    RANKED,
    architecture,
    rank_needs,
    rankable,
    ranking_metric,
)


def _cell(value: Any, digits: int = 4) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def _rounded(value: float, digits: int | None = None) -> float | int | None:
    """A number for a cell; a measurement the table does not hold (an optional column) is None."""
    return None if value is None or math.isnan(value) else round(value, digits)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def read_settings(directory: Path) -> dict[str, Any]:
    return read_record(directory / "search.json", "a search's settings (search.json, written by search.run)")


def duration(seconds: float) -> str:
    """Seconds as a reader wants them: a smoke search's 57 s, not 0.02 h."""
    if math.isnan(seconds):
        return "-"
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def recipe_fields(frame: pd.DataFrame) -> dict[str, Any]:
    """The recipe of the table's first trial (the JSON text of its ``recipe`` column), or nothing."""
    recipe = frame["recipe"].iloc[0] if "recipe" in frame else None
    return json.loads(recipe) if isinstance(recipe, str) else {}


def provenance(frame: pd.DataFrame, settings: dict[str, Any]) -> list[str]:
    first = frame.iloc[0]
    recipe = first.get("recipe") if "recipe" in frame else None
    versions = settings.get("versions", {})
    wall = frame["wall_seconds"].astype(float).sum() if "wall_seconds" in frame else math.nan
    splits = first.get("splits") if "splits" in frame else None
    lines = [
        f"- space: `{settings.get('space', first.get('space', '?'))}`, sampler {settings.get('sampler', '?')}, seeds per configuration: {settings.get('seeds', '?')}",
        f"- data: {first.get('data_name', settings.get('data', '?'))}, splits {splits if isinstance(splits, str) else '-'} (test split: {', '.join(sorted(set(map(str, frame['test_source'].dropna())))) if 'test_source' in frame else '-'})",
        f"- budget: {first.get('budget', settings.get('budget', '?'))}; recipe: `{recipe if isinstance(recipe, str) else '-'}`",
        f"- hardware: {', '.join(sorted(set(map(str, frame['hardware'].dropna())))) if 'hardware' in frame else '-'}; precision {', '.join(sorted(set(map(str, frame['precision'].dropna())))) if 'precision' in frame else '-'}",
        f"- versions: torch {', '.join(sorted(set(map(str, frame['torch_version'].dropna())))) if 'torch_version' in frame else '-'}"
        + "".join(f", {name} {version}" for name, version in sorted(versions.items()) if name != "torch"),
        f"- git commit: {', '.join(sorted(set(map(str, frame['git_commit'].dropna())))) if 'git_commit' in frame else '-'}; started {settings.get('started_at', '-')}",
        f"- trials: {len(frame)} ({', '.join(f'{n} {s}' for s, n in sorted(frame['status'].value_counts().items()))}); training wall time summed over trials: {duration(wall)}",
        f"- reproduce: `{settings.get('command', 'python -m search.run ...')}`",
    ]
    if "world_size" in frame and frame["world_size"].notna().any():  # tables from before the column say nothing
        sizes = sorted({int(size) for size in frame["world_size"].dropna()})
        synced = recipe_fields(frame).get("sync_bn", False)
        statistics = "synced across them (SyncBatchNorm)" if synced else "per worker, over its part of each batch" if sizes[-1] > 1 else "over the whole batch"
        lines.insert(4, f"- data-parallel workers per trial: {', '.join(map(str, sizes))}; BatchNorm statistics {statistics}")
    return lines


def reference_rows(ranked: pd.DataFrame) -> list[list[Any]]:
    """Published figures of registered models whose architecture a ranked row matches."""
    rows = []
    for _, row in ranked.iterrows():
        if str(row["model"]) not in zoo.list_models():
            continue
        card = zoo.model_card(str(row["model"]))
        same = card.kind == "vgg" or (card.block == row["block"] and card.shortcut == row["shortcut"] and card.depth == row["depth"])
        if not same or card.published.error is None and card.published.params is None:
            continue
        published = card.published
        rows.append([
            row["label"],
            f"{published.params / 1e6:.2f}M" if published.params else "-",
            f"{row['params'] / 1e6:.3f}M",
            f"{published.error:.2f}" if published.error is not None else None,  # percent, as printed
            f"{published.reproduced[0]:.2f} ({published.reproduced[1]})" if published.reproduced else "-",
            None if math.isnan(row["test_mean"]) else f"{100 * (1 - row['test_mean']):.2f}",
            f"{published.source} {published.note}".strip(),
        ])
    return rows


def claims_section(claims: list[Claim], extra: list[str], rule: str = RULE) -> list[str]:
    parts = ["## Claims", "", rule, ""]
    if not claims:
        return parts + ["This page's trials speak to none of the papers' claims.", ""]
    parts += [markdown_table(["claim", "evidence on this page", "verdict"], [[c.statement, c.evidence, f"**{c.verdict}**"] for c in claims]), ""]
    return parts + [f"- {line}" for line in extra] + ([""] if extra else [])


# The papers' own schedule per model family, which a page's short budget is not.
PAPER_SCHEDULES = {
    "cifar": "He et al. section 4.2: 182 epochs, lr 0.1 divided by 10 at 50% and 75%, fp32",
    "imagenet": "He et al. section 3.4: 120 epochs, lr 0.1 divided by 10 every 30 (the paper: on plateaus), 10-crop evaluation, fp32",
}


def budget_note(frame: pd.DataFrame) -> str:
    """What a page's numbers are not: a short budget's, not the papers' schedule; a test split
    carved from the training images, not the data's own. Read from the table (budget, recipe,
    models, data), so a GPU page, an ImageNet page or a page on other data says what it is."""
    first = frame.iloc[0]
    notes = []
    budget = str(first.get("budget", "")) if "budget" in frame else ""
    if budget != "paper":
        recipe = recipe_fields(frame)
        epochs = f"{recipe['epochs']} epoch{'s' if recipe['epochs'] != 1 else ''}" if "epochs" in recipe else ""
        described = ", ".join(part for part in (epochs, f"the `{budget}` budget" if budget else "") if part)
        families = {zoo.model_card(str(model)).family for model in frame["model"].dropna().unique() if str(model) in zoo.list_models()}
        schedule = f" ({PAPER_SCHEDULES[families.pop()]})" if len(families) == 1 else ""
        notes.append(
            f"These are short runs ({described + '; ' if described else ''}see Provenance), not the papers' schedules: absolute accuracies are "
            f"not comparable with the papers', and deeper nets are further from convergence. A `--budget paper` run{schedule} is what the "
            "papers' numbers should be compared with; it would also narrow the seed-to-seed spread the verdicts rest on."
        )
    if "test_source" in frame and set(frame["test_source"].dropna()) == {"carved"}:
        notes.append(f"The test split is carved from the training images of `{first.get('data_name', '?')}` (see Provenance), not the data's original test set.")
    return " ".join(notes)


def render_page(frame: pd.DataFrame, settings: dict[str, Any], title: str, table_file: str, out_dir: Path | None = None, curves: pd.DataFrame | None = None) -> tuple[str, pd.DataFrame]:
    """The page's markdown and its ranked table (Pareto plots, and the training curves when the
    per-epoch table is given, go to ``out_dir`` when given, named after ``title``, the page's)."""
    ranked, metric = rank_configurations(frame), ranking_metric(frame)
    measured = ACCURACY_NAMES[metric]
    parts = [f"# Leaderboard: {title}", "", f"Generated by `python -m leaderboards` from `{table_file}`.", ""]
    parts += ["## Provenance", "", *provenance(frame, settings), "", budget_note(frame), ""]
    parts += ["## Ranked configurations", ""]
    if ranked.empty:
        parts += ["No trial completed yet.", ""]
    else:
        header = ["rank", "configuration", "block", "shortcut", "depth", "params", "GMACs", "inference img/s", f"{metric.removesuffix('_accuracy')} acc (mean +- std, n)", "test acc (split)", "train error", "epochs", "wall s", "train img/s", "Pareto"]
        rows = []
        for _, row in ranked.iterrows():
            spread = f"{row['accuracy_mean']:.4f} +- {row['accuracy_std']:.4f} (n={row['n']})" if row["n"] > 1 else f"{row['accuracy_mean']:.4f} (n=1)"
            test = "-" if math.isnan(row["test_mean"]) else f"{row['test_mean']:.4f} ({row['test_source']})"
            rows.append([row["rank"], row["label"], row["block"], row["shortcut"], row["depth"], f"{row['params']:,}", _rounded(row["gmacs"], 4), _rounded(row["inference"]), spread, test, row["train_error"], row["epochs"], _rounded(row["wall_seconds"]), _rounded(row["train_speed"]), "*" if row["pareto"] else ""])
        parts += [markdown_table(header, rows), "", f"Pareto: on the front of {measured} accuracy vs GMACs (no configuration is both more accurate and cheaper).", ""]
        if metric == "test_accuracy":
            parts += ["These trials kept no validation split (recipe `val_size` 0): every non-test image trained on a fixed schedule, the final weights are the result and nothing was chosen on the test split, so it ranks them, as He et al.'s Table 6 does.", ""]
        if out_dir is not None:
            parts += [f"![{caption}]({name})" for caption, name in pareto_plots(ranked, out_dir, title, measured)] + [""]
            drawn = curve_plot(frame, curves, out_dir, title) if curves is not None and not curves.empty else None
            if drawn:
                drawn_errors = "Training error (thin) and validation error (bold) per epoch" if metric == "val_accuracy" else "Training error per epoch (no validation split to draw)"
                parts += ["## Training curves", "", f"{drawn_errors}; the band spans the seeds.", "", f"![training curves]({drawn})", ""]
    apart = frame[~rankable(frame)]
    parts += ["## Not ranked (pruned, diverged, failed)", ""]
    if apart.empty:
        parts += ["None.", ""]
    else:
        rows = [[r["trial_id"], architecture(r).label, r["seed"], r["status"], r.get("epochs"), why_not_ranked(r, rank_needs(frame))] for _, r in apart.sort_values("trial_id").iterrows()]
        parts += [markdown_table(["trial", "configuration", "seed", "status", "epochs", "why"], rows), ""]
    if not ranked.empty:
        references = reference_rows(ranked)
        if references:
            parts += ["## Against the papers", ""]
            parts += [markdown_table(["configuration", "paper params", "measured params", "paper test error %", "reproduced test error %", "measured test error %", "source"], references), ""]
            parts += ["Measured errors come from this page's budget, recipe and data (see Provenance), not the papers' schedules and test sets: a short run's higher error is not a failed reproduction.", ""]
    parts += claims_section(trained_claims(frame), per_parameter_gain(frame))
    return "\n".join(parts).rstrip() + "\n", ranked


def why_not_ranked(row: pd.Series, needs: tuple[str, ...]) -> Any:
    if row["status"] == RANKED:
        return "incomplete row: no " + ", ".join(c for c in needs if pd.isna(row[c]))
    return row.get("reason") if isinstance(row.get("reason"), str) else row.get("error")


@dataclass(frozen=True)
class PageInfo:
    path: Path
    name: str  # the page file's stem: its space, or the folder it was published into
    date: str
    budget: str
    headline: str  # the best ranked configuration, or why there is none
    top: str  # a few ranked rows as plain text, for a terminal


@dataclass(frozen=True)
class ResultsSource:
    """What a results page is made from, read and checked, so that a command given several
    tables writes no page unless every table is good."""

    frame: pd.DataFrame
    settings: dict[str, Any]
    name: str
    table: Path  # the results.csv itself (the directory's, or a file given by name)
    curves: pd.DataFrame | None

    @property
    def directory(self) -> Path:
        """Where the table's search.json and curves.csv are, and its page goes by default."""
        return self.table.parent


def read_results_source(results: str | Path, name: str | None = None) -> ResultsSource:
    """A results table (a file or an experiment directory), the search.json and curves beside it,
    and the page's name (default: the space's); ResultsError in one line when any is bad."""
    results = Path(results)
    table = results / "results.csv" if results.is_dir() else results
    directory = table.parent
    frame = load_results(table)
    settings = read_settings(directory)
    page_name = name or str(settings.get("space") or frame["space"].iloc[0])
    check_space_name(page_name, directory / "search.json")
    curves = read_csv_table(directory / CURVES_FILE) if (directory / CURVES_FILE).exists() else None
    missing = [column for column in CURVE_COLUMNS if curves is not None and column not in curves.columns]
    if missing:
        raise ResultsError(f"{directory / CURVES_FILE} lacks column(s) {', '.join(missing)}")
    return ResultsSource(frame, settings, page_name, table, curves)


def write_page(results: str | Path | ResultsSource, out: str | Path | None = None, name: str | None = None) -> PageInfo:
    """Render the page for a results table (a file, an experiment directory, or one read by
    ``read_results_source``) into ``out`` (default: beside the table), with its plots, as
    ``NAME.md`` (default: the space's name; two tables of one space, at two budgets, need two names)."""
    source = results if isinstance(results, ResultsSource) else read_results_source(results, name)
    frame, settings, page_name = source.frame, source.settings, source.name
    out_dir = Path(out) if out is not None else source.directory
    out_dir.mkdir(parents=True, exist_ok=True)
    # Its folder and file, the same wherever the page is written (a page regenerated elsewhere
    # must equal the committed one): leaderboards/NAME/results.csv reads NAME/results.csv.
    table_file = f"{source.table.resolve().parent.name}/{source.table.name}"
    text, ranked = render_page(frame, settings, page_name, table_file, out_dir, source.curves)
    page = out_dir / f"{page_name}.md"
    zoo.write_atomically(page, text)
    if ranked.empty:
        headline, top = "no completed trial", "no completed trial"
    else:
        best = ranked.iloc[0]
        headline = f"{best['label']}: {best['accuracy_mean']:.4f} {ranking_metric(frame).removesuffix('_accuracy')} accuracy (n={best['n']})"
        top = ranked.head(5)[["rank", "label", "accuracy_mean", "accuracy_std", "n", "gmacs"]].to_string(index=False)
    budget = str(frame["budget"].iloc[0]) if "budget" in frame else str(settings.get("budget", "-"))
    return PageInfo(page, page_name, str(settings.get("started_at", "-")), budget, headline, top)


def write_index(out_dir: Path, pages: list[PageInfo]) -> Path:
    rows = [[f"[{p.name}]({p.path.name})", p.date, p.budget, p.headline] for p in sorted(pages, key=lambda p: p.name)]
    text = "\n".join([
        "# Leaderboards", "",
        "Generated by `python -m leaderboards` from the results tables committed beside the pages "
        "(`NAME/results.csv` becomes `NAME.md`); each page says how it was produced and how to reproduce it.", "",
        markdown_table(["page", "date", "budget", "headline"], rows), "",
    ])
    path = out_dir / "README.md"
    zoo.write_atomically(path, text)
    return path


def zoo_commit() -> str:
    """The last commit that changed the zoo: what this page's counts depend on (a commit of the
    whole tree would change the page on every commit, and regeneration would never be stable)."""
    zoo_dir = Path(zoo.__file__).resolve().parent
    try:
        found = subprocess.run(["git", "log", "-1", "--format=%H", "--", "."], cwd=zoo_dir, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=zoo_dir, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    if found.returncode != 0 or not found.stdout.strip():
        return "unknown (not a git checkout)"
    return found.stdout.strip()[:12] + (" with uncommitted changes" if dirty.stdout.strip() else "")


def torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


def render_complexity_page() -> str:
    """The whole zoo's parameters and MACs against the published tables (no training)."""
    rows = []
    for name in zoo.list_models():
        card = zoo.model_card(name)
        measured = zoo.complexity(name)
        published = card.published
        rows.append([
            name, card.family, card.block or "-", card.shortcut or "-", card.depth, f"{measured.params:,}",
            f"{published.params / 1e6:.2f}M" if published.params else "-", round(measured.macs / 1e9, 4),
            published.macs / 1e9 if published.macs else None, published.error, published.dataset or "-",
        ])
    header = ["model", "family", "block", "shortcut", "depth", "params", "paper params", "GMACs", "paper GMACs", "paper error %", "error on"]
    parts = [
        "# Leaderboard: complexity", "",
        f"Generated by `python -m leaderboards` from the zoo at commit {zoo_commit()} (the last commit that changed `zoo/`), torch {torch_version()}, without training: parameters are trainable "
        "parameters; GMACs are conv + linear multiply-accumulates for one image at the model's input size "
        "(32x32 CIFAR, 224x224 ImageNet), the quantity the ResNet paper calls FLOPs, counted with "
        "`torch.utils.flop_counter` (2 FLOPs per MAC) on the meta device. ImageNet bottleneck nets put the "
        "stride on the first 1x1 as the paper does (torchvision's v1.5 puts it on the 3x3: `stride_on=\"3x3\"`, 4.089 GMACs for ResNet-50).", "",
        markdown_table(header, rows), "",
    ]
    parts += claims_section(complexity_claims(), [])
    return "\n".join(parts).rstrip() + "\n"


__all__ = ["PageInfo", "ResultsSource", "markdown_table", "read_results_source", "render_complexity_page", "render_page", "write_index", "write_page"]
