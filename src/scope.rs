//! [`Scope`]: an OAuth scope, as the SDK's public API takes and returns it.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// An OAuth scope: one of the Ralio API's scopes, or any other scope token (the auth layer
/// works with any OAuth 2 server, and a scope the API adds later is kept as sent).
///
/// It reads and writes as the wire string (`Display`, `FromStr`, serde), so
/// `"transactions:read".parse::<Scope>()` is [`Scope::TransactionsRead`] and an unknown
/// `"reports:read"` is `Scope::Other("reports:read")`. Two scopes are equal when their wire
/// strings are, whichever variant holds them.
///
/// ```
/// use ralio::Scope;
///
/// let scopes: Vec<Scope> = "agents:execute transactions:read"
///     .split_whitespace()
///     .map(str::parse)
///     .collect::<Result<_, _>>()?;
/// assert_eq!(scopes, [Scope::AgentsExecute, Scope::TransactionsRead]);
/// assert_eq!(Scope::from("reports:read").to_string(), "reports:read");
/// # Ok::<(), ralio::types::InvalidScope>(())
/// ```
#[derive(Debug, Clone, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// `agents:execute`: chat with the agent.
    AgentsExecute,
    /// `transactions:read`: read transactions and payment intents.
    TransactionsRead,
    /// `agents:config`: configure agents. Human users only: a credential binding never
    /// holds it.
    AgentsConfig,
    /// A scope this version of the SDK does not know, kept as sent.
    Other(String),
}

impl Scope {
    /// The scope as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Scope::AgentsExecute => "agents:execute",
            Scope::TransactionsRead => "transactions:read",
            Scope::AgentsConfig => "agents:config",
            Scope::Other(s) => s,
        }
    }

    /// Space-joined, as the `scope` parameter of a token request and the `scope` of a token
    /// response carry a list.
    pub(crate) fn join(scopes: &[Scope]) -> String {
        let parts: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
        parts.join(" ")
    }

    /// The scopes of a space-separated `scope` value (empty tokens skipped).
    pub(crate) fn split(joined: &str) -> Vec<Scope> {
        joined.split_whitespace().map(Scope::from).collect()
    }
}

/// Without checking the syntax: use [`str::parse`] for input from users.
impl From<&str> for Scope {
    fn from(s: &str) -> Self {
        match s {
            "agents:execute" => Scope::AgentsExecute,
            "transactions:read" => Scope::TransactionsRead,
            "agents:config" => Scope::AgentsConfig,
            other => Scope::Other(other.to_owned()),
        }
    }
}

/// Without checking the syntax: use [`str::parse`] for input from users.
impl From<String> for Scope {
    fn from(s: String) -> Self {
        match Scope::from(s.as_str()) {
            Scope::Other(_) => Scope::Other(s),
            known => known,
        }
    }
}

impl From<&Scope> for Scope {
    fn from(s: &Scope) -> Self {
        s.clone()
    }
}

/// A string that cannot be a scope: empty, or with a space, a control character, `"` or `\`
/// (RFC 6749 §3.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{shown} is not a scope: a scope is one word of visible ASCII without \" or \\, such as transactions:read (give several scopes as separate values)"
)]
pub struct InvalidScope {
    shown: String,
}

impl FromStr for Scope {
    type Err = InvalidScope;

    /// Reads one scope, checking the RFC 6749 syntax (`1*( %x21 / %x23-5B / %x5D-7E )`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E));
        if valid {
            Ok(Scope::from(s))
        } else {
            // Debug-quoted and cut: the text came from the user and may hold control characters.
            let mut shown: String = format!("{s:?}").chars().take(80).collect();
            if shown.len() < format!("{s:?}").len() {
                shown.push('…');
            }
            Err(InvalidScope { shown })
        }
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialOrd for Scope {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By wire string.
impl Ord for Scope {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Scope {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Scope {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Scope {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Scope {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

/// Consistent with `Eq` and `Hash`, which follow the wire string: a `HashSet<Scope>` can be
/// asked for a `&str`, and `[Scope]::join(" ")` gives the wire form of a list.
impl std::borrow::Borrow<str> for Scope {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Scope::from(s.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scopes_round_trip_as_their_wire_strings() {
        for (scope, wire) in [
            (Scope::AgentsExecute, "agents:execute"),
            (Scope::TransactionsRead, "transactions:read"),
            (Scope::AgentsConfig, "agents:config"),
        ] {
            assert_eq!(scope.to_string(), wire);
            assert_eq!(wire.parse::<Scope>().unwrap(), scope);
            assert!(matches!(
                (wire.parse::<Scope>().unwrap(), &scope),
                (a, b) if std::mem::discriminant(&a) == std::mem::discriminant(b)
            ));
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{wire}\""));
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        }
    }

    #[test]
    fn an_unknown_scope_is_kept_as_sent() {
        let scope: Scope = "reports:read".parse().unwrap();
        assert_eq!(scope, Scope::Other("reports:read".to_owned()));
        assert_eq!(scope.to_string(), "reports:read");
        let back: Scope = serde_json::from_str(r#""reports:read""#).unwrap();
        assert_eq!(back, scope);
        assert_eq!(serde_json::to_string(&back).unwrap(), r#""reports:read""#);
    }

    #[test]
    fn equality_follows_the_wire_string() {
        assert_eq!(
            Scope::Other("transactions:read".to_owned()),
            Scope::TransactionsRead
        );
        let mut set = std::collections::HashSet::new();
        set.insert(Scope::Other("agents:execute".to_owned()));
        assert!(set.contains(&Scope::AgentsExecute));
    }

    #[test]
    fn parse_refuses_what_cannot_be_one_scope() {
        for bad in [
            "",
            "agents:execute transactions:read",
            "a\"b",
            "a\\b",
            "tab\there",
            "\u{1b}[2J",
            "é",
        ] {
            let err = bad.parse::<Scope>().unwrap_err();
            assert!(err.to_string().contains("is not a scope"), "{bad:?}: {err}");
            assert!(!err.to_string().contains('\u{1b}'), "{bad:?}: {err}");
        }
    }

    #[test]
    fn split_and_join_use_single_spaces() {
        let scopes = Scope::split("  agents:execute   reports:read ");
        assert_eq!(
            scopes,
            [Scope::AgentsExecute, Scope::Other("reports:read".into())]
        );
        assert_eq!(Scope::join(&scopes), "agents:execute reports:read");
        assert!(Scope::split("").is_empty());
    }
}
