"""A sweep as tables (terminal, Markdown, LaTeX, CSV) and as a terminal plot: the same rows for
the CLI and the TUI, so they never disagree.

One swept setting: a row per value (each arm's mean with its 95% CI, the paired BN - no-BN
difference with its CI and verdict, diverged runs per arm). Two: the paired difference in a
table, the first setting's values as rows and the second's as columns."""

from __future__ import annotations

from rich.text import Text

from bntui.present.plots import Figure, Trace, figure_lines
from bntui.present.tables import PlainTable
from bntui.stats import BN_BETTER, NO_BN_BETTER
from bntui.sweep_stats import ArmPoint, SweepPoint, SweepSummary

SHORT_VERDICTS = {BN_BETTER: "BN better", NO_BN_BETTER: "no BN better"}


def value_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def scaled(summary: SweepSummary, value: float) -> float:
    """Accuracies in percent, losses as they are."""
    return 100.0 * value if "accuracy" in summary.metric else value


def band_edge(summary: SweepSummary, value: float) -> float:
    """A CI edge as plotted: an accuracy's stays within 0 to 100% (with two seeds the t interval
    is wide enough to leave it; the table keeps the true numbers)."""
    shown = scaled(summary, value)
    return min(max(shown, 0.0), 100.0) if "accuracy" in summary.metric else shown


def number(summary: SweepSummary, value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    digits = 2 if "accuracy" in summary.metric else 4
    return f"{scaled(summary, value):{'+' if signed else ''}.{digits}f}"


def plus_minus(
    summary: SweepSummary, mean: float | None, low: float | None, high: float | None, signed: bool = False
) -> str:
    """ "80.70 ± 0.50": a mean and its CI's half-width ("n/a" without a mean, no ± from one seed)."""
    text = number(summary, mean, signed=signed)
    if mean is not None and low is not None and high is not None:
        text += f" ± {number(summary, (high - low) / 2)}"
    return text


def arm_cell(summary: SweepSummary, arm: ArmPoint) -> str:
    return plus_minus(summary, arm.mean, arm.low, arm.high)


def difference_cell(summary: SweepSummary, point: SweepPoint) -> str:
    paired = point.paired
    if paired is None:
        return "n/a"
    return plus_minus(summary, paired.mean_diff, paired.ci_low, paired.ci_high, signed=True)


def diverged_cell(point: SweepPoint) -> str:
    return f"{point.bn.diverged} / {point.no_bn.diverged}"


def short_verdict(point: SweepPoint) -> str:
    if point.paired is None:
        return "no pair"
    if point.paired.n < 2:
        return "one pair"
    return SHORT_VERDICTS.get(point.verdict, "no difference")


def sweep_title(summary: SweepSummary) -> str:
    unit = " (%)" if "accuracy" in summary.metric else ""
    return (
        f"Sweep over {' x '.join(summary.settings)}: {summary.metric_label}{unit}, "
        "mean ± 95% CI over seeds; BN - no BN paired by seed"
    )


def sweep_table(summary: SweepSummary) -> PlainTable:
    if len(summary.settings) == 2:
        return _two_way_table(summary)
    headers = [*summary.settings, "BN", "no BN", "BN - no BN", "verdict", "seeds BN / no BN", "diverged BN / no BN"]
    rows = [
        [
            *(value_text(v) for v in point.values),
            arm_cell(summary, point.bn),
            arm_cell(summary, point.no_bn),
            difference_cell(summary, point),
            short_verdict(point),
            f"{point.bn.n} / {point.no_bn.n}",
            diverged_cell(point),
        ]
        for point in summary.points
    ]
    first = len(summary.settings)
    return PlainTable(headers, rows, sweep_title(summary), numeric={first, first + 1, first + 2})


def single_arm(summary: SweepSummary) -> str | None:
    """ "bn" or "no_bn" when the sweep has runs of one arm only (e.g. `--bn on`), else None."""
    present = {
        arm
        for arm in ("bn", "no_bn")
        if any(getattr(p, arm).n or getattr(p, arm).diverged or getattr(p, arm).other for p in summary.points)
    }
    return present.pop() if len(present) == 1 else None


def _two_way_table(summary: SweepSummary) -> PlainTable:
    """Paired differences; with one arm only, that arm's means."""
    row_name, column_name = summary.settings
    row_values = list(dict.fromkeys(p.values[0] for p in summary.points))
    column_values = list(dict.fromkeys(p.values[1] for p in summary.points))
    cells = {p.values: p for p in summary.points}
    arm = single_arm(summary)
    headers = [f"{row_name} \\ {column_name}", *(value_text(v) for v in column_values)]
    rows = []
    for row_value in row_values:
        row = [value_text(row_value)]
        for column_value in column_values:
            point = cells.get((row_value, column_value))
            row.append("-" if point is None else _two_way_cell(summary, point, arm))
        rows.append(row)
    if arm is None:
        title = f"BN - no BN, {summary.metric_label}: paired mean ± 95% CI over seeds; d: diverged runs (BN/no BN)"
    else:
        title = (
            f"{'BN' if arm == 'bn' else 'no BN'}, {summary.metric_label}: mean ± 95% CI over seeds; d: diverged runs"
        )
    return PlainTable(headers, rows, title, numeric=set(range(1, len(headers))))


def _two_way_cell(summary: SweepSummary, point: SweepPoint, arm: str | None) -> str:
    if arm is not None:
        shown = getattr(point, arm)
        text = arm_cell(summary, shown)
        return text + (f" d{shown.diverged}" if shown.diverged else "")
    text = "no pair" if point.paired is None else difference_cell(summary, point)
    if point.bn.diverged or point.no_bn.diverged:
        text += f" d{point.bn.diverged}/{point.no_bn.diverged}"
    return text


def sweep_plot(summary: SweepSummary, width: int = 80, height: int = 20) -> Text:
    """The metric against the swept value: one curve per arm (mean) with its CI band as dotted
    low/high lines, the key under the plot; a log x axis for the learning rate. For a terminal,
    in its own colours."""
    xs = [float(p.values[0]) for p in summary.points]
    traces = []
    for pick, color in ((lambda p: p.bn, "blue"), (lambda p: p.no_bn, "red")):
        points = [(x, pick(p)) for x, p in zip(xs, summary.points) if pick(p).mean is not None]
        banded = [(x, a) for x, a in points if a.low is not None]
        for bound in ("low", "high") if banded else ():
            traces.append(
                Trace(
                    tuple(x for x, _ in banded),
                    tuple(band_edge(summary, getattr(a, bound)) for _, a in banded),
                    color,
                    "dot",
                )
            )
        if points:
            traces.append(
                Trace(tuple(x for x, _ in points), tuple(scaled(summary, a.mean) for _, a in points), color, "braille")
            )
    key = Text()
    key.append("■ BN ", style="bold blue")
    key.append("■ no BN ", style="bold red")
    key.append("⠒⠒ mean •• 95% CI")
    figure = Figure(
        tuple(traces),
        title=f"{summary.metric_label} against {summary.settings[0]} (bands: 95% CI)",
        xlabel=summary.settings[0] + (" (log)" if summary.log_x else ""),
        key=key,
        log_x=summary.log_x,
    )
    return Text("\n").join(figure_lines(figure, width, height))
