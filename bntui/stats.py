"""Statistics for paired BN / no-BN runs: Student t intervals, verdicts, group summaries.

One run per arm cannot tell BN from no BN: with 10,000 test images the sampling noise alone is
about ±0.5 accuracy points per run. A `--bn both --seeds K` launch gives K pairs of runs that
share a seed (same initial shared weights, same batch order); the per-seed differences
BN − no-BN carry most of the run-to-run noise away, and a Student t interval on their mean says
whether the gap is larger than what K seeds can resolve.

Student's t comes from scipy (the field's standard), imported on first use; no torch: this runs
in the UI process.
Accuracies are fractions in [0, 1], as the engine reports them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

from bntui.config import PAIRING_IGNORED, norm_description, pairing_key, swept_settings
from bntui.present.words import counted

if TYPE_CHECKING:
    from bntui.store.schema import RunRecord

BN_BETTER = "BN better"
NO_BN_BETTER = "no BN better"
NO_DIFFERENCE = "no difference detectable at this number of seeds"
# Without an interval there is no verdict to give, and "no difference" would read as a finding.
NOTHING_TO_COMPARE = "nothing to compare yet: no complete BN / no-BN seed pair"
ONE_PAIR = "none from one seed pair: run more seeds (3 or more) for an interval"

MIN_SEEDS_FOR_VERDICT = 3
FEW_SEEDS_WARNING = "fewer than 3 seeds: the interval is wide and the verdict fragile"
# One pair has no interval at all: warning that it is wide contradicted the card's own line.
ONE_PAIR_WARNING = "one seed pair: no interval and no verdict; run 3 or more seeds"
NO_PAIRS_WARNING = "no complete BN / no-BN pair (same seed, both finished): nothing to compare"

BandKind = Literal["std", "minmax"]

# Settings that may differ between the runs of a group without changing what is compared.
_HARMLESS_FIELDS = set(PAIRING_IGNORED)


# --------------------------------------------------------------------------- Student t


def _student_t():
    """scipy's Student t (imported on first use: the UI process starts without it)."""
    from scipy.stats import t

    return t


def _check_df(df: float) -> None:
    if not (df > 0):  # also rejects NaN
        raise ValueError(f"degrees of freedom must be positive, got {df}")


def t_sf(t: float, df: float) -> float:
    """Upper tail P(T > t) of Student's t with `df` (> 0, may be fractional or inf) degrees of freedom."""
    _check_df(df)
    return float(_student_t().sf(t, df))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) of Student's t with `df` degrees of freedom."""
    _check_df(df)
    return float(_student_t().cdf(t, df))


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` (> 0, may be fractional or inf) degrees of freedom."""
    _check_df(df)
    if not (0.0 < p < 1.0):
        raise ValueError(f"probability must be strictly between 0 and 1, got {p}")
    return float(_student_t().ppf(p, df))


# --------------------------------------------------------------------------- basic summaries


def mean_std(values: Iterable[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n − 1). The std is None for a single value."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("mean_std needs at least one value")
    mean = math.fsum(data) / len(data)
    if len(data) < 2:
        return mean, None
    variance = math.fsum((v - mean) ** 2 for v in data) / (len(data) - 1)
    return mean, math.sqrt(variance)


@dataclass(frozen=True)
class PairedResult:
    """Mean paired difference (BN − no-BN) with its Student t confidence interval.

    With n = 1 there is no spread to estimate: std_diff, ci_low and ci_high are None."""

    n: int
    mean_diff: float
    std_diff: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float = 0.95
    differences: tuple[float, ...] = ()

    @property
    def half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2.0

    @property
    def p_value(self) -> float | None:
        """Two-sided paired t-test p-value for "no difference" (None when n < 2)."""
        if self.n < 2 or self.std_diff is None:
            return None
        if self.std_diff == 0.0:
            return 1.0 if self.mean_diff == 0.0 else 0.0
        statistic = self.mean_diff / (self.std_diff / math.sqrt(self.n))
        return min(1.0, 2.0 * t_sf(abs(statistic), self.n - 1))


def paired_difference(
    bn_values: Sequence[float], nobn_values: Sequence[float], confidence: float = 0.95
) -> PairedResult:
    """Mean of the per-seed differences bn[i] − nobn[i] and its t interval (n − 1 df)."""
    if len(bn_values) != len(nobn_values):
        raise ValueError(f"paired values differ in length: {len(bn_values)} BN vs {len(nobn_values)} no-BN")
    if not bn_values:
        raise ValueError("paired_difference needs at least one pair")
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    differences = tuple(float(b) - float(o) for b, o in zip(bn_values, nobn_values))
    if not all(math.isfinite(d) for d in differences):
        raise ValueError("paired values must be finite numbers")
    mean, std = mean_std(differences)
    n = len(differences)
    if std is None:
        return PairedResult(n, mean, None, None, None, confidence, differences)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    return PairedResult(n, mean, std, mean - half, mean + half, confidence, differences)


def verdict(result: PairedResult | None, higher_is_better: bool = True) -> str:
    """Plain-language reading of the interval on BN − no-BN.

    For accuracies higher is better; for losses pass higher_is_better=False."""
    if result is None or result.n == 0:
        return NOTHING_TO_COMPARE
    if result.n < 2 or result.ci_low is None or result.ci_high is None:
        return ONE_PAIR
    if result.ci_low > 0:
        return BN_BETTER if higher_is_better else NO_BN_BETTER
    if result.ci_high < 0:
        return NO_BN_BETTER if higher_is_better else BN_BETTER
    return NO_DIFFERENCE


def epochs_to_target(val_accuracy_history: Sequence[float], target: float) -> int | None:
    """First epoch (1-based) whose validation accuracy is >= target; None if never reached."""
    for epoch, value in enumerate(val_accuracy_history, start=1):
        if value >= target:  # NaN never reaches
            return epoch
    return None


class Band(NamedTuple):
    """A mean curve with a band over seeds, one value per epoch."""

    mean: list[float]
    low: list[float]
    high: list[float]


def common_length(curves: Sequence[Sequence[float]]) -> int:
    return min((len(c) for c in curves), default=0)


def band(curves: Sequence[Sequence[float]], kind: BandKind = "std") -> Band:
    """Per-epoch mean and band over several curves: mean ± sample std ("std") or the min and max
    ("minmax"). Curves of different lengths are cut to their common prefix (the shortest
    curve's length); summarize_group notes when that happens. One curve gives a zero-width band.
    """
    if kind not in ("std", "minmax"):
        raise ValueError(f"band kind must be 'std' or 'minmax', got {kind!r}")
    length = common_length(curves)
    mean: list[float] = []
    low: list[float] = []
    high: list[float] = []
    for index in range(length):
        column = [float(c[index]) for c in curves]
        centre, std = mean_std(column)
        mean.append(centre)
        if kind == "std":
            spread = std or 0.0
            low.append(centre - spread)
            high.append(centre + spread)
        else:
            low.append(min(column))
            high.append(max(column))
    return Band(mean, low, high)


# --------------------------------------------------------------------------- group summary


@dataclass(frozen=True)
class ExcludedRun:
    run_id: str
    reason: str


@dataclass(frozen=True)
class SeedPair:
    seed: int
    bn_run_id: str
    nobn_run_id: str
    bn_test_accuracy: float
    nobn_test_accuracy: float

    @property
    def difference(self) -> float:
        return self.bn_test_accuracy - self.nobn_test_accuracy


@dataclass(frozen=True)
class ArmSummary:
    """One arm (BN or no BN) over the paired seeds."""

    bn: bool
    n: int
    seeds: tuple[int, ...]
    run_ids: tuple[str, ...]
    test_accuracy_mean: float | None
    test_accuracy_std: float | None
    best_mean_val_accuracy: float | None
    epochs_to_target: tuple[int | None, ...]  # per seed, in the order of `seeds`
    val_loss: Band
    val_accuracy: Band

    @property
    def label(self) -> str:
        return "BN" if self.bn else "no BN"

    @property
    def reached_target(self) -> int:
        return sum(e is not None for e in self.epochs_to_target)

    @property
    def epochs_to_target_mean(self) -> float | None:
        """Mean epochs-to-target over the seeds that reached it (see reached_target)."""
        reached = [e for e in self.epochs_to_target if e is not None]
        return math.fsum(reached) / len(reached) if reached else None


@dataclass(frozen=True)
class GroupSummary:
    group: str | None
    title: str  # e.g. "cifar10 / lenet5, 20 epochs"
    pairs: tuple[SeedPair, ...]
    bn: ArmSummary
    no_bn: ArmSummary
    paired: PairedResult | None  # test accuracy, BN − no-BN; None without any pair
    verdict: str
    target_accuracy: float | None
    target_source: str  # how the target was chosen, for the card
    band_kind: BandKind
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    excluded: tuple[ExcludedRun, ...] = field(default_factory=tuple)

    @property
    def k(self) -> int:
        """Number of complete seed pairs."""
        return len(self.pairs)


def _arm_name(bn: bool) -> str:
    return "BN" if bn else "no-BN"


def _is_usable(record: RunRecord) -> str | None:
    """None when the run can be compared, otherwise the reason it cannot."""
    if record.status != "finished":
        return f"status {record.status}" + (f" ({record.message})" if record.message else "")
    if record.final is None:
        return "finished without final metrics"
    if not math.isfinite(record.final.test_accuracy):
        return "test accuracy is not a number"
    return None


def _test_accuracy(record: RunRecord) -> float:
    assert record.final is not None  # only usable runs are paired
    return record.final.test_accuracy


def _differing_settings(records: Sequence[RunRecord]) -> list[str]:
    dumps = [r.config.model_dump(exclude=_HARMLESS_FIELDS) for r in records]
    if not dumps:
        return []
    return sorted(k for k in dumps[0] if any(d.get(k) != dumps[0][k] for d in dumps[1:]))


def _arm_summary(bn: bool, records: Sequence[RunRecord], target: float | None, kind: BandKind) -> ArmSummary:
    test_values = [r.final.test_accuracy for r in records if r.final is not None]
    mean, std = mean_std(test_values) if test_values else (None, None)
    accuracy_band = band([r.history.val_accuracy for r in records], kind)
    return ArmSummary(
        bn=bn,
        n=len(records),
        seeds=tuple(r.config.seed for r in records),
        run_ids=tuple(r.id for r in records),
        test_accuracy_mean=mean,
        test_accuracy_std=std,
        best_mean_val_accuracy=max(accuracy_band.mean) if accuracy_band.mean else None,
        epochs_to_target=tuple(
            None if target is None else epochs_to_target(r.history.val_accuracy, target) for r in records
        ),
        val_loss=band([r.history.val_loss for r in records], kind),
        val_accuracy=accuracy_band,
    )


def summarize_group(
    records: Sequence[RunRecord],
    *,
    target_accuracy: float | None = None,
    band_kind: BandKind = "std",
    confidence: float = 0.95,
) -> GroupSummary:
    """Pair the group's runs by seed and compare the arms on test accuracy.

    Only finished runs with final metrics count; runs that are not, duplicates (a second run of
    the same arm and seed; the first one listed is kept) and runs whose seed has no usable
    partner in the other arm are listed in `excluded` with the reason. The epochs-to-target
    target defaults to the lower arm's best mean validation accuracy, so both arms can reach it.
    Raises ValueError when the records come from more than one group."""
    groups = sorted({r.group for r in records}, key=lambda g: (g is None, g or ""))
    if len(groups) > 1:
        names = ", ".join(g or "(none)" for g in groups)
        raise ValueError(f"records belong to several groups ({names}); summarize one group")

    excluded: list[ExcludedRun] = []
    # Runs pair by seed and every other setting (a sweep's runs of one seed differ in the
    # swept value): keys are (seed, the swept settings' values).
    swept = swept_settings(r.config for r in records)
    by_arm: dict[bool, dict[tuple[int, str], RunRecord]] = {True: {}, False: {}}
    for record in records:
        arm, seed = record.config.bn, record.config.seed
        key = (seed, pairing_key(record.config, swept))
        reason = _is_usable(record)
        if reason is not None:
            excluded.append(ExcludedRun(record.id, f"{_arm_name(arm)} seed {seed}: {reason}"))
        elif key in by_arm[arm]:
            kept = by_arm[arm][key].id
            excluded.append(ExcludedRun(record.id, f"{_arm_name(arm)} seed {seed}: duplicate (kept {kept})"))
        else:
            by_arm[arm][key] = record

    paired_keys = sorted(by_arm[True].keys() & by_arm[False].keys())
    for arm in (True, False):
        for (seed, setting), record in by_arm[arm].items():
            if (seed, setting) not in by_arm[not arm]:
                excluded.append(
                    ExcludedRun(
                        record.id,
                        f"{_arm_name(arm)} seed {seed}: unpaired "
                        f"(no finished {_arm_name(not arm)} run with seed {seed})",
                    )
                )

    bn_runs = [by_arm[True][k] for k in paired_keys]
    nobn_runs = [by_arm[False][k] for k in paired_keys]
    pairs = tuple(
        SeedPair(k[0], b.id, o.id, _test_accuracy(b), _test_accuracy(o))
        for k, b, o in zip(paired_keys, bn_runs, nobn_runs)
    )

    warnings: list[str] = []
    notes: list[str] = []
    if not pairs:
        warnings.append(NO_PAIRS_WARNING)
    elif len(pairs) == 1:
        warnings.append(ONE_PAIR_WARNING)
    elif len(pairs) < MIN_SEEDS_FOR_VERDICT:
        warnings.append(FEW_SEEDS_WARNING)
    differing = _differing_settings(bn_runs + nobn_runs)
    if differing:
        warnings.append(
            "runs differ in settings other than BN and seed: " + ", ".join(differing) + " (the comparison mixes them)"
        )

    curve_lengths = {len(r.history) for r in bn_runs + nobn_runs}
    if len(curve_lengths) > 1:
        notes.append(
            f"runs have {min(curve_lengths)} to {max(curve_lengths)} epochs of history; "
            f"mean curves cover each arm's common first epochs only"
        )

    # Target: the lower of the two arms' best mean validation accuracies, so both arms
    # reach it on average; computed from the curves before epochs-to-target is counted.
    if target_accuracy is not None:
        target: float | None = target_accuracy
        source = "given"
    else:
        bests = {
            arm: max(band([r.history.val_accuracy for r in runs]).mean, default=None)
            for arm, runs in ((True, bn_runs), (False, nobn_runs))
        }
        known = {arm: v for arm, v in bests.items() if v is not None}
        if len(known) == 2:
            lower_arm = min(known, key=lambda a: known[a])
            target = known[lower_arm]
            source = f"best mean validation accuracy of the lower arm ({_arm_name(lower_arm)})"
        else:
            target, source = None, "no validation history"

    paired = (
        paired_difference(
            [p.bn_test_accuracy for p in pairs],
            [p.nobn_test_accuracy for p in pairs],
            confidence,
        )
        if pairs
        else None
    )
    first = next(iter(bn_runs + nobn_runs or list(records)), None)
    title = (
        f"{first.config.dataset} / {first.config.arch}, {counted(first.config.epochs, 'epoch')}"
        if first is not None
        else "empty group"
    )
    normalized = next(iter(bn_runs or [r for r in records if r.config.bn]), None)
    if normalized is not None and normalized.config.norm != "batch":
        title += f", {norm_description(normalized.config)}"  # what "BN" stands for
    return GroupSummary(
        group=groups[0] if groups else None,
        title=title,
        pairs=pairs,
        bn=_arm_summary(True, bn_runs, target, band_kind),
        no_bn=_arm_summary(False, nobn_runs, target, band_kind),
        paired=paired,
        verdict=verdict(paired, higher_is_better=True),
        target_accuracy=target,
        target_source=source,
        band_kind=band_kind,
        warnings=tuple(warnings),
        notes=tuple(notes),
        excluded=tuple(excluded),
    )
