//! Exit codes that scripts can rely on, and errors that say what to do.
//!
//! | code | meaning                                   | bus error codes            |
//! |------|-------------------------------------------|----------------------------|
//! | 0    | success (also: nothing to consume)        |                            |
//! | 1    | unexpected or internal error              | anything else              |
//! | 2    | usage error: bad flags or values          | (clap, and [`Usage`])      |
//! | 3    | not found                                 | 2001, 2003, 3001, 5002, 7002 |
//! | 4    | already exists, or a conflicting state    | 2002, 3002, 4001–4004, 5003, 7001, 7003 |
//! | 5    | bad input refused by the server           | 1xxx, 5001                 |
//! | 6    | not authenticated, or permission denied   | 6001, 6002                 |
//! | 7    | server unavailable                        | cannot connect, 9004, 9005 |
//! | 8    | server-side storage failure               | 9001–9003                  |
//!
//! `main` finds the [`BusError`] in an error's chain (directly, or inside an
//! [`Explained`]) and maps its stable code; a [`Usage`] error is 2.

use std::fmt;

use eddy_bus::BusError;

/// The exit codes, as shown by `eddy --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (also when `consume` or `read` found nothing: a note goes to stderr)
  1  unexpected or internal error
  2  usage error: bad flags or values
  3  not found: topic, partition, subscription, dead letter or stream
  4  already exists, or conflicting state (delivery already settled, source gone,
     a stream not at the expected version, an event id of another stream)
  5  bad input refused by the server: names, limits, offsets out of range
  6  not authenticated or permission denied: see --token / EDDY_TOKEN
  7  server unavailable: cannot connect, or the connection was lost
  8  server-side storage failure

Server commands take --server <host:port> (env EDDY_SERVER, default 127.0.0.1:7420),
--token <token> (env EDDY_TOKEN), --tls-ca <pem file> (env EDDY_TLS_CA) for a server
speaking TLS, and --json (one JSON document, or one JSON object per line for streams
of events).";

/// Unexpected or internal error.
pub const INTERNAL: u8 = 1;
/// Usage error (clap's own code).
pub const USAGE: u8 = 2;
/// Not found.
pub const NOT_FOUND: u8 = 3;
/// Already exists, or a conflict.
pub const CONFLICT: u8 = 4;
/// Bad input refused by the server.
pub const BAD_INPUT: u8 = 5;
/// Not authenticated or not permitted.
pub const ACCESS: u8 = 6;
/// The server cannot be reached.
pub const UNAVAILABLE: u8 = 7;
/// The server's storage failed.
pub const STORAGE: u8 = 8;

/// The exit code of a bus error, by its stable numeric code.
pub fn bus_exit_code(err: &BusError) -> u8 {
    match err.code() {
        2001 | 2003 | 3001 | 5002 | 7002 => NOT_FOUND,
        2002 | 3002 | 4001..=4004 | 5003 | 7001 | 7003 => CONFLICT,
        1000..=1999 | 5001 => BAD_INPUT,
        6001 | 6002 => ACCESS,
        9004 | 9005 => UNAVAILABLE,
        9001..=9003 => STORAGE,
        _ => INTERNAL,
    }
}

/// The exit code of a failed command.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Explained>() {
            return bus_exit_code(&e.error);
        }
        if let Some(e) = cause.downcast_ref::<BusError>() {
            return bus_exit_code(e);
        }
        if cause.downcast_ref::<Usage>().is_some() {
            return USAGE;
        }
    }
    INTERNAL
}

/// A usage error found after parsing (a combination clap cannot express).
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A bus error with a message that says what to do about it. The message
/// stands alone (it includes the error's own text); the error is kept for
/// the exit code.
#[derive(Debug)]
pub struct Explained {
    /// The error.
    pub error: BusError,
    /// What to show.
    pub message: String,
}

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Explained {}

/// `err`, with a hint of what to do where one helps. `server` is the
/// address the command talks to.
pub fn explain(err: BusError, server: &str) -> anyhow::Error {
    let hint = match &err {
        BusError::TopicNotFound(t) => Some(format!(
            "list topics with `eddy topic list`, or create it with `eddy topic create {t}`"
        )),
        BusError::TopicExists(t) => Some(format!(
            "see it with `eddy topic describe {t}`, or choose another name"
        )),
        BusError::PartitionNotFound {
            topic, partitions, ..
        } => Some(format!(
            "its partitions are 0..={}; see `eddy topic describe {topic}`",
            partitions.saturating_sub(1)
        )),
        BusError::SubscriptionNotFound(s) => Some(format!(
            "list subscriptions with `eddy sub list`, or create it with \
             `eddy sub create {s} --filter <topic or pattern>`"
        )),
        BusError::SubscriptionExists(s) => Some(format!(
            "see it with `eddy sub describe {s}`, or choose another name"
        )),
        BusError::LeaseExpired(_) => Some(
            "the event will be delivered again; if handling takes longer than the lease, \
             raise the subscription's ack wait (`eddy sub create … --ack-wait 2m`)"
                .to_string(),
        ),
        BusError::OffsetOutOfRange { first, next, .. } => Some(format!(
            "give an offset in {first}..={next}, or `beginning`, `end`, a time or `15m-ago`"
        )),
        BusError::DeadLetterNotFound(_) => {
            Some("list the queue with `eddy dlq list <subscription>`".to_string())
        }
        BusError::RedriveSourceGone(_) => {
            Some("redrive it to a topic instead with `--to-topic <topic>`".to_string())
        }
        BusError::WrongExpectedVersion { stream, actual, .. } => Some(match actual {
            Some(v) => format!(
                "it was written since: read its latest events with `eddy stream read {stream} \
                 --backward --max 10`, then decide again with `--expected {v}`"
            ),
            None => format!(
                "it does not exist (or was deleted): append with `--expected no_stream` or \
                 `any`; see `eddy stream info {stream}`"
            ),
        }),
        BusError::StreamNotFound(s) => Some(format!(
            "see `eddy stream info {s}`; reading a stream that does not exist prints nothing"
        )),
        BusError::EventIdInUse { .. } => Some(
            "event ids are unique across streams: give this event another --id, or none"
                .to_string(),
        ),
        BusError::Unauthenticated(_) => Some(
            "pass a token with --token or set EDDY_TOKEN (an operator creates one with \
             `eddy token create`)"
                .to_string(),
        ),
        BusError::PermissionDenied {
            action, resource, ..
        } => Some(format!(
            "use a token with a `{action}` grant covering {resource:?}, or ask an operator \
             to add one"
        )),
        BusError::Unavailable(_) | BusError::Closed => Some(format!(
            "is the server at {server} still running? What the last request did is unknown: \
             check, then retry"
        )),
        BusError::Storage(_) | BusError::Corrupt(_) => {
            Some("the server's storage failed; see the server's log".to_string())
        }
        BusError::Poisoned(_) => Some(
            "the server refuses writes after a failed write; fix the disk, then restart it"
                .to_string(),
        ),
        _ => None,
    };
    let message = match hint {
        Some(hint) => format!("{err} — {hint}"),
        None => err.to_string(),
    };
    Explained {
        error: err,
        message,
    }
    .into()
}

/// The error of a failed connection to `server`, saying how to fix it.
pub fn explain_connect(err: BusError, server: &str) -> anyhow::Error {
    let message = match &err {
        BusError::Unavailable(why) => {
            // "connecting to 127.0.0.1:7420: Connection refused (os error 111)"
            let cause = why.rsplit(": ").next().unwrap_or(why);
            let cause = cause.split(" (os error").next().unwrap_or(cause);
            let cause = lowercase_first(cause);
            let hint = if why.contains("TLS") {
                "check that --tls-ca holds the server's certificate or its CA, and \
                 --tls-server-name the name in it"
            } else if why.contains("refused") || why.contains("resolv") || why.contains("timed out")
            {
                "start one with `eddy serve`, or pass --server / set EDDY_SERVER"
            } else {
                "is --server the address of an Eddy server? If it speaks TLS, pass --tls-ca"
            };
            format!("cannot reach the Eddy server at {server}: {cause} — {hint}")
        }
        _ => return explain(err, server),
    };
    Explained {
        error: err,
        message,
    }
    .into()
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Explains the bus errors of results.
pub trait ExplainExt<T> {
    /// The error explained for a command talking to `server`.
    fn explain(self, server: &str) -> anyhow::Result<T>;
}

impl<T> ExplainExt<T> for eddy_bus::Result<T> {
    fn explain(self, server: &str) -> anyhow::Result<T> {
        self.map_err(|e| explain(e, server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_by_area() {
        // Proves the documented table: each area's codes get their exit code,
        // through an `Explained` and through plain context.
        let cases = [
            (BusError::TopicNotFound("t".into()), NOT_FOUND),
            (BusError::DeadLetterNotFound(1), NOT_FOUND),
            (BusError::SubscriptionExists("s".into()), CONFLICT),
            (BusError::LeaseExpired("x".into()), CONFLICT),
            (BusError::RedriveSourceGone(1), CONFLICT),
            (
                BusError::InvalidArgument {
                    what: "x",
                    reason: "y".into(),
                },
                BAD_INPUT,
            ),
            (BusError::Unauthenticated("no".into()), ACCESS),
            (BusError::Closed, UNAVAILABLE),
            (BusError::Unavailable("x".into()), UNAVAILABLE),
            (BusError::Corrupt("x".into()), STORAGE),
            (BusError::StreamNotFound("s-1".into()), NOT_FOUND),
            (
                BusError::WrongExpectedVersion {
                    stream: "s-1".into(),
                    expected: "3".into(),
                    actual: Some(4),
                },
                CONFLICT,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(bus_exit_code(&err), code, "{err:?}");
            let explained = explain(err.clone(), "h:1");
            assert_eq!(exit_code(&explained), code, "{err:?}");
            let wrapped = anyhow::Error::new(err.clone()).context("while doing x");
            assert_eq!(exit_code(&wrapped), code, "{err:?}");
        }
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), INTERNAL);
        assert_eq!(exit_code(&Usage("bad".into()).into()), USAGE);
    }

    #[test]
    fn connect_errors_say_what_to_do() {
        // Proves a refused connection names the server, the cause and the fix.
        let err = BusError::Unavailable(
            "connecting to 127.0.0.1:7420: Connection refused (os error 111)".into(),
        );
        let msg = explain_connect(err, "127.0.0.1:7420").to_string();
        assert_eq!(
            msg,
            "cannot reach the Eddy server at 127.0.0.1:7420: connection refused — start one \
             with `eddy serve`, or pass --server / set EDDY_SERVER"
        );
        let msg = explain(BusError::TopicNotFound("orders".into()), "x").to_string();
        assert!(msg.contains("`eddy topic create orders`"), "{msg}");
    }
}
