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

from reports.tables import Table

FORMATS = ("md", "csv", "tex", "html")
MISSING = "—"


@dataclass
class Figure:
    title: str
    path: Path  # under the report folder
    caption: str = ""


@dataclass
class Section:
    title: str
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    text: str = ""


@dataclass
class Report:
    title: str
    source: list[str]  # lines saying what was read
    sections: list[Section]
    footer: str = ""


# --- cell text ------------------------------------------------------------------------------
def _number(value: float) -> str:
    return f"{value:.4g}"


def cell(row: dict[str, Any], kind: str, key: str, pm: str = " ± ", missing: str = MISSING) -> str:
    """The text of one cell; ``pm`` joins a mean and its std."""
    value = row.get(key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if kind == "runs":
        return ", ".join(v[:8] for v in value)
    if kind == "int":
        return str(int(value))
    if kind == "float":
        return _number(value)
    if kind == "p":
        return "<0.001" if value < 0.001 else f"{value:.3f}"
    if kind == "mean_std":
        std = row.get(key + "_std")
        return _number(value) + (pm + _number(std) if std is not None else "")
    return str(value)


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
        return "_No rows._\n"
    best = table.best()
    lines = ["| " + " | ".join(_md_escape(c.label) for c in table.columns) + " |",
             "|" + "|".join("---:" if c.kind in ("int", "float", "mean_std", "p") else "---"
                            for c in table.columns) + "|"]
    for i, row in enumerate(table.rows):
        cells = []
        for c in table.columns:
            text = _md_escape(cell(row, c.kind, c.key))
            cells.append(f"**{text}**" if (i, c.key) in best else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(report: Report, path: Path) -> Path:
    parts = [f"# {report.title}\n", *[f"- {line}" for line in report.source], ""]
    for section in report.sections:
        parts.append(f"## {section.title}\n")
        if section.text:
            parts.append(section.text + "\n")
        for table in section.tables:
            parts.append(f"### {table.title}\n")
            parts.append(markdown_table(table))
            if table.note:
                parts.append(f"_{table.note}_\n")
        for figure in section.figures:
            rel = figure.path.relative_to(path.parent).as_posix()
            parts.append(f"### {figure.title}\n\n![{figure.title}]({rel})\n")
            if figure.caption:
                parts.append(f"_{figure.caption}_\n")
    if report.footer:
        parts.append(f"---\n{report.footer}\n")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


# --- LaTeX ------------------------------------------------------------------------------------------
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "—": "--",
        "±": r"$\pm$", "<": r"$<$", ">": r"$>$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def latex_table(table: Table) -> str:
    """A booktabs ``table`` float; best cells in bold."""
    if not table.rows:
        return f"% {tex_escape(table.title)}: no rows\n"
    best = table.best()
    align = "".join("r" if c.kind in ("int", "float", "mean_std", "p") else "l" for c in table.columns)
    lines = [r"\begin{table}[ht]", r"\centering", r"\scriptsize",
             rf"\caption{{{tex_escape(table.title)}}}",
             r"\resizebox{\linewidth}{!}{%", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(tex_escape(c.label) for c in table.columns) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        cells = []
        for c in table.columns:
            text = tex_escape(cell(row, c.kind, c.key))
            cells.append(rf"\textbf{{{text}}}" if (i, c.key) in best else text)
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
        parts += [latex_table(t) for t in section.tables]
        for figure in section.figures:
            rel = figure.path.relative_to(path.parent).as_posix()
            parts += [r"\begin{figure}[ht]", r"\centering", rf"\includegraphics[width=\linewidth]{{{rel}}}",
                      rf"\caption{{{tex_escape(figure.title)}}}", r"\end{figure}"]
    parts.append(r"\end{document}")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


# --- HTML ---------------------------------------------------------------------------------------------
_CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;
background:#fff;padding:0 1em}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0}
th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{border-bottom:2px solid #444;background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best{font-weight:bold;background:#e6f4e6}
td.missing{color:#999}
.note{font-size:12px;color:#555;font-style:italic}
code{font-size:12px;color:#335}
img{max-width:100%;border:1px solid #eee}
"""


def html_table(table: Table) -> str:
    if not table.rows:
        return "<p class='note'>No rows.</p>\n"
    best = table.best()
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(c.label)}</th>" for c in table.columns) + "</tr>"]
    for i, row in enumerate(table.rows):
        cells = []
        for c in table.columns:
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
                text = html.escape(cell(row, c.kind, c.key))
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
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        for table in section.tables:
            parts.append(f"<h3>{html.escape(table.title)}</h3>")
            parts.append(html_table(table))
        for figure in section.figures:
            data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
            parts.append(f"<h3>{html.escape(figure.title)}</h3>")
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
