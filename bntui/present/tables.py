"""Plain tables as text for papers and spreadsheets: Markdown, LaTeX and CSV.

One table (title, headers, rows of strings) is written in any of the formats, so the run
export, compare tables and sweep tables all paste the same way."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

TableFormat = str  # "md", "latex" or "csv" (text is Rich, in the commands)
TABLE_FORMATS = ("md", "latex", "csv")

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


@dataclass
class PlainTable:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str = ""
    numeric: set[int] = field(default_factory=set)  # column indexes aligned right


def to_markdown(table: PlainTable) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", r"\|").replace("\n", " ") for cell in cells) + " |"

    rule = ["---:" if index in table.numeric else "---" for index in range(len(table.headers))]
    lines = [f"**{table.title}**", ""] if table.title else []
    lines += [line(table.headers), "| " + " | ".join(rule) + " |", *(line(row) for row in table.rows)]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text.replace("\n", " "))


def to_latex(table: PlainTable) -> str:
    """A booktabs tabular (\\usepackage{booktabs}), in a table with the title as caption."""
    spec = "".join("r" if index in table.numeric else "l" for index in range(len(table.headers)))
    lines = [r"\begin{table}[ht]", r"\centering"]
    if table.title:
        lines.append(rf"\caption{{{latex_escape(table.title)}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(h) for h in table.headers) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(table: PlainTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.headers)
    writer.writerows(table.rows)
    return out.getvalue()


def render(table: PlainTable, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(table)
    if fmt == "latex":
        return to_latex(table)
    if fmt == "csv":
        return to_csv(table)
    raise ValueError(f"format: must be one of {', '.join(TABLE_FORMATS)}")
