"""Trend charts as inline SVG, drawn on the server (no external service; WeasyPrint renders them too)."""

from __future__ import annotations

from markupsafe import Markup, escape

# The legend sits in the top margin and the last period's label in the right one: both stay inside the drawing.
WIDTH, HEIGHT, LEFT, RIGHT, BOTTOM, TOP = 640, 230, 40, 24, 30, 26
SERIES = (("otif", "OTIF", "#1f6feb"), ("fill_rate", "Fill rate", "#2da44e"))


def trend_svg(points: list[tuple[str, dict[str, float | None]]], last_so_far: bool = False) -> Markup:
    """A line per series over the periods; a period without data leaves a gap, never a zero.

    ``last_so_far``: the last period is not over (its figures change until it closes). Its points are hollow,
    the line into them dashed and its label says "so far": a dip there is not yet a result."""
    count = max(len(points), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - TOP

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - max(0.0, min(100.0, value)) / 100)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        'role="img" aria-label="Trend of OTIF and fill rate" class="trend">'
    ]
    for level in (0, 50, 100):
        parts.append(
            f'<line x1="{LEFT}" y1="{y(level):.1f}" x2="{WIDTH - RIGHT}" y2="{y(level):.1f}" stroke="#d5dbe1"/>'
            f'<text x="{LEFT - 6}" y="{y(level) + 4:.1f}" font-size="10" text-anchor="end">{level}%</text>'
        )
    open_index = len(points) - 1 if last_so_far else -1
    for i, (label, _) in enumerate(points):
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - 12}" font-size="9" text-anchor="middle">{escape(label)}</text>'
        )
        if i == open_index:
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 2}" font-size="8" text-anchor="middle">so far</text>')
    for key, name, colour in SERIES:
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, (label, values) in enumerate(points):
            value = values.get(key)
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            point = f"{x(i):.1f},{y(value):.1f}"
            if i == open_index:
                if segment:  # dashed from the last closed period's point
                    parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="4 3" '
                                 f'points="{segment[-1]} {point}"/>')  # fmt: skip
                title = f"{name} {escape(label)} so far: {value:.1f}%"
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3" fill="#fff" stroke="{colour}" '
                             f'stroke-width="1.5"><title>{title}</title></circle>')  # fmt: skip
                continue
            segment.append(point)
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3" fill="{colour}"><title>{name} '
                         f"{escape(label)}: {value:.1f}%</title></circle>")  # fmt: skip
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) > 1:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(seg)}"/>')
    legend_x = LEFT
    for _, name, colour in SERIES:
        parts.append(f'<rect x="{legend_x}" y="6" width="10" height="4" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="12" font-size="10">{name}</text>')  # fmt: skip
        legend_x += 90
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every value is a number or escaped)
