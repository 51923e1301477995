"""Server-drawn SVG charts with a title and labelled axes (pure: data in, markup out; every label escaped)."""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

W, H = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 56


def _frame(title: str, x_label: str, y_label: str, body: list[str], ident: str, width: int = W,
           height: int = H) -> str:
    t = escape(title)
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{ident}-title" class="chart" id="{ident}" data-chart="{ident}">',
        f'<title id="{ident}-title">{t}</title>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" class="chart-title">{t}</text>',
        *body,
        f'<text x="{LEFT + (width - LEFT - RIGHT) / 2}" y="{height - 8}" text-anchor="middle" class="axis-label">'
        f'{escape(x_label)}</text>',
        f'<text transform="translate(14 {TOP + (height - TOP - BOTTOM) / 2}) rotate(-90)" text-anchor="middle" '
        f'class="axis-label">{escape(y_label)}</text>',
        "</svg>",
    ])


def _axes(width: int, height: int) -> list[str]:
    return [f'<line x1="{LEFT}" y1="{height - BOTTOM}" x2="{width - RIGHT}" y2="{height - BOTTOM}" class="axis"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{height - BOTTOM}" class="axis"/>']


def _y_ticks(top: float, height: int, fmt: str) -> list[str]:
    out = []
    for i in range(5):
        value = top * i / 4
        y = height - BOTTOM - (height - TOP - BOTTOM) * i / 4
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{fmt.format(value)}</text>')
    return out


def line_chart(title: str, labels: Sequence[str], values: Sequence[float | None], x_label: str, y_label: str,
               ident: str) -> str:
    """A line over time; unknown points (None) break the line instead of drawing zero."""
    body = _axes(W, H)
    known = [v for v in values if v is not None]
    top = max(known) if known else 1.0
    top = top if top > 0 else 1.0
    body += _y_ticks(top * 100, H, "{:.0f}%")
    step = (W - LEFT - RIGHT) / max(len(values) - 1, 1)
    path: list[str] = []
    for i, (label, value) in enumerate(zip(labels, values)):
        x = LEFT + step * i
        if i % max(len(labels) // 6, 1) == 0 or i == len(labels) - 1:
            body.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" class="tick">{escape(label)}</text>')
        if value is None:
            path.append("")
            continue
        y = H - BOTTOM - (H - TOP - BOTTOM) * value / top
        path.append(f"{'M' if not path or not path[-1] else 'L'}{x:.1f},{y:.1f}")
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" class="point"><title>{escape(label)}: '
                    f'{value * 100:.1f}%</title></circle>')
    body.append(f'<path d="{" ".join(p for p in path if p)}" class="line" fill="none"/>')
    return _frame(title, x_label, y_label, body, ident)


def histogram(title: str, edges: Sequence[float], counts: Sequence[int], x_label: str, y_label: str, ident: str,
              money: str = "") -> str:
    """Counts per bin; the last bin is open-ended (labelled with a +)."""
    body = _axes(W, H)
    top = max(counts) if counts else 1
    top = top or 1
    body += _y_ticks(top, H, "{:,.0f}")
    width = (W - LEFT - RIGHT) / max(len(counts), 1)
    for i, count in enumerate(counts):
        x = LEFT + width * i
        h = (H - TOP - BOTTOM) * count / top
        label = f"{money}{edges[i]:,.0f}–{money}{edges[i + 1]:,.0f}" + ("+" if i == len(counts) - 1 else "")
        body.append(f'<rect x="{x + 1:.1f}" y="{H - BOTTOM - h:.1f}" width="{width - 2:.1f}" height="{h:.1f}" '
                    f'class="bar" data-count="{count}"><title>{escape(label)}: {count:,} customers</title></rect>')
        if i % max(len(counts) // 5, 1) == 0:
            body.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" class="tick">{money}{edges[i]:,.0f}</text>')
    return _frame(title, x_label, y_label, body, ident)


def _shade(share: float) -> str:
    """White to the brand green, by share (0..1)."""
    share = min(max(share, 0.0), 1.0)
    r, g, b = (int(255 - (255 - c) * share) for c in (0, 128, 96))
    return f"rgb({r},{g},{b})"


def heatmap(title: str, rows: Sequence[tuple[str, Sequence[float | None]]], x_label: str, y_label: str,
            ident: str, max_columns: int = 13) -> str:
    """Cohort rows x months since first order; unknown cells (not reached yet) are left blank."""
    cols = min(max((len(v) for _, v in rows), default=1), max_columns)
    height = TOP + BOTTOM + 18 * max(len(rows), 1)
    cell_w = (W - LEFT - RIGHT) / max(cols, 1)
    body: list[str] = []
    for j in range(cols):
        body.append(f'<text x="{LEFT + cell_w * (j + 0.5):.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" '
                    f'class="tick">{j}</text>')
    for i, (cohort, values) in enumerate(rows):
        y = TOP + 18 * i
        body.append(f'<text x="{LEFT - 6}" y="{y + 13}" text-anchor="end" class="tick">{escape(cohort)}</text>')
        for j, value in enumerate(list(values)[:cols]):
            if value is None:
                continue
            body.append(f'<rect x="{LEFT + cell_w * j:.1f}" y="{y}" width="{cell_w - 1:.1f}" height="17" '
                        f'fill="{_shade(value)}" class="cell"><title>{escape(cohort)}, month {j}: '
                        f'{value * 100:.1f}%</title></rect>')
    return _frame(title, x_label, y_label, body, ident, height=height)


def rfm_grid(title: str, cells: Sequence[dict[str, object]], ident: str) -> str:
    """The 5x5 recency x frequency grid: customers per cell and the named group of each cell."""
    height = 360
    size_w, size_h = (W - LEFT - RIGHT) / 5, (height - TOP - BOTTOM) / 5
    top = max((int(str(c["count"])) for c in cells), default=1) or 1
    body: list[str] = []
    for cell in cells:
        r, f, count = int(str(cell["r"])), int(str(cell["f"])), int(str(cell["count"]))
        x, y = LEFT + size_w * (f - 1), TOP + size_h * (5 - r)
        group = escape(str(cell["group"]))
        body.append(f'<g class="rfm-cell" data-r="{r}" data-f="{f}" data-count="{count}">'
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{size_w - 2:.1f}" height="{size_h - 2:.1f}" '
                    f'fill="{_shade(0.15 + 0.85 * count / top)}"><title>R{r} F{f} {group}: {count:,}</title></rect>'
                    f'<text x="{x + size_w / 2:.1f}" y="{y + size_h / 2 - 2:.1f}" text-anchor="middle" '
                    f'class="cell-count">{count:,}</text>'
                    f'<text x="{x + size_w / 2:.1f}" y="{y + size_h / 2 + 12:.1f}" text-anchor="middle" '
                    f'class="cell-group">{group}</text></g>')
    for k in range(1, 6):
        body.append(f'<text x="{LEFT + size_w * (k - 0.5):.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" '
                    f'class="tick">{k}</text>')
        body.append(f'<text x="{LEFT - 8}" y="{TOP + size_h * (5 - k + 0.5):.1f}" text-anchor="end" '
                    f'class="tick">{k}</text>')
    return _frame(title, "Frequency score (1 = fewest orders, 5 = most)", "Recency score (5 = most recent)", body,
                  ident, height=height)


def paired_bars(title: str, labels: Sequence[str], first: Sequence[float], second: Sequence[float],
                names: tuple[str, str], x_label: str, y_label: str, ident: str) -> str:
    """Two bars per label (e.g. predicted and actual per decile), with a legend."""
    body = _axes(W, H)
    top = max([*first, *second, 0.0]) or 1.0
    body += _y_ticks(top, H, "{:,.0f}")
    group = (W - LEFT - RIGHT) / max(len(labels), 1)
    bar = group * 0.4
    for i, label in enumerate(labels):
        x = LEFT + group * i + group * 0.1
        for j, (value, css) in enumerate(((first[i], "bar"), (second[i], "bar-alt"))):
            h = (H - TOP - BOTTOM) * value / top
            body.append(f'<rect x="{x + j * bar:.1f}" y="{H - BOTTOM - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                        f'class="{css}" data-series="{escape(names[j])}" data-value="{value:.2f}"><title>'
                        f'{escape(label)}: {escape(names[j])} {value:,.1f}</title></rect>')
        body.append(f'<text x="{x + bar:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" class="tick">'
                    f'{escape(label)}</text>')
    for j, (name, css) in enumerate(zip(names, ("bar", "bar-alt"))):
        body.append(f'<rect x="{W - RIGHT - 150}" y="{TOP + 4 + 16 * j}" width="10" height="10" class="{css}"/>'
                    f'<text x="{W - RIGHT - 134}" y="{TOP + 13 + 16 * j}" class="tick">{escape(name)}</text>')
    return _frame(title, x_label, y_label, body, ident)
