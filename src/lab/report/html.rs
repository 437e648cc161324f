//! The report as one self-contained HTML page: inline CSS and SVG, no scripts, nothing fetched.

use std::fmt::Write;

use super::svg::{self, esc};
use super::table::{human_tables, Table};
use super::Report;

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.right{background:#dff0d8}td.wrong{background:#f8d7da}td.missing{color:#888}
.note{color:#8a6d3b}svg{display:block;margin:8px 0}";

fn table_html(t: &mut String, table: &Table, class_of: impl Fn(usize, &str) -> &'static str) {
    t.push_str("<table><thead><tr>");
    for h in &table.headers {
        let _ = write!(t, "<th>{}</th>", esc(h));
    }
    t.push_str("</tr></thead><tbody>");
    for row in &table.rows {
        t.push_str("<tr>");
        for (c, cell) in row.iter().enumerate() {
            match class_of(c, cell) {
                "" => {
                    let _ = write!(t, "<td>{}</td>", esc(cell));
                }
                class => {
                    let _ = write!(t, r#"<td class="{class}">{}</td>"#, esc(cell));
                }
            }
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>\n");
}

/// The page.
pub fn render(report: &Report) -> String {
    let mut t = String::new();
    let title = format!(
        "cotscope report: {}",
        report.runs.iter().map(|r| format!("{} {}", r.label, r.template)).collect::<Vec<_>>().join(", ")
    );
    let _ = write!(
        t,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let tables = human_tables(report);
    let find = |prefix: &str| tables.iter().find(|t| t.title.starts_with(prefix));
    let plain = |_: usize, _: &str| "";
    let section = |t: &mut String, heading: &str, chart: Option<String>, table: Option<&Table>| {
        let _ = writeln!(t, "<h2>{}</h2>", esc(heading));
        if let Some(c) = chart {
            t.push_str(&c);
            t.push('\n');
        }
        if let Some(tab) = table {
            table_html(t, tab, plain);
        }
    };
    section(&mut t, "Runs and their settings", None, find("Runs"));
    section(&mut t, "Accuracy (95% Wilson interval)", Some(svg::accuracy(report)), find("Accuracy"));
    if let Some(sel) = find("Selection") {
        section(&mut t, "Selection strategies (eval --select)", None, Some(sel));
    }
    if !report.pairs.is_empty() {
        section(&mut t, "Paired comparison (exact McNemar test)", Some(svg::flips(report)), find("Paired"));
    }
    let _ = writeln!(t, "<h2>Per question (majority answer: green right, red wrong, grey not run)</h2>");
    t.push_str(&svg::question_grid(report));
    if let Some(q) = find("Per question") {
        let _ = write!(t, "<details><summary>{} questions, one row each</summary>", report.questions.len());
        table_html(&mut t, q, |c, cell| match (c, cell) {
            (0 | 1, _) => "",
            (_, c) if c.starts_with("right") => "right",
            (_, c) if c.starts_with("wrong") => "wrong",
            _ => "missing",
        });
        t.push_str("</details>\n");
    }
    section(
        &mut t,
        "Failures per 100 paths",
        Some(svg::rates(report, "Failures per 100 paths", |r| &r.failures)),
        find("Failures"),
    );
    section(
        &mut t,
        "Stop reasons per 100 paths",
        Some(svg::rates(report, "Stop reasons per 100 paths", |r| &r.stop_reasons)),
        find("Stop reasons"),
    );
    for n in &report.notes {
        let _ = writeln!(t, r#"<p class="note">note: {}</p>"#, esc(n));
    }
    t.push_str("</body></html>\n");
    t
}
