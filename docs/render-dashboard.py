#!/usr/bin/env python3
"""Draws docs/grafana-dashboard.json as a PNG from a real Prometheus, without Grafana.

    python3 docs/render-dashboard.py --prometheus http://127.0.0.1:9090 --start 1700000000 --end 1700000090 \\
        docs/grafana-dashboard.json docs/grafana-dashboard.png

Every panel's PromQL (`targets[].expr`) is evaluated over Prometheus' HTTP API (`/api/v1/query_range`), with the
dashboard's variables substituted (`$partition` by `--partition`, default `.*` as the dashboard's "All";
`$__rate_interval` by `--rate-interval`). The panels are laid out by their `gridPos` (Grafana's 24-column grid) and
drawn by `type`: a row is a header, a stat panel shows each series' last value over a sparkline, a timeseries panel
one line per series (stacked where its fieldConfig says so) with a legend table of the series' labels (its
`legendFormat`), last and max. A panel whose queries return nothing says "No data". Grafana is not packaged for
Debian; this is the same dashboard, drawn from the same queries, in a dark theme like Grafana's.

Needs Pillow (`pip install pillow`) and DejaVu Sans (Debian's fonts-dejavu-core). Standard library otherwise.
"""
import argparse
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request

from PIL import Image, ImageDraw, ImageFont

SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SANS_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"

WIDTH = 2000          # pixels for the 24 columns, margins included
UNIT = 34             # pixels per gridPos height unit (Grafana uses 30)
MARGIN = 12
GAP = 8
HEADER = 64           # the dashboard's title bar

BACKGROUND = (17, 18, 23)
PANEL = (24, 27, 31)
BORDER = (44, 50, 53)
GRID = (40, 44, 50)
TEXT = (204, 204, 220)
DIM = (142, 142, 160)
# Grafana's classic palette.
PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0", "#508642",
           "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477"]
STAT_COLOUR = "#73BF69"


def rgb(hex_colour):
    hex_colour = hex_colour.lstrip("#")
    return tuple(int(hex_colour[i:i + 2], 16) for i in (0, 2, 4))


class Fonts:
    def __init__(self):
        self.title = ImageFont.truetype(SANS_BOLD, 15)
        self.row = ImageFont.truetype(SANS_BOLD, 17)
        self.header = ImageFont.truetype(SANS_BOLD, 22)
        self.small = ImageFont.truetype(SANS, 12)
        self.legend = ImageFont.truetype(SANS, 12)
        self.mono = ImageFont.truetype(MONO, 12)
        self.axis = ImageFont.truetype(SANS, 11)
        self.nodata = ImageFont.truetype(SANS, 16)
        self.stat_cache = {}

    def stat(self, size):
        if size not in self.stat_cache:
            self.stat_cache[size] = ImageFont.truetype(SANS_BOLD, size)
        return self.stat_cache[size]


# Querying

def substitute(expr, partition, rate_interval):
    expr = expr.replace("${partition}", partition).replace("$partition", partition)
    expr = expr.replace("${__rate_interval}", rate_interval).replace("$__rate_interval", rate_interval)
    return expr


def query_range(base, expr, start, end, step):
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{query}", timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error')}")
    return body["data"]["result"]


def unknown_metrics(base, dashboard):
    """The metric names the dashboard's queries use that Prometheus has no series of (a misspelt or renamed metric,
    or one nobody exported during the range)."""
    with urllib.request.urlopen(f"{base}/api/v1/label/__name__/values", timeout=30) as response:
        known = set(json.load(response)["data"])
    named = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            named |= set(re.findall(r"\b(sluice_[a-z0-9_]+)", target.get("expr", "")))
    return sorted(n for n in named if n not in known)


def legend(fmt, metric):
    if not fmt:
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
        return metric.get("__name__", "") + ("{" + labels + "}" if labels else "")
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)
    return " ".join(text.split())


def number(text):
    value = float(text)
    return value if math.isfinite(value) else None


def panel_series(panel, args, start, end, step):
    """The panel's series: (label, [(t, value or None)]), in the order of its targets, then by label."""
    series = []
    for target in panel.get("targets", []):
        if target.get("hide") or not target.get("expr"):
            continue
        expr = substitute(target["expr"], args.partition, args.rate_interval)
        found = []
        for result in query_range(args.prometheus, expr, start, end, step):
            points = [(float(t), number(v)) for t, v in result["values"]]
            if any(v is not None for _, v in points):
                found.append((legend(target.get("legendFormat"), result["metric"]), points))
        series += sorted(found, key=lambda s: s[0])
    return series


# Formatting

def format_value(value, unit, digits=3):
    if value is None:
        return "-"
    if unit == "s":
        magnitude = abs(value)
        if magnitude == 0:
            return "0 s"
        if magnitude < 1e-3:
            return f"{trim(value * 1e6, digits)} µs"
        if magnitude < 1:
            return f"{trim(value * 1e3, digits)} ms"
        return f"{trim(value, digits)} s"
    suffix = " ops/s" if unit == "ops" else ""
    magnitude = abs(value)
    for scale, name in ((1e9, " Bil"), (1e6, " Mil"), (1e3, " K")):
        if magnitude >= scale:
            return f"{trim(value / scale, digits)}{name}{suffix}"
    return f"{trim(value, digits)}{suffix}"


def trim(value, digits):
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def nice_ticks(low, high, count=4):
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def fit(draw, text, font, width):
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


# Drawing

class Renderer:
    def __init__(self, dashboard, args, start, end, step):
        self.dashboard = dashboard
        self.args = args
        self.start, self.end, self.step = start, end, step
        self.fonts = Fonts()
        panels = dashboard["panels"]
        rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
        self.column = (WIDTH - 2 * MARGIN) / 24
        height = HEADER + rows * UNIT + MARGIN
        self.image = Image.new("RGB", (WIDTH, height), BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.with_data = []
        self.without_data = []

    def box(self, grid):
        x0 = MARGIN + grid["x"] * self.column
        y0 = HEADER + grid["y"] * UNIT
        x1 = MARGIN + (grid["x"] + grid["w"]) * self.column - GAP
        y1 = HEADER + (grid["y"] + grid["h"]) * UNIT - GAP
        return int(x0), int(y0), int(x1), int(y1)

    def render(self):
        self.header()
        for panel in self.dashboard["panels"]:
            kind = panel.get("type")
            if kind == "row":
                self.row(panel)
                continue
            x0, y0, x1, y1 = self.box(panel["gridPos"])
            self.draw.rounded_rectangle((x0, y0, x1, y1), radius=3, fill=PANEL, outline=BORDER)
            self.draw.text((x0 + 10, y0 + 8), fit(self.draw, panel.get("title", ""), self.fonts.title, x1 - x0 - 20),
                           font=self.fonts.title, fill=TEXT)
            series = panel_series(panel, self.args, self.start, self.end, self.step)
            (self.with_data if series else self.without_data).append(panel.get("title", ""))
            inner = (x0 + 10, y0 + 32, x1 - 10, y1 - 8)
            if not series:
                self.no_data(inner)
            elif kind == "stat":
                self.stat(panel, series, inner)
            else:
                self.timeseries(panel, series, inner)
        return self.image

    def header(self):
        d, f = self.draw, self.fonts
        d.text((MARGIN, 12), self.dashboard.get("title", ""), font=f.header, fill=TEXT)
        fmt = "%Y-%m-%d %H:%M:%S"
        span = f"{time.strftime(fmt, time.gmtime(self.start))} to {time.strftime('%H:%M:%S', time.gmtime(self.end))} UTC"
        partition = "All" if self.args.partition == ".*" else self.args.partition
        detail = (f"{span}   ·   partition = {partition}   ·   $__rate_interval = {self.args.rate_interval}   ·   "
                  f"step {self.step:g} s   ·   Prometheus query_range, drawn by docs/render-dashboard.py")
        d.text((MARGIN, 42), detail, font=f.small, fill=DIM)

    def row(self, panel):
        x0, y0, x1, y1 = self.box(panel["gridPos"])
        middle = (y0 + y1) // 2
        self.draw.text((x0 + 2, middle), "⌄  " + panel.get("title", ""), font=self.fonts.row, fill=TEXT, anchor="lm")

    def no_data(self, inner):
        x0, y0, x1, y1 = inner
        self.draw.text(((x0 + x1) / 2, (y0 + y1) / 2), "No data", font=self.fonts.nodata, fill=DIM, anchor="mm")

    def stat(self, panel, series, inner):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        x0, y0, x1, y1 = inner
        count = len(series)
        shown = series[:4]
        tile_h = (y1 - y0) / len(shown)
        for i, (label, points) in enumerate(shown):
            ty0, ty1 = y0 + i * tile_h, y0 + (i + 1) * tile_h
            values = [v for _, v in points if v is not None]
            last = values[-1]
            colour = rgb(STAT_COLOUR)
            self.sparkline(points, (x0, ty0 + tile_h * 0.35, x1, ty1 - 2), colour)
            if count > 1 or label:
                self.draw.text((x0, ty0 + 1), fit(self.draw, label, self.fonts.small, x1 - x0),
                               font=self.fonts.small, fill=DIM)
            size = int(max(14, min(40, tile_h * 0.55)))
            text = format_value(last, unit)
            font = self.fonts.stat(size)
            while self.draw.textlength(text, font=font) > x1 - x0 and size > 12:
                size -= 2
                font = self.fonts.stat(size)
            self.draw.text(((x0 + x1) / 2, ty0 + tile_h * 0.62), text, font=font, fill=colour, anchor="mm")
        if count > len(shown):
            self.draw.text((x1, y1), f"+{count - len(shown)} more", font=self.fonts.small, fill=DIM, anchor="rb")

    def sparkline(self, points, area, colour):
        x0, y0, x1, y1 = area
        values = [v for _, v in points if v is not None]
        low, high = min(0, min(values)), max(values)
        if high == low:
            high = low + 1
        overlay = Image.new("RGBA", self.image.size, (0, 0, 0, 0))
        o = ImageDraw.Draw(overlay)
        coords = [(x0 + (t - self.start) / (self.end - self.start) * (x1 - x0),
                   y1 - (v - low) / (high - low) * (y1 - y0)) for t, v in points if v is not None]
        if len(coords) >= 2:
            o.polygon([(coords[0][0], y1)] + coords + [(coords[-1][0], y1)], fill=colour + (28,))
            o.line(coords, fill=colour + (110,), width=1)
        self.image.paste(overlay, (0, 0), overlay)

    def timeseries(self, panel, series, inner):
        d, f = self.draw, self.fonts
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        unit = defaults.get("unit", "short")
        custom = defaults.get("custom", {})
        stacked = custom.get("stacking", {}).get("mode", "none") == "normal"
        fill_opacity = custom.get("fillOpacity", 0) / 100
        x0, y0, x1, y1 = inner

        # The legend: a table on the right (the dashboard's placement) with the last and max values.
        rows = []
        for i, (label, points) in enumerate(series):
            values = [v for _, v in points if v is not None]
            rows.append((label, format_value(values[-1], unit), format_value(max(values), unit), PALETTE[i % len(PALETTE)]))
        value_w = max(max(d.textlength(r[1], font=f.legend), d.textlength(r[2], font=f.legend)) for r in rows)
        value_w = max(value_w, d.textlength("Last *", font=f.legend)) + 12
        name_w = min(max(d.textlength(r[0], font=f.legend) for r in rows) + 22, (x1 - x0) * 0.5 - 2 * value_w)
        legend_w = name_w + 2 * value_w
        lx = x1 - legend_w
        line_h = 17
        d.text((lx + name_w + value_w, y0), "Last *", font=f.legend, fill=DIM, anchor="ra")
        d.text((lx + name_w + 2 * value_w, y0), "Max", font=f.legend, fill=DIM, anchor="ra")
        capacity = int((y1 - y0 - line_h) // line_h)
        shown = rows if len(rows) <= capacity else rows[:capacity - 1]
        for i, (label, last, peak, colour) in enumerate(shown):
            y = y0 + (i + 1) * line_h
            d.rectangle((lx, y + 5, lx + 12, y + 8), fill=rgb(colour))
            d.text((lx + 18, y), fit(d, label, f.legend, name_w - 22), font=f.legend, fill=TEXT)
            d.text((lx + name_w + value_w, y), last, font=f.legend, fill=TEXT, anchor="ra")
            d.text((lx + name_w + 2 * value_w, y), peak, font=f.legend, fill=TEXT, anchor="ra")
        if len(shown) < len(rows):
            d.text((lx + 18, y0 + (len(shown) + 1) * line_h), f"+{len(rows) - len(shown)} more series",
                   font=f.legend, fill=DIM)

        # The values to draw: stacked ones add up per timestamp, in the legend's order.
        drawn = []
        base = {}
        for label, points in series:
            if stacked:
                top = [(t, None if v is None else base.get(t, 0) + v) for t, v in points]
                bottom = [(t, None if v is None else base.get(t, 0)) for t, v in points]
                for t, v in points:
                    if v is not None:
                        base[t] = base.get(t, 0) + v
            else:
                top, bottom = points, [(t, None if v is None else 0) for t, v in points]
            drawn.append((top, bottom))
        values = [v for top, bottom in drawn for _, v in top + bottom if v is not None]
        low, high = min(0, min(values)), max(values)
        if high == low:
            high = low + 1
        ticks = nice_ticks(low, high)
        low, high = ticks[0], ticks[-1]

        # Axes: labels on the left, times below.
        axis_w = max(d.textlength(format_value(t, unit, 2), font=f.axis) for t in ticks) + 8
        px0, py0, px1, py1 = x0 + axis_w, y0 + 6, lx - 16, y1 - 18
        def sy(v):
            return py1 - (v - low) / (high - low) * (py1 - py0)
        def sx(t):
            return px0 + (t - self.start) / (self.end - self.start) * (px1 - px0)
        for tick in ticks:
            y = sy(tick)
            d.line((px0, y, px1, y), fill=GRID)
            d.text((px0 - 6, y), format_value(tick, unit, 2), font=f.axis, fill=DIM, anchor="rm")
        span = self.end - self.start
        every = next(s for s in (5, 10, 15, 20, 30, 60, 120, 300, 600, 1800, 3600) if span / s <= 6)
        t = math.ceil(self.start / every) * every
        while t <= self.end:
            x = sx(t)
            d.line((x, py0, x, py1), fill=GRID)
            d.text((x, py1 + 4), time.strftime("%H:%M:%S", time.gmtime(t)), font=f.axis, fill=DIM, anchor="ma")
            t += every

        overlay = Image.new("RGBA", self.image.size, (0, 0, 0, 0))
        o = ImageDraw.Draw(overlay)
        for i, (top, bottom) in enumerate(drawn):
            colour = rgb(PALETTE[i % len(PALETTE)])
            for segment_top, segment_bottom in segments(top, bottom):
                upper = [(sx(t), sy(v)) for t, v in segment_top]
                lower = [(sx(t), sy(v)) for t, v in reversed(segment_bottom)]
                if fill_opacity > 0 and len(upper) >= 2:
                    o.polygon(upper + lower, fill=colour + (int(255 * fill_opacity),))
                if len(upper) >= 2:
                    o.line(upper, fill=colour + (255,), width=2, joint="curve")
                else:
                    x, y = upper[0]
                    o.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour + (255,))
        self.image.paste(overlay, (0, 0), overlay)


def segments(top, bottom):
    """Runs of points without gaps (Grafana breaks a line where a series has no value)."""
    run_top, run_bottom = [], []
    for (t, v), (_, b) in zip(top, bottom):
        if v is None:
            if run_top:
                yield run_top, run_bottom
            run_top, run_bottom = [], []
        else:
            run_top.append((t, v))
            run_bottom.append((t, b))
    if run_top:
        yield run_top, run_bottom


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", help="the Grafana dashboard JSON")
    parser.add_argument("output", help="the PNG to write")
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus' base URL")
    parser.add_argument("--start", type=float, help="unix seconds (default: --end minus 5 minutes)")
    parser.add_argument("--end", type=float, help="unix seconds (default: now)")
    parser.add_argument("--step", type=float, help="seconds between points (default: the range over 300)")
    parser.add_argument("--partition", default=".*", help="the $partition variable (default .*, Grafana's All)")
    parser.add_argument("--rate-interval", default="10s", help="the $__rate_interval variable (default 10s)")
    args = parser.parse_args()
    end = args.end or time.time()
    start = args.start or end - 300
    step = args.step or max(1.0, round((end - start) / 300))
    dashboard = json.load(open(args.dashboard))
    renderer = Renderer(dashboard, args, start, end, step)
    image = renderer.render()
    # A 256-colour palette: the picture is flat colours and anti-aliased text, a third of the size in RGB.
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(args.output, optimize=True)
    print(f"{args.output}: {len(renderer.with_data)} panels with data; no data: "
          + (", ".join(renderer.without_data) or "none"), file=sys.stderr)
    missing = unknown_metrics(args.prometheus, dashboard)
    if missing:
        print("metrics the dashboard names that Prometheus has no series of: " + ", ".join(missing), file=sys.stderr)


if __name__ == "__main__":
    main()
