"""Write a built report as Markdown, CSV, LaTeX (booktabs) and one self-contained HTML page.

All four read the same ``Report``: tables (``reports.tables.Table``), figures
(PNG files under ``plots/``) and notes. Missing values print as an em dash
(empty in CSV), never as zero. The HTML page inlines its figures as base64,
so it can be mailed or opened anywhere.
"""

from __future__ import annotations

import base64
import csv
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.tables import Column, Table

FORMATS = ("md", "csv", "tex", "html")
MISSING = "—"


@dataclass
class Figure:
    title: str
    path: Path  # under the report folder
    caption: str = ""
    warning: str = ""  # shown above the figure, as beside a table


@dataclass
class Section:
    title: str
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    text: str = ""  # paragraphs, separated by blank lines
    bullets: list[str] = field(default_factory=list)  # a list shown after the text, before the tables


@dataclass
class Report:
    title: str
    source: list[str]  # lines saying what was read
    sections: list[Section]
    footer: str = ""


# --- cell text ------------------------------------------------------------------------------
# Means and stds are rounded to the std's precision: its first significant
# digit, or two when those digits read 100-354 (the Particle Data Group's
# rule, so that 0.14 is not shown as 0.1). Plain float columns share one
# number of decimals per column, so a column reads as one kind of number.
MAX_DECIMALS = 6  # finer than this, a lone number is written in e-notation
STD_DECIMALS = 12  # finer than this (a std under 1e-12), mean and std are too


def std_decimals(std: float) -> int:
    """Decimal places that show ``std`` (> 0) to one or two significant digits (may be negative)."""
    exp = math.floor(math.log10(std))
    three = int(round(std / 10.0 ** (exp - 2)))  # the leading three digits, 100..1000
    if three < 355:
        digits = 2
    elif three < 950:
        digits = 1
    else:  # rounds up to 1.0 x 10^(exp + 1)
        digits, exp = 2, exp + 1
    return digits - 1 - exp


def _fixed(value: float, decimals: int) -> str:
    text = f"{round(value, decimals):.{max(decimals, 0)}f}"
    return "0" if text.lstrip("-").strip("0.") == "" else text  # no "-0" or "0.000"


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits in fixed notation (e-notation when very small)."""
    if value == 0:
        return "0"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    return f"{value:.{digits - 1}e}" if decimals > MAX_DECIMALS else _fixed(value, decimals)


def mean_std_text(mean: float, std: float | None, pm: str = " ± ") -> str:
    """``905 ± 9``, ``0.993 ± 0.008``: both rounded to the std's precision (3 digits without a std)."""
    if std is None or not math.isfinite(std):
        return significant(mean)
    if std == 0:
        return significant(mean) + pm + "0"
    decimals = std_decimals(std)
    if decimals > STD_DECIMALS:
        return f"{mean:.3e}{pm}{std:.1e}"
    return _fixed(mean, decimals) + pm + _fixed(std, decimals)


def float_decimals(values: list[float]) -> int | None:
    """Decimals giving the column's largest magnitude four significant digits; None: use e-notation.

    E-notation when the values are tiny (< 0.001), or small (< 0.1) and
    spread over more than two orders of magnitude (learning rates), where
    fixed decimals would hide them.
    """
    sizes = [abs(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v != 0]
    if not sizes:
        return 0
    largest, smallest = max(sizes), min(sizes)
    if largest < 1e-3 or (largest < 0.1 and largest / smallest > 100):
        return None
    return min(MAX_DECIMALS, max(0, 3 - math.floor(math.log10(largest))))


def column_texts(table: Table, missing: str = MISSING, pm: str = " ± ") -> list[list[str]]:
    """The text of every cell, row by row (one number format per column)."""
    decimals = {c.key: float_decimals([r.get(c.key) for r in table.rows]) for c in table.columns if c.kind == "float"}

    def places(row: dict[str, Any], column: Column) -> int | None:
        spread = row.get(column.round_to) if column.round_to else None
        if isinstance(spread, (int, float)) and math.isfinite(spread) and spread > 0:
            return std_decimals(spread)  # as a mean is rounded to its std
        return decimals.get(column.key, 0)

    return [[cell(row, c.kind, c.key, pm, missing, places(row, c)) for c in table.columns] for row in table.rows]


def cell(row: dict[str, Any], kind: str, key: str, pm: str = " ± ", missing: str = MISSING,
         decimals: int | None = 0) -> str:
    """The text of one cell; ``pm`` joins a mean and its std; ``decimals`` is a float column's format."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if kind == "runs":
        return ", ".join(v[:8] for v in value)
    if kind == "int":
        return str(int(value))
    if kind == "float":
        return f"{value:.2e}" if decimals is None else _fixed(value, decimals)
    if kind == "p":
        return "<0.001" if value < 0.001 else f"{value:.3f}"
    if kind == "mean_std":
        return mean_std_text(value, row.get(key + "_std"), pm)
    return str(value)


def table_heading(section: Section, table: Table) -> str | None:
    """The table's own heading, or None when the section's heading already says it."""
    return None if table.title == section.title else table.title


# --- CSV ----------------------------------------------------------------------------------------
def write_csv(table: Table, path: Path) -> Path:
    """Full-precision values; mean_std columns become ``key``, ``key_std``, ``key_n``; runs ``;``-joined."""
    header: list[str] = []
    for column in table.columns:
        header += [column.key, column.key + "_std", column.key + "_n"] if column.kind == "mean_std" else [column.key]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in table.rows:
            out = []
            for key in header:
                value = row.get(key)
                out.append("" if value is None else ";".join(value) if isinstance(value, list) else
                           repr(float(value)) if isinstance(value, float) else value)
            writer.writerow(out)
    return path


# --- Markdown -------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    if not table.rows:
        return f"_{_md_escape(table.empty or 'No rows.')}_\n"
    best = table.best()
    lines = ["| " + " | ".join(_md_escape(c.label) for c in table.columns) + " |",
             "|" + "|".join("---:" if c.kind in ("int", "float", "mean_std", "p") else "---"
                            for c in table.columns) + "|"]
    for i, texts in enumerate(column_texts(table)):
        cells = [f"**{_md_escape(t)}**" if (i, c.key) in best else _md_escape(t) for c, t in zip(table.columns, texts)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(report: Report, path: Path) -> Path:
    parts = [f"# {report.title}\n", *[f"- {line}" for line in report.source], ""]
    for section in report.sections:
        parts.append(f"## {section.title}\n")
        if section.text:
            parts.append(section.text + "\n")
        if section.bullets:
            parts.append("\n".join(f"- {line}" for line in section.bullets) + "\n")
        for table in section.tables:
            heading = table_heading(section, table)
            if heading:
                parts.append(f"### {heading}\n")
            parts += [f"> **Warning:** {line}\n" for line in table.warning.splitlines()]
            parts.append(markdown_table(table))
            if table.note and table.rows:
                parts.append(f"_{table.note}_\n")
        for figure in section.figures:
            rel = figure.path.relative_to(path.parent).as_posix()
            parts.append(f"### {figure.title}\n")
            parts += [f"> **Warning:** {line}\n" for line in figure.warning.splitlines()]
            parts.append(f"![{figure.title}]({rel})\n")
            if figure.caption:
                parts.append(f"_{figure.caption}_\n")
    if report.footer:
        parts.append(f"---\n{report.footer}\n")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


# --- LaTeX ------------------------------------------------------------------------------------------
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "—": "--",
        "±": r"$\pm$", "<": r"$<$", ">": r"$>$", "²": r"$^2$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def _tex_warning(table: Table) -> list[str]:
    return [rf"\par\noindent\fbox{{\parbox{{0.97\linewidth}}{{\small\textbf{{Warning:}} {tex_escape(line)}}}}}\par"
            for line in table.warning.splitlines()]


def latex_table(table: Table) -> str:
    """A booktabs ``table`` float; best cells in bold; a warning boxed above it."""
    if not table.rows:
        return "\n".join([*_tex_warning(table), tex_escape(table.empty or f"{table.title}: no rows."), ""])
    best = table.best()
    align = "".join("r" if c.kind in ("int", "float", "mean_std", "p") else "l" for c in table.columns)
    lines = [r"\begin{table}[ht]", r"\centering", r"\scriptsize",
             rf"\caption{{{tex_escape(table.title)}}}", *_tex_warning(table),
             r"\resizebox{\linewidth}{!}{%", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(tex_escape(c.label) for c in table.columns) + r" \\", r"\midrule"]
    for i, texts in enumerate(column_texts(table)):
        cells = [rf"\textbf{{{tex_escape(t)}}}" if (i, c.key) in best else tex_escape(t)
                 for c, t in zip(table.columns, texts)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}"]
    if table.note:
        lines.append(rf"\par\smallskip\parbox{{\linewidth}}{{\footnotesize {tex_escape(table.note)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_latex(report: Report, path: Path) -> Path:
    parts = [r"\documentclass{article}", r"\usepackage[margin=2cm]{geometry}",
             r"\usepackage{booktabs}", r"\usepackage{graphicx}", r"\usepackage[T1]{fontenc}",
             r"\begin{document}", rf"\section*{{{tex_escape(report.title)}}}",
             r"\begin{itemize}", *[rf"\item {tex_escape(line)}" for line in report.source], r"\end{itemize}"]
    for section in report.sections:
        parts.append(rf"\subsection*{{{tex_escape(section.title)}}}")
        if section.text:
            parts.append(tex_escape(section.text))
        if section.bullets:
            parts += [r"\begin{itemize}", *[rf"\item {tex_escape(line)}" for line in section.bullets],
                      r"\end{itemize}"]
        parts += [latex_table(t) for t in section.tables]
        for figure in section.figures:
            rel = figure.path.relative_to(path.parent).as_posix()
            parts += [r"\begin{figure}[ht]", r"\centering", rf"\includegraphics[width=\linewidth]{{{rel}}}",
                      rf"\caption{{{tex_escape(figure.title)}}}", r"\end{figure}"]
    parts.append(r"\end{document}")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


# --- HTML ---------------------------------------------------------------------------------------------
# The page's content is at most 1200 px wide; figures are drawn at that width
# or less (reports/plots.py), so they show at their own size, unscaled.
CONTENT_WIDTH = 1200
_CSS = f"""
body{{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em auto;max-width:{CONTENT_WIDTH}px;color:#222;
background:#fff;padding:0 1em}}
h1{{border-bottom:2px solid #444}}h2{{margin-top:2em;border-bottom:1px solid #ccc}}
table{{border-collapse:collapse;font-size:13px;margin:0.5em 0}}
th,td{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}}
th{{border-bottom:2px solid #444;background:#f4f4f4}}
td.num{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}
td.best{{font-weight:bold;background:#e6f4e6}}
td.missing{{color:#999}}
.note{{font-size:12px;color:#555;font-style:italic;max-width:60em}}
.warning{{font-size:13px;background:#fff3dc;border-left:4px solid #d98c00;padding:6px 10px;margin:0.5em 0;
max-width:60em}}
code{{font-size:12px;color:#335}}
img{{max-width:100%;height:auto;border:1px solid #eee}}
"""


def html_table(table: Table) -> str:
    warnings = [f"<p class='warning'><strong>Warning:</strong> {html.escape(line)}</p>"
                for line in table.warning.splitlines()]
    if not table.rows:
        return "\n".join([*warnings, f"<p class='note'>{html.escape(table.empty or 'No rows.')}</p>", ""])
    best = table.best()
    out = [*warnings, "<table>",
           "<tr>" + "".join(f"<th>{html.escape(c.label)}</th>" for c in table.columns) + "</tr>"]
    for i, (row, texts) in enumerate(zip(table.rows, column_texts(table))):
        cells = []
        for c, text in zip(table.columns, texts):
            classes = []
            if c.kind in ("int", "float", "mean_std", "p"):
                classes.append("num")
            if (i, c.key) in best:
                classes.append("best")
            value = row.get(c.key)
            if value is None:
                classes.append("missing")
            if c.kind == "runs" and value:
                text = ", ".join(f"<code title='{html.escape(v)}'>{html.escape(v[:8])}</code>" for v in value)
            else:
                text = html.escape(text)
            attr = f" class='{' '.join(classes)}'" if classes else ""
            cells.append(f"<td{attr}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    if table.note:
        out.append(f"<p class='note'>{html.escape(table.note)}</p>")
    return "\n".join(out) + "\n"


def write_html(report: Report, path: Path) -> Path:
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(report.title)}</h1>", "<ul>",
             *[f"<li>{html.escape(line)}</li>" for line in report.source], "</ul>"]
    for section in report.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(paragraph.strip())}</p>" for paragraph in section.text.split("\n\n")
                  if paragraph.strip()]
        if section.bullets:
            parts += ["<ul class='scope'>", *[f"<li>{html.escape(line)}</li>" for line in section.bullets], "</ul>"]
        for table in section.tables:
            heading = table_heading(section, table)
            if heading:
                parts.append(f"<h3>{html.escape(heading)}</h3>")
            parts.append(html_table(table))
        for figure in section.figures:
            data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
            parts.append(f"<h3>{html.escape(figure.title)}</h3>")
            parts += [f"<p class='warning'><strong>Warning:</strong> {html.escape(line)}</p>"
                      for line in figure.warning.splitlines()]
            parts.append(f"<img alt='{html.escape(figure.title)}' src='data:image/png;base64,{data}'>")
            if figure.caption:
                parts.append(f"<p class='note'>{html.escape(figure.caption)}</p>")
    if report.footer:
        parts.append(f"<hr><p class='note'>{html.escape(report.footer)}</p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def write(report: Report, tables: list[Table], out: Path, formats: tuple[str, ...]) -> list[Path]:
    """Write ``report`` in ``formats`` into ``out``; CSV gives one file per table."""
    written = []
    if "md" in formats:
        written.append(write_markdown(report, out / "report.md"))
    if "csv" in formats:
        written += [write_csv(t, out / f"{t.name}.csv") for t in tables]
    if "tex" in formats:
        written.append(write_latex(report, out / "report.tex"))
    if "html" in formats:
        written.append(write_html(report, out / "report.html"))
    return written
