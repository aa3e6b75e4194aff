#!/usr/bin/env python3
"""Renders a terminal screen captured with ANSI colours (`tmux capture-pane -e -p`) to a PNG.

    tmux capture-pane -e -p -t top > screen.ans
    python3 docs/render-terminal.py screen.ans docs/sluice-top.png

Needs Pillow (`pip install pillow`) and DejaVu Sans Mono (Debian's fonts-dejavu-core). Only the SGR
attributes `sluice top` uses are drawn: bold, dim, reverse, and the 8 basic foreground colours.
"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SIZE = 15
BACKGROUND = (24, 26, 33)
FOREGROUND = (215, 218, 224)
COLOURS = {30: (60, 60, 60), 31: (240, 98, 98), 32: (126, 200, 110), 33: (229, 192, 100), 34: (100, 150, 240),
           35: (200, 120, 220), 36: (90, 200, 210), 37: (230, 230, 230)}
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def cells(line, state):
    """Yields (character, attributes) for one line, updating `state` (bold, dim, reverse, colour)."""
    at = 0
    for match in SGR.finditer(line):
        for ch in line[at:match.start()]:
            yield ch, dict(state)
        codes = [int(c) for c in match.group(1).split(";") if c] or [0]
        for code in codes:
            if code == 0:
                state.update(bold=False, dim=False, reverse=False, colour=None)
            elif code == 1:
                state["bold"] = True
            elif code == 2:
                state["dim"] = True
            elif code == 22:
                state.update(bold=False, dim=False)
            elif code == 7:
                state["reverse"] = True
            elif code == 27:
                state["reverse"] = False
            elif code in COLOURS:
                state["colour"] = code
            elif code == 39:
                state["colour"] = None
        at = match.end()
    for ch in line[at:]:
        yield ch, dict(state)


def main(source, target):
    lines = open(source, encoding="utf-8").read().rstrip("\n").split("\n")
    regular, bold = ImageFont.truetype(FONT, SIZE), ImageFont.truetype(BOLD, SIZE)
    width = int(regular.getlength("M"))
    height = SIZE + 5
    columns = max(len(SGR.sub("", line)) for line in lines)
    pad = 14
    image = Image.new("RGB", (columns * width + 2 * pad, len(lines) * height + 2 * pad), BACKGROUND)
    draw = ImageDraw.Draw(image)
    state = {"bold": False, "dim": False, "reverse": False, "colour": None}
    for row, line in enumerate(lines):
        for column, (ch, attributes) in enumerate(cells(line, state)):
            fg = COLOURS.get(attributes["colour"], FOREGROUND)
            if attributes["dim"]:
                fg = tuple(int(c * 0.6 + b * 0.4) for c, b in zip(fg, BACKGROUND))
            bg = BACKGROUND
            if attributes["reverse"]:
                fg, bg = BACKGROUND, fg
            x, y = pad + column * width, pad + row * height
            if bg != BACKGROUND:
                draw.rectangle([x, y, x + width, y + height], fill=bg)
            if ch != " ":
                draw.text((x, y + 2), ch, font=bold if attributes["bold"] else regular, fill=fg)
    image.save(target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
