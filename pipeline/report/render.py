"""The nightly report as one HTML file: figure data in, markup out (no disk, no network).

Figures are drawn with matplotlib and inlined as SVG: the file needs no script, no font
and no request to open, renders the same every time for the same data, and stays small.
Each figure's data marks carry an id ending `-mark-<n>` (the browser test counts them);
ids are prefixed per figure, since the SVGs share one document.
"""

from __future__ import annotations

import html
import io
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from pipeline.records import STATUSES
from pipeline.report.figures import NEW_ITEMS_MAX, OTHER, UNKNOWN, NewSince

STATUS_COLORS = {
    "ok": "#4c9a2a",
    "stale": "#e8a33d",
    "error": "#c8372d",
    "not_found": "#9a9a9a",
    "partial": "#e8a33d",
    "failed": "#c8372d",
}
PALETTE = (
    "#4477aa",
    "#ee6677",
    "#228833",
    "#ccbb44",
    "#66ccee",
    "#aa3377",
    "#bbbbbb",
    "#555555",
)
"""Paul Tol's colour-blind-safe qualitative scheme; the last two for `other`/`unknown`."""

WIDTH_INCHES = 10.0
"""Figures are drawn at the page's width (about 1,000 px): readable on a laptop screen."""

_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, the browser's font
    "svg.hashsalt": "mllm-papers-report",  # the same ids every time: a deterministic file
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "legend.frameon": False,
}


@dataclass(frozen=True)
class Panel:
    """One section of the report: a figure (SVG) or a table (HTML), or why there is none."""

    key: str
    """A slug: the section's id, and the prefix of its SVG's ids."""
    title: str
    caption: str
    body: str | None
    """The markup; None: nothing to show yet (`empty` says why)."""
    empty: str = "No data yet."


@dataclass
class ReportPage:
    """What the page shows about a night besides its panels."""

    snapshot_date: date
    run_id: str
    status: str
    status_reason: str | None
    counts: dict[str, int] = field(default_factory=dict)
    """Rows per table."""
    generated_by: str = ""


# -- SVG ---------------------------------------------------------------------------------


class _Marks:
    """Names the data artists of one figure `mark-0`, `mark-1`, ..."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, artists: Artist | Sequence[Artist]) -> None:
        for artist in [artists] if isinstance(artists, Artist) else artists:
            artist.set_gid(f"mark-{self.count}")
            self.count += 1


@contextmanager
def _figure(height_inches: float, width_inches: float = WIDTH_INCHES) -> Iterator[Figure]:
    with matplotlib.rc_context(_STYLE):
        # A bare Figure (no pyplot): no global figure registry, no GUI backend.
        yield Figure(figsize=(width_inches, height_inches), layout="constrained")


_SVG_START = re.compile(r"<svg\b")
_IDS = re.compile(r'(\bid="|url\(#|href="#)')


def svg_of(figure: Figure, key: str) -> str:
    """The figure as an inline `<svg>` element, its ids prefixed with `key`."""
    with matplotlib.rc_context(_STYLE), warnings.catch_warnings():
        # Text stays text (svg.fonttype none): the browser draws CJK titles with its own
        # fonts; only the layout's measurement here lacks those glyphs.
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    start = _SVG_START.search(text)
    if start is None:  # pragma: no cover - matplotlib always writes one
        raise ValueError("matplotlib wrote no <svg> element")
    text = text[start.start() :]
    text = _IDS.sub(lambda m: f"{m.group(1)}{key}-", text)
    # Drawn at its own size, shrunk to the page's width on a narrower screen (the CSS).
    return text.replace("<svg ", '<svg class="chart" ', 1)


def _legend(ax: Axes, **kwargs: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, **kwargs)


def _colors(names: Sequence[str]) -> dict[str, str]:
    """A colour per name, `other` and `unknown` greyed."""
    greys = {OTHER: PALETTE[6], UNKNOWN: PALETTE[7]}
    named = [n for n in names if n not in greys]
    colors = {n: PALETTE[i % 6] for i, n in enumerate(named)}
    colors.update({n: greys[n] for n in names if n in greys})
    return colors


def human_count(value: float) -> str:
    """1234 -> 1.23k, 72e9 -> 72B: three significant digits and a unit."""
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor * 0.9995:  # 999.7B shows as 1T, not 1e+03B
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.0f}"


# -- figures --------------------------------------------------------------------------------


def papers_per_month_svg(frame: pd.DataFrame) -> str | None:
    if frame.empty:
        return None
    table = frame.pivot_table(
        index="month", columns="category", values="papers", aggfunc="sum", fill_value=0
    )
    months = pd.period_range(table.index.min(), table.index.max(), freq="M").strftime("%Y-%m")
    table = table.reindex(months, fill_value=0)
    categories = sorted(table.columns, key=lambda c: (c in (OTHER, UNKNOWN), -table[c].sum()))
    colors = _colors(categories)
    marks = _Marks()
    with _figure(3.4) as fig:
        ax = fig.subplots()
        bottom = pd.Series(0, index=table.index)
        positions = range(len(table.index))
        for category in categories:
            bars = ax.bar(
                positions,
                table[category],
                bottom=bottom,
                width=0.85,
                color=colors[category],
                label=f"{category} ({int(table[category].sum())})",
            )
            marks(list(bars))
            bottom = bottom + table[category]
        # Every month when there are few, else Januaries (at most about 14 labels).
        ticks = [i for i, m in enumerate(months) if len(months) <= 14 or m.endswith("-01")]
        ticks = ticks[:: max(1, -(-len(ticks) // 14))]
        ax.set_xticks(ticks, [months[i] for i in ticks], rotation=45, ha="right")
        ax.set_ylabel("papers")
        ax.set_xlim(-0.6, len(months) - 0.4)
        _legend(ax, title="primary category")
        return svg_of(fig, "per-month")


def overlap_svg(frame: pd.DataFrame) -> str | None:
    if frame.empty:
        return None
    n = len(frame)
    marks = _Marks()
    size = min(7.0, 2.4 + 0.4 * n)
    with _figure(size, size + 2.0) as fig:
        ax = fig.subplots()
        shared = frame.to_numpy().astype(float)
        off_diagonal = shared.copy()
        for i in range(n):
            off_diagonal[i, i] = float("nan")
        mesh = ax.pcolormesh(off_diagonal, cmap="Blues", edgecolors="white", linewidth=1)
        marks(mesh)
        peak = max(1.0, float(pd.Series(off_diagonal.ravel()).max(skipna=True) or 1.0))
        for i in range(n):
            for j in range(n):
                value = int(shared[i, j])
                dark = i != j and value > 0.6 * peak
                text = ax.text(
                    j + 0.5,
                    i + 0.5,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=8,
                    fontweight="bold" if i == j else "normal",
                    color="white" if dark else "#222222",
                )
                if i == j:
                    marks(text)
        labels = [str(name) for name in frame.index]
        ax.set_xticks([i + 0.5 for i in range(n)], labels, rotation=40, ha="right")
        ax.set_yticks([i + 0.5 for i in range(n)], labels)
        ax.invert_yaxis()
        ax.set_aspect("equal")
        fig.colorbar(mesh, ax=ax, label="papers in both lists", shrink=0.7)
        return svg_of(fig, "overlap")


def model_sizes_svg(frame: pd.DataFrame) -> str | None:
    if frame.empty:
        return None
    counts = frame["task"].value_counts()
    tasks = sorted(counts.index, key=lambda t: (t in (OTHER, UNKNOWN), -counts[t], t))
    colors = _colors(tasks)
    marks = _Marks()
    with _figure(3.8) as fig:
        ax = fig.subplots()
        for task in tasks:
            part = frame[frame["task"] == task]
            points = ax.scatter(
                part["created_at"].tolist(),
                part["params"].tolist(),
                s=18,
                alpha=0.8,
                color=colors[task],
                label=f"{task} ({len(part)})",
                edgecolors="none",
            )
            marks(points)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: human_count(v)))
        ax.set_ylabel("parameters")
        ax.set_xlabel("created on the Hub")
        ax.grid(True, axis="y", alpha=0.3)
        _legend(ax, title="task")
        return svg_of(fig, "model-sizes")


def family_label(repo_id: str, family: str, variants: int) -> str:
    """A family's bar: the family and its count when it has several models, else the model."""
    return f"{family} ({variants} models)" if variants > 1 else repo_id


def _family_colors(families: Sequence[str]) -> dict[str, str]:
    """A colour per family with several bars in a chart; the other bars keep the first
    colour, which no such family gets."""
    repeated = [f for f, count in Counter(families).items() if count > 1]
    return {family: PALETTE[1 + i % 5] for i, family in enumerate(repeated)}


def top_models_svg(biggest: pd.DataFrame, downloaded: pd.DataFrame) -> str | None:
    """Biggest: one bar per family (`top_models(per_family=True)`). Most downloaded: one
    bar per model, as each variant is downloaded on its own; a family's bars share a
    colour, named under the chart."""
    if biggest.empty and downloaded.empty:
        return None
    marks = _Marks()
    rows = max(len(biggest), len(downloaded))
    families = _family_colors(downloaded["family"].tolist() if not downloaded.empty else [])
    with _figure(1.0 + 0.28 * rows + 0.2 * len(families)) as fig:
        axes = fig.subplots(1, 2)
        for ax, frame, title, unit in (
            (axes[0], biggest, "Biggest families", "parameters (largest model)"),
            (axes[1], downloaded, "Most downloaded", "downloads (last 30 days)"),
        ):
            # Short titles: a long one runs past its axes, which the layout does not see.
            ax.set_title(title)
            ax.set_xlabel(unit)
            if frame.empty:
                ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            if frame is biggest:
                labels = [
                    family_label(*row)
                    for row in frame[["repo_id", "family", "variants"]].itertuples(index=False)
                ][::-1]
                colors = [PALETTE[0]] * len(frame)
            else:
                labels = frame["repo_id"].tolist()[::-1]
                colors = [families.get(f, PALETTE[0]) for f in frame["family"]][::-1]
            values = frame["value"].tolist()[::-1]
            bars = ax.barh(range(len(values)), values, color=colors, height=0.7)
            marks(list(bars))
            ax.set_yticks(range(len(values)), labels, fontsize=8)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human_count(v)))
            for i, value in enumerate(values):
                ax.text(value, i, f" {human_count(value)}", va="center", fontsize=7)
            ax.margins(x=0.15)
        if families:
            handles = [Patch(color=color, label=family) for family, color in families.items()]
            fig.legend(handles=handles, loc="outside lower right", fontsize=8, title="family")
        return svg_of(fig, "top-models")


def coverage_svg(frame: pd.DataFrame) -> str | None:
    if frame.empty:
        return None
    marks = _Marks()
    documents = frame["document"].tolist()[::-1]
    papers = frame["papers"].tolist()[::-1]
    with _figure(1.0 + 0.42 * len(documents)) as fig:
        ax = fig.subplots()
        height = 0.38
        for offset, column, label, color in (
            (height / 2, "with_code", "with code", PALETTE[0]),
            (-height / 2, "with_models", "with a Hub model", PALETTE[2]),
        ):
            have = frame[column].tolist()[::-1]
            shares = [100.0 * h / p if p else 0.0 for h, p in zip(have, papers, strict=True)]
            positions = [i + offset for i in range(len(documents))]
            bars = ax.barh(positions, shares, height=height, color=color, label=label)
            marks(list(bars))
            for y, share, h, p in zip(positions, shares, have, papers, strict=True):
                ax.text(share, y, f" {h}/{p}", va="center", fontsize=7)
        ax.set_yticks(range(len(documents)), documents)
        ax.set_xlim(0, 115)
        ax.set_xlabel("% of the list's papers")
        _legend(ax)
        return svg_of(fig, "coverage")


RUNS_BAND = "runs"
BAND_HEIGHT = 0.8
"""Each lookup is a band of one axes (100 % of its rows fills the band): one axes lays out
several times faster than a panel per lookup, and nights line up across bands."""


def health_svg(lookups: pd.DataFrame, runs: pd.DataFrame, until: date, nights: int) -> str | None:
    if lookups.empty and runs.empty:
        return None
    days = [d.date() for d in pd.date_range(end=pd.Timestamp(until), periods=nights, freq="D")]
    index = {day: i for i, day in enumerate(days)}
    names = list(dict.fromkeys(lookups["lookup"])) if not lookups.empty else []
    bands = [RUNS_BAND, *names]  # top to bottom
    base = {band: len(bands) - 1 - i for i, band in enumerate(bands)}
    marks = _Marks()
    with _figure(1.0 + 0.55 * len(bands)) as fig:
        ax = fig.subplots()
        for status in ("ok", "partial", "failed"):
            part = runs[runs["status"] == status] if not runs.empty else runs
            if part.empty:
                continue
            published = part["published"].tolist()
            points = ax.scatter(
                [index[d] for d in part["snapshot_date"]],
                [base[RUNS_BAND] + BAND_HEIGHT / 2] * len(part),
                s=40,
                marker="s",
                facecolors=[STATUS_COLORS[status] if p else "none" for p in published],
                edgecolors=STATUS_COLORS[status],
                label=f"run {status}",
            )
            marks(points)
        for name in names:
            part = lookups[lookups["lookup"] == name]
            xs = [index[d] for d in part["snapshot_date"]]
            totals = part[list(STATUSES)].sum(axis=1).replace(0, 1)
            bottom = [float(base[name])] * len(xs)
            for status in STATUSES:
                heights = (BAND_HEIGHT * part[status] / totals).tolist()
                bars = ax.bar(
                    xs,
                    heights,
                    bottom=bottom,
                    color=STATUS_COLORS[status],
                    width=0.8,
                    label=status if name == names[0] else None,
                )
                marks(list(bars))
                bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        labels = {RUNS_BAND: "runs (hollow: not published)"}
        ax.set_yticks(
            [base[band] + BAND_HEIGHT / 2 for band in bands],
            [labels.get(band, f"{band} (rows)") for band in bands],
        )
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.set_ylim(-0.1, len(bands))
        ticks = list(range(0, nights, max(1, nights // 10)))
        ax.set_xticks(ticks, [days[i].strftime("%m-%d") for i in ticks])
        ax.set_xlim(-0.6, nights - 0.4)
        _legend(ax)
        return svg_of(fig, "health")


# -- HTML -----------------------------------------------------------------------------------


def new_table(new: NewSince, label: str) -> str | None:
    """The entities new since `new.since` as an HTML table (None when there is no earlier
    snapshot); at most `NEW_ITEMS_MAX` rows, the rest counted."""
    if new.since is None:
        return None
    added = new.added
    kinds = added["kind"].value_counts() if not added.empty else pd.Series(dtype="int64")
    summary = ", ".join(
        f"{int(kinds.get(kind, 0))} {kind}s added, {new.removed.get(kind, 0)} removed"
        for kind in ("paper", "model")
    )
    head = f"<p>Since {html.escape(label)} ({new.since.isoformat()}): {summary}.</p>"
    if added.empty:
        return head + '<p class="none">Nothing new.</p>'
    rows = []
    for row in added.head(NEW_ITEMS_MAX).itertuples(index=False):
        name = html.escape(str(row.entity_id))
        url = html.escape(str(row.url), quote=True)
        rows.append(
            f'<tr data-mark="row"><td>{html.escape(str(row.kind))}</td>'
            f'<td><a href="{url}" rel="noopener noreferrer">{name}</a></td>'
            f"<td>{html.escape(str(row.title))}</td><td>{html.escape(str(row.documents))}</td></tr>"
        )
    more = len(added) - NEW_ITEMS_MAX
    tail = f'<p class="none">and {more} more.</p>' if more > 0 else ""
    return (
        head
        + '<div class="scroll"><table><thead><tr><th>kind</th><th>ID</th>'
        + "<th>title (papers) / task (models)</th><th>lists</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
        + tail
    )


CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  margin: 0; background: #f6f7f9; color: #1d232b; font-size: 15px; line-height: 1.45; }
header, main { max-width: 1080px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; }
h1 { font-size: 1.5em; margin: 0.2em 0; }
h2 { font-size: 1.15em; margin: 0 0 0.3em; }
.meta { color: #555; margin: 0; }
.status { display: inline-block; padding: 0 8px; border-radius: 4px; color: #fff;
  font-weight: 600; }
.status.ok { background: #4c9a2a; } .status.partial { background: #c98511; }
.status.failed { background: #c8372d; }
nav { margin: 10px 0 4px; font-size: 0.9em; }
nav a { margin-right: 12px; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px;
  padding: 14px 18px; margin: 14px 0; }
.caption { color: #555; font-size: 0.9em; margin: 0 0 8px; }
svg.chart { max-width: 100%; height: auto; display: block; }
.empty { border: 2px dashed #c9ced6; border-radius: 6px; padding: 26px; text-align: center;
  color: #667; background: #fafbfc; }
.scroll { max-height: 420px; overflow: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.88em; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eceff2;
  vertical-align: top; }
th { position: sticky; top: 0; background: #fff; }
.none { color: #667; }
footer { max-width: 1080px; margin: 0 auto; padding: 10px 20px 30px; color: #778;
  font-size: 0.85em; }
"""


def render_page(page: ReportPage, panels: Sequence[Panel]) -> str:
    """The whole report: one HTML document with its style and figures inline."""
    status = html.escape(page.status)
    reason = f" — {html.escape(page.status_reason)}" if page.status_reason else ""
    counts = ", ".join(f"{n:,} {html.escape(name)}" for name, n in page.counts.items())
    nav = "".join(f'<a href="#{p.key}">{html.escape(p.title)}</a>' for p in panels)
    sections = "".join(_section(panel) for panel in panels)
    title = f"MLLM papers: the night of {page.snapshot_date.isoformat()}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may be fetched: no script, no font, no image from elsewhere.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>"
        f'<p class="meta">Run <code>{html.escape(page.run_id)}</code>: '
        f'<span class="status {status}">{status}</span>{reason}</p>'
        f'<p class="meta">{counts}</p><nav>{nav}</nav></header>'
        f"<main>{sections}</main>"
        f"<footer>{html.escape(page.generated_by)}</footer></body></html>\n"
    )


def _section(panel: Panel) -> str:
    body = (
        panel.body
        if panel.body is not None
        else f'<div class="empty" data-empty="true">{html.escape(panel.empty)}</div>'
    )
    return (
        f'<section id="{panel.key}" data-figure="{panel.key}">'
        f"<h2>{html.escape(panel.title)}</h2>"
        f'<p class="caption">{html.escape(panel.caption)}</p>{body}</section>'
    )
