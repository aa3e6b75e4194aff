import Foundation

/// A small line chart rendered as inline SVG: no script, no stylesheet, no network.
struct SVGChart {
    struct Series {
        var name: String
        var color: String
        /// (x, y); a nil y breaks the line.
        var points: [(x: Double, y: Double?)]
        var dashed = false
    }

    /// A shaded interval of the x axis (an incident).
    struct Band {
        var from: Double
        var until: Double
        var label: String
    }

    var title: String
    var unit: String
    var xMax: Double
    var series: [Series]
    var bands: [Band] = []
    var width = 560.0
    var height = 230.0

    func render() -> String {
        let left = 58.0
        let right = 12.0
        let top = 28.0
        let bottom = 46.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let yMax = Self.niceCeiling(series.flatMap { $0.points.compactMap(\.y) }.max() ?? 0)
        func x(_ value: Double) -> Double { left + plotWidth * min(max(value / max(xMax, 1e-9), 0), 1) }
        func y(_ value: Double) -> Double { top + plotHeight * (1 - min(max(value / yMax, 0), 1)) }

        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(Int(width)) \(Int(height))" \
            width="\(Int(width))" height="\(Int(height))" role="img" aria-label="\(Self.escaped(title))" \
            font-family="system-ui, sans-serif" font-size="11">
            <text x="\(left)" y="16" font-size="13" font-weight="600">\(Self.escaped(title))</text>

            """
        for band in bands {
            let from = x(band.from)
            let until = x(min(band.until, xMax))
            svg += """
                <rect x="\(Self.f(from))" y="\(top)" width="\(Self.f(max(0, until - from)))" \
                height="\(plotHeight)" fill="#f3e3c3" opacity="0.6"/>
                <text x="\(Self.f(from + 3))" y="\(top + 11)" fill="#8a6d3b" font-size="10">\
                \(Self.escaped(band.label))</text>

                """
        }
        for tick in 0...4 {
            let value = yMax * Double(tick) / 4
            svg += """
                <line x1="\(left)" x2="\(left + plotWidth)" y1="\(Self.f(y(value)))" y2="\(Self.f(y(value)))" \
                stroke="#e4e4e4"/>
                <text x="\(left - 6)" y="\(Self.f(y(value) + 4))" text-anchor="end" fill="#555">\
                \(Self.short(value))</text>

                """
        }
        let step = xMax > 20 ? 5.0 : (xMax > 8 ? 2.0 : 1.0)
        var tick = 0.0
        while tick <= xMax + 1e-9 {
            svg += """
                <text x="\(Self.f(x(tick)))" y="\(top + plotHeight + 15)" text-anchor="middle" fill="#555">\
                \(Self.short(tick))</text>

                """
            tick += step
        }
        svg += """
            <text x="\(left + plotWidth / 2)" y="\(top + plotHeight + 29)" text-anchor="middle" fill="#555">\
            seconds</text>
            <text x="12" y="\(top + plotHeight / 2)" text-anchor="middle" fill="#555" \
            transform="rotate(-90 12 \(top + plotHeight / 2))">\(Self.escaped(unit))</text>
            <rect x="\(left)" y="\(top)" width="\(plotWidth)" height="\(plotHeight)" fill="none" stroke="#999"/>

            """
        for line in series {
            var path = ""
            var pen = false
            for point in line.points {
                guard let value = point.y else {
                    pen = false
                    continue
                }
                path += (pen ? "L" : "M") + "\(Self.f(x(point.x))),\(Self.f(y(value)))"
                pen = true
            }
            let dash = line.dashed ? " stroke-dasharray=\"5 4\"" : ""
            svg += """
                <path d="\(path)" fill="none" stroke="\(line.color)" stroke-width="1.8"\(dash)>\
                <title>\(Self.escaped(line.name))</title></path>

                """
        }
        var legendX = left
        for line in series {
            let dash = line.dashed ? " stroke-dasharray=\"5 4\"" : ""
            svg += """
                <line x1="\(Self.f(legendX))" x2="\(Self.f(legendX + 18))" y1="\(height - 6)" y2="\(height - 6)" \
                stroke="\(line.color)" stroke-width="2"\(dash)/>
                <text x="\(Self.f(legendX + 22))" y="\(height - 2)">\(Self.escaped(line.name))</text>

                """
            legendX += 30 + Double(line.name.count) * 6.2
        }
        return svg + "</svg>"
    }

    /// 1, 2 or 5 times a power of ten, at least `value` (and at least 1).
    static func niceCeiling(_ value: Double) -> Double {
        guard value > 1 else { return 1 }
        var power = 1.0
        while power * 10 <= value { power *= 10 }
        for factor in [1.0, 2, 5, 10] where factor * power >= value { return factor * power }
        return 10 * power
    }

    static func short(_ value: Double) -> String {
        if value >= 1_000_000 { return trimmed(value / 1_000_000) + "M" }
        if value >= 1_000 { return trimmed(value / 1_000) + "k" }
        return trimmed(value)
    }

    private static func trimmed(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    static func f(_ value: Double) -> String { String((value * 10).rounded() / 10) }

    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
