"""Paired BN / no-BN statistics: t quantiles, intervals, verdicts, group summaries, the card."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from bntui.present.cards import group_card_text, render_group_card
from bntui.config import RunConfig
from bntui.stats import (
    BN_BETTER,
    FEW_SEEDS_WARNING,
    NO_BN_BETTER,
    NO_DIFFERENCE,
    NO_PAIRS_WARNING,
    NOTHING_TO_COMPARE,
    ONE_PAIR,
    ONE_PAIR_WARNING,
    PairedResult,
    band,
    epochs_to_target,
    mean_std,
    paired_difference,
    summarize_group,
    t_cdf,
    t_quantile,
    verdict,
)
from bntui.store.schema import FinalMetrics, History, RunRecord

# --------------------------------------------------------------------------- t quantile

# Published two-sided 95% critical values (t_{0.975, df}) and a few other points.
TABLE = [
    (0.975, 1, 12.7062),
    (0.975, 2, 4.3027),
    (0.975, 3, 3.1824),
    (0.975, 4, 2.7764),
    (0.975, 5, 2.5706),
    (0.975, 9, 2.2622),
    (0.975, 10, 2.2281),
    (0.975, 29, 2.0452),
    (0.975, 30, 2.0423),
    (0.95, 1, 6.3138),
    (0.995, 4, 4.6041),
    (0.9, 10, 1.3722),
    (0.975, 10**6, 1.9600),
]


@pytest.mark.parametrize(("p", "df", "expected"), TABLE)
def test_t_quantile_matches_published_tables(p, df, expected):
    assert round(t_quantile(p, df), 4) == expected


def test_t_quantile_tends_to_the_normal_quantile():
    assert t_quantile(0.975, 10**6) == pytest.approx(1.95996, abs=1e-5)
    assert t_quantile(0.975, math.inf) == pytest.approx(statistics.NormalDist().inv_cdf(0.975))


@given(st.floats(min_value=1e-6, max_value=1 - 1e-6))
def test_t_quantile_matches_closed_forms_for_one_and_two_df(p):
    # df = 1 is the Cauchy distribution; df = 2 has an algebraic quantile.
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9, abs=1e-9)
    two_df = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    assert t_quantile(p, 2) == pytest.approx(two_df, rel=1e-9, abs=1e-9)


@given(st.floats(min_value=1e-4, max_value=1 - 1e-4), st.floats(min_value=0.5, max_value=200))
def test_t_quantile_is_antisymmetric_and_inverts_the_cdf(p, df):
    q = t_quantile(p, df)
    assert t_quantile(1 - p, df) == pytest.approx(-q, rel=1e-9, abs=1e-9)
    assert t_cdf(q, df) == pytest.approx(p, rel=1e-9, abs=1e-12)


def _t_density(x: float, df: float) -> float:
    norm = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    return norm * (1 + x * x / df) ** (-(df + 1) / 2)


def _cdf_by_simpson(t: float, df: float, intervals: int = 20_000) -> float:
    """P(T <= t) = 1/2 + the integral of the density from 0 to t (independent of bntui)."""
    h = t / intervals
    total = _t_density(0, df) + _t_density(t, df)
    total += 4 * sum(_t_density((2 * i - 1) * h, df) for i in range(1, intervals // 2 + 1))
    total += 2 * sum(_t_density(2 * i * h, df) for i in range(1, intervals // 2))
    return 0.5 + total * h / 3


@pytest.mark.parametrize(("p", "df"), [(0.975, 1), (0.975, 3), (0.99, 7), (0.9, 3.5), (0.6, 50)])
def test_the_cdf_of_the_quantile_is_p_by_numeric_integration(p, df):
    assert _cdf_by_simpson(t_quantile(p, df), df) == pytest.approx(p, abs=1e-8)


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (-0.1, 3), (0.5, 0), (0.5, -2)])
def test_t_quantile_rejects_bad_arguments(p, df):
    with pytest.raises(ValueError):
        t_quantile(p, df)


# --------------------------------------------------------------------------- mean / paired


def test_mean_std_uses_the_sample_standard_deviation():
    mean, std = mean_std([2, 4, 4, 4, 5, 5, 7, 9])
    assert mean == 5
    assert std == pytest.approx(math.sqrt(32 / 7))


def test_mean_std_of_one_value_has_no_std_and_of_none_is_an_error():
    assert mean_std([0.7]) == (0.7, None)
    with pytest.raises(ValueError):
        mean_std([])


def test_paired_difference_hand_computed():
    result = paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert result.n == 3
    assert result.mean_diff == pytest.approx(2.0)
    assert result.std_diff == pytest.approx(1.0)
    half = 4.3027 / math.sqrt(3)
    assert result.ci_low == pytest.approx(2 - half, abs=1e-4)
    assert result.ci_high == pytest.approx(2 + half, abs=1e-4)
    assert result.confidence == 0.95


def test_paired_difference_uses_the_pairs_not_the_arms():
    # Large seed-to-seed spread but a constant +1 gap: the pairs see it, unpaired arms would not.
    bn = [0.50, 0.70, 0.90, 0.60]
    nobn = [v - 0.01 for v in bn]
    result = paired_difference(bn, nobn)
    assert result.mean_diff == pytest.approx(0.01)
    assert result.std_diff == pytest.approx(0.0, abs=1e-12)
    assert verdict(result) == BN_BETTER


# Two-sided 95% critical values to 3 decimals, as printed in textbook tables.
TEXTBOOK_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365,
                 8: 2.306, 9: 2.262, 10: 2.228}  # fmt: skip


@given(
    st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)), min_size=2, max_size=11).filter(
        lambda pairs: statistics.stdev(b - o for b, o in pairs) > 1e-6
    )
)
def test_paired_interval_matches_an_independent_computation(pairs):
    bn = [b for b, _ in pairs]
    nobn = [o for _, o in pairs]
    differences = [b - o for b, o in pairs]
    n = len(differences)
    mean = statistics.fmean(differences)
    half = TEXTBOOK_T975[n - 1] * statistics.stdev(differences) / math.sqrt(n)
    result = paired_difference(bn, nobn)
    assert result.mean_diff == pytest.approx(mean, abs=1e-12)
    assert result.half_width == pytest.approx(half, rel=1e-3)
    assert result.ci_low == pytest.approx(mean - result.half_width)
    assert result.ci_low < result.mean_diff < result.ci_high


def test_one_pair_has_no_interval():
    result = paired_difference([0.62], [0.611])
    assert result.n == 1
    assert result.mean_diff == pytest.approx(0.009)
    assert (result.std_diff, result.ci_low, result.ci_high) == (None, None, None)
    assert verdict(result) == ONE_PAIR


def test_paired_difference_rejects_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError):
        paired_difference([], [])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([math.nan, 0.1], [0.1, 0.1])


def _result(low: float, high: float, n: int = 5) -> PairedResult:
    return PairedResult(n, (low + high) / 2, 0.01, low, high)


def test_verdict_rules():
    assert verdict(_result(0.001, 0.02)) == BN_BETTER
    assert verdict(_result(-0.02, -0.001)) == NO_BN_BETTER
    assert verdict(_result(-0.01, 0.02)) == NO_DIFFERENCE
    assert verdict(_result(0.0, 0.02)) == NO_DIFFERENCE  # touching 0 is not "entirely above"
    assert verdict(_result(0.001, 0.02, n=1)) == ONE_PAIR
    assert verdict(None) == NOTHING_TO_COMPARE


def test_verdict_flips_for_losses():
    # BN − no-BN loss entirely below 0: BN has the lower loss, so BN is better.
    assert verdict(_result(-0.2, -0.1), higher_is_better=False) == BN_BETTER
    assert verdict(_result(0.1, 0.2), higher_is_better=False) == NO_BN_BETTER
    assert verdict(_result(-0.1, 0.2), higher_is_better=False) == NO_DIFFERENCE


def test_paired_p_value_agrees_with_the_interval():
    straddling = paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert 0.05 < straddling.p_value < 0.1  # t = 2*sqrt(3) = 3.46 on 2 df
    clear = paired_difference([1.0, 1.1, 0.9, 1.05], [0.0, 0.0, 0.0, 0.0])
    assert clear.p_value < 0.05 and clear.ci_low > 0


# --------------------------------------------------------------------------- curves


def test_epochs_to_target():
    assert epochs_to_target([0.5, 0.7, 0.9], 0.7) == 2
    assert epochs_to_target([0.8, 0.7, 0.9], 0.6) == 1
    assert epochs_to_target([0.5, 0.6], 0.7) is None
    assert epochs_to_target([math.nan, 0.75], 0.7) == 2
    assert epochs_to_target([], 0.1) is None


def test_band_uses_the_common_prefix_of_unequal_curves():
    mean, low, high = band([[1.0, 2.0, 3.0], [3.0, 4.0], [2.0, 6.0, 9.0, 10.0]], kind="minmax")
    assert mean == pytest.approx([2.0, 4.0])
    assert low == [1.0, 2.0]
    assert high == [3.0, 6.0]


def test_band_std_is_mean_plus_minus_sample_std():
    result = band([[1.0, 10.0], [3.0, 10.0]], kind="std")
    assert result.mean == pytest.approx([2.0, 10.0])
    assert result.low == pytest.approx([2.0 - math.sqrt(2), 10.0])
    assert result.high == pytest.approx([2.0 + math.sqrt(2), 10.0])


def test_band_of_one_curve_has_zero_width_and_of_none_is_empty():
    assert band([[0.3, 0.4]]) == ([0.3, 0.4], [0.3, 0.4], [0.3, 0.4])
    assert band([]) == ([], [], [])
    with pytest.raises(ValueError, match="band kind"):
        band([[1.0]], kind="iqr")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- group summary


def make_run(
    bn: bool,
    seed: int,
    test_accuracy: float,
    *,
    val_accuracy: list[float] | None = None,
    status: str = "finished",
    group: str | None = "g1",
    run_id: str | None = None,
    lr: float = 1e-3,
) -> RunRecord:
    val_accuracy = val_accuracy if val_accuracy is not None else [0.5, 0.6, 0.7]
    epochs = len(val_accuracy)
    history = History(
        epoch=list(range(1, epochs + 1)),
        train_loss=[1.0 / e for e in range(1, epochs + 1)],
        val_loss=[1.0 - v for v in val_accuracy],
        train_accuracy=val_accuracy,
        val_accuracy=val_accuracy,
    )
    final = None
    if status == "finished":
        final = FinalMetrics(
            train_loss=0.1,
            train_accuracy=0.9,
            val_loss=1.0 - val_accuracy[-1],
            val_accuracy=val_accuracy[-1],
            test_loss=0.5,
            test_accuracy=test_accuracy,
        )
    return RunRecord(
        id=run_id or f"s{seed}-{'bn' if bn else 'nobn'}",
        status=status,
        group=group,
        config=RunConfig(bn=bn, seed=seed, epochs=epochs, lr=lr),
        history=history,
        final=final,
    )


def test_summary_pairs_by_seed_and_excludes_unpaired_and_unfinished_runs():
    records = [
        make_run(True, 0, 0.611),
        make_run(False, 0, 0.622),
        make_run(False, 1, 0.618),
        make_run(True, 1, 0.615),  # order in the list must not matter
        make_run(True, 2, 0.600),  # no no-BN partner
        make_run(True, 3, 0.0, status="cancelled"),
        make_run(False, 3, 0.630),  # partner was cancelled
    ]
    summary = summarize_group(records)
    assert summary.k == 2
    assert [(p.seed, p.bn_run_id, p.nobn_run_id) for p in summary.pairs] == [
        (0, "s0-bn", "s0-nobn"),
        (1, "s1-bn", "s1-nobn"),
    ]
    assert summary.bn.n == summary.no_bn.n == 2
    assert summary.bn.test_accuracy_mean == pytest.approx(0.613)
    assert summary.no_bn.test_accuracy_mean == pytest.approx(0.620)
    assert summary.bn.test_accuracy_std == pytest.approx(statistics.stdev([0.611, 0.615]))
    assert summary.paired.mean_diff == pytest.approx(-0.007)
    excluded = {e.run_id: e.reason for e in summary.excluded}
    assert set(excluded) == {"s2-bn", "s3-bn", "s3-nobn"}
    assert "unpaired" in excluded["s2-bn"]
    assert "cancelled" in excluded["s3-bn"]
    assert "unpaired" in excluded["s3-nobn"]


def test_fewer_than_three_seeds_warns_and_three_do_not():
    two = summarize_group([make_run(bn, s, 0.6 + 0.01 * s) for s in range(2) for bn in (1, 0)])
    assert FEW_SEEDS_WARNING in two.warnings
    three = summarize_group([make_run(bn, s, 0.6 + 0.01 * s) for s in range(3) for bn in (1, 0)])
    assert three.k == 3
    assert FEW_SEEDS_WARNING not in three.warnings


def test_one_seed_pair_is_not_warned_of_a_wide_interval_it_does_not_have():
    one = summarize_group([make_run(bn, 0, 0.6) for bn in (1, 0)])
    assert FEW_SEEDS_WARNING not in one.warnings
    assert any("one seed pair" in warning and "no interval" in warning for warning in one.warnings)


def test_summary_verdict_follows_the_paired_interval():
    bn_better = [make_run(True, s, 0.70 + 0.05 * s + 0.01 * (s % 2)) for s in range(4)]
    bn_better += [make_run(False, s, 0.68 + 0.05 * s) for s in range(4)]
    assert summarize_group(bn_better).verdict == BN_BETTER
    noise = [make_run(True, s, 0.61 + (0.01 if s % 2 else -0.01)) for s in range(4)]
    noise += [make_run(False, s, 0.61) for s in range(4)]
    assert summarize_group(noise).verdict == NO_DIFFERENCE


def test_duplicate_runs_of_one_arm_and_seed_are_excluded():
    records = [
        make_run(True, 0, 0.61, run_id="first"),
        make_run(True, 0, 0.90, run_id="again"),
        make_run(False, 0, 0.60),
    ]
    summary = summarize_group(records)
    assert summary.pairs[0].bn_run_id == "first"
    assert [e.run_id for e in summary.excluded] == ["again"]
    assert "duplicate" in summary.excluded[0].reason


def test_default_target_is_the_lower_arms_best_mean_validation_accuracy():
    records = [
        make_run(True, 0, 0.7, val_accuracy=[0.60, 0.80, 0.82]),
        make_run(True, 1, 0.7, val_accuracy=[0.70, 0.76, 0.84]),
        make_run(False, 0, 0.7, val_accuracy=[0.40, 0.60, 0.74]),
        make_run(False, 1, 0.7, val_accuracy=[0.50, 0.66, 0.70]),
    ]
    summary = summarize_group(records)
    # Mean no-BN curve: 0.45, 0.63, 0.72 -> target 0.72 (below BN's best mean 0.83).
    assert summary.target_accuracy == pytest.approx(0.72)
    assert "no-BN" in summary.target_source
    assert summary.bn.epochs_to_target == (2, 2)
    assert summary.bn.epochs_to_target_mean == pytest.approx(2.0)
    assert summary.no_bn.epochs_to_target == (3, None)
    assert summary.no_bn.reached_target == 1
    assert summary.bn.best_mean_val_accuracy == pytest.approx(0.83)

    given = summarize_group(records, target_accuracy=0.65)
    assert given.target_accuracy == 0.65
    assert given.bn.epochs_to_target == (2, 1) and given.no_bn.epochs_to_target == (3, 2)


def test_summary_curves_band_over_seeds_and_note_unequal_lengths():
    records = [
        make_run(True, 0, 0.7, val_accuracy=[0.5, 0.6, 0.7]),
        make_run(True, 1, 0.7, val_accuracy=[0.7, 0.8]),
        make_run(False, 0, 0.7, val_accuracy=[0.4, 0.5, 0.6]),
        make_run(False, 1, 0.7, val_accuracy=[0.4, 0.7, 0.8]),
    ]
    summary = summarize_group(records, band_kind="minmax")
    assert summary.bn.val_accuracy.mean == pytest.approx([0.6, 0.7])
    assert summary.bn.val_accuracy.low == pytest.approx([0.5, 0.6])
    assert summary.no_bn.val_loss.high == pytest.approx([0.6, 0.5, 0.4])
    assert any("common first epochs" in note for note in summary.notes)
    assert any("epochs" in w for w in summary.warnings)  # epochs differ between the runs


def test_summary_warns_when_runs_differ_in_other_settings():
    records = [make_run(True, 0, 0.6), make_run(False, 0, 0.6, lr=0.01)]
    summary = summarize_group(records)
    assert any("lr" in w for w in summary.warnings)


def test_summary_without_pairs():
    summary = summarize_group([make_run(True, 0, 0.6), make_run(False, 1, 0.6)])
    assert summary.k == 0
    assert summary.paired is None
    assert summary.verdict == NOTHING_TO_COMPARE
    assert NO_PAIRS_WARNING in summary.warnings
    assert summary.target_accuracy is None
    assert len(summary.excluded) == 2


def test_summary_refuses_records_from_several_groups():
    with pytest.raises(ValueError, match="several groups"):
        summarize_group([make_run(True, 0, 0.6, group="a"), make_run(False, 0, 0.6, group="b")])


# --------------------------------------------------------------------------- the card


def _lab_like_summary():
    # The lab's single-run numbers (BN 61.1%, no BN 62.2%) plus a second seed.
    records = [
        make_run(True, 0, 0.611),
        make_run(False, 0, 0.622),
        make_run(True, 1, 0.618),
        make_run(False, 1, 0.615),
        make_run(True, 2, 0.6, status="failed"),
    ]
    return summarize_group(records)


def test_card_text_shows_arms_interval_verdict_warning_target_and_exclusions():
    summary = _lab_like_summary()
    text = group_card_text(summary)
    assert "61.45% ± 0.49" in text  # BN mean ± sd of 61.1 and 61.8
    assert "61.85% ± 0.49" in text
    low, high = summary.paired.ci_low, summary.paired.ci_high
    assert f"[{100 * low:+.2f}, {100 * high:+.2f}]" in text
    assert "95% CI" in text
    assert f"Verdict: {NO_DIFFERENCE}" in text
    assert FEW_SEEDS_WARNING in text
    assert f"Epochs to reach {100 * summary.target_accuracy:.2f}%" in text
    assert "s2-bn" in text and "failed" in text


def test_rich_card_renders_the_same_content():
    summary = _lab_like_summary()
    console = Console(width=120, record=True, color_system=None)
    console.print(render_group_card(summary))
    rendered = console.export_text()
    for needle in ("61.45% ± 0.49", "95% CI", NO_DIFFERENCE, FEW_SEEDS_WARNING, "s2-bn"):
        assert needle in rendered


def test_card_for_one_seed_says_there_is_no_interval():
    text = group_card_text(summarize_group([make_run(True, 0, 0.611), make_run(False, 0, 0.622)]))
    assert "no confidence interval" in text
    assert FEW_SEEDS_WARNING not in text  # "the interval is wide": there is none (issue 19)
    assert ONE_PAIR_WARNING in text
    assert f"Verdict: {ONE_PAIR}" in text and NO_DIFFERENCE not in text
    assert "1 seed pair (seeds 0)" in text
    assert "of 1 seed reached it" in text and "1 seeds" not in text
    assert "Test accuracy (one seed per arm):" in text and "over seeds" not in text


def test_card_with_no_pair_says_there_is_nothing_to_compare_yet():
    # e.g. the card after Ctrl+C in `bntui run`: no run finished
    text = group_card_text(summarize_group([make_run(True, 0, 0.6, status="cancelled")]))
    assert f"Verdict: {NOTHING_TO_COMPARE}" in text and "nothing to compare yet" in text
    assert NO_DIFFERENCE not in text
    assert "0 seed pairs" in text


def test_stats_and_series_do_not_import_torch_textual_or_rich():
    code = (
        "import sys, bntui.stats, bntui.series; "
        "print(sorted(m for m in ('torch', 'textual', 'rich', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_group_title_names_a_norm_other_than_batch_norm():
    def with_norm(record: RunRecord, **fields) -> RunRecord:
        return record.model_copy(update={"config": record.config.model_copy(update=fields)})

    batch = summarize_group([make_run(True, 0, 0.6), make_run(False, 0, 0.5)])
    assert batch.title == "mnist-mini / mlp, 3 epochs"
    group = summarize_group(
        [
            with_norm(make_run(True, 0, 0.6), norm="group", norm_groups=4),
            with_norm(make_run(False, 0, 0.5), norm="group", norm_groups=4),
        ]
    )
    assert group.title == "mnist-mini / mlp, 3 epochs, GroupNorm (G=4)"


def test_a_one_epoch_group_title_says_epoch_in_the_singular():
    def one_epoch(record: RunRecord) -> RunRecord:
        return record.model_copy(update={"config": record.config.model_copy(update={"epochs": 1})})

    summary = summarize_group([one_epoch(make_run(True, 0, 0.6)), one_epoch(make_run(False, 0, 0.5))])
    assert summary.title == "mnist-mini / mlp, 1 epoch"
