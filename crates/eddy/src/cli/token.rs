//! `eddy token create|hash`: access tokens for a server's config file.
//!
//! A server stores only each token's SHA-256 (`docs/configuration.md`);
//! `create` prints a new random token once, for its holder, and the
//! `[[tokens]]` entry with its hash, for the server's config file.

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use eddy_auth::{Grant, Permission, TOKEN_BYTES_MAX, TokenHash, generate_token};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a new token: prints it (once) and the config entry for it.
    Create(CreateArgs),
    /// Print the hash of a token read from stdin, for the config file.
    Hash,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Who will hold the token (shown in errors and logs).
    #[arg(long)]
    name: String,
    /// A permission on a topic pattern, `<publish|subscribe|admin>:<pattern>`;
    /// repeat for more, e.g. `--allow publish:orders.> --allow subscribe:billing.*`.
    #[arg(long = "allow", value_name = "PERMISSION:PATTERN", required = true)]
    allow: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TokenArgs) -> Result<()> {
    match args.command {
        TokenCommand::Create(args) => create(args),
        TokenCommand::Hash => {
            let mut token = String::new();
            std::io::stdin()
                .take(TOKEN_BYTES_MAX as u64 + 2)
                .read_to_string(&mut token)
                .context("read the token from stdin")?;
            let token = token.trim_end_matches(['\n', '\r']);
            if token.is_empty() || token.len() > TOKEN_BYTES_MAX {
                bail!("give one token of 1..={TOKEN_BYTES_MAX} bytes on stdin");
            }
            println!("{}", TokenHash::of(token));
            Ok(())
        }
    }
}

/// The grants of `--allow` values, grouped by pattern in first-seen order.
fn grants(allow: &[String]) -> Result<Vec<(String, Vec<Permission>)>> {
    let mut grouped: Vec<(String, Vec<Permission>)> = Vec::new();
    for a in allow {
        let (permission, pattern) = a.split_once(':').with_context(|| {
            format!("`--allow {a}` is not `<publish|subscribe|admin>:<pattern>`, e.g. `publish:orders.>`")
        })?;
        let permission: Permission = permission.parse()?;
        Grant::new(pattern, &[permission])?;
        match grouped.iter_mut().find(|(p, _)| p == pattern) {
            Some((_, ps)) if !ps.contains(&permission) => ps.push(permission),
            Some(_) => {}
            None => grouped.push((pattern.to_string(), vec![permission])),
        }
    }
    Ok(grouped)
}

fn create(args: CreateArgs) -> Result<()> {
    let grants = grants(&args.allow)?;
    let token = generate_token()?;
    let hash = TokenHash::of(&token);
    // The entry must be accepted by a server: check it as one would.
    let checked: Vec<Grant> = grants
        .iter()
        .map(|(p, ps)| Grant::new(p, ps))
        .collect::<Result<_, _>>()?;
    eddy_auth::Tokens::new(()).with(&args.name, hash, checked)?;
    if args.json {
        let grants: Vec<serde_json::Value> = grants
            .iter()
            .map(|(p, ps)| {
                serde_json::json!({
                    "topics": p,
                    "allow": ps.iter().map(|p| p.name()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "name": args.name,
            "token": token,
            "hash": hash.to_string(),
            "grants": grants,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "token for {:?} (shown only now; the server keeps its hash):",
        args.name
    );
    println!("  {token}");
    println!();
    println!("add to the server's config file:");
    println!();
    println!("[[tokens]]");
    println!("name = {}", toml_string(&args.name));
    println!("hash = \"{hash}\"");
    println!("grants = [");
    for (pattern, ps) in &grants {
        let allow: Vec<String> = ps.iter().map(|p| format!("\"{}\"", p.name())).collect();
        println!(
            "  {{ topics = {}, allow = [{}] }},",
            toml_string(pattern),
            allow.join(", ")
        );
    }
    println!("]");
    Ok(())
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_flags_group_by_pattern_and_bad_ones_are_refused() {
        // Proves: permissions on one pattern are grouped, duplicates
        // dropped, order kept; a bad permission or pattern is refused.
        let g = grants(&[
            "publish:orders.>".into(),
            "subscribe:orders.>".into(),
            "publish:orders.>".into(),
            "admin:audit.*".into(),
        ])
        .unwrap();
        assert_eq!(
            g,
            vec![
                (
                    "orders.>".to_string(),
                    vec![Permission::Publish, Permission::Subscribe]
                ),
                ("audit.*".to_string(), vec![Permission::Admin]),
            ]
        );
        assert!(grants(&["read:orders".into()]).is_err());
        assert!(grants(&["publish:orders.>.x".into()]).is_err());
        assert!(grants(&["orders".into()]).is_err());
    }
}
