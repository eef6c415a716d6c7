//! Names and patterns: what a topic or subscription may be called, and how a
//! subscription's filter selects topics.
//!
//! A topic name is dot-separated tokens of ASCII letters, digits, `_` and
//! `-` (`orders.placed`), at most [`TOPIC_NAME_BYTES_MAX`] bytes. Names whose
//! first token starts with `$` belong to the bus itself (`$sys.alerts`,
//! `$dlq.<subscription>`): applications read them but do not create or
//! publish to them. A pattern is a topic name in which a token may be `*`
//! (exactly one token) and the last token may be `>` (one or more tokens).
//! Wildcards never match a `$` name unless the pattern's first token is
//! that literal `$` token.

use crate::error::{BusError, Result};

/// Longest topic name or pattern, in bytes.
pub const TOPIC_NAME_BYTES_MAX: usize = 200;
/// Longest subscription name, in bytes.
pub const SUBSCRIPTION_NAME_BYTES_MAX: usize = 100;
/// The system topic that receives an alert for every dead-lettered event.
pub const ALERTS_TOPIC: &str = "$sys.alerts";

/// The name of a subscription's dead-letter topic.
pub fn dead_letter_topic(subscription: &str) -> String {
    format!("$dlq.{subscription}")
}

fn token_ok(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn system_token_ok(t: &str) -> bool {
    t.strip_prefix('$').is_some_and(token_ok)
}

fn invalid(what: &'static str, name: &str, reason: &str) -> BusError {
    BusError::InvalidName {
        what,
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// Checks a topic name an application may create and publish to.
pub fn check_topic_name(name: &str) -> Result<()> {
    check_any_topic_name(name)?;
    if name.starts_with('$') {
        return Err(invalid(
            "topic",
            name,
            "names starting with `$` are reserved for the bus",
        ));
    }
    Ok(())
}

/// Checks a topic name, allowing the bus's own `$` names.
pub fn check_any_topic_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(invalid("topic", name, "it is empty"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(invalid(
            "topic",
            name,
            &format!("it is longer than {TOPIC_NAME_BYTES_MAX} bytes"),
        ));
    }
    for (i, t) in name.split('.').enumerate() {
        let ok = token_ok(t) || (i == 0 && system_token_ok(t));
        if !ok {
            return Err(invalid(
                "topic",
                name,
                "tokens are separated by `.` and hold only ASCII letters, digits, `_` and `-`",
            ));
        }
    }
    Ok(())
}

/// Checks a subscription name: ASCII letters, digits, `_` and `-`.
pub fn check_subscription_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > SUBSCRIPTION_NAME_BYTES_MAX || !token_ok(name) {
        return Err(invalid(
            "subscription",
            name,
            &format!("use 1 to {SUBSCRIPTION_NAME_BYTES_MAX} ASCII letters, digits, `_` or `-`"),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    One,
    Rest,
}

/// A parsed subscription filter: a topic name or a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses a filter.
    pub fn parse(text: &str) -> Result<Pattern> {
        let bad = |reason: &str| BusError::InvalidPattern {
            pattern: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.len() > TOPIC_NAME_BYTES_MAX {
            return Err(bad(&format!(
                "it is longer than {TOPIC_NAME_BYTES_MAX} bytes"
            )));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, t) in parts.iter().enumerate() {
            let token = match *t {
                "*" => Token::One,
                ">" if i + 1 == parts.len() => Token::Rest,
                ">" => return Err(bad("`>` may only be the last token")),
                t if token_ok(t) || (i == 0 && system_token_ok(t)) => Token::Literal(t.to_string()),
                _ => {
                    return Err(bad(
                        "tokens are `*`, `>` (last), or ASCII letters, digits, `_` and `-`",
                    ));
                }
            };
            tokens.push(token);
        }
        Ok(Pattern {
            text: text.to_string(),
            tokens,
        })
    }

    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the filter has a wildcard (otherwise it names one topic).
    pub fn is_wildcard(&self) -> bool {
        self.tokens.iter().any(|t| !matches!(t, Token::Literal(_)))
    }

    /// Whether `topic` is selected by this filter.
    pub fn matches(&self, topic: &str) -> bool {
        let mut names = topic.split('.');
        for (i, token) in self.tokens.iter().enumerate() {
            let Some(name) = names.next() else {
                return false;
            };
            if i == 0 && name.starts_with('$') && !matches!(token, Token::Literal(_)) {
                return false;
            }
            match token {
                Token::Literal(l) if l != name => return false,
                Token::Literal(_) | Token::One => {}
                Token::Rest => return true,
            }
        }
        names.next().is_none()
    }
}

/// The partition of a key: a stable hash (FNV-1a, 64-bit) of its bytes
/// modulo the partition count. Stable across processes, versions and
/// machines: the same key always lands in the same partition of a topic
/// with the same partition count.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (key_hash(key) % u64::from(partitions.max(1))) as u32
}

/// FNV-1a, 64-bit: the key hash behind [`partition_for_key`].
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in ["orders", "orders.placed", "a-b_c.D9"] {
            check_topic_name(ok).unwrap();
        }
        for bad in [
            "", ".", "orders.", ".orders", "a..b", "or ders", "ordérs", "a.*", "a.>",
        ] {
            assert!(check_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_topic_name("$sys.alerts").is_err());
        check_any_topic_name("$sys.alerts").unwrap();
        assert!(check_any_topic_name("a.$b").is_err());
        assert!(check_topic_name(&"a".repeat(TOPIC_NAME_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn subscription_names() {
        check_subscription_name("inventory-service_1").unwrap();
        for bad in ["", "a.b", "a b", "$x"] {
            assert!(check_subscription_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patterns_match_tokens() {
        let p = Pattern::parse("orders.*").unwrap();
        assert!(p.is_wildcard());
        assert!(p.matches("orders.placed"));
        assert!(!p.matches("orders"));
        assert!(!p.matches("orders.placed.eu"));
        assert!(!p.matches("payments.placed"));

        let p = Pattern::parse("orders.>").unwrap();
        assert!(p.matches("orders.placed"));
        assert!(p.matches("orders.placed.eu"));
        assert!(!p.matches("orders"));

        let p = Pattern::parse(">").unwrap();
        assert!(p.matches("a") && p.matches("a.b.c"));
        assert!(!p.matches("$sys.alerts"), "wildcards skip system topics");
        assert!(Pattern::parse("$sys.>").unwrap().matches("$sys.alerts"));

        let p = Pattern::parse("orders.placed").unwrap();
        assert!(!p.is_wildcard());
        assert!(p.matches("orders.placed") && !p.matches("orders.placedx"));

        let p = Pattern::parse("*.placed").unwrap();
        assert!(p.matches("orders.placed") && !p.matches("orders.paid"));

        for bad in ["", "a.>.b", "a..b", "a.b*", "a.$b"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_partitioning_is_stable() {
        // FNV-1a test vectors: the hash must never change, or keys move.
        assert_eq!(key_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(partition_for_key(b"order-42", 1), 0);
        let p = partition_for_key(b"order-42", 8);
        assert!(p < 8);
        assert_eq!(p, partition_for_key(b"order-42", 8));
    }
}
