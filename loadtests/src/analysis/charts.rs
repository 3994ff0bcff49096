//! Dependency-free SVG charts for experiment reports: a line chart of a
//! metric against the load level (one line per configuration, 95 % CI error
//! bars), a per-second chart of one cell (panels of request rate and
//! latency over the seconds of each trial), and a stacked bar chart of the
//! per-worker request share. Points sit inside the plot, off the axes (the
//! plot area is padded), and whiskers are clipped to it. They return SVG
//! text; writing the files is the caller's business.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One line of a chart: `(x, y, ci95 half-width)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Space between the axes and the outermost points, as a fraction of the
/// plot's width or height.
const PAD: f64 = 0.06;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// The start of a chart `W` wide and `height` high on a white background,
/// with `title` centred on `title_x`.
fn svg_open(height: f64, title_x: f64, title: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="{W}" height="{height}" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{title_x}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        esc(title)
    );
    o
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis maximum and tick step for values up to `max`.
pub fn nice_axis(max: f64) -> (f64, f64) {
    if max.is_nan() || max <= 0.0 || !max.is_finite() {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 10.0 || v == v.trunc() {
        format!("{:.0}", v)
    } else {
        format!("{:.1}", v)
    }
}

/// A line chart with error bars; x positions are the levels in order,
/// evenly spaced (levels such as 50, 100, 2000 read better that way).
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let ymax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1 + p.2))
        .fold(0.0, f64::max);
    let (ytop, ystep) = nice_axis(ymax);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let (px0, pxw) = (LEFT + pw * PAD, pw * (1.0 - 2.0 * PAD));
    let xpos = |x: f64| {
        let i = xs.iter().position(|v| *v == x).unwrap_or(0) as f64;
        if xs.len() <= 1 {
            LEFT + pw / 2.0
        } else {
            px0 + pxw * i / (xs.len() - 1) as f64
        }
    };
    let ypos = |y: f64| y_pos(y, ytop, TOP, ph);
    let mut o = svg_open(H, LEFT + pw / 2.0, title);
    let _ = writeln!(
        o,
        r#"<defs><clipPath id="plot"><rect x="{LEFT}" y="{TOP}" width="{pw:.1}" height="{ph:.1}"/></clipPath></defs>"#
    );
    y_axis(&mut o, (ytop, ystep), (TOP, ph), pw, y_label);
    for x in &xs {
        let px = xpos(*x);
        let _ = writeln!(
            o,
            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + ph + 18.0,
            fmt_num(*x)
        );
    }
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 18.0,
        esc(x_label)
    );
    for (i, s) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let mut pts: Vec<&(f64, f64, f64)> = s.points.iter().collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", xpos(p.0), ypos(p.1)))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for p in pts {
            let (px, py) = (xpos(p.0), ypos(p.1));
            if p.2 > 0.0 {
                // Whiskers end inside the plot (and are clipped to it).
                let _ = writeln!(
                    o,
                    r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{c}" clip-path="url(#plot)"/>"#,
                    ypos(p.1 - p.2),
                    ypos(p.1 + p.2)
                );
            }
            let _ = writeln!(
                o,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{c}"/>"#
            );
        }
        legend(
            &mut o,
            LEFT + pw + 16.0,
            TOP + 10.0 + 20.0 * i as f64,
            c,
            &s.name,
        );
    }
    o.push_str("</svg>\n");
    o
}

/// The y position of `y` on an axis from 0 to `ytop` in a plot `ph` high
/// starting at `top`: padded off both edges, clamped inside the plot.
fn y_pos(y: f64, ytop: f64, top: f64, ph: f64) -> f64 {
    let inner = ph * (1.0 - 2.0 * PAD);
    top + ph * PAD + inner
        - inner * (y / ytop).clamp(-PAD / (1.0 - 2.0 * PAD), 1.0 + PAD / (1.0 - 2.0 * PAD))
}

/// The y axis of a plot `pw` wide and `ph` high from `top`: a grid line
/// and a label at each `ystep` up to `ytop`, the x and y axis lines and
/// the rotated `label`.
fn y_axis(o: &mut String, (ytop, ystep): (f64, f64), (top, ph): (f64, f64), pw: f64, label: &str) {
    let mut t = 0.0;
    while t <= ytop + ystep * 0.01 {
        let y = y_pos(t, ytop, top, ph);
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(t)
        );
        t += ystep;
    }
    let bottom = top + ph;
    let _ = writeln!(
        o,
        r#"<line x1="{LEFT}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="black"/><line x1="{LEFT}" y1="{top:.1}" x2="{LEFT}" y2="{bottom:.1}" stroke="black"/>"#,
        LEFT + pw,
    );
    let _ = writeln!(
        o,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        esc(label)
    );
}

/// A legend entry at (`lx`, `ly`): a swatch of colour `c` and `name`.
fn legend(o: &mut String, lx: f64, ly: f64, c: &str, name: &str) {
    let _ = writeln!(
        o,
        r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="4" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
        ly - 2.0,
        lx + 20.0,
        ly + 4.0,
        esc(name)
    );
}

/// One panel of a per-second chart: a y label and its lines of
/// `(second, value)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub y_label: String,
    pub lines: Vec<(String, Vec<(f64, f64)>)>,
}

/// Panels stacked over one time axis (seconds since the window opened),
/// e.g. a cell's req/s and its p50 and p99 latency, one line per trial.
pub fn time_chart(title: &str, panels: &[Panel]) -> String {
    let panel_h = 200.0;
    let gap = 36.0;
    let h = TOP + BOTTOM + panels.len() as f64 * (panel_h + gap);
    let pw = W - LEFT - RIGHT;
    let xmax = panels
        .iter()
        .flat_map(|p| p.lines.iter().flat_map(|l| l.1.iter().map(|q| q.0)))
        .fold(0.0, f64::max);
    let (xtop, xstep) = nice_axis(xmax.max(1.0));
    let xpos = |x: f64| LEFT + pw * PAD + pw * (1.0 - 2.0 * PAD) * (x / xtop).clamp(0.0, 1.0);
    let mut o = svg_open(h, LEFT + pw / 2.0, title);
    for (k, panel) in panels.iter().enumerate() {
        let top = TOP + k as f64 * (panel_h + gap);
        let ymax = panel
            .lines
            .iter()
            .flat_map(|l| l.1.iter().map(|q| q.1))
            .fold(0.0, f64::max);
        let (ytop, ystep) = nice_axis(ymax);
        y_axis(&mut o, (ytop, ystep), (top, panel_h), pw, &panel.y_label);
        let mut t = 0.0;
        while t <= xtop + xstep * 0.01 {
            let _ = writeln!(
                o,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                xpos(t),
                top + panel_h + 16.0,
                fmt_num(t)
            );
            t += xstep;
        }
        for (i, (name, pts)) in panel.lines.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            let path: Vec<String> = pts
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", xpos(*x), y_pos(*y, ytop, top, panel_h)))
                .collect();
            let _ = writeln!(
                o,
                r#"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{}"/>"#,
                path.join(" ")
            );
            legend(
                &mut o,
                LEFT + pw + 16.0,
                top + 10.0 + 18.0 * i as f64,
                c,
                name,
            );
        }
    }
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the window opened</text>"#,
        LEFT + pw / 2.0,
        h - 18.0
    );
    o.push_str("</svg>\n");
    o
}

/// Horizontal stacked bars: each row's per-worker shares (summing to 1).
pub fn share_chart(title: &str, rows: &[(String, BTreeMap<String, f64>)]) -> String {
    let row_h = 34.0;
    let h = TOP + BOTTOM + row_h * rows.len() as f64;
    let left = 220.0;
    let pw = W - left - 40.0;
    let mut o = svg_open(h, W / 2.0, title);
    for (i, (label, shares)) in rows.iter().enumerate() {
        let y = TOP + row_h * i as f64;
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + 17.0,
            esc(label)
        );
        let mut x = left;
        for (j, (worker, share)) in shares.iter().enumerate() {
            let w = pw * share.clamp(0.0, 1.0);
            let c = COLORS[j % COLORS.len()];
            let _ = writeln!(
                o,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="24" fill="{c}"><title>worker {} {:.1}%</title></rect>"#,
                esc(worker),
                share * 100.0
            );
            if w > 34.0 {
                let _ = writeln!(
                    o,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="white">{:.0}%</text>"#,
                    x + w / 2.0,
                    y + 16.0,
                    share * 100.0
                );
            }
            x += w;
        }
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_nice() {
        assert_eq!(nice_axis(47.0), (50.0, 10.0));
        assert_eq!(nice_axis(131_921.0), (150_000.0, 50_000.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
        assert_eq!(nice_axis(9.0), (10.0, 2.0));
    }

    #[test]
    fn charts_are_svg() {
        let s = vec![
            Series {
                name: "A <1>".into(),
                points: vec![(50.0, 2.3, 0.1), (100.0, 2.5, 0.2)],
            },
            Series {
                name: "B".into(),
                points: vec![(50.0, 118.9, 5.0)],
            },
        ];
        let svg = line_chart("t", "x", "ms", &s);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("A &lt;1&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 3);
        let share = share_chart(
            "s",
            &[(
                "cfg".into(),
                BTreeMap::from([("0".into(), 0.25), ("1".into(), 0.75)]),
            )],
        );
        assert!(share.contains("75%"));
    }

    fn attr(el: &str, name: &str) -> f64 {
        let key = format!(" {name}=\"");
        let i = el.find(&key).unwrap_or_else(|| panic!("{name} in {el}")) + key.len();
        el[i..].split('"').next().unwrap().parse().unwrap()
    }

    /// The first and last points are off the axes, a point at zero is off
    /// the x axis, and a whisker longer than the value stays in the plot.
    #[test]
    fn points_are_off_the_axes_and_whiskers_inside() {
        let s = vec![Series {
            name: "A".into(),
            points: vec![(1.0, 0.0, 0.0), (2.0, 10.0, 30.0), (3.0, 40.0, 1.0)],
        }];
        let svg = line_chart("t", "x", "y", &s);
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        for c in svg.lines().filter(|l| l.starts_with("<circle")) {
            let (x, y) = (attr(c, "cx"), attr(c, "cy"));
            assert!(x > LEFT + 10.0 && x < LEFT + pw - 10.0, "x {x} on an axis");
            assert!(y > TOP + 5.0 && y < TOP + ph - 5.0, "y {y} on an axis");
        }
        let whiskers: Vec<&str> = svg.lines().filter(|l| l.contains("clip-path")).collect();
        assert_eq!(whiskers.len(), 2);
        for w in whiskers {
            for k in ["y1", "y2"] {
                let y = attr(w, k);
                assert!((TOP..=TOP + ph).contains(&y), "{k} {y} outside the plot");
            }
        }
        let t = time_chart(
            "cell",
            &[Panel {
                y_label: "req/s".into(),
                lines: vec![("trial 1".into(), vec![(0.0, 5.0), (1.0, 7.0)])],
            }],
        );
        assert!(t.contains("seconds since the window opened") && t.contains("trial 1"));
    }
}
