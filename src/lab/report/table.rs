//! The report as tables: for people (markdown, HTML) with percentages and intervals, and for programs
//! (CSV) with raw numbers, one table per CSV file.

use super::text::p_value;
use super::{settings, Rate, Report, RunReport};

/// A table of text cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Which table `--format csv` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsvTable {
    /// One row per run.
    Runs,
    /// One row per pair of runs.
    Pairs,
    /// One row per question and run (long format).
    Questions,
}

fn strings<const N: usize>(a: [&str; N]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn ci(lo: f64, hi: f64) -> String {
    format!("{:.1}–{:.1}%", 100.0 * lo, 100.0 * hi)
}

fn run_name(r: &RunReport) -> String {
    format!("{} {}", r.label, r.template)
}

fn rates_table(title: &str, first_header: &str, report: &Report, rates: fn(&RunReport) -> &Vec<Rate>) -> Table {
    let mut headers = vec![first_header.to_string()];
    headers.extend(report.runs.iter().map(run_name));
    let names: Vec<String> =
        report.runs.first().map(|r| rates(r).iter().map(|x| x.name.clone()).collect()).unwrap_or_default();
    let rows = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut row = vec![name.clone()];
            row.extend(
                report.runs.iter().map(|r| rates(r).get(k).map_or("0.0".into(), |x| format!("{:.1}", x.per_100_paths))),
            );
            row
        })
        .collect();
    Table { title: title.to_string(), headers, rows }
}

/// The tables for people, in reading order.
pub fn human_tables(report: &Report) -> Vec<Table> {
    let mut out = vec![
        Table {
            title: "Runs".into(),
            headers: strings(["Run", "File", "Questions", "Paths", "Mean tokens", "Settings"]),
            rows: report
                .runs
                .iter()
                .map(|r| {
                    vec![
                        run_name(r),
                        r.file.clone(),
                        r.questions.to_string(),
                        r.paths.to_string(),
                        format!("{:.1}", r.mean_tokens),
                        settings::describe(r.settings.as_ref()),
                    ]
                })
                .collect(),
        },
        Table {
            title: "Accuracy (95% Wilson interval)".into(),
            headers: strings(["Run", "Majority vote", "95% CI", "Right", "First path", "95% CI", "Right", "Ties"]),
            rows: report
                .runs
                .iter()
                .map(|r| {
                    vec![
                        run_name(r),
                        pct(r.accuracy),
                        ci(r.ci_low, r.ci_high),
                        format!("{}/{}", r.correct, r.questions),
                        pct(r.first_path_accuracy),
                        ci(r.first_path_ci_low, r.first_path_ci_high),
                        format!("{}/{}", r.first_correct, r.questions),
                        r.ties.to_string(),
                    ]
                })
                .collect(),
        },
        Table {
            title: "Selection strategies (eval --select)".into(),
            headers: strings(["Run", "Strategy", "Accuracy", "95% CI", "Right"]),
            rows: report
                .runs
                .iter()
                .flat_map(|r| {
                    r.selections.iter().map(|x| {
                        vec![
                            run_name(r),
                            x.strategy.clone(),
                            pct(x.accuracy),
                            ci(x.ci_low, x.ci_high),
                            format!("{}/{}", x.correct, x.questions),
                        ]
                    })
                })
                .collect(),
        },
        rates_table("Failures per 100 paths", "Failure", report, |r| &r.failures),
        rates_table("Stop reasons per 100 paths", "Stop reason", report, |r| &r.stop_reasons),
    ];
    // Only files of `eval --select` have strategies.
    out.retain(|t| !t.title.starts_with("Selection") || !t.rows.is_empty());
    if !report.pairs.is_empty() {
        out.push(Table {
            title: "Paired comparison (majority vote; exact McNemar test)".into(),
            headers: strings([
                "Pair",
                "Questions",
                "Both right",
                "Neither",
                "Only first",
                "Only second",
                "McNemar p",
                "First path: only first / only second, p",
                "Settings differ",
            ]),
            rows: report
                .pairs
                .iter()
                .map(|p| {
                    let (m, f) = (&p.majority, &p.first_path);
                    vec![
                        format!("{} vs {}", p.a, p.b),
                        m.questions.to_string(),
                        m.both.to_string(),
                        m.neither.to_string(),
                        m.a_only.to_string(),
                        m.b_only.to_string(),
                        p_value(m.mcnemar_p),
                        format!("{} / {}, p = {}", f.a_only, f.b_only, p_value(f.mcnemar_p)),
                        p.settings_differences.join(", "),
                    ]
                })
                .collect(),
        });
    }
    let mut headers = strings(["Question", "Gold"]);
    headers.extend(report.runs.iter().map(run_name));
    out.push(Table {
        title: "Per question (majority answer, right or wrong, votes for it / paths with an answer)".into(),
        headers,
        rows: report
            .questions
            .iter()
            .map(|q| {
                let mut row = vec![q.index.to_string(), q.gold.clone()];
                row.extend(q.cells.iter().map(|c| match c {
                    None => "not run".to_string(),
                    Some(c) => format!(
                        "{} {} {}/{}",
                        if c.correct { "right" } else { "wrong" },
                        c.majority.as_deref().unwrap_or("-"),
                        (c.agreement * c.voters as f64).round() as usize,
                        c.voters
                    ),
                }));
                row
            })
            .collect(),
    });
    out
}

/// One table with raw numbers (fractions, p-values in full) for programs.
pub fn csv_table(report: &Report, which: CsvTable) -> Table {
    match which {
        CsvTable::Runs => {
            let mut headers = strings([
                "run",
                "template",
                "file",
                "questions",
                "paths",
                "correct",
                "accuracy",
                "ci_low",
                "ci_high",
                "first_correct",
                "first_path_accuracy",
                "first_path_ci_low",
                "first_path_ci_high",
                "ties",
                "mean_tokens",
            ]);
            if let Some(r) = report.runs.first() {
                headers.extend(r.failures.iter().map(|x| format!("{}_per_100_paths", x.name)));
                headers.extend(r.stop_reasons.iter().map(|x| format!("stop_{}_per_100_paths", x.name)));
            }
            headers.push("settings".into());
            let rows = report
                .runs
                .iter()
                .map(|r| {
                    let mut row = vec![
                        r.label.clone(),
                        r.template.clone(),
                        r.file.clone(),
                        r.questions.to_string(),
                        r.paths.to_string(),
                        r.correct.to_string(),
                        r.accuracy.to_string(),
                        r.ci_low.to_string(),
                        r.ci_high.to_string(),
                        r.first_correct.to_string(),
                        r.first_path_accuracy.to_string(),
                        r.first_path_ci_low.to_string(),
                        r.first_path_ci_high.to_string(),
                        r.ties.to_string(),
                        r.mean_tokens.to_string(),
                    ];
                    row.extend(r.failures.iter().chain(&r.stop_reasons).map(|x| x.per_100_paths.to_string()));
                    row.push(r.settings.as_ref().map_or(String::new(), |s| s.to_string()));
                    row
                })
                .collect();
            Table { title: "runs".into(), headers, rows }
        }
        CsvTable::Pairs => Table {
            title: "pairs".into(),
            headers: strings([
                "a",
                "b",
                "questions",
                "both",
                "neither",
                "a_only",
                "b_only",
                "mcnemar_p",
                "first_path_a_only",
                "first_path_b_only",
                "first_path_mcnemar_p",
                "settings_differences",
            ]),
            rows: report
                .pairs
                .iter()
                .map(|p| {
                    let (m, f) = (&p.majority, &p.first_path);
                    vec![
                        p.a.clone(),
                        p.b.clone(),
                        m.questions.to_string(),
                        m.both.to_string(),
                        m.neither.to_string(),
                        m.a_only.to_string(),
                        m.b_only.to_string(),
                        m.mcnemar_p.to_string(),
                        f.a_only.to_string(),
                        f.b_only.to_string(),
                        f.mcnemar_p.to_string(),
                        p.settings_differences.join("; "),
                    ]
                })
                .collect(),
        },
        CsvTable::Questions => Table {
            title: "questions".into(),
            headers: strings([
                "question",
                "gold",
                "run",
                "template",
                "majority",
                "correct",
                "first_correct",
                "agreement",
                "voters",
                "paths",
            ]),
            rows: report
                .questions
                .iter()
                .flat_map(|q| {
                    q.cells.iter().zip(&report.runs).filter_map(move |(c, r)| {
                        let c = c.as_ref()?;
                        Some(vec![
                            q.index.to_string(),
                            q.gold.clone(),
                            r.label.clone(),
                            r.template.clone(),
                            c.majority.clone().unwrap_or_default(),
                            c.correct.to_string(),
                            c.first_correct.to_string(),
                            c.agreement.to_string(),
                            c.voters.to_string(),
                            c.paths.to_string(),
                        ])
                    })
                })
                .collect(),
        },
    }
}

/// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled; CRLF line ends.
pub fn to_csv(t: &Table) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let line = |cells: &[String]| cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",") + "\r\n";
    std::iter::once(line(&t.headers)).chain(t.rows.iter().map(|r| line(r))).collect()
}

/// GitHub-flavoured markdown: each table under a `###` heading.
pub fn to_markdown(report: &Report) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace(['\n', '\r'], " ");
    let mut out =
        format!("## cotscope report: {} run{}\n", report.runs.len(), if report.runs.len() == 1 { "" } else { "s" });
    for t in human_tables(report) {
        out.push_str(&format!("\n### {}\n\n", t.title));
        out.push_str(&format!("| {} |\n", t.headers.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(t.headers.len())));
        for r in &t.rows {
            out.push_str(&format!("| {} |\n", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
        }
    }
    for n in &report.notes {
        out.push_str(&format!("\n> note: {}\n", cell(n)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        let t = Table {
            title: "t".into(),
            headers: strings(["a", "b"]),
            rows: vec![strings(["1,5", "say \"hi\""]), strings(["x\ny", "plain"])],
        };
        assert_eq!(to_csv(&t), "a,b\r\n\"1,5\",\"say \"\"hi\"\"\"\r\n\"x\ny\",plain\r\n");
    }
}
