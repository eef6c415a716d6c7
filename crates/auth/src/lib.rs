//! `eddy-auth`: Eddy's access control — tokens, stored as hashes, with
//! permissions (`publish`, `subscribe`, `admin`) per topic pattern.
//!
//! A server asks an [`Access`] for the bus to serve a client on, given the
//! token the client presented (the native protocol's `Hello`, or HTTP's
//! `Authorization: Bearer`):
//!
//! - [`Open`] serves everyone on the bus itself: development on loopback;
//! - [`Tokens`] looks the token's SHA-256 up among the configured ones and
//!   serves the client on a [`Guarded`] bus that checks every call against
//!   the token's grants, or refuses with `Unauthenticated` (6001).
//!
//! The event store is guarded through the same grants: a stream is the
//! bus topic its events are published to, `es.<category>`; streams without
//! one (system streams, names without a category) need a grant covering
//! `es.>` ([`Guarded`] has the whole rule).
//!
//! It is **not** a transport: it never sees a socket or a header, only
//! the token text; and it keeps no secret — a server's configuration holds
//! only hashes, so reading it does not reveal a token. Limits: at most
//! [`TOKENS_MAX`] tokens, [`GRANTS_MAX`] grants each, tokens of at most
//! [`TOKEN_BYTES_MAX`] bytes.
//!
//! ```
//! use eddy_auth::{Access, Grant, Permission, TokenHash, Tokens};
//!
//! # fn demo<B: eddy_bus::Bus + eddy_bus::EventStore + Clone>(bus: B) -> Result<(), eddy_bus::BusError> {
//! let token = eddy_auth::generate_token()?;
//! let tokens = Tokens::new(bus).with(
//!     "orders-service",
//!     TokenHash::of(&token),
//!     vec![Grant::new("orders.>", &[Permission::Publish, Permission::Subscribe])?],
//! )?;
//! let bus = tokens.bus_for(Some(&token))?; // may publish to orders.*
//! assert!(tokens.bus_for(Some("eddy_wrong")).is_err());
//! # let _ = bus; Ok(()) }
//! ```

mod grant;
mod guard;
mod store;
mod token;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use eddy_bus::{Bus, BusError, EventStore};
use serde::Deserialize;

pub use grant::{Grant, Permission, Principal};
pub use guard::{FILTER_CACHE_MAX, Guarded};
pub use token::{TOKEN_BYTES_MAX, TOKEN_PREFIX, TOKEN_RANDOM_BYTES, TokenHash, generate_token};

use guard::Holder;

/// Most tokens a server holds.
pub const TOKENS_MAX: usize = 10_000;
/// Most grants one token holds.
pub const GRANTS_MAX: usize = 256;

/// Decides which bus a client is served on, from the token it presented.
pub trait Access: Send + Sync + 'static {
    /// The bus a client is served on — the bus and its event store —:
    /// the bus itself, or the bus behind a guard that checks each call
    /// against the client's permissions.
    type Bus: Bus + EventStore + Clone + Send + Sync + 'static;

    /// The bus to serve a client that presented `token` (`None`: no
    /// token) on, or `Unauthenticated` (6001) if the token is wrong or
    /// missing and this access wants one.
    fn bus_for(&self, token: Option<&str>) -> Result<Self::Bus, BusError>;
}

/// Everyone is served on the bus itself, token or not: development mode.
#[derive(Debug, Clone)]
pub struct Open<B>(pub B);

impl<B: Bus + EventStore + Clone + Send + Sync + 'static> Access for Open<B> {
    type Bus = B;

    fn bus_for(&self, _token: Option<&str>) -> Result<B, BusError> {
        Ok(self.0.clone())
    }
}

/// One token in a server's configuration file:
///
/// ```toml
/// [[tokens]]
/// name = "orders-service"
/// hash = "sha256:…"          # printed by `eddy token create`
/// grants = [{ topics = "orders.>", allow = ["publish", "subscribe"] }]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token; appears in errors and logs.
    pub name: String,
    /// The token's hash, `sha256:` and 64 hex digits.
    pub hash: String,
    /// What it may do.
    pub grants: Vec<GrantConfig>,
}

/// One grant of a [`TokenConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// A topic pattern (`orders.>`, `*.created`, `audit.log`).
    pub topics: String,
    /// `publish`, `subscribe`, `admin`.
    pub allow: Vec<String>,
}

/// The configured tokens, serving each client on a [`Guarded`] bus.
#[derive(Debug)]
pub struct Tokens<B> {
    bus: B,
    by_hash: HashMap<TokenHash, Arc<Holder>>,
    names: HashSet<String>,
}

impl<B: Clone> Clone for Tokens<B> {
    fn clone(&self) -> Self {
        Tokens {
            bus: self.bus.clone(),
            by_hash: self.by_hash.clone(),
            names: self.names.clone(),
        }
    }
}

impl<B> Tokens<B> {
    /// No tokens yet: every client is refused until one is added. (`B` is
    /// the bus clients are served on; `()` will do to check a
    /// configuration.)
    pub fn new(bus: B) -> Tokens<B> {
        Tokens {
            bus,
            by_hash: HashMap::new(),
            names: HashSet::new(),
        }
    }

    /// Adds a token named `name` with this hash and these grants. Names
    /// and hashes must be unique.
    pub fn with(
        mut self,
        name: &str,
        hash: TokenHash,
        grants: Vec<Grant>,
    ) -> Result<Self, BusError> {
        let bad = |reason: String| BusError::InvalidArgument {
            what: "token",
            reason,
        };
        if self.by_hash.len() >= TOKENS_MAX {
            return Err(BusError::LimitExceeded {
                what: "tokens",
                setting: "TOKENS_MAX",
                limit: TOKENS_MAX as u64,
                actual: TOKENS_MAX as u64 + 1,
            });
        }
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(bad(format!(
                "name {name:?} must be 1..=128 printable characters"
            )));
        }
        if grants.is_empty() || grants.len() > GRANTS_MAX {
            return Err(bad(format!(
                "{name:?} must have 1..={GRANTS_MAX} grants, not {}",
                grants.len()
            )));
        }
        if !self.names.insert(name.to_string()) {
            return Err(bad(format!("two tokens are named {name:?}")));
        }
        if self.by_hash.contains_key(&hash) {
            return Err(bad(format!("{name:?} has the same hash as another token")));
        }
        let holder = Holder::new(Principal::new(name, grants));
        self.by_hash.insert(hash, Arc::new(holder));
        Ok(self)
    }

    /// The tokens of a configuration file, checked: every hash, pattern
    /// and permission must parse, names and hashes be unique.
    pub fn from_config(bus: B, config: &[TokenConfig]) -> Result<Tokens<B>, BusError> {
        let mut tokens = Tokens::new(bus);
        for t in config {
            let hash: TokenHash = t.hash.parse()?;
            let grants = t
                .grants
                .iter()
                .map(|g| {
                    let allow = g
                        .allow
                        .iter()
                        .map(|p| p.parse())
                        .collect::<Result<Vec<Permission>, BusError>>()?;
                    if allow.is_empty() {
                        return Err(BusError::InvalidArgument {
                            what: "grant",
                            reason: format!(
                                "the grant on {:?} of {:?} allows nothing",
                                g.topics, t.name
                            ),
                        });
                    }
                    Grant::new(&g.topics, &allow)
                })
                .collect::<Result<Vec<Grant>, BusError>>()?;
            tokens = tokens.with(&t.name, hash, grants)?;
        }
        Ok(tokens)
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

impl<B: Bus + EventStore + Clone + Send + Sync + 'static> Access for Tokens<B> {
    type Bus = Guarded<B>;

    fn bus_for(&self, token: Option<&str>) -> Result<Guarded<B>, BusError> {
        let token = token.ok_or_else(|| {
            BusError::Unauthenticated(
                "this server wants a token: pass one with --token or EDDY_TOKEN, or send \
                 `Authorization: Bearer <token>`"
                    .into(),
            )
        })?;
        if token.len() > TOKEN_BYTES_MAX {
            return Err(BusError::Unauthenticated(format!(
                "the token is longer than {TOKEN_BYTES_MAX} bytes"
            )));
        }
        let holder = self.by_hash.get(&TokenHash::of(token)).ok_or_else(|| {
            BusError::Unauthenticated("the token is not known to this server".into())
        })?;
        Ok(Guarded::new(self.bus.clone(), Arc::clone(holder)))
    }
}
