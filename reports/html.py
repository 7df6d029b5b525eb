"""Render the report's HTML from its sections with the jinja2 template; everything the
page shows is inside the one file (base64 PNGs, inline styles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"


def number(x: float) -> str:
    """Compact and readable: 25,132 / 20.37 / 0.0163 / 1.05e+10."""
    if x != x:
        return "–"
    a = abs(x)
    if a >= 1e7:
        return f"{x:.3g}"
    if a >= 100:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def table_html(df: pd.DataFrame) -> str:
    """A DataFrame as a plain HTML table (no index; numbers compact)."""
    if df is None or df.empty:
        return "<p class='note'>(no rows)</p>"
    fmt = {c: number for c in df.columns if pd.api.types.is_float_dtype(df[c]) or (
        pd.api.types.is_integer_dtype(df[c]) and c in ("flops", "bytes"))}
    return df.to_html(index=False, border=0, formatters=fmt, escape=True, na_rep="–")


def render(context: dict[str, Any]) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("report.html.j2").render(**context)
