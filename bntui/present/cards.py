"""The result card of a BN / no-BN group: printed by `bntui run --bn both --seeds K` and
`bntui compare --group G` (rich), shown by the TUI (plain text). Both come from the same rows so
they never disagree."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bntui.stats import BN_BETTER, NO_BN_BETTER, ArmSummary, GroupSummary
from bntui.present.text import printable
from bntui.present.units import accuracy
from bntui.present.units import points as point_difference
from bntui.present.words import counted

# Seed-by-seed rows make the card long; past this many pairs only the summary is shown.
MAX_SEED_ROWS = 10


def percent(value: float | None) -> str:
    return accuracy(value, missing="n/a")


def points(value: float | None, *, signed: bool = True) -> str:
    """A difference of two accuracies, in percentage points."""
    return point_difference(value, signed=signed, missing="n/a")


@dataclass(frozen=True)
class CardContent:
    title: str
    seeds_line: str
    arm_rows: list[tuple[str, str, str]]  # label, "mean ± sd", "(n=K)"
    arms_title: str
    difference_line: str
    verdict: str
    warnings: list[str]
    target_line: str | None
    target_rows: list[tuple[str, str]]  # label, "mean epochs (m of K seeds)"
    seed_header: tuple[str, str, str, str]
    seed_rows: list[tuple[str, str, str, str]]
    seed_rows_hidden: int
    excluded: list[str]
    notes: list[str]


def _arm_row(arm: ArmSummary) -> tuple[str, str, str]:
    std = arm.test_accuracy_std
    sd = "" if std is None else f" ± {points(std, signed=False)}"
    return arm.label, f"{percent(arm.test_accuracy_mean)}{sd}", f"(n={arm.n})"


def _target_row(arm: ArmSummary) -> tuple[str, str]:
    mean = arm.epochs_to_target_mean
    epochs = "not reached" if mean is None else f"{mean:.1f} epochs"
    return arm.label, f"{epochs} ({arm.reached_target} of {counted(arm.n, 'seed')} reached it)"


def card_content(summary: GroupSummary) -> CardContent:
    paired = summary.paired
    if paired is None:
        difference = "BN − no BN: no pairs to compare"
    elif paired.ci_low is None:
        difference = f"BN − no BN: {points(paired.mean_diff)} points (one seed: no confidence interval)"
    else:
        p_value = paired.p_value
        p_text = "" if p_value is None else f", p = {p_value:.3g}"
        difference = (
            f"BN − no BN: {points(paired.mean_diff)} points, "
            f"{paired.confidence:.0%} CI [{points(paired.ci_low)}, {points(paired.ci_high)}] "
            f"(paired t, {paired.n - 1} df{p_text})"
        )

    seeds = ", ".join(str(p.seed) for p in summary.pairs)
    seeds_line = counted(summary.k, "seed pair") + (f" (seeds {seeds}), paired by seed" if seeds else "")

    target_line = None
    target_rows: list[tuple[str, str]] = []
    if summary.target_accuracy is not None and summary.k:
        target_line = (
            f"Epochs to reach {percent(summary.target_accuracy)} validation accuracy (target: {summary.target_source}):"
        )
        target_rows = [_target_row(summary.bn), _target_row(summary.no_bn)]

    shown = summary.pairs[:MAX_SEED_ROWS] if len(summary.pairs) > 1 else ()
    seed_rows = [
        (
            str(p.seed),
            percent(p.bn_test_accuracy),
            percent(p.nobn_test_accuracy),
            points(p.difference),
        )
        for p in shown
    ]
    return CardContent(
        title=f"BN vs no BN — {summary.group or 'ungrouped runs'} ({summary.title})",
        seeds_line=seeds_line,
        arm_rows=[_arm_row(summary.bn), _arm_row(summary.no_bn)] if summary.k else [],
        # one seed per arm has no sd to speak of
        arms_title="Test accuracy (one seed per arm)"
        if summary.k == 1
        else "Test accuracy (mean ± sd over seeds, sd in points)",
        difference_line=difference,
        verdict=summary.verdict,
        warnings=list(summary.warnings),
        target_line=target_line,
        target_rows=target_rows,
        seed_header=("seed", "BN", "no BN", "BN − no BN"),
        seed_rows=seed_rows,
        seed_rows_hidden=len(summary.pairs) - len(shown) if len(summary.pairs) > 1 else 0,
        excluded=[f"{e.run_id}: {e.reason}" for e in summary.excluded],
        notes=list(summary.notes),
    )


def group_card_text(summary: GroupSummary) -> str:
    """The card as plain text lines (for the TUI)."""
    card = card_content(summary)
    lines = [card.title, card.seeds_line]
    if card.arm_rows:
        lines.append(f"{card.arms_title}:")
        lines += [f"  {label:<6} {value}  {n}" for label, value, n in card.arm_rows]
    lines.append(card.difference_line)
    lines.append(f"Verdict: {card.verdict}")
    lines += [f"Warning: {w}" for w in card.warnings]
    if card.target_line:
        lines.append(card.target_line)
        lines += [f"  {label:<6} {value}" for label, value in card.target_rows]
    if card.seed_rows:
        lines.append("Per seed (test accuracy):")
        widths = [max(len(row[i]) for row in [card.seed_header, *card.seed_rows]) for i in range(4)]
        for row in [card.seed_header, *card.seed_rows]:
            lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if card.seed_rows_hidden:
            lines.append(f"  … {counted(card.seed_rows_hidden, 'more seed')}")
    if card.excluded:
        lines.append("Excluded runs:")
        lines += [f"  {e}" for e in card.excluded]
    lines += [f"Note: {n}" for n in card.notes]
    return "\n".join(lines)


def _verdict_style(verdict: str) -> str:
    return "bold green" if verdict in (BN_BETTER, NO_BN_BETTER) else "bold yellow"


def render_group_card(summary: GroupSummary) -> RenderableType:
    """The card as a rich Panel (for the CLI)."""
    card = card_content(summary)
    parts: list[RenderableType] = [Text(card.seeds_line, style="dim")]

    if card.arm_rows:
        arms = Table.grid(padding=(0, 2))
        arms.add_column(style="bold")
        arms.add_column(justify="right")
        arms.add_column(style="dim")
        for label, value, n in card.arm_rows:
            arms.add_row(label, value, n)
        parts += [Text(card.arms_title), arms]

    parts.append(Text(card.difference_line))
    verdict = Text("Verdict: ")
    verdict.append(card.verdict, style=_verdict_style(card.verdict))
    parts.append(verdict)
    parts += [Text(f"⚠ {printable(w)}", style="yellow") for w in card.warnings]

    if card.target_line:
        targets = Table.grid(padding=(0, 2))
        targets.add_column(style="bold")
        targets.add_column()
        for label, value in card.target_rows:
            targets.add_row(label, value)
        parts += [Text(card.target_line), targets]

    if card.seed_rows:
        seeds = Table(*card.seed_header, title="Per seed (test accuracy)", title_justify="left")
        for column in seeds.columns[1:]:
            column.justify = "right"
        for row in card.seed_rows:
            seeds.add_row(*row)
        parts.append(seeds)
        if card.seed_rows_hidden:
            parts.append(Text(f"… {counted(card.seed_rows_hidden, 'more seed')}", style="dim"))

    if card.excluded:
        parts.append(Text("Excluded runs:", style="bold"))
        parts += [Text(f"  {printable(e)}", style="dim") for e in card.excluded]
    parts += [Text(f"Note: {printable(n)}", style="dim") for n in card.notes]
    return Panel(Group(*parts), title=card.title, title_align="left", expand=False)
