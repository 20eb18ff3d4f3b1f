"""Small PNG charts for coordinators, drawn with the standard library alone (zlib), so a chart
costs no plotting dependency: progress over time, and workers' accuracy on gold."""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Sequence

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
INK: Color = (40, 40, 40)
GRID: Color = (225, 225, 225)
BLUE: Color = (52, 101, 164)
GREEN: Color = (78, 154, 6)
RED: Color = (204, 0, 0)

# A 3x5 pixel font for the tick labels: digits, '%', '.', 'k'.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001010010010", "8": "111101111101111",
    "9": "111101111001111", "%": "101001010100101", ".": "000000000000010",
    "k": "100101110101101", " ": "000000000000000", "s": "011100010001110",
    "m": "000111111101101", "h": "100100111101101",
}  # fmt: skip


class Canvas:
    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        x0, x1 = sorted((max(0, x0), min(self.width - 1, x1)))
        y0, y1 = sorted((max(0, y0), min(self.height - 1, y1)))
        row = bytes(color) * (x1 - x0 + 1)
        for y in range(y0, y1 + 1):
            offset = (y * self.width + x0) * 3
            self.pixels[offset : offset + len(row)] = row

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1) -> None:
        """Bresenham's line, thickened by stamping squares."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        while True:
            self.rect(x0, y0, x0 + width - 1, y0 + width - 1, color)
            if x0 == x1 and y0 == y1:
                return
            double = 2 * error
            if double >= dy:
                error += dy
                x0 += sx
            if double <= dx:
                error += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: Color = INK, scale: int = 2) -> None:
        for index, char in enumerate(text):
            glyph = _GLYPHS.get(char, _GLYPHS[" "])
            for bit, on in enumerate(glyph):
                if on == "1":
                    gx, gy = x + index * 4 * scale + (bit % 3) * scale, y + (bit // 3) * scale
                    self.rect(gx, gy, gx + scale - 1, gy + scale - 1, color)

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * self.width * 3 : (y + 1) * self.width * 3])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b"")
        )


def _short(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"


def batch_chart(
    progress: Sequence[tuple[float, int]],
    needed: int,
    accuracies: Sequence[float],
    width: int = 640,
    height: int = 480,
) -> bytes:
    """Top: answers counted over time against what the batch needs. Bottom: how many workers
    fall in each tenth of accuracy on gold (red below 60%)."""
    canvas = Canvas(width, height)
    left, right = 70, width - 20
    _progress_panel(canvas, progress, needed, left, right, 20, height // 2 - 30)
    _accuracy_panel(canvas, accuracies, left, right, height // 2 + 20, height - 30)
    return canvas.png()


def _progress_panel(
    canvas: Canvas,
    progress: Sequence[tuple[float, int]],
    needed: int,
    left: int,
    right: int,
    top: int,
    bottom: int,
) -> None:
    peak = max([needed, *(count for _, count in progress), 1])
    for step in range(5):
        y = bottom - (bottom - top) * step // 4
        canvas.line(left, y, right, y, GRID)
        canvas.text(4, y - 5, _short(peak * step / 4))
    canvas.line(left, top, left, bottom, INK)
    canvas.line(left, bottom, right, bottom, INK)
    if needed:
        y = bottom - round((bottom - top) * needed / peak)
        canvas.line(left, y, right, y, GREEN)
    if len(progress) < 2:
        return
    start, end = progress[0][0], progress[-1][0]
    span = max(end - start, 1e-9)
    points = [
        (
            left + round((right - left) * (t - start) / span),
            bottom - round((bottom - top) * count / peak),
        )
        for t, count in progress
    ]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        canvas.line(x0, y0, x1, y1, BLUE, width=2)
    minutes = span / 60
    label = f"{minutes:.0f}m" if minutes < 120 else f"{minutes / 60:.0f}h"
    canvas.text(right - 30, bottom + 6, label)


def _accuracy_panel(
    canvas: Canvas, accuracies: Sequence[float], left: int, right: int, top: int, bottom: int
) -> None:
    bins = [0] * 10
    for accuracy in accuracies:
        bins[min(9, int(accuracy * 10))] += 1
    peak = max([*bins, 1])
    canvas.line(left, bottom, right, bottom, INK)
    slot = (right - left) // 10
    for index, count in enumerate(bins):
        x0 = left + index * slot + 3
        height = round((bottom - top) * count / peak)
        canvas.rect(x0, bottom - height, x0 + slot - 6, bottom - 1, RED if index < 6 else BLUE)
        if count:
            canvas.text(x0 + 2, bottom - height - 14, str(count))
        canvas.text(x0, bottom + 6, f"{index * 10}%")
