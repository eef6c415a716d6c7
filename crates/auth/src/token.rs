//! Tokens: how they are made, and the one-way hash under which a server
//! stores them.

use std::fmt;
use std::str::FromStr;

use eddy_bus::BusError;
use sha2::{Digest, Sha256};

/// What every token starts with, so that a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "eddy_";
/// Random bytes in a token: 256 bits, so a plain SHA-256 of it is safe to
/// store (no dictionary or brute force reaches it; a slow password hash
/// would only slow every request).
pub const TOKEN_RANDOM_BYTES: usize = 32;
/// Longest token text a server looks at; a longer one is refused unhashed.
pub const TOKEN_BYTES_MAX: usize = 256;

/// A new random token: `eddy_` and 64 hex digits (256 bits from the
/// operating system's generator).
pub fn generate_token() -> Result<String, BusError> {
    let mut random = [0u8; TOKEN_RANDOM_BYTES];
    getrandom::fill(&mut random)
        .map_err(|e| BusError::Unavailable(format!("no randomness for a token: {e}")))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&random)))
}

/// The SHA-256 of a token, as stored in the server's configuration
/// (`sha256:` and 64 hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex(&self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for TokenHash {
    type Err = BusError;

    fn from_str(s: &str) -> Result<TokenHash, BusError> {
        let bad = |reason: &str| BusError::InvalidArgument {
            what: "token hash",
            reason: format!(
                "{s:?} {reason}; it is `sha256:` and 64 hex digits, as printed by `eddy token create`"
            ),
        };
        let digits = s
            .strip_prefix("sha256:")
            .ok_or_else(|| bad("does not start with `sha256:`"))?;
        if digits.len() != 64 {
            return Err(bad("does not have 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = digits
                .get(2 * i..2 * i + 2)
                .ok_or_else(|| bad("is not hex"))?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad("is not hex"))?;
        }
        Ok(TokenHash(out))
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_round_trip() {
        // Proves: two tokens differ and have the documented shape; a hash
        // prints as `sha256:<hex>` and parses back to itself; the hash is
        // SHA-256 (checked against the known digest of "abc").
        let (a, b) = (generate_token().unwrap(), generate_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        let h = TokenHash::of("abc");
        assert_eq!(
            h.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h.to_string().parse::<TokenHash>().unwrap(), h);
        for bad in [
            "",
            "sha256:",
            "md5:00",
            "sha256:zz16bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ] {
            assert!(bad.parse::<TokenHash>().is_err(), "{bad:?}");
        }
        // Multi-byte text of the right length must not panic.
        let odd = format!("sha256:{}", "é".repeat(32));
        assert!(odd.parse::<TokenHash>().is_err());
    }
}
