"""The console's report charts: valid SVG, bars proportional to the numbers, names escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from api.report_charts import funnel_svg, sla_svg
from core.reports import FunnelRow, SlaRow

SVG = "{http://www.w3.org/2000/svg}"


def test_funnel_bars_are_proportional_and_names_escaped() -> None:
    row = FunnelRow("<script>", enrolled=200, contacted=100, engaged=50, mql=20, connected=10, sql=5, won=2)
    root = ET.fromstring(funnel_svg(row))
    widths = [int(r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert widths[0] == 350 and widths[1] == 175 and widths[-1] == round(350 * 2 / 200)
    assert "<script>" not in funnel_svg(row) and "Won: 2" in funnel_svg(row)


def test_sla_bars_colour_misses() -> None:
    rows = [SlaRow("c", "mql", "tm", share_within_sla=1.0), SlaRow("c", "sql", "ts", share_within_sla=0.5)]
    fills = [r.get("fill") for r in ET.fromstring(sla_svg(rows)).iter(f"{SVG}rect")]
    assert fills == ["#2e7d32", "#c62828"]
