"""Server-rendered SVG charts of the reports, for the agent console (no JavaScript, no chart library).

``funnel_svg(row)`` draws one cadence's funnel as horizontal bars (enrolled -> won) with counts and the
share of the first stage; ``sla_svg(rows)`` one bar per queue with the share within SLA. The console
embeds the returned markup inline (it is escaped here, so cadence and queue names are safe).
"""

from __future__ import annotations

from html import escape

from core.reports import FunnelRow, SlaRow

STAGES = (
    ("enrolled", "Enrolled"),
    ("contacted", "Contacted"),
    ("engaged", "Engaged"),
    ("mql", "MQL"),
    ("connected", "Connected"),
    ("sql", "SQL"),
    ("won", "Won"),
)
WIDTH, BAR_H, GAP, LABEL_W = 560, 22, 6, 90


def funnel_svg(row: FunnelRow) -> str:
    """A funnel for one cadence; bar length is the stage's share of the enrolled contacts."""
    top = max(row.enrolled, 1)
    height = len(STAGES) * (BAR_H + GAP) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="Funnel of {escape(row.cadence_id)}" font-family="sans-serif" font-size="12">',
        f'<text x="0" y="14" font-weight="bold">{escape(row.cadence_id)}</text>',
    ]
    span = WIDTH - LABEL_W - 120
    for i, (field, label) in enumerate(STAGES):
        value = int(getattr(row, field))
        y = 24 + i * (BAR_H + GAP)
        length = round(span * value / top)
        parts += [
            f'<text x="0" y="{y + 15}">{label}</text>',
            f'<rect x="{LABEL_W}" y="{y}" width="{length}" height="{BAR_H}" fill="#3b6ea8"><title>{label}: '
            f"{value}</title></rect>",
            f'<text x="{LABEL_W + length + 6}" y="{y + 15}">{value:,} ({value / top:.0%})</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def sla_svg(rows: list[SlaRow]) -> str:
    """One bar per cadence / stage / queue: the share of tasks followed up within their SLA."""
    height = max(len(rows), 1) * (BAR_H + GAP) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
        'aria-label="Share within SLA" font-family="sans-serif" font-size="12">'
    ]
    span = WIDTH - 260
    for i, row in enumerate(rows):
        y = 4 + i * (BAR_H + GAP)
        share = row.share_within_sla or 0.0
        colour = "#2e7d32" if share >= 0.95 else "#c62828"
        label = escape(f"{row.cadence_id} {row.stage} {row.queue}")
        parts += [
            f'<text x="0" y="{y + 15}">{label}</text>',
            f'<rect x="180" y="{y}" width="{round(span * share)}" height="{BAR_H}" fill="{colour}"></rect>',
            f'<text x="{186 + round(span * share)}" y="{y + 15}">'
            f"{'-' if row.share_within_sla is None else f'{share:.0%}'}</text>",
        ]
    parts.append("</svg>")
    return "".join(parts)
