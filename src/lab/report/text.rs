//! The report for a terminal: small bar charts of block characters (or plain ASCII), no colour, so it
//! reads the same in any terminal, a pager or a log file.

use std::fmt::Write;

use unicode_width::UnicodeWidthStr;

use super::{settings, Rate, Report, RunReport};

/// The characters bars are drawn with.
#[derive(Clone, Copy, Debug)]
pub struct Glyphs {
    /// Inside the interval's lower end: surely reached.
    pub sure: char,
    /// From the lower end of the interval up to the estimate.
    pub below: char,
    /// From the estimate up to the upper end of the interval.
    pub above: char,
    /// Eighths of a cell, 1/8 to 8/8, for bars of counts.
    pub eighths: [char; 8],
    pub right: &'static str,
    pub wrong: &'static str,
}

pub const UNICODE: Glyphs = Glyphs {
    sure: '█',
    below: '▓',
    above: '░',
    eighths: ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'],
    right: "✓",
    wrong: "✗",
};

/// For terminals or files that cannot show block characters.
pub const ASCII: Glyphs = Glyphs {
    sure: '#',
    below: '=',
    above: '-',
    eighths: [' ', ' ', ' ', '#', '#', '#', '#', '#'],
    right: "Y",
    wrong: "n",
};

/// Width of accuracy bars (0–100%).
const ACC_WIDTH: usize = 30;
/// Width of the longest rate or flip bar.
const RATE_WIDTH: usize = 24;

/// An accuracy bar on 0–100%: each cell by where its middle falls against the interval and estimate.
pub fn interval_bar(p: f64, low: f64, high: f64, g: &Glyphs) -> String {
    (0..ACC_WIDTH)
        .map(|i| {
            let mid = (i as f64 + 0.5) / ACC_WIDTH as f64;
            if mid < low {
                g.sure
            } else if mid < p {
                g.below
            } else if mid < high {
                g.above
            } else {
                ' '
            }
        })
        .collect()
}

/// A bar of `value` where `max` fills `width` cells, in eighths of a cell.
pub fn bar(value: f64, max: f64, width: usize, g: &Glyphs) -> String {
    if max <= 0.0 || value <= 0.0 {
        return String::new();
    }
    let eighths = ((value / max).min(1.0) * (width * 8) as f64).round() as usize;
    let mut s: String = std::iter::repeat_n(g.eighths[7], eighths / 8).collect();
    if !eighths.is_multiple_of(8) {
        s.push(g.eighths[eighths % 8 - 1]);
    }
    // A nonzero value never draws as nothing.
    if s.trim().is_empty() {
        s = g.eighths[0].to_string();
        if s.trim().is_empty() {
            s = ".".to_string();
        }
    }
    s
}

/// Pads `s` to `width` display columns.
fn pad(s: &str, width: usize) -> String {
    let w = UnicodeWidthStr::width(s);
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// A p-value for people: three decimals, or scientific below 0.001.
pub fn p_value(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

fn run_name(r: &RunReport) -> String {
    format!("{} {}", r.label, r.template)
}

/// The whole report as text.
pub fn render(report: &Report, g: &Glyphs) -> String {
    let mut t = String::new();
    let names: Vec<String> = report.runs.iter().map(run_name).collect();
    let name_w = names.iter().map(|n| UnicodeWidthStr::width(n.as_str())).max().unwrap_or(0);
    let _ = writeln!(t, "cotscope report: {} run{}", report.runs.len(), if report.runs.len() == 1 { "" } else { "s" });
    t.push('\n');
    for r in &report.runs {
        let _ = writeln!(
            t,
            "{}  {}: {} questions, {} paths, {:.1} tokens per path",
            pad(&run_name(r), name_w),
            r.file,
            r.questions,
            r.paths,
            r.mean_tokens
        );
        let _ = writeln!(t, "{}  settings: {}", pad("", name_w), settings::describe(r.settings.as_ref()));
    }

    let majority = |r: &RunReport| (r.accuracy, r.ci_low, r.ci_high, r.correct);
    accuracy_chart(&mut t, "Majority-vote accuracy", report, majority, name_w, g);
    let first = |r: &RunReport| (r.first_path_accuracy, r.first_path_ci_low, r.first_path_ci_high, r.first_correct);
    accuracy_chart(&mut t, "First-path accuracy", report, first, name_w, g);

    if report.runs.iter().any(|r| !r.selections.is_empty()) {
        let _ = writeln!(t, "\nSelection strategies (eval --select), 95% Wilson interval");
        for r in &report.runs {
            for x in &r.selections {
                let _ = writeln!(
                    t,
                    "  {}  {:<9} |{}|  {:>6}  [{:.1}, {:.1}]  {}/{}",
                    pad(&run_name(r), name_w),
                    x.strategy,
                    interval_bar(x.accuracy, x.ci_low, x.ci_high, g),
                    pct(x.accuracy),
                    100.0 * x.ci_low,
                    100.0 * x.ci_high,
                    x.correct,
                    x.questions
                );
            }
        }
    }

    rates_chart(&mut t, "Failures per 100 paths (a path counts once per kind)", report, |r| &r.failures, g);
    rates_chart(&mut t, "Stop reasons per 100 paths", report, |r| &r.stop_reasons, g);

    if !report.pairs.is_empty() {
        let _ = writeln!(t, "\nPaired comparison (questions both runs have; exact two-sided McNemar test)");
        let max = report.pairs.iter().map(|p| p.majority.a_only.max(p.majority.b_only)).max().unwrap_or(0) as f64;
        for p in &report.pairs {
            let m = &p.majority;
            let _ = writeln!(
                t,
                "  {} vs {}: {} questions; both right {}, neither {}; right only in {} {}, only in {} {}; p = {}",
                p.a,
                p.b,
                m.questions,
                m.both,
                m.neither,
                p.a,
                m.a_only,
                p.b,
                m.b_only,
                p_value(m.mcnemar_p)
            );
            let left = bar(m.a_only as f64, max, RATE_WIDTH / 2, g);
            let _ = writeln!(
                t,
                "    only {} {:>w$}|{} only {}",
                p.a,
                left,
                bar(m.b_only as f64, max, RATE_WIDTH / 2, g),
                p.b,
                w = RATE_WIDTH / 2
            );
            let f = &p.first_path;
            let _ = writeln!(
                t,
                "    first path: right only in {} {}, only in {} {}; p = {}",
                p.a,
                f.a_only,
                p.b,
                f.b_only,
                p_value(f.mcnemar_p)
            );
            if !p.settings_differences.is_empty() {
                let _ = writeln!(t, "    settings differ (--force): {}", p.settings_differences.join(", "));
            }
        }
    }

    if report.runs.len() > 1 || !report.questions.is_empty() {
        questions_table(&mut t, report, g);
    }
    for n in &report.notes {
        let _ = writeln!(t, "\nnote: {n}");
    }
    t
}

/// One interval bar per run; `pick` gives (estimate, low, high, right).
fn accuracy_chart(
    t: &mut String,
    title: &str,
    report: &Report,
    pick: impl Fn(&RunReport) -> (f64, f64, f64, usize),
    name_w: usize,
    g: &Glyphs,
) {
    let _ = writeln!(
        t,
        "\n{title}, 95% Wilson interval ({} up to the interval, {} interval below the estimate, {} above it)",
        g.sure, g.below, g.above
    );
    for r in &report.runs {
        let (p, lo, hi, n) = pick(r);
        let _ = writeln!(
            t,
            "  {}  |{}|  {:>6}  [{:.1}, {:.1}]  {n}/{}",
            pad(&run_name(r), name_w),
            interval_bar(p, lo, hi, g),
            pct(p),
            100.0 * lo,
            100.0 * hi,
            r.questions
        );
    }
}

/// Grouped bars: one group per name (failure kind, stop reason), one bar per run, scaled to the largest.
fn rates_chart(t: &mut String, title: &str, report: &Report, rates: fn(&RunReport) -> &Vec<Rate>, g: &Glyphs) {
    let max = report.runs.iter().flat_map(|r| rates(r).iter().map(|x| x.per_100_paths)).fold(0.0, f64::max);
    let _ = writeln!(t, "\n{title}; longest bar {max:.1}");
    let Some(first) = report.runs.first() else { return };
    let (shown, none) = super::occurring(report, rates);
    let label_w = report.runs.iter().map(|r| r.label.len()).max().unwrap_or(0);
    let kind_w = first.failures.iter().chain(&first.stop_reasons).map(|x| x.name.len()).max().unwrap_or(0);
    for k in shown {
        for (i, r) in report.runs.iter().enumerate() {
            let (x, n) = rates(r).get(k).map_or((0.0, 0), |x| (x.per_100_paths, x.paths));
            let kind = if i == 0 { rates(first)[k].name.as_str() } else { "" };
            let label = if report.runs.len() > 1 { format!("{} ", pad(&r.label, label_w)) } else { String::new() };
            let _ = writeln!(
                t,
                "  {}  {label}{} {x:>5.1}  ({n})",
                pad(kind, kind_w),
                pad(&bar(x, max, RATE_WIDTH, g), RATE_WIDTH)
            );
        }
    }
    if !none.is_empty() {
        let _ = writeln!(t, "  in no run: {}", none.join(", "));
    }
}

/// Cell text: `✓ 18 2/3` (majority answer, votes for it of voting paths).
fn cell_text(c: &super::Cell, g: &Glyphs) -> String {
    let mark = if c.correct { g.right } else { g.wrong };
    let answer = c.majority.as_deref().unwrap_or("-");
    let votes = (c.agreement * c.voters as f64).round() as usize;
    format!("{mark} {answer} {votes}/{}", c.voters)
}

fn questions_table(t: &mut String, report: &Report, g: &Glyphs) {
    let _ = writeln!(
        t,
        "\nPer question (majority answer: {} right, {} wrong; paths for it / paths with an answer; · not run)",
        g.right, g.wrong
    );
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("q".to_string())
        .chain(std::iter::once("gold".to_string()))
        .chain(report.runs.iter().map(run_name))
        .collect()];
    for q in &report.questions {
        let mut row = vec![q.index.to_string(), q.gold.clone()];
        row.extend(q.cells.iter().map(|c| c.as_ref().map_or("·".to_string(), |c| cell_text(c, g))));
        rows.push(row);
    }
    let cols = rows[0].len();
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| UnicodeWidthStr::width(r[c].as_str())).max().unwrap_or(0)).collect();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(s, &w)| pad(s, w)).collect();
        let _ = writeln!(t, "  {}", line.join("  ").trim_end());
    }
    // Totals, so the table's bottom line agrees with the accuracy above.
    let mut total = vec!["right".to_string(), String::new()];
    total.extend(report.runs.iter().map(|r| format!("{}/{}", r.correct, r.questions)));
    let line: Vec<String> = total.iter().zip(&widths).map(|(s, &w)| pad(s, w)).collect();
    let _ = writeln!(t, "  {}", line.join("  ").trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_bar_marks_sure_estimate_and_interval() {
        // 40% in [20%, 60%] on 30 cells: 6 sure, 6 below the estimate, 6 above, 12 empty.
        let b = interval_bar(0.4, 0.2, 0.6, &UNICODE);
        assert_eq!(b.chars().count(), 30);
        assert_eq!(b, format!("{}{}{}{}", "█".repeat(6), "▓".repeat(6), "░".repeat(6), " ".repeat(12)));
        assert_eq!(interval_bar(1.0, 1.0, 1.0, &ASCII), "#".repeat(30));
        assert_eq!(interval_bar(0.0, 0.0, 0.1, &ASCII), format!("{}{}", "-".repeat(3), " ".repeat(27)));
    }

    #[test]
    fn rate_bars_in_eighths() {
        assert_eq!(bar(50.0, 100.0, 4, &UNICODE), "██");
        assert_eq!(bar(10.0, 80.0, 1, &UNICODE), "▏");
        assert_eq!(bar(30.0, 80.0, 2, &UNICODE), "▊");
        assert_eq!(bar(0.0, 80.0, 2, &UNICODE), "");
        // Tiny but nonzero still shows.
        assert_eq!(bar(0.01, 100.0, 4, &UNICODE), "▏");
        assert_eq!(bar(0.01, 100.0, 4, &ASCII), ".");
    }

    #[test]
    fn p_values_read_well() {
        assert_eq!(p_value(0.035_156_25), "0.035");
        assert_eq!(p_value(1.0), "1.000");
        assert_eq!(p_value(0.000_123), "1.2e-4");
    }
}
