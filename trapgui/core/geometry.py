"""Box geometry in original-image pixel coordinates (x1, y1, x2, y2; x2/y2 exclusive edges)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Box:
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def is_degenerate(self) -> bool:
        return not (self.x2 > self.x1 and self.y2 > self.y1)

    def clipped(self, width: float, height: float) -> "Box":
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def relative(self, width: float, height: float) -> tuple[float, float, float, float]:
        """The box as fractions of the image size (what the CSV's rel_* columns hold)."""
        if width <= 0 or height <= 0:
            raise ValueError("image size must be positive")
        return (self.x1 / width, self.y1 / height, self.x2 / width, self.y2 / height)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


def iou(a: Box, b: Box) -> float:
    ix1, iy1 = max(a.x1, b.x1), max(a.y1, b.y1)
    ix2, iy2 = min(a.x2, b.x2), min(a.y2, b.y2)
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0
