"""Saving figures: every figure is written as PNG and SVG beside the report, and the PNG
is embedded in the HTML as base64 so the page needs nothing but itself."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

DPI = 110

#: one colour per op kind, stable across every figure of a report
KIND_COLOURS = {
    "matmul": "#1f77b4",
    "gemv": "#17becf",
    "attention": "#ff7f0e",
    "conv": "#8c564b",
    "elementwise": "#2ca02c",
    "reduction": "#bcbd22",
    "norm": "#9467bd",
    "softmax": "#e377c2",
    "scatter": "#d62728",
    "gather": "#7f7f7f",
    "copy": "#c49c94",
    "transfer": "#aec7e8",
    "collective": "#ffbb78",
    "moe": "#98df8a",
    "view": "#dddddd",
    "unknown": "#000000",
}
_FALLBACK = plt.get_cmap("tab20").colors


def kind_colour(kind: str) -> str:
    if kind in KIND_COLOURS:
        return KIND_COLOURS[kind]
    r, g, b = _FALLBACK[sum(map(ord, str(kind))) % len(_FALLBACK)]
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


@dataclass
class SavedFigure:
    """One figure of the report: where its files are and the PNG bytes to embed."""

    key: str
    title: str
    png: Path
    svg: Path
    png_b64: str
    caption: str = ""

    @property
    def data_uri(self) -> str:
        return f"data:image/png;base64,{self.png_b64}"


def save(fig: Figure, out_dir: Path, key: str, caption: str = "") -> SavedFigure:
    """Write ``fig`` as ``out_dir/key.png`` and ``.svg``, close it, return what the HTML needs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    if not title and fig.axes:
        title = fig.axes[0].get_title()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    png = out_dir / f"{key}.png"
    png.write_bytes(buf.getvalue())
    svg = out_dir / f"{key}.svg"
    fig.savefig(svg, format="svg", bbox_inches="tight")
    plt.close(fig)
    return SavedFigure(key, title, png, svg, base64.b64encode(buf.getvalue()).decode("ascii"), caption)


def from_files(key: str, title: str, png: Path, svg: Path, caption: str = "") -> SavedFigure:
    """A figure another module already wrote to disk."""
    return SavedFigure(key, title, Path(png), Path(svg), base64.b64encode(Path(png).read_bytes()).decode("ascii"), caption)
