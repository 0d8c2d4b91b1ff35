"""The papers' claims, with verdicts computed from the numbers on the page by one stated rule.

Rule: a claim comparing trained configurations "holds" when each compared configuration has at
least 3 seeds paired with the other's (same seed, same data split) and the 95% confidence
interval (Student t) of the mean paired difference excludes zero in the claimed direction; it
"does not hold" when the interval excludes zero the other way; otherwise there is "not enough
evidence". Complexity claims are exact counts and need no seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

import zoo
from leaderboards._tables import t_critical_95
from leaderboards.schema import ACCURACY_NAMES, rankable, ranking_metric

MIN_PAIRED_SEEDS = 3
HOLDS, FAILS, UNSETTLED = "holds", "does not hold at this budget", "not enough evidence"
RULE = (
    "A claim about trained models holds when both sides have at least 3 paired seeds and the 95% "
    "confidence interval (Student t) of the mean paired difference excludes zero in the claimed "
    "direction; it does not hold when the interval excludes zero the other way; otherwise there is "
    "not enough evidence. Complexity claims are exact counts."
)


# Identity Mappings Table 2: CIFAR-10 test error % of each activation ordering at ResNet-110
# (basic) and ResNet-164 (bottleneck); REFERENCE.md section 2.
SEQUEL_TABLE2 = {
    "original": (6.61, 5.93),
    "BN after addition": (8.17, 6.50),
    "ReLU before addition": (7.84, 6.14),
    "ReLU-only pre-activation": (6.71, 5.91),
    "full pre-activation": (6.37, 5.46),
}
# (better, worse, what the sequel concludes): its section 4.1 readings of Table 2.
ORDERING_CLAIMS = (
    ("full pre-activation", "original", "full pre-activation beats the original"),
    ("original", "ReLU before addition", "a ReLU before the addition hurts (a non-negative residual can only add)"),
    ("original", "BN after addition", "BN after the addition hurts (it alters the signal on the shortcut path)"),
    ("full pre-activation", "ReLU-only pre-activation", "pre-activation needs its BN (ReLU-only pre-activation does no better than the original)"),
)


@dataclass(frozen=True)
class Claim:
    statement: str
    evidence: str
    verdict: str


def paired_difference(better: pd.Series, worse: pd.Series) -> tuple[int, float, float, float]:
    """(n pairs, mean, CI low, CI high) of better - worse over the seeds both sides have."""
    both = pd.concat([better.rename("a"), worse.rename("b")], axis=1).dropna()
    n = len(both)
    if n == 0:
        return 0, math.nan, math.nan, math.nan
    difference = both["a"] - both["b"]
    mean = float(difference.mean())
    if n < 2:
        return n, mean, math.nan, math.nan
    half = t_critical_95(n - 1) * float(difference.std(ddof=1)) / math.sqrt(n)
    return n, mean, mean - half, mean + half


def verdict(n: int, low: float, high: float) -> str:
    if n < MIN_PAIRED_SEEDS or math.isnan(low):
        return UNSETTLED
    if low > 0:
        return HOLDS
    if high < 0:
        return FAILS
    return UNSETTLED


def compare(frame: pd.DataFrame, better: dict[str, object], worse: dict[str, object], metric: str, statement: str, lower_is_better: bool = False, unit: str = "") -> Claim | None:
    """A paired claim "``better`` beats ``worse`` on ``metric``" from completed trials, or None
    when the page has no trial of one side or no such metric (the space cannot speak to it)."""
    if metric not in frame.columns:
        return None
    done = frame[rankable(frame)]

    def side(selector: dict[str, object]) -> pd.Series:
        rows = done
        for key, value in selector.items():
            rows = rows[rows[key] == value]
        return rows.groupby("seed")[metric].mean().astype(float)

    a, b = side(better), side(worse)
    if a.empty or b.empty:
        return None
    if lower_is_better:
        n, mean, low, high = paired_difference(b, a)  # improvement = worse - better
    else:
        n, mean, low, high = paired_difference(a, b)
    ruling = verdict(n, low, high)
    interval = f"[{low:+.4f}, {high:+.4f}]" if not math.isnan(low) else "n/a"
    name = lambda selector: " ".join(f"{k}={v}" for k, v in selector.items())  # noqa: E731
    evidence = f"{metric}: {a.mean():.4f} ({name(better)}) vs {b.mean():.4f} ({name(worse)}); paired improvement {mean:+.4f}{unit}, 95% CI {interval}, n={n} paired seed(s)"
    if ruling == UNSETTLED:
        evidence += f" (settles with more seeds: {MIN_PAIRED_SEEDS}+ paired, narrower interval)" if n < MIN_PAIRED_SEEDS else " (interval spans zero: more seeds or a longer budget would settle it)"
    return Claim(statement, evidence, ruling)


def complexity_claims() -> list[Claim]:
    """He et al.: ResNet-152 is cheaper than VGG-16/19; ResNet-34 is 18% of VGG-19."""
    macs = {name: zoo.complexity(name).macs for name in ("resnet34", "resnet152", "vgg16", "vgg19")}
    ordered = macs["resnet152"] < macs["vgg16"] < macs["vgg19"]
    share = macs["resnet34"] / macs["vgg19"]
    return [
        Claim(
            "ResNet-152 (11.3 GMACs) has lower complexity than VGG-16/19 (15.3/19.6)",
            f"measured {macs['resnet152'] / 1e9:.3f} < {macs['vgg16'] / 1e9:.3f} < {macs['vgg19'] / 1e9:.3f} GMACs (conv + linear, 224x224)",
            HOLDS if ordered else "does not hold",
        ),
        Claim(
            "ResNet-34 has only 18% of VGG-19's FLOPs",
            f"measured {macs['resnet34'] / 1e9:.3f} / {macs['vgg19'] / 1e9:.3f} = {share:.1%}",
            HOLDS if abs(share - 0.18) < 0.01 else "does not hold",
        ),
    ]


def trained_claims(frame: pd.DataFrame) -> list[Claim]:
    """Every claim of the papers that this page's trials can speak to, on validation accuracy (or
    test accuracy where the trials kept no validation split: ``ranking_metric``)."""
    claims: list[Claim | None] = []
    accuracy = ranking_metric(frame)
    depths = sorted(int(d) for d in frame.loc[rankable(frame), "depth"].dropna().unique())
    basic = {"block": "basic"}
    for depth in depths:
        claims.append(compare(frame, {**basic, "depth": depth, "shortcut": "B"}, {**basic, "depth": depth, "shortcut": "A"}, accuracy, f"depth {depth}: projection shortcuts on shape changes (B) beat zero-padding (A) (He et al. Table 3: 24.52 vs 25.03 top-1 error)"))
        claims.append(compare(frame, {**basic, "depth": depth, "shortcut": "C"}, {**basic, "depth": depth, "shortcut": "B"}, accuracy, f"depth {depth}: projections everywhere (C) beat B, marginally (Table 3: 24.19 vs 24.52)"))
        claims.append(compare(frame, {**basic, "depth": depth, "shortcut": "A"}, {**basic, "depth": depth, "shortcut": "none"}, accuracy, f"depth {depth}: the residual net (A) beats its plain twin"))
    for shallow, deep in zip(depths, depths[1:]):
        claims.append(compare(frame, {**basic, "depth": shallow, "shortcut": "none"}, {**basic, "depth": deep, "shortcut": "none"}, "train_error", f"degradation: plain-{deep} has higher training error than plain-{shallow}", lower_is_better=True))
        claims.append(compare(frame, {**basic, "depth": deep, "shortcut": "A"}, {**basic, "depth": shallow, "shortcut": "A"}, "train_error", f"ResNet-{deep} has lower training error than ResNet-{shallow} (no degradation with shortcuts)", lower_is_better=True))
    # He et al. section 4.2: ResNet-1202 trains (training error below 0.1%, as ResNet-110's) but
    # tests worse than ResNet-110: overfitting. Its own claim, on test accuracy.
    claims.append(compare(frame, {**basic, "depth": 110, "shortcut": "A"}, {**basic, "depth": 1202, "shortcut": "A"}, "test_accuracy", "ResNet-1202 overfits: ResNet-110 tests better (He et al. section 4.2: 6.43% vs 7.93% test error, at similar training error)"))
    # ImageNet (He et al. Table 3): deeper bottleneck nets are better; ResNet-152 beats VGG-16 at lower MACs.
    bottleneck = {"block": "bottleneck", "shortcut": "B"}
    deep_depths = sorted(int(d) for d in frame.loc[rankable(frame) & (frame["block"] == "bottleneck"), "depth"].dropna().unique())
    for shallow, deep in zip(deep_depths, deep_depths[1:]):
        claims.append(compare(frame, {**bottleneck, "depth": deep}, {**bottleneck, "depth": shallow}, accuracy, f"the deeper bottleneck net is better: ResNet-{deep} beats ResNet-{shallow} (Table 3: 22.85 / 21.75 / 21.43 top-1 error at 50 / 101 / 152)"))
    claims.append(compare(frame, {"model": "resnet152"}, {"model": "vgg16"}, accuracy, "ResNet-152 beats VGG-16 (Table 3: 21.43 vs 28.07 top-1 error) at lower cost (11.3 vs 15.3 GMACs)"))
    for design, blocks in zoo.ORDERING_BLOCKS.items():
        paper_depth = 110 if design == "basic" else 164
        for depth in depths:
            for shortcut in ("A", "B", "C"):
                for better, worse, finding in ORDERING_CLAIMS:
                    a, b = SEQUEL_TABLE2[better][design == "bottleneck"], SEQUEL_TABLE2[worse][design == "bottleneck"]
                    claims.append(compare(
                        frame, {"block": blocks[better], "depth": depth, "shortcut": shortcut}, {"block": blocks[worse], "depth": depth, "shortcut": shortcut}, accuracy,
                        f"{design}, depth {depth}, shortcut {shortcut}: {finding} (Identity Mappings Table 2 at depth {paper_depth}: {a} vs {b} error)",
                    ))
    return [claim for claim in claims if claim is not None]


def per_parameter_gain(frame: pd.DataFrame) -> list[str]:
    """How much accuracy each shortcut option buys per extra parameter, over A."""
    done = frame[rankable(frame) & (frame["block"] == "basic")]
    accuracy = ranking_metric(frame)
    lines = []
    for depth, rows in done.groupby("depth"):
        base = rows[rows["shortcut"] == "A"]
        if base.empty:
            continue
        for shortcut in ("B", "C"):
            other = rows[rows["shortcut"] == shortcut]
            if other.empty:
                continue
            extra = int(other["params"].iloc[0]) - int(base["params"].iloc[0])
            gain = other[accuracy].mean() - base[accuracy].mean()
            lines.append(f"depth {int(depth)}: {shortcut} over A adds {extra:,} parameters for {gain:+.4f} {ACCURACY_NAMES[accuracy]} accuracy ({gain / extra * 1e4:+.4f} per 10k parameters)")
    return lines
