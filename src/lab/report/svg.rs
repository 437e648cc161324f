//! The report's charts as inline SVG: plain shapes and text, sized in pixels, no scripts or fonts to
//! fetch, so a page pasted into a notebook or a paper draft shows the same everywhere.

use std::fmt::Write;

use super::text::p_value;
use super::{Rate, Report, RunReport};

/// Run colours (Tableau 10), cycled.
pub const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
pub const RIGHT: &str = "#59a14f";
pub const WRONG: &str = "#e15759";
pub const MISSING: &str = "#d9d9d9";

const WIDTH: f64 = 760.0;
/// Left margin for labels.
const LEFT: f64 = 190.0;
const RIGHT_MARGIN: f64 = 100.0;
const PLOT: f64 = WIDTH - LEFT - RIGHT_MARGIN;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn open(t: &mut String, height: f64, title: &str) {
    let _ = write!(
        t,
        r#"<svg width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" font-family="sans-serif" font-size="12"><title>{}</title>"#,
        esc(title)
    );
}

/// Vertical grid lines and tick labels at 0, 25, 50, 75, 100% of `max`, from `top` to `bottom`.
fn grid(t: &mut String, top: f64, bottom: f64, max: f64, unit: &str) {
    for k in 0..=4 {
        let x = LEFT + PLOT * k as f64 / 4.0;
        let v = max * k as f64 / 4.0;
        let _ = write!(
            t,
            r##"<line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="#ccc"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}{unit}</text>"##,
            bottom + 14.0,
            trim_num(v)
        );
    }
}

fn trim_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn label(t: &mut String, y: f64, s: &str) {
    let _ = write!(t, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 8.0, y, esc(s));
}

fn run_name(r: &RunReport) -> String {
    format!("{} {}", r.label, r.template)
}

/// Majority-vote and first-path accuracy per run, 0–100%, with the 95% Wilson interval as whiskers.
pub fn accuracy(report: &Report) -> String {
    let row = 22.0;
    let top = 28.0;
    let n = report.runs.len() as f64;
    let bottom = top + n * 2.0 * row + (n - 1.0).max(0.0) * 8.0;
    let mut t = String::new();
    open(&mut t, bottom + 26.0, "Accuracy with 95% Wilson intervals");
    let _ = write!(
        t,
        r##"<rect x="{LEFT}" y="6" width="12" height="12" fill="#4e79a7"/><text x="{}" y="16">majority vote</text><rect x="{}" y="6" width="12" height="12" fill="#4e79a7" fill-opacity="0.45"/><text x="{}" y="16">first path; whiskers: 95% Wilson interval</text>"##,
        LEFT + 16.0,
        LEFT + 120.0,
        LEFT + 136.0
    );
    grid(&mut t, top - 4.0, bottom, 100.0, "%");
    let mut y = top;
    for (i, r) in report.runs.iter().enumerate() {
        for (k, (p, lo, hi, right)) in [
            (r.accuracy, r.ci_low, r.ci_high, r.correct),
            (r.first_path_accuracy, r.first_path_ci_low, r.first_path_ci_high, r.first_correct),
        ]
        .into_iter()
        .enumerate()
        {
            let name = if k == 0 { run_name(r) } else { "first path".to_string() };
            label(&mut t, y + 14.0, &name);
            let opacity = if k == 0 { 1.0 } else { 0.45 };
            let (x_lo, x_hi) = (LEFT + PLOT * lo, LEFT + PLOT * hi);
            let mid = y + 9.0;
            let _ = write!(
                t,
                r##"<rect x="{LEFT}" y="{y:.1}" width="{:.1}" height="18" fill="{}" fill-opacity="{opacity}"/><line x1="{x_lo:.1}" y1="{mid:.1}" x2="{x_hi:.1}" y2="{mid:.1}" stroke="#222" stroke-width="1.5"/><line x1="{x_lo:.1}" y1="{:.1}" x2="{x_lo:.1}" y2="{:.1}" stroke="#222" stroke-width="1.5"/><line x1="{x_hi:.1}" y1="{:.1}" x2="{x_hi:.1}" y2="{:.1}" stroke="#222" stroke-width="1.5"/><text x="{:.1}" y="{:.1}">{:.1}% ({right}/{})</text>"##,
                PLOT * p,
                colour(i),
                mid - 5.0,
                mid + 5.0,
                mid - 5.0,
                mid + 5.0,
                WIDTH - RIGHT_MARGIN + 6.0,
                y + 14.0,
                100.0 * p,
                r.questions
            );
            y += row;
        }
        y += 8.0;
    }
    t.push_str("</svg>");
    t
}

/// Grouped horizontal bars: one group per name (failure kind, stop reason), one bar per run.
pub fn rates(report: &Report, title: &str, rates: fn(&RunReport) -> &Vec<Rate>) -> String {
    let (shown, none) = super::occurring(report, rates);
    let max = report.runs.iter().flat_map(|r| rates(r).iter().map(|x| x.per_100_paths)).fold(0.0, f64::max);
    // A round axis end at or above the largest rate.
    let axis = [1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0].into_iter().find(|&a| a >= max).unwrap_or(100.0);
    let bar_h = 12.0;
    let group_h = bar_h * report.runs.len() as f64 + 10.0;
    let top = 10.0 + 18.0 * ((report.runs.len() as f64) / 4.0).ceil();
    let bottom = top + group_h * shown.len() as f64;
    let foot = if none.is_empty() { 0.0 } else { 20.0 };
    let mut t = String::new();
    open(&mut t, bottom + 26.0 + foot, title);
    legend(&mut t, report);
    grid(&mut t, top - 4.0, bottom, axis, "");
    for (row, &k) in shown.iter().enumerate() {
        let y0 = top + group_h * row as f64;
        let name = report.runs.first().map_or("", |r| rates(r)[k].name.as_str());
        label(&mut t, y0 + group_h / 2.0, name);
        for (i, r) in report.runs.iter().enumerate() {
            let (x, n) = rates(r).get(k).map_or((0.0, 0), |x| (x.per_100_paths, x.paths));
            let y = y0 + bar_h * i as f64;
            let w = PLOT * x / axis;
            let _ = write!(
                t,
                r#"<rect x="{LEFT}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}: {x:.1} per 100 paths ({n} paths)</title></rect><text x="{:.1}" y="{:.1}" font-size="10">{x:.1}</text>"#,
                bar_h - 2.0,
                colour(i),
                esc(&format!("{} {name}", r.label)),
                LEFT + w + 4.0,
                y + bar_h - 3.0
            );
        }
    }
    if !none.is_empty() {
        let _ = write!(
            t,
            r##"<text x="{LEFT}" y="{:.1}" fill="#555">in no run: {}</text>"##,
            bottom + 38.0,
            esc(&none.join(", "))
        );
    }
    t.push_str("</svg>");
    t
}

/// Run colours with their names, four to a line.
fn legend(t: &mut String, report: &Report) {
    for (i, r) in report.runs.iter().enumerate() {
        let x = LEFT + 140.0 * (i % 4) as f64;
        let y = 4.0 + 18.0 * (i / 4) as f64;
        let _ = write!(
            t,
            r#"<rect x="{x:.1}" y="{y:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            colour(i),
            x + 16.0,
            y + 10.0,
            esc(&run_name(r))
        );
    }
}

/// Per pair, questions right only in the first run (left) against only in the second (right).
pub fn flips(report: &Report) -> String {
    let row = 26.0;
    let top = 10.0;
    let bottom = top + row * report.pairs.len() as f64;
    let max = report.pairs.iter().map(|p| p.majority.a_only.max(p.majority.b_only)).max().unwrap_or(0).max(1) as f64;
    let mid = LEFT + PLOT / 2.0;
    let mut t = String::new();
    open(&mut t, bottom + 10.0, "Questions right in only one run of each pair");
    let _ = write!(t, r##"<line x1="{mid:.1}" y1="{top}" x2="{mid:.1}" y2="{bottom:.1}" stroke="#222"/>"##);
    for (k, p) in report.pairs.iter().enumerate() {
        let y = top + row * k as f64;
        let m = &p.majority;
        label(&mut t, y + 15.0, &format!("{} vs {}: p = {}", p.a, p.b, p_value(m.mcnemar_p)));
        // The longest bar fills three quarters of its half, leaving room for its count.
        let (wa, wb) = (0.75 * PLOT / 2.0 * m.a_only as f64 / max, 0.75 * PLOT / 2.0 * m.b_only as f64 / max);
        let (ia, ib) = (label_index(&p.a, report), label_index(&p.b, report));
        let _ = write!(
            t,
            r#"<rect x="{:.1}" y="{:.1}" width="{wa:.1}" height="18" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="end">only {} {}</text><rect x="{mid:.1}" y="{:.1}" width="{wb:.1}" height="18" fill="{}"/><text x="{:.1}" y="{:.1}">{} only {}</text>"#,
            mid - wa,
            y + 2.0,
            colour(ia),
            mid - wa - 4.0,
            y + 15.0,
            esc(&p.a),
            m.a_only,
            y + 2.0,
            colour(ib),
            mid + wb + 4.0,
            y + 15.0,
            m.b_only,
            esc(&p.b)
        );
    }
    t.push_str("</svg>");
    t
}

fn label_index(label: &str, report: &Report) -> usize {
    report.runs.iter().position(|r| r.label == label).unwrap_or(0)
}

/// One row of squares per run, one square per question: right, wrong, or not run.
pub fn question_grid(report: &Report) -> String {
    let n = report.questions.len().max(1);
    let per_line = n.min(60);
    let lines = n.div_ceil(per_line);
    let cell = (PLOT + RIGHT_MARGIN - 10.0) / per_line as f64;
    let cell = cell.min(16.0);
    let block_h = lines as f64 * cell + 10.0;
    let height = 10.0 + block_h * report.runs.len() as f64 + 10.0;
    let mut t = String::new();
    open(&mut t, height, "Questions right (green) and wrong (red) per run");
    for (i, r) in report.runs.iter().enumerate() {
        let y0 = 10.0 + block_h * i as f64;
        label(&mut t, y0 + cell.min(12.0), &run_name(r));
        for (j, q) in report.questions.iter().enumerate() {
            let (x, y) = (LEFT + cell * (j % per_line) as f64, y0 + cell * (j / per_line) as f64);
            let (fill, what) = match &q.cells[i] {
                None => (MISSING, "not run".to_string()),
                Some(c) => (
                    if c.correct { RIGHT } else { WRONG },
                    format!("{} (gold {})", c.majority.as_deref().unwrap_or("no answer"), q.gold),
                ),
            };
            let _ = write!(
                t,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>question {}: {}</title></rect>"#,
                (cell - 1.0).max(1.0),
                (cell - 1.0).max(1.0),
                q.index,
                esc(&what)
            );
        }
    }
    t.push_str("</svg>");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
