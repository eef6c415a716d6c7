//! A performance target's verdict, and how the verdicts are reported: a
//! list on stdout and a table in the markdown section.

use std::fmt::{self, Write as _};

use super::report::escape;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
}

impl Verdict {
    pub fn of(met: bool) -> Verdict {
        if met { Verdict::Pass } else { Verdict::Miss }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
        })
    }
}

/// One target, what was measured for it, and the verdict.
#[derive(Debug, Clone)]
pub struct Judged {
    pub name: &'static str,
    pub goal: String,
    pub measured: String,
    pub verdict: Verdict,
    /// Why the verdict may not carry over to a full run.
    pub caveat: Option<String>,
}

/// Prints the verdicts under `title`: names padded to the longest one, and
/// what was measured and the caveat lined up under the goal.
pub fn print(title: &str, judged: &[Judged]) {
    let width = judged.iter().map(|j| j.name.len()).max().unwrap_or(0);
    let indent = " ".repeat("  PASS  ".len() + width + 1);
    println!("\n{title}");
    for j in judged {
        println!("  {}  {:<width$} {}", j.verdict, j.name, j.goal);
        println!("{indent}measured: {}", j.measured);
        if let Some(caveat) = &j.caveat {
            println!("{indent}note: {caveat}");
        }
    }
}

/// The verdicts as the markdown section's last part.
pub fn markdown(judged: &[Judged]) -> String {
    let mut md = String::new();
    md.push_str("\n#### Targets\n\n");
    md.push_str("| Target | Goal | Measured | Verdict |\n|---|---|---|---|\n");
    for j in judged {
        let verdict = match &j.caveat {
            Some(caveat) => format!("**{}** ({caveat})", j.verdict),
            None => format!("**{}**", j.verdict),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            j.name,
            escape(&j.goal),
            escape(&j.measured),
            escape(&verdict)
        );
    }
    md
}
