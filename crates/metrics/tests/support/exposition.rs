//! A strict checker of the Prometheus text exposition format 0.0.4, for
//! tests only (shared by the unit tests through `#[path]` and by the
//! scenario tests through `mod support`).
//!
//! It accepts only what `eddy-metrics` should write: every sample line is
//! `name{labels} value` (no timestamps), every family has `# HELP` and
//! `# TYPE` before its samples and its samples form one group, counters
//! end in `_total`, no series appears twice, and every histogram series has
//! cumulative buckets in ascending `le` order ending with `le="+Inf"`
//! equal to its `_count`, plus a `_sum`.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

/// One sample line, with label values unescaped.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Exactly these labels, in any order.
    pub fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        self.labels.len() == labels.len() && labels.iter().all(|(n, v)| self.label(n) == Some(v))
    }
}

/// The value of the one sample `name{labels}` in `samples`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.has_labels(labels))
        .map(|s| s.value)
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => {
            let ok = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
            ok.then(|| s.parse::<f64>().ok())
                .flatten()
                .ok_or_else(|| format!("{s:?} is not a float"))
        }
    }
}

/// `{a="x",b="y"} rest` → labels and `rest`.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("no `{`")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("a label without `=`")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("a label value without `\"`")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("an unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in a label value")),
                },
                Some((_, '\n')) => return Err("a raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} twice"));
        }
        labels.push((name.to_string(), value));
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by `,`".into());
        }
    }
}

/// Label pairs (name, unescaped value).
type Labels = Vec<(String, String)>;

#[derive(Default)]
struct Family {
    help: bool,
    kind: Option<String>,
    has_samples: bool,
}

/// The family a sample name belongs to, given the declared types.
fn family_of<'a>(name: &'a str, families: &HashMap<String, Family>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && families.get(base).and_then(|f| f.kind.as_deref()) == Some("histogram")
        {
            return base;
        }
    }
    name
}

/// Parses and checks a whole exposition; returns its samples.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    let mut series = HashSet::new();

    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text does not end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            let (keyword, name, rest) = (words.next(), words.next(), words.next());
            match keyword {
                Some("HELP") | Some("TYPE") => {
                    let name = name.ok_or_else(|| at("no metric name".into()))?;
                    if !is_metric_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    if finished.contains(name)
                        || current.as_deref() == Some(name) && {
                            families.get(name).is_some_and(|f| f.has_samples)
                        }
                    {
                        return Err(at("HELP/TYPE after the family's samples".into()));
                    }
                    if current.as_deref() != Some(name) {
                        if let Some(prev) = current.take() {
                            finished.insert(prev);
                        }
                        current = Some(name.to_string());
                    }
                    let f = families.entry(name.to_string()).or_default();
                    if keyword == Some("HELP") {
                        if f.help {
                            return Err(at("a second HELP".into()));
                        }
                        f.help = true;
                    } else {
                        if f.kind.is_some() {
                            return Err(at("a second TYPE".into()));
                        }
                        let kind = rest.ok_or_else(|| at("no type".into()))?;
                        if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                        {
                            return Err(at(format!("unknown type {kind:?}")));
                        }
                        if kind == "counter" && !name.ends_with("_total") {
                            return Err(at("a counter whose name does not end in _total".into()));
                        }
                        f.kind = Some(kind.to_string());
                    }
                }
                _ => {} // a plain comment
            }
            continue;
        }

        // A sample.
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let value_text = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?;
        if value_text.contains(' ') {
            return Err(at("more than a value after the labels".into()));
        }
        let value = parse_value(value_text).map_err(at)?;

        let family = family_of(name, &families).to_string();
        if current.as_deref() != Some(family.as_str()) {
            return Err(at(format!(
                "a sample of {family:?} outside its group (after HELP/TYPE of {current:?})"
            )));
        }
        let f = families.get_mut(&family).expect("current family exists");
        if !f.help || f.kind.is_none() {
            return Err(at("a sample before its family's HELP and TYPE".into()));
        }
        if f.kind.as_deref() == Some("histogram") && name == family {
            return Err(at("a bare sample of a histogram".into()));
        }
        f.has_samples = true;
        let mut key: Vec<(String, String)> = labels.clone();
        key.sort();
        if !series.insert((name.to_string(), key)) {
            return Err(at("a series twice".into()));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    for (name, f) in &families {
        if !f.help || f.kind.is_none() {
            return Err(format!("family {name:?} lacks HELP or TYPE"));
        }
        if f.kind.as_deref() == Some("histogram") {
            check_histogram(name, &samples)?;
        }
    }
    Ok(samples)
}

/// Buckets cumulative and ascending, ending with `+Inf` = `_count`, and a
/// `_sum`, for every series of histogram `name`.
fn check_histogram(name: &str, samples: &[Sample]) -> Result<(), String> {
    let bucket = format!("{name}_bucket");
    let without_le = |s: &Sample| -> Labels {
        let mut l: Vec<_> = s
            .labels
            .iter()
            .filter(|(n, _)| n != "le")
            .cloned()
            .collect();
        l.sort();
        l
    };
    let mut by_series: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    for s in samples.iter().filter(|s| s.name == bucket) {
        let le = s
            .label("le")
            .ok_or_else(|| format!("{bucket} without le"))
            .and_then(parse_value)?;
        let key = without_le(s);
        match by_series.iter_mut().find(|(k, _)| *k == key) {
            Some((_, b)) => b.push((le, s.value)),
            None => by_series.push((key, vec![(le, s.value)])),
        }
    }
    let counts: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == format!("{name}_count"))
        .collect();
    if counts.len() != by_series.len() {
        return Err(format!(
            "{name}: {} _count for {} series",
            counts.len(),
            by_series.len()
        ));
    }
    for (key, buckets) in &by_series {
        for w in buckets.windows(2) {
            if w[0].0 >= w[1].0 {
                return Err(format!("{name}{key:?}: le not ascending"));
            }
            if w[0].1 > w[1].1 {
                return Err(format!("{name}{key:?}: buckets not cumulative"));
            }
        }
        let last = buckets.last().expect("at least one bucket");
        if last.0 != f64::INFINITY {
            return Err(format!("{name}{key:?}: the last bucket is not le=\"+Inf\""));
        }
        let count = counts
            .iter()
            .find(|s| without_le(s) == *key)
            .ok_or_else(|| format!("{name}{key:?}: no _count"))?;
        if count.value != last.1 {
            return Err(format!(
                "{name}{key:?}: +Inf bucket {} != _count {}",
                last.1, count.value
            ));
        }
        if !samples
            .iter()
            .any(|s| s.name == format!("{name}_sum") && without_le(s) == *key)
        {
            return Err(format!("{name}{key:?}: no _sum"));
        }
    }
    Ok(())
}
