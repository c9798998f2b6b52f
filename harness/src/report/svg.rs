//! Line charts as inline SVG, drawn by hand: a handful of axes, polylines and shaded bands.
//!
//! Written here rather than with a plotting crate because the charts are simple, the output
//! must be deterministic (same run, same bytes) and self-contained (no fonts or scripts to load),
//! and a few hundred lines of string formatting cost less to build and audit than a crate with
//! its own font and backend machinery. Coordinates are printed with one decimal, so a report
//! diffs cleanly.

use std::fmt::Write;

/// Plot area and margins, in SVG user units (px).
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear {
        min: f64,
        max: f64,
    },
    /// Base-10 logarithmic, both bounds > 0.
    Log {
        min: f64,
        max: f64,
    },
}

impl Scale {
    /// A linear scale from 0 to a round number at or above `max`.
    pub fn linear_to(max: f64) -> Scale {
        Scale::Linear {
            min: 0.0,
            max: nice_ceiling(max),
        }
    }

    /// A log scale spanning whole decades around the positive values given.
    pub fn log_around(values: impl Iterator<Item = f64>) -> Scale {
        let (lo, hi) = values
            .filter(|v| *v > 0.0 && v.is_finite())
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if hi == 0.0 {
            return Scale::Log {
                min: 0.1,
                max: 10.0,
            };
        }
        let min = 10f64.powf(lo.log10().floor());
        let mut max = 10f64.powf(hi.log10().ceil());
        if max <= min {
            max = min * 10.0;
        }
        Scale::Log { min, max }
    }

    /// The axis's upper bound.
    pub fn max(self) -> f64 {
        match self {
            Scale::Linear { max, .. } | Scale::Log { max, .. } => max,
        }
    }

    /// 0 to 1 along the axis; values outside are clamped so a line never leaves the plot.
    fn fraction(self, v: f64) -> f64 {
        let f = match self {
            Scale::Linear { min, max } => (v - min) / (max - min),
            Scale::Log { min, max } => (v.max(min).log10() - min.log10()) / (max / min).log10(),
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Tick values with their labels.
    fn ticks(self, label: &dyn Fn(f64) -> String) -> Vec<(f64, String)> {
        match self {
            Scale::Linear { min, max } => {
                let step = nice_ceiling((max - min) / 5.0);
                let mut out = Vec::new();
                let mut v = min;
                while v <= max + step * 1e-9 {
                    out.push((v, label(v)));
                    v += step;
                }
                out
            }
            Scale::Log { min, max } => {
                let mut out = Vec::new();
                let mut v = min;
                while v <= max * 1.000_001 {
                    out.push((v, label(v)));
                    v *= 10.0;
                }
                out
            }
        }
    }
}

/// The smallest of 1, 2, 5 × 10^k at or above `v` (1 for anything not positive).
pub fn nice_ceiling(v: f64) -> f64 {
    if !(v > 0.0 && v.is_finite()) {
        return 1.0;
    }
    let decade = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|c| *c >= v * (1.0 - 1e-12))
        .unwrap_or(10.0 * decade)
}

/// A number for an axis label: no trailing zeros, no more digits than it needs.
pub fn short_number(v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    if v.abs() >= 1000.0 || v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(1, 4) as usize;
    let text = format!("{v:.digits$}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One line of a chart. `None` points break the line (a second without data).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub dashed: bool,
    pub points: Vec<(f64, Option<f64>)>,
}

/// A shaded stretch of the x axis, e.g. a fault window.
#[derive(Debug, Clone)]
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// One chart: its axes, lines, bands and labels.
#[derive(Clone)]
pub struct Chart<'a> {
    /// The SVG element's `id`, which tests and links use.
    pub id: &'a str,
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x: Scale,
    pub y: Scale,
    pub x_tick: &'a dyn Fn(f64) -> String,
    pub y_tick: &'a dyn Fn(f64) -> String,
    /// Explicit x ticks, when the scale's own are not the ones to show.
    pub x_ticks: Option<Vec<(f64, String)>>,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
}

impl Chart<'_> {
    fn px(&self, x: f64) -> f64 {
        LEFT + self.x.fraction(x) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - self.y.fraction(y) * (HEIGHT - TOP - BOTTOM)
    }

    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg id="{}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
            escape(self.id),
            escape(self.title)
        );
        let (x0, x1) = (LEFT, WIDTH - RIGHT);
        let (y0, y1) = (HEIGHT - BOTTOM, TOP);
        for band in &self.bands {
            let (a, b) = (self.px(band.from), self.px(band.to));
            let _ = write!(
                s,
                r#"<rect class="fault" x="{a:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}"><title>{}</title></rect>"#,
                (b - a).max(1.0),
                y0 - y1,
                escape(&band.label)
            );
            let _ = write!(
                s,
                r#"<text class="band-label" x="{:.1}" y="{:.1}">{}</text>"#,
                a + 3.0,
                y1 + 11.0,
                escape(&band.label)
            );
        }
        for (v, label) in self.y.ticks(self.y_tick) {
            let y = self.py(v);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                x0 - 6.0,
                y + 4.0,
                escape(&label)
            );
        }
        let x_ticks = self
            .x_ticks
            .clone()
            .unwrap_or_else(|| self.x.ticks(self.x_tick));
        for (v, label) in x_ticks {
            let x = self.px(v);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                y0 + 16.0,
                escape(&label)
            );
        }
        let _ = write!(
            s,
            r#"<line class="axis" x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y0:.1}"/><line class="axis" x1="{x0:.1}" y1="{y0:.1}" x2="{x0:.1}" y2="{y1:.1}"/>"#
        );
        let _ = write!(
            s,
            r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            HEIGHT - 6.0,
            escape(self.x_label)
        );
        let _ = write!(
            s,
            r#"<text class="axis-label" transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (y0 + y1) / 2.0,
            escape(self.y_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let dash = if series.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            for run in series.points.split(|(_, y)| y.is_none()) {
                let points: Vec<String> = run
                    .iter()
                    .filter_map(|(x, y)| y.map(|y| format!("{:.1},{:.1}", self.px(*x), self.py(y))))
                    .collect();
                match points.len() {
                    0 => {}
                    1 => {
                        let (cx, cy) = points[0].split_once(',').expect("x,y");
                        let _ = write!(
                            s,
                            r#"<circle cx="{cx}" cy="{cy}" r="2.5" fill="{}"/>"#,
                            series.colour
                        );
                    }
                    _ => {
                        let _ = write!(
                            s,
                            r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
                            series.colour,
                            points.join(" ")
                        );
                    }
                }
            }
            let ly = TOP + 8.0 + i as f64 * 18.0;
            let lx = WIDTH - RIGHT + 12.0;
            let _ = write!(
                s,
                r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text class="legend" x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 22.0,
                series.colour,
                lx + 28.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        s.push_str("</svg>");
        s
    }
}

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_to_readable_bounds() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        assert_eq!(
            Scale::log_around([0.4, 3.0, 1_200.0].into_iter()),
            Scale::Log {
                min: 0.1,
                max: 10_000.0
            }
        );
        let log = Scale::Log {
            min: 1.0,
            max: 100.0,
        };
        assert_eq!(log.fraction(10.0), 0.5);
        assert_eq!(log.fraction(0.0), 0.0, "clamped, not -inf");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(1500.0), "1500");
        assert_eq!(short_number(12.5), "12.5");
    }

    #[test]
    fn gaps_break_lines_and_text_is_escaped() {
        let label = |v: f64| short_number(v);
        let chart = Chart {
            id: "c",
            title: "a < b & c",
            x_label: "s",
            y_label: "ms",
            x: Scale::linear_to(4.0),
            y: Scale::linear_to(10.0),
            x_tick: &label,
            y_tick: &label,
            x_ticks: None,
            series: vec![Series {
                name: "p99".into(),
                colour: "#000",
                dashed: false,
                points: vec![
                    (0.0, Some(1.0)),
                    (1.0, Some(2.0)),
                    (2.0, None),
                    (3.0, Some(5.0)),
                ],
            }],
            bands: vec![Band {
                from: 1.0,
                to: 2.0,
                label: "pause".into(),
            }],
        };
        let svg = chart.render();
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert_eq!(svg.matches(r#"<rect class="fault""#).count(), 1);
        assert!(svg.contains("a &lt; b &amp; c"), "{svg}");
    }
}
