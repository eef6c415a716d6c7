//! The Prometheus text exposition format, version 0.0.4: `# HELP` and
//! `# TYPE` lines, then the samples of one metric family as one group.
//!
//! Pure string building; the registry decides what to write.

use std::fmt::{self, Write as _};

use crate::histogram::Snapshot;

/// The type of a metric family, as its `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A float sample value in the format's spelling (`+Inf`, `-Inf`, `NaN`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Float(pub(crate) f64);

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v == f64::INFINITY {
            f.write_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            f.write_str("-Inf")
        } else {
            // Rust prints the shortest text that reads back as the same
            // float, without an exponent: a valid Go `ParseFloat` input.
            write!(f, "{v}")
        }
    }
}

/// The text of one scrape, built family by family.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    pub(crate) fn new() -> Exposition {
        Exposition::default()
    }

    /// A comment line (`# ` + text, newlines flattened). Parsers ignore it.
    pub(crate) fn comment(&mut self, text: &str) {
        self.out.push_str("# ");
        for c in text.chars() {
            self.out.push(if c == '\n' { ' ' } else { c });
        }
        self.out.push('\n');
    }

    /// Starts a metric family: its `# HELP` and `# TYPE` lines. Every
    /// sample of the family must follow before the next family starts.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_help(&mut self.out, help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
    }

    /// One sample line: `name{labels} value`.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, " {value}");
    }

    /// The samples of one histogram series: cumulative `_bucket` lines
    /// ending with `le="+Inf"`, then `_sum` and `_count`.
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Snapshot) {
        let mut cumulative = 0u64;
        for (le, count) in h.buckets() {
            cumulative += count;
            self.out.push_str(name);
            self.out.push_str("_bucket");
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        debug_assert_eq!(cumulative, h.count());
        self.out.push_str(name);
        self.out.push_str("_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", Float(h.sum_seconds()));
        self.out.push_str(name);
        self.out.push_str("_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", h.count());
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// `{a="x",b="y"}` (nothing when there are no labels), with `le` last.
fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
    for (i, (name, value)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    out.push('}');
}

/// A label value: backslash, double quote and line feed are escaped as
/// `\\`, `\"` and `\n`.
pub(crate) fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A `# HELP` docstring: backslash and line feed are escaped.
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition_check::parse;
    use crate::histogram::{Histogram, REQUEST_BUCKETS_NS};

    // Proves the three escapes of a label value and that nothing else is
    // touched (a `$`, a dot, non-ASCII text pass through).
    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\\b\"c\nd $x.y é");
        assert_eq!(s, r#"a\\b\"c\nd $x.y é"#);
    }

    // Proves that awkward label values and help text still make a valid
    // exposition, and that a parser reads the original values back.
    #[test]
    fn escaped_output_parses_back_to_the_original_values() {
        let weird = "we\"ird\\name\nwith newline";
        let mut x = Exposition::new();
        x.comment("a comment\nover two lines");
        x.family(
            "eddy_thing_total",
            Kind::Counter,
            "Help with \\ and\nnewline.",
        );
        x.sample("eddy_thing_total", &[("topic", weird)], 7u64);
        x.sample("eddy_thing_total", &[("topic", "plain")], 8u64);
        x.family("eddy_level", Kind::Gauge, "A gauge.");
        x.sample("eddy_level", &[], Float(-1.5));
        let h = Histogram::new(REQUEST_BUCKETS_NS);
        h.observe_ns(3_000_000);
        x.family("eddy_lat_seconds", Kind::Histogram, "A histogram.");
        x.histogram("eddy_lat_seconds", &[("op", weird)], &h.snapshot());
        let text = x.finish();

        let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let thing = samples
            .iter()
            .find(|s| s.name == "eddy_thing_total" && s.label("topic") == Some(weird))
            .expect("the weird series");
        assert_eq!(thing.value, 7.0);
        assert!(
            samples
                .iter()
                .any(|s| s.name == "eddy_lat_seconds_count" && s.label("op") == Some(weird))
        );
        assert!(text.contains(r#"eddy_thing_total{topic="we\"ird\\name\nwith newline"} 7"#));
        assert!(text.contains("# HELP eddy_thing_total Help with \\\\ and\\nnewline.\n"));
        assert!(text.contains("eddy_level -1.5\n"));
    }

    // Proves that the checker the tests rely on is strict: each broken
    // exposition below is refused, and the fixed one accepted.
    #[test]
    fn the_format_checker_refuses_invalid_text() {
        let head = "# HELP h_seconds H.\n# TYPE h_seconds histogram\n";
        let good = format!(
            "{head}h_seconds_bucket{{le=\"1\"}} 1\nh_seconds_bucket{{le=\"+Inf\"}} 2\n\
             h_seconds_sum 3\nh_seconds_count 2\n"
        );
        assert!(parse(&good).is_ok(), "{:?}", parse(&good));
        let bad = [
            "x 1\n".to_string(),                                         // no HELP/TYPE
            "# HELP x X.\nx 1\n".to_string(),                            // no TYPE
            "# HELP x X.\n# TYPE x counter\nx 1\n".to_string(),          // counter without _total
            "# HELP x X.\n# TYPE x gauge\nx{a=\"b} 1\n".to_string(),     // unterminated
            "# HELP x X.\n# TYPE x gauge\nx{a=\"\\t\"} 1\n".to_string(), // bad escape
            "# HELP x X.\n# TYPE x gauge\nx one\n".to_string(),          // not a float
            "# HELP x X.\n# TYPE x gauge\nx 1 2\n".to_string(),          // a timestamp
            "# HELP x X.\n# TYPE x gauge\nx 1\nx 2\n".to_string(),       // a series twice
            "# HELP x X.\n# TYPE x gauge\n# HELP y Y.\n# TYPE y gauge\ny 1\nx 1\n".to_string(), // x's sample outside its group
            good.replace("le=\"1\"} 1", "le=\"1\"} 5"), // not cumulative
            good.replace("+Inf", "2"),                  // no +Inf
            good.replace("h_seconds_count 2", "h_seconds_count 3"), // +Inf != count
            good.replace("h_seconds_sum 3\n", ""),      // no _sum
        ];
        for text in bad {
            assert!(parse(&text).is_err(), "accepted:\n{text}");
        }
    }

    // Proves the special float spellings of the format.
    #[test]
    fn floats_use_the_format_spelling() {
        assert_eq!(Float(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Float(f64::NEG_INFINITY).to_string(), "-Inf");
        assert_eq!(Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Float(0.00025).to_string(), "0.00025");
        assert_eq!(Float(10.0).to_string(), "10");
    }
}
