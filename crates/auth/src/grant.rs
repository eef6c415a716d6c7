//! Permissions, grants on topic patterns, and who holds them.

use std::fmt;

use eddy_bus::BusError;
use eddy_bus::name::Pattern;

/// What a grant allows on the topics its pattern matches. The event
/// store's streams are guarded as the topics their events go to,
/// `es.<category>` (see [`Guarded`](crate::Guarded)): `publish` appends,
/// `subscribe` reads, `admin` changes a stream's settings and deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Publish to the topics.
    Publish,
    /// Read the topics, and create and consume subscriptions whose filter
    /// selects only such topics (fetch, ack, nack, extend, terminate,
    /// push, dead-letter list and show, stats).
    Subscribe,
    /// Everything: the above, plus creating and deleting topics, deleting
    /// and seeking subscriptions, and redriving and purging dead letters.
    Admin,
}

impl Permission {
    /// Its name in configuration and errors.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Publish => "publish",
            Permission::Subscribe => "subscribe",
            Permission::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Permission::Publish => 1,
            Permission::Subscribe => 2,
            Permission::Admin => 4,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Permission {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Permission, BusError> {
        match s {
            "publish" => Ok(Permission::Publish),
            "subscribe" => Ok(Permission::Subscribe),
            "admin" => Ok(Permission::Admin),
            other => Err(BusError::InvalidArgument {
                what: "permission",
                reason: format!("{other:?} is not one of `publish`, `subscribe`, `admin`"),
            }),
        }
    }
}

/// Permissions on the topics a pattern matches (the subscription filter
/// syntax: `orders.>`, `*.created`, `orders.created`). As in filters,
/// wildcards never match `$` system topics: a grant on `$sys.alerts` or
/// `$dlq.billing` must name it.
#[derive(Debug, Clone)]
pub struct Grant {
    pattern: Pattern,
    allow: u8,
}

impl Grant {
    /// A grant of `allow` on the topics matching `pattern`.
    pub fn new(pattern: &str, allow: &[Permission]) -> Result<Grant, BusError> {
        Ok(Grant {
            pattern: Pattern::parse(pattern)?,
            allow: allow.iter().fold(0, |bits, p| bits | p.bit()),
        })
    }

    /// Its pattern as written.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    fn allows(&self, permission: Permission) -> bool {
        self.allow & (permission.bit() | Permission::Admin.bit()) != 0
    }
}

/// Who a token belongs to, and what it may do.
#[derive(Debug)]
pub struct Principal {
    name: String,
    grants: Vec<Grant>,
}

impl Principal {
    /// A principal named `name` holding `grants`.
    pub fn new(name: impl Into<String>, grants: Vec<Grant>) -> Principal {
        Principal {
            name: name.into(),
            grants,
        }
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `permission` is granted on `topic`.
    pub fn may(&self, permission: Permission, topic: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.allows(permission) && g.pattern.matches(topic))
    }

    /// Whether `permission` is granted on every topic that `filter` (a
    /// subscription filter) can select.
    pub fn may_all(&self, permission: Permission, filter: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.allows(permission) && covers(g.pattern.as_str(), filter))
    }

    /// Whether any permission at all is granted on `topic` (it is listed).
    pub fn sees(&self, topic: &str) -> bool {
        self.grants.iter().any(|g| g.pattern.matches(topic))
    }

    /// Whether any permission at all is granted on every topic of `filter`.
    pub fn sees_all(&self, filter: &str) -> bool {
        self.grants
            .iter()
            .any(|g| covers(g.pattern.as_str(), filter))
    }

    /// `Ok` if `permission` is granted on `topic`, else `PermissionDenied`.
    pub fn check(&self, permission: Permission, topic: &str) -> Result<(), BusError> {
        if self.may(permission, topic) {
            Ok(())
        } else {
            Err(self.denied(permission, topic))
        }
    }

    /// `Ok` if `permission` is granted on every topic of `filter`.
    pub fn check_all(&self, permission: Permission, filter: &str) -> Result<(), BusError> {
        if self.may_all(permission, filter) {
            Ok(())
        } else {
            Err(self.denied(permission, filter))
        }
    }

    /// The `PermissionDenied` error for `permission` on `resource`.
    pub fn denied(&self, permission: Permission, resource: &str) -> BusError {
        BusError::PermissionDenied {
            principal: self.name.clone(),
            action: permission.name(),
            resource: resource.to_string(),
        }
    }
}

/// Whether every topic matched by `filter` is matched by `grant` (both
/// valid patterns). Token by token: `>` in the grant covers the rest (one
/// token or more); `*` covers one token that is not `>`; a literal covers
/// only itself. Wildcards at the start never cover a `$` system topic.
fn covers(grant: &str, filter: &str) -> bool {
    let filter: Vec<&str> = filter.split('.').collect();
    let mut count = 0;
    for (i, g) in grant.split('.').enumerate() {
        count += 1;
        let Some(&f) = filter.get(i) else {
            return false;
        };
        let system = i == 0 && f.starts_with('$');
        match g {
            ">" => return !system,
            "*" if f == ">" || system => return false,
            "*" => {}
            literal if literal != f => return false,
            _ => {}
        }
    }
    filter.len() == count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_is_token_by_token() {
        // Proves: a grant covers a filter only if it matches every topic
        // the filter can select, including the `$` rule.
        let yes = [
            (">", ">"),
            (">", "orders.created"),
            (">", "orders.*"),
            ("orders.>", "orders.>"),
            ("orders.>", "orders.*.eu"),
            ("orders.*", "orders.*"),
            ("orders.*", "orders.created"),
            ("orders.created", "orders.created"),
            ("*.created", "orders.created"),
            ("$sys.alerts", "$sys.alerts"),
        ];
        let no = [
            ("orders.*", "orders.>"),
            ("orders.>", "orders"),
            ("orders.>", ">"),
            ("orders.created", "orders.*"),
            ("orders.*", "orders.created.eu"),
            ("orders.created", "orders.created.eu"),
            ("*.created", "*.updated"),
            (">", "$sys.alerts"),
            ("*.alerts", "$sys.alerts"),
            ("billing.>", "orders.>"),
        ];
        for (g, f) in yes {
            assert!(covers(g, f), "{g} should cover {f}");
        }
        for (g, f) in no {
            assert!(!covers(g, f), "{g} should not cover {f}");
        }
    }

    #[test]
    fn admin_implies_the_others_and_grants_do_not_leak() {
        // Proves: admin includes publish and subscribe; a publish grant
        // gives no subscribe; a grant on one pattern gives nothing on
        // another; errors name the principal, the action and the resource.
        let p = Principal::new(
            "svc",
            vec![
                Grant::new("orders.>", &[Permission::Publish]).unwrap(),
                Grant::new("audit.*", &[Permission::Admin]).unwrap(),
            ],
        );
        assert!(p.may(Permission::Publish, "orders.created"));
        assert!(!p.may(Permission::Subscribe, "orders.created"));
        assert!(p.may(Permission::Subscribe, "audit.log"));
        assert!(p.may(Permission::Publish, "audit.log"));
        assert!(!p.may(Permission::Publish, "billing.paid"));
        assert!(p.sees("orders.x") && !p.sees("billing.x"));
        assert_eq!(
            p.check(Permission::Subscribe, "orders.created"),
            Err(BusError::PermissionDenied {
                principal: "svc".into(),
                action: "subscribe",
                resource: "orders.created".into(),
            })
        );
        assert!(p.check_all(Permission::Subscribe, "audit.*").is_ok());
        assert!(p.check_all(Permission::Subscribe, "audit.>").is_err());
    }
}
