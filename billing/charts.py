"""Bar charts drawn as SVG on the server, so usage pages need no chart library or network."""

from dataclasses import dataclass
from decimal import Decimal

WIDTH = 720
HEIGHT = 200
PADDING_TOP = 12
PADDING_BOTTOM = 24


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str
    forecast: bool = False


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def bar_chart(points: list[tuple[str, Decimal, bool]]) -> dict:
    """points: (label, value, is_forecast). Returns what the SVG template draws."""
    if not points:
        return {"bars": [], "width": WIDTH, "height": HEIGHT, "max_label": "0"}
    largest = max((value for _, value, _ in points), default=Decimal(0)) or Decimal(1)
    slot = WIDTH / len(points)
    gap = min(4.0, slot * 0.2)
    usable = HEIGHT - PADDING_TOP - PADDING_BOTTOM
    bars = []
    for index, (label, value, forecast) in enumerate(points):
        height = float(value / largest) * usable if largest else 0.0
        bars.append(
            Bar(
                x=round(index * slot + gap / 2, 2),
                y=round(PADDING_TOP + usable - height, 2),
                width=round(slot - gap, 2),
                height=round(height, 2),
                label=label,
                value=_plain(value),
                forecast=forecast,
            )
        )
    return {
        "bars": bars,
        "width": WIDTH,
        "height": HEIGHT,
        "max_label": _plain(largest),
        "baseline": HEIGHT - PADDING_BOTTOM,
    }
