//! The results of a run: named figures with units and optional targets, printed as a table for
//! humans and written as JSON for machines.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

/// A bound a figure must meet.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "op", content = "value")]
pub(crate) enum Target {
    /// `value ≥ bound`.
    #[serde(rename = ">=")]
    AtLeast(f64),
    /// `value ≤ bound`.
    #[serde(rename = "<=")]
    AtMost(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Self::AtLeast(b) => value >= b,
            Self::AtMost(b) => value <= b,
        }
    }
}

/// One figure.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Metric {
    /// What was measured.
    pub(crate) name: String,
    /// The figure.
    pub(crate) value: f64,
    /// Its unit (`msgs/s`, `ms`, `KiB`, …).
    pub(crate) unit: &'static str,
    /// The target, if the issue sets one.
    pub(crate) target: Option<Target>,
    /// Whether the target is met (absent without a target).
    pub(crate) pass: Option<bool>,
}

/// Load average from `/proc/loadavg` (1, 5, 15 minutes).
pub(crate) fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(-1.0));
    [
        it.next().unwrap_or(-1.0),
        it.next().unwrap_or(-1.0),
        it.next().unwrap_or(-1.0),
    ]
}

/// A whole run.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// `chat`, `idle`, `login` or `presence`.
    pub(crate) scenario: &'static str,
    /// CPUs available.
    pub(crate) cores: usize,
    /// Load average when the scenario started.
    pub(crate) load_before: [f64; 3],
    /// Load average when it ended.
    pub(crate) load_after: [f64; 3],
    /// The scenario's parameters.
    pub(crate) params: serde_json::Value,
    /// The figures.
    pub(crate) metrics: Vec<Metric>,
    /// Remarks (limits hit, how a figure was derived).
    pub(crate) notes: Vec<String>,
}

impl Report {
    /// An empty report for `scenario` with `params`.
    pub(crate) fn new(scenario: &'static str, params: serde_json::Value) -> Self {
        Self {
            scenario,
            cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            load_before: load_average(),
            load_after: [0.0; 3],
            params,
            metrics: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a figure without a target.
    pub(crate) fn info(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            unit,
            target: None,
            pass: None,
        });
    }

    /// Adds a count that must be zero (failures, drops): a check with target ≤ 0.
    pub(crate) fn none(&mut self, name: impl Into<String>, count: f64, unit: &'static str) {
        self.check(name, count, unit, Target::AtMost(0.0));
    }

    /// Adds a figure with a target.
    pub(crate) fn check(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        target: Target,
    ) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            unit,
            target: Some(target),
            pass: Some(target.met(value)),
        });
    }

    /// Adds a remark.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Records the load average at the end.
    pub(crate) fn finish(&mut self) {
        self.load_after = load_average();
    }

    /// Whether every target is met.
    pub(crate) fn passed(&self) -> bool {
        self.metrics.iter().all(|m| m.pass != Some(false))
    }

    /// Prints the table on standard output.
    pub(crate) fn print(&self) {
        let mut out = String::new();
        let [a, b, c] = self.load_before;
        let [x, y, z] = self.load_after;
        let _ = writeln!(
            out,
            "\nrelive-bench {} — {} cores, load average {a:.2} {b:.2} {c:.2} before, \
             {x:.2} {y:.2} {z:.2} after",
            self.scenario, self.cores
        );
        let _ = writeln!(out, "parameters: {}", self.params);
        let width = self
            .metrics
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(10);
        let _ = writeln!(
            out,
            "  {:<width$}  {:>16}  {:<14} {:>16}",
            "figure", "value", "unit", "target"
        );
        for m in &self.metrics {
            let target = match m.target {
                None => String::new(),
                Some(Target::AtLeast(v)) => format!("≥ {}", human(v)),
                Some(Target::AtMost(v)) => format!("≤ {}", human(v)),
            };
            let mark = match m.pass {
                None => "",
                Some(true) => "✓",
                Some(false) => "✗",
            };
            let _ = writeln!(
                out,
                "  {:<width$}  {:>16}  {:<14} {:>16} {mark}",
                m.name,
                human(m.value),
                m.unit,
                target
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let _ = writeln!(
            out,
            "result: {}",
            if self.passed() {
                "all targets met"
            } else {
                "TARGET MISSED"
            }
        );
        print!("{out}");
    }

    /// Writes the report as JSON to `path`.
    pub(crate) fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| path.display().to_string())
    }
}

/// A figure for the table: thousands separators for large values, 3 significant decimals for
/// small ones.
fn human(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut s = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                s.push(',');
            }
            s.push(ch);
        }
        if n < 0 { format!("-{s}") } else { s }
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_formatted_for_humans() {
        assert_eq!(human(312_345.4), "312,345");
        assert_eq!(human(1000.0), "1,000");
        assert_eq!(human(0.8123), "0.812");
        assert_eq!(human(42.0), "42");
        assert_eq!(human(12.34), "12.3");
    }

    #[test]
    fn a_missed_target_fails_the_report() {
        let mut r = Report::new("chat", serde_json::json!({}));
        r.check("rate", 10.0, "msgs/s", Target::AtLeast(5.0));
        assert!(r.passed());
        r.check("p99", 6.0, "ms", Target::AtMost(5.0));
        assert!(!r.passed());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["metrics"][1]["target"]["op"], "<=");
        assert_eq!(json["metrics"][1]["pass"], false);
    }
}
