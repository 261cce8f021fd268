"""A tiny self-contained HTML writer for the report: escaping, number formatting, tables, images, the page."""
from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:3px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.na{color:#a33;font-style:italic}.note{color:#555;font-size:12px}
.meta{color:#555;font-size:13px}img{max-width:100%;border:1px solid #ddd;margin:4px 0}
.sw{display:inline-block;width:14px;height:14px;border:1px solid #888;vertical-align:middle;margin-right:4px}
.legend span.item{display:inline-block;margin:2px 10px 2px 0;font-size:12px}
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: Any, digits: int = 2) -> str:
    """A number for a table cell ('-' for None/NaN)."""
    if v is None or isinstance(v, bool):
        return "-" if v is None else str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "-" if not math.isfinite(v) else f"{float(v):.{digits}f}"
    return str(v)


def na(reason: str) -> str:
    """The one way the report says something is missing."""
    return f'<span class="na">not available: {esc(reason)}</span>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are HTML already (escape text with :func:`esc`); ``numeric`` columns align right."""
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="num">{c}</td>' if k in numeric else f"<td>{c}</td>"
                                    for k, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def img(src: str, alt: str) -> str:
    """An image by relative path (the report folder is self-contained)."""
    if "/" in src or src.startswith("."):
        raise ValueError(f"report images must sit next to index.html, got {src!r}")
    return f'<img src="{esc(src)}" alt="{esc(alt)}">'


def colour_legend(class_names: Sequence[str]) -> str:
    """Class colour swatches (VOC palette) as inline styles: no image needed."""
    from wsss.maps import voc_palette

    pal = voc_palette()
    items = [(i, n) for i, n in enumerate(class_names)] + [(255, "ignore")]
    return '<div class="legend">' + "".join(
        f'<span class="item"><span class="sw" style="background:rgb({pal[i][0]},{pal[i][1]},{pal[i][2]})">'
        f"</span>{esc(n)}</span>" for i, n in items) + "</div>"


@dataclass
class Page:
    """Sections of HTML in order; :meth:`html` wraps them into one document with inline CSS."""

    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, *chunks: str) -> None:
        self.parts.extend(chunks)

    def html(self) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{esc(self.title)}</title><style>{CSS}</style></head>\n<body>\n"
                + "\n".join(self.parts) + "\n</body></html>\n")


def referenced_images(html_text: str) -> list[str]:
    """The ``src`` of every ``<img>`` (for checks: all must be local files next to the page)."""
    return re.findall(r'<img[^>]*\ssrc="([^"]*)"', html_text)


def relative_ok(src: str) -> bool:
    return not (src.startswith(("http:", "https:", "//", "data:", "file:")) or os.path.isabs(src))
