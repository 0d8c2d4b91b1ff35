"""Pages from hand-made results tables: ranks, statistics, Pareto marks, verdicts, determinism."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import zoo
from leaderboards import ResultsError, load_results, pareto_front, rank_configurations, write_page
from leaderboards.__main__ import main
from leaderboards._claims import FAILS, HOLDS, UNSETTLED, complexity_claims, paired_difference, trained_claims
from leaderboards._tables import t_critical_95

REPO = Path(__file__).resolve().parents[2]

# Validation accuracy by (shortcut, seed) at depth 20: B beats A by ~0.02 on every seed.
ACCURACY = {
    ("A", 0): 0.80, ("A", 1): 0.82, ("A", 2): 0.81,
    ("B", 0): 0.82, ("B", 1): 0.84, ("B", 2): 0.835,
    ("none", 0): 0.70, ("none", 1): 0.71, ("none", 2): 0.69,
}


def results_table(accuracy: dict[tuple[str, int], float] = ACCURACY, extra_rows: list[dict] | None = None) -> pd.DataFrame:
    rows = []
    for index, ((shortcut, seed), value) in enumerate(sorted(accuracy.items())):
        params = zoo.complexity("resnet20", shortcut=shortcut)
        rows.append({
            "trial_id": f"t{index:02d}", "space": "shortcuts", "model": "resnet20", "block": "basic", "shortcut": shortcut,
            "depth": 20, "status": "completed", "seed": seed, "val_accuracy": value, "test_accuracy": value - 0.01,
            "test_source": "carved", "train_error": 1 - value + 0.05, "params": params.params, "macs": params.macs,
            "epochs": 5, "wall_seconds": 100.0, "images_per_second": 600.0, "inference_images_per_second": 3000.0,
            "budget": "quick", "hardware": "test CPU", "config_shortcut": shortcut, "config_depth": 20,
        })
    return pd.DataFrame(rows + (extra_rows or []))


def write_table(directory: Path, frame: pd.DataFrame) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / "results.csv", index=False)
    return directory


def test_ranks_means_stds_and_pareto() -> None:
    ranked = rank_configurations(results_table())
    assert list(ranked["label"]) == ["ResNet-20 (B)", "ResNet-20 (A)", "plain-20"]
    assert list(ranked["rank"]) == [1, 2, 3]
    b = ranked.iloc[0]
    assert b["n"] == 3 and b["accuracy_mean"] == pytest.approx((0.82 + 0.84 + 0.835) / 3)
    assert b["accuracy_std"] == pytest.approx(pd.Series([0.82, 0.84, 0.835]).std(ddof=1))
    # plain-20 and A share MACs; A is more accurate, so plain is dominated; B costs more MACs and is best.
    assert list(ranked["pareto"]) == [True, True, False]


def test_pareto_front_on_its_own() -> None:
    marks = pareto_front(pd.Series([0.9, 0.8, 0.85, 0.7]), pd.Series([2.0, 1.0, 3.0, 1.0]))
    assert list(marks) == [True, True, False, False]


def test_paired_confidence_interval() -> None:
    n, mean, low, high = paired_difference(pd.Series([0.82, 0.84, 0.835]), pd.Series([0.80, 0.82, 0.81]))
    differences = pd.Series([0.02, 0.02, 0.025])
    half = 4.302652729749462 * differences.std(ddof=1) / math.sqrt(3)  # t(0.975, 2 df)
    assert n == 3 and mean == pytest.approx(differences.mean())
    assert (low, high) == (pytest.approx(mean - half), pytest.approx(mean + half))


@pytest.mark.parametrize(("degrees", "quantile"), [(1, 12.706204736), (2, 4.302652730), (11, 2.200985160), (30, 2.042272456), (31, 2.039513446), (120, 1.979930405)])
def test_t_quantiles_are_exact_for_every_degree_of_freedom(degrees: int, quantile: float) -> None:
    # Published two-sided 95% values; a table that jumps to 1.96 past 30 df gives too-narrow intervals.
    assert t_critical_95(degrees) == pytest.approx(quantile, abs=1e-6)


def test_verdicts_follow_the_numbers_and_flip_with_them() -> None:
    claims = {c.statement: c.verdict for c in trained_claims(results_table())}
    b_over_a = next(v for s, v in claims.items() if "(B) beat zero-padding (A)" in s)
    residual = next(v for s, v in claims.items() if "beats its plain twin" in s)
    assert (b_over_a, residual) == (HOLDS, HOLDS)
    flipped = dict(ACCURACY)
    for seed in range(3):  # now A beats B by ~0.02 on every seed
        flipped[("A", seed)], flipped[("B", seed)] = ACCURACY[("B", seed)], ACCURACY[("A", seed)]
    claims = {c.statement: c.verdict for c in trained_claims(results_table(flipped))}
    assert next(v for s, v in claims.items() if "(B) beat zero-padding (A)" in s) == FAILS


def test_two_seeds_are_not_enough_evidence() -> None:
    two = {key: value for key, value in ACCURACY.items() if key[1] < 2}
    claims = trained_claims(results_table(two))
    assert claims and all(claim.verdict == UNSETTLED for claim in claims)
    assert all("3+ paired" in claim.evidence for claim in claims)


def test_noisy_difference_is_not_enough_evidence() -> None:
    noisy = dict(ACCURACY)
    noisy[("B", 0)], noisy[("B", 1)], noisy[("B", 2)] = 0.78, 0.86, 0.81  # mean up, sign unsure
    claim = next(c for c in trained_claims(results_table(noisy)) if "(B) beat zero-padding (A)" in c.statement)
    assert claim.verdict == UNSETTLED


def test_the_sequels_ordering_claims_are_wired_to_their_blocks() -> None:
    # ResNet-110 with three orderings, three seeds: full pre-activation best, ReLU before addition worst.
    accuracy = {"resnet110": 0.80, "preresnet110": 0.82, "resnet110_relu_before_add": 0.76}
    rows = []
    for model, value in accuracy.items():
        architecture, cost = zoo.describe(model), zoo.complexity(model)
        for seed in range(3):
            rows.append({"model": model, "block": architecture.block, "shortcut": "A", "depth": 110, "status": "completed", "seed": seed, "val_accuracy": value + 0.001 * seed, "params": cost.params, "macs": cost.macs})
    claims = {c.statement: c for c in trained_claims(pd.DataFrame(rows))}
    preact = next(c for s, c in claims.items() if "full pre-activation beats the original" in s)
    relu = next(c for s, c in claims.items() if "ReLU before the addition hurts" in s)
    assert preact.verdict == HOLDS and "6.37 vs 6.61" in preact.statement and "basic, depth 110, shortcut A" in preact.statement
    assert relu.verdict == HOLDS and "6.61 vs 7.84" in relu.statement
    # No BN-after-addition or bottleneck trials: those claims are not made.
    assert not any("BN after the addition" in s or "bottleneck" in s for s in claims)


def test_complexity_claims_are_exact() -> None:
    assert [claim.verdict for claim in complexity_claims()] == [HOLDS, HOLDS]


def test_page_is_byte_identical_and_well_formed(tmp_path: Path) -> None:
    pruned = {"trial_id": "t99", "space": "shortcuts", "model": "resnet20", "block": "basic", "shortcut": "C", "depth": 20, "status": "pruned",
              "seed": 0, "val_accuracy": 0.99, "params": 1, "macs": 1, "epochs": 1, "reason": "stopped early after 1 epoch(s)", "config_shortcut": "C", "config_depth": 20}
    diverged = {**pruned, "trial_id": "t98", "status": "diverged", "val_accuracy": 0.98, "reason": None}
    directory = write_table(tmp_path / "exp", results_table(extra_rows=[pruned, diverged]))
    completed = results_table()
    curves = pd.DataFrame([
        {"trial_id": row["trial_id"], "epoch": epoch, "train_error": row["train_error"] + 0.3 / epoch, "val_accuracy": row["val_accuracy"] - 0.2 / epoch}
        for _, row in completed.iterrows() for epoch in (1, 2, 3)
    ])
    curves.to_csv(directory / "curves.csv", index=False)
    first = write_page(directory)
    text = first.path.read_text()
    assert "from `exp/results.csv`." in text  # its folder and file, the same wherever the page goes
    assert write_page(directory, tmp_path / "elsewhere").path.read_text() == text
    assert "training wall time summed over trials: 15.0 min\n" in text  # 9 trials of 100 s, not 0.25 h
    assert "## Training curves" in text and (directory / "shortcuts-curves.png").exists()
    pngs = sorted(p.name for p in directory.glob("*.png"))
    snapshot = {name: (directory / name).read_bytes() for name in pngs}
    second = write_page(directory)
    assert second.path.read_text() == text
    assert {name: (directory / name).read_bytes() for name in pngs} == snapshot
    # Pruned and diverged trials are listed apart, never ranked, even with the best numbers.
    ranked_section = text.split("## Ranked configurations")[1].split("## Not ranked")[0]
    assert "ResNet-20 (C)" not in ranked_section
    apart = text.split("## Not ranked")[1].split("##")[0]
    assert "t99" in apart and "pruned" in apart and "t98" in apart and "diverged" in apart
    # Links resolve, and every markdown table has the same number of cells on every row.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all((directory / link).exists() for link in links)
    for block in re.findall(r"((?:^\|.*\|$\n?)+)", text, flags=re.MULTILINE):
        widths = {line.count("|") - line.count("\\|") for line in block.strip().splitlines()}
        assert len(widths) == 1, block
    assert "## Claims" in text and "**holds**" in text


def test_missing_and_malformed_results_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ResultsError, match="no results table"):
        load_results(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.csv").write_text("trial_id,model\nx,resnet20\n")
    with pytest.raises(ResultsError, match="lacks column"):
        load_results(tmp_path / "bad")
    assert main(["--results", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1



def provenance_note(directory: Path, frame: pd.DataFrame) -> str:
    text = write_page(write_table(directory, frame)).path.read_text()
    return text.split("## Provenance")[1].split("## Ranked configurations")[0]


def test_the_budget_note_says_what_the_table_holds(tmp_path: Path) -> None:
    # A short CIFAR run with a carved test split: the CIFAR paper schedule and the data's name.
    quick = provenance_note(tmp_path / "quick", results_table().assign(recipe='{"epochs": 17}', data_name="cifar10-jpeg", hardware="NVIDIA H100 80GB HBM3"))
    assert "(17 epochs, the `quick` budget" in quick and "182 epochs" in quick
    assert "carved from the training images of `cifar10-jpeg`" in quick
    assert "CPU" not in quick  # a GPU page is not called a CPU run
    # An ImageNet-family table at a short budget: the ImageNet schedule, never CIFAR's.
    imagenet = results_table().assign(model="resnet34", depth=34, budget="smoke", test_source="folder", recipe='{"epochs": 1}')
    note = provenance_note(tmp_path / "imagenet", imagenet)
    assert "(1 epoch, the `smoke` budget" in note
    assert "120 epochs" in note and "182 epochs" not in note and "CIFAR" not in note
    assert "carved" not in note  # the data's own test set
    # The paper budget on the data's own test set: nothing to warn about.
    paper = provenance_note(tmp_path / "paper", results_table().assign(budget="paper", test_source="folder"))
    assert "short runs" not in paper and "carved" not in paper

MINIMAL = ["trial_id", "model", "block", "shortcut", "depth", "status", "seed", "val_accuracy", "params", "macs"]


def test_a_table_with_only_the_required_columns_renders(tmp_path: Path) -> None:
    directory = write_table(tmp_path / "exp", results_table()[MINIMAL].assign(space="shortcuts"))
    text = write_page(directory).path.read_text()
    assert "ResNet-20 (B)" in text and "## Claims" in text
    assert "These are short runs (see Provenance)" in text  # no budget, recipe or test split to name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.iloc[0:0], "has a header but no trials"),
        (lambda f: f.assign(val_accuracy=f["val_accuracy"].astype(object).where(f.index != 2, "0.8x")), "column val_accuracy holds '0.8x' (row 4), not a number"),
        (lambda f: f.assign(space="../../escaped"), "space '../../escaped' is not a plain name"),
    ],
)
def test_malformed_tables_are_one_line_errors_that_write_nothing(tmp_path: Path, change: object, message: str) -> None:
    directory = write_table(tmp_path / "exp", change(results_table()))  # type: ignore[operator]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ResultsError) as error:
        write_page(directory)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    ("torn", "message"),
    [
        ("good/search.json", "good/search.json is not a search's settings (search.json, written by search.run) ("),
        ("good/curves.csv", "good/curves.csv is not a readable CSV table"),
        ("good/curves.csv:short", "good/curves.csv lacks column(s) val_accuracy"),  # once a KeyError's traceback
        ("probe/probe.json", "probe/probe.json is not a probe's record (probe.json, written by search.probe) ("),
        ("probe/lesion.csv", "probe/lesion.csv is not a readable CSV table"),
    ],
)
def test_pages_of_several_tables_are_written_only_when_every_table_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str], torn: str, message: str) -> None:
    """A torn record or table beside any of the tables given is one line naming it, and no page
    is written, not even those of the tables before it (once a JSONDecodeError's traceback)."""
    good = write_table(tmp_path / "good", results_table())
    (good / "search.json").write_text('{"space": "shortcuts"}\n')
    (good / "curves.csv").write_text("trial_id,epoch,train_error,val_accuracy\nt00,1,0.5,0.4\n")
    (tmp_path / "probe").mkdir()
    shutil.copy(REPO / "leaderboards" / "lesion" / "lesion.csv", tmp_path / "probe" / "lesion.csv")
    (tmp_path / "probe" / "probe.json").write_text("{}\n")
    if torn.endswith(":short"):
        (tmp_path / torn.removesuffix(":short")).write_text("trial_id,epoch,train_error\nt00,1,0.5\n")
    else:
        (tmp_path / torn).write_bytes(b'{"space": "shortc\xff\x00' if torn.endswith(".json") else b"\xff\xfe\x00\x01")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["--results", f"{good},{tmp_path / 'probe' / 'lesion.csv'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_two_tables_whose_pages_would_land_on_one_file_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Two searches of one space into one --out: the second page once replaced the first.
    for run in ("cpu", "gpu"):
        (write_table(tmp_path / run, results_table()) / "search.json").write_text('{"space": "shortcuts"}\n')
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["--results", f"{tmp_path / 'cpu'},{tmp_path / 'gpu'}", "--out", str(tmp_path / "pages")]) == 2
    assert capsys.readouterr().err == f"error: --results {tmp_path / 'cpu'} and {tmp_path / 'gpu'} would both write {tmp_path / 'pages' / 'shortcuts.md'}; give them separate --out folders, one command each\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert main(["--results", f"{tmp_path / 'cpu'},{tmp_path / 'gpu'}"]) == 0  # each beside its own table


@pytest.mark.parametrize("column", ["val_accuracy", "params", "seed"])
def test_a_completed_row_missing_a_number_is_listed_not_ranked(tmp_path: Path, column: str) -> None:
    broken = {"trial_id": "t77", "space": "shortcuts", "model": "resnet20", "block": "basic", "shortcut": "C", "depth": 20, "status": "completed",
              "seed": 0, "val_accuracy": 0.99, "params": 1, "macs": 1, "config_shortcut": "C", "config_depth": 20}
    broken[column] = math.nan
    frame = results_table(extra_rows=[broken])
    ranked = rank_configurations(frame)
    assert "ResNet-20 (C)" not in set(ranked["label"]) and not ranked["accuracy_mean"].isna().any()
    text = write_page(write_table(tmp_path / "exp", frame)).path.read_text()
    apart = text.split("## Not ranked")[1].split("##")[0]
    assert "t77" in apart and f"incomplete row: no {column}" in apart


def test_the_imagenet_claims_are_wired_to_the_spaces_configurations() -> None:
    # Three seeds of each of the imagenet space's nets, ordered as the paper found them.
    nets = {("resnet18", "none"): (0.60, 0.30), ("resnet18", "A"): (0.62, 0.28), ("resnet34", "none"): (0.59, 0.33), ("resnet34", "A"): (0.66, 0.24),
            ("resnet34", "B"): (0.67, 0.23), ("resnet34", "C"): (0.68, 0.22), ("resnet50", "B"): (0.70, 0.20), ("resnet101", "B"): (0.72, 0.18),
            ("resnet152", "B"): (0.73, 0.17), ("vgg16", None): (0.61, 0.29)}
    rows = []
    for (model, shortcut), (accuracy, train_error) in nets.items():
        overrides = {"shortcut": shortcut} if shortcut else {}
        architecture = zoo.describe(model, **overrides)
        for seed in range(3):  # (params and MACs only make a row rankable here: no claim reads them)
            rows.append({"model": model, "block": architecture.block, "shortcut": architecture.shortcut, "depth": architecture.depth, "status": "completed", "seed": seed,
                         "val_accuracy": accuracy + 0.002 * seed, "train_error": train_error - 0.001 * seed, "params": 1, "macs": 1})
    claims = {c.statement: c.verdict for c in trained_claims(pd.DataFrame(rows))}
    expected = [
        "degradation: plain-34 has higher training error than plain-18",
        "ResNet-34 has lower training error than ResNet-18 (no degradation with shortcuts)",
        "depth 34: the residual net (A) beats its plain twin",
        "depth 34: projection shortcuts on shape changes (B) beat zero-padding (A)",
        "depth 34: projections everywhere (C) beat B",
        "ResNet-101 beats ResNet-50", "ResNet-152 beats ResNet-101",
        "ResNet-152 beats VGG-16",
    ]
    for phrase in expected:
        assert [verdict for statement, verdict in claims.items() if phrase in statement] == [HOLDS], phrase


def test_the_very_deep_spaces_overfitting_claim_reads_test_accuracy() -> None:
    # ResNet-1202 fits the training set as well as ResNet-110 and tests worse, as the paper found;
    # then the other way round.
    def rows(test_110: float, test_1202: float) -> pd.DataFrame:
        table = []
        for depth, test in ((110, test_110), (1202, test_1202)):
            for seed in range(3):
                table.append({"model": f"resnet{depth}", "block": "basic", "shortcut": "A", "depth": depth, "status": "completed", "seed": seed,
                              "val_accuracy": 0.93, "test_accuracy": test + 0.001 * seed, "train_error": 0.001, "params": 1, "macs": 1})
        return pd.DataFrame(table)

    def verdict(frame: pd.DataFrame) -> str:
        [claim] = [c for c in trained_claims(frame) if c.statement.startswith("ResNet-1202 overfits")]
        return claim.verdict

    assert verdict(rows(0.9357, 0.9207)) == HOLDS
    assert verdict(rows(0.9207, 0.9357)) == FAILS
    assert not [c for c in trained_claims(results_table()) if "1202" in c.statement]  # a page without ResNet-1202 does not mention it
