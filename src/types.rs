//! The SDK's resource types: the types generated from `openapi/ralio.json`, re-exported under
//! their public names, and the few hand-written types the generator maps schema fields to:
//! the open enums, [`Scope`] (an OAuth scope, as the public API takes and returns it) and
//! [`RedactedString`] (every secret field of the generated types).
//!
//! Nothing here mirrors a schema object. [`Agent`], [`Message`], [`ChatResponse`]
//! ([`ChatReply`]), [`Transaction`], [`PaymentIntent`], [`PaymentInstruction`] and the list
//! envelopes are generated ([`crate::api::types`]); a field added to the document reaches them
//! by rebuilding. How the document's schemas map to these types is written down in
//! `openapi/README.md`; in short:
//!
//! - Amounts are exact [`Decimal`]s, read from a decimal string (`"500.00"`) or a JSON number
//!   (through its shortest decimal text, so `500.1` reads as `500.1`, never as
//!   `500.099999…`).
//! - Status fields are open enums ([`PaymentStatus`], [`ApprovalStatus`], [`MessageRole`]):
//!   the known values plus `Other(String)`, so a status the server adds later never breaks a
//!   client.
//! - Timestamps are read leniently: RFC 3339, a date-time without offset or a bare date, taken
//!   as UTC. An optional timestamp the SDK cannot read is `None`, never a failed call.
//! - A field the official SDKs default when it is missing (a name, a message list, an
//!   instruction count) is also read when it is missing or `null`. Unknown fields are ignored.

pub use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::redacted::RedactedString;
pub use crate::scope::{InvalidScope, Scope};

pub use crate::api::types::{
    Agent, ChatRequest, ChatResponse, Message, PaymentInstruction, PaymentIntent,
    PaymentIntentList, Transaction, TransactionList,
};

/// The answer to a chat message: the generated [`ChatResponse`] under the name the SDK has
/// always used.
pub type ChatReply = ChatResponse;

/// Text the server may send as a JSON string or a JSON number (`"1001"` or `1001`), read as its
/// text. Used for [`Agent::agent_number`].
pub type NumberString = String;

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version of the SDK does not know, kept as sent.
            Other(String),
        }

        impl $name {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $wire => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok($name::from(s.as_ref()))
            }
        }
    };
}

open_enum! {
    /// Whether a payment intent may execute.
    ApprovalStatus {
        /// Waiting for the owner's decision in the console.
        PendingApproval = "pending_approval",
        /// Approved by the owner.
        ApprovedByUser = "approved_by_user",
        /// Within the agent's rules: approved without asking.
        AutoApproved = "auto_approved",
        /// Refused by the owner.
        RejectedByUser = "rejected_by_user",
        /// Refused by the agent's rules (for example over the spend limit).
        Rejected = "rejected",
    }
}

impl ApprovalStatus {
    /// Whether the intent still waits for a decision.
    pub fn is_pending(&self) -> bool {
        matches!(self, ApprovalStatus::PendingApproval)
    }
}

open_enum! {
    /// Execution state of a payment intent, one of its instructions, or a transaction.
    PaymentStatus {
        /// Not started.
        Pending = "pending",
        /// Sent to the bank.
        Submitted = "submitted",
        /// Being executed.
        Executing = "executing",
        /// Done.
        Completed = "completed",
        /// Delivered to the creditor.
        Delivered = "delivered",
        /// Failed.
        Failed = "failed",
        /// Cancelled before execution (for example after a rejection).
        Cancelled = "cancelled",
        /// Waiting for approval before execution.
        NotStarted = "not_started",
        /// Not executed because the intent was rejected.
        NotExecuted = "not_executed",
    }
}

open_enum! {
    /// Who wrote a chat message.
    MessageRole {
        /// The caller.
        User = "user",
        /// The agent.
        Assistant = "assistant",
        /// A tool result.
        Tool = "tool",
        /// A system message.
        System = "system",
    }
}

// Which readers the generated code calls depends on the document (the type table in
// `openapi/rust_types.rs` names them all), so some may go unused by a given build.
#[allow(dead_code)]
pub(crate) mod de {
    //! The readers the generator attaches to fields (`#[serde(deserialize_with = …)]`), chosen
    //! by the field's type in `openapi/rust_types.rs`. They read while serde decodes the
    //! response: no second pass over the body.

    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer};

    /// An exact decimal from a string (`"500.10"`, `"1e2"`) or a JSON number. A number goes
    /// through its shortest decimal text (rust_decimal's `serde::float` reader), so `500.1`
    /// is exactly `500.1`; a number with more than about 15 significant digits may not be.
    pub fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        rust_decimal::serde::float::deserialize(d)
    }

    /// [`decimal`], or `None` for `null`.
    pub fn option_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        struct Exact(Decimal);
        impl<'de> Deserialize<'de> for Exact {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                decimal(d).map(Exact)
            }
        }
        Ok(Option::<Exact>::deserialize(d)?.map(|e| e.0))
    }

    /// A required timestamp: RFC 3339, or a naive date-time or date taken as UTC. Anything else
    /// is an error (the field is required, so there is no absent value to give).
    pub fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        parse_time(&s).ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a date-time")))
    }

    /// An optional timestamp: as [`timestamp`], but `null`, a non-string, or text that is not
    /// a date-time read as `None` rather than failing the whole response.
    pub fn option_timestamp<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        // A visitor rather than a `serde_json::Value`: the text is parsed where it lies, with
        // no `Value` or `String` built for every timestamp of every list item.
        struct AnyTime;
        impl<'de> serde::de::Visitor<'de> for AnyTime {
            type Value = Option<DateTime<Utc>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a date-time, or any other JSON value (read as no date-time)")
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(parse_time(s))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(None)
            }
        }
        d.deserialize_any(AnyTime)
    }

    /// Text sent as a string or a number (`"1001"` or `1001`).
    pub fn number_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        option_number_string(d)?
            .ok_or_else(|| serde::de::Error::custom("expected a string or a number, found null"))
    }

    /// [`number_string`], or `None` for `null`.
    pub fn option_number_string<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire<'a> {
            #[serde(borrow)]
            Text(std::borrow::Cow<'a, str>),
            Unsigned(u64),
            Signed(i64),
            Float(f64),
        }
        Ok(Option::<Wire<'de>>::deserialize(d)?.map(|w| match w {
            Wire::Text(s) => s.into_owned(),
            Wire::Unsigned(n) => n.to_string(),
            Wire::Signed(n) => n.to_string(),
            Wire::Float(n) => n.to_string(),
        }))
    }

    /// The field's default (`""`, `0`, `[]`) for `null`; the value otherwise. With
    /// `#[serde(default)]` a missing field reads as the default too.
    pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    /// RFC 3339, or a naive date-time / date taken as UTC; anything else → `None`.
    pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(t.with_timezone(&Utc));
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
                return Some(t.and_utc());
            }
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn amount(json: &str) -> Result<Decimal, serde_json::Error> {
        let mut d = serde_json::Deserializer::from_str(json);
        de::decimal(&mut d)
    }

    #[test]
    fn amounts_are_exact_from_strings_and_numbers() {
        assert_eq!(amount(r#""500.10""#).unwrap().to_string(), "500.10");
        // A JSON number goes through its shortest decimal text: 500.1, never 500.0999….
        assert_eq!(
            amount("500.1").unwrap(),
            Decimal::from_str("500.1").unwrap()
        );
        assert_eq!(amount("500.1").unwrap().to_string(), "500.1");
        assert_eq!(amount("1e2").unwrap(), Decimal::from(100));
        assert_eq!(amount("0.1").unwrap().to_string(), "0.1");
        assert_eq!(amount("-7").unwrap(), Decimal::from(-7));
        assert!(amount(r#""lots""#).is_err());
        assert!(amount("null").is_err());
        assert!(
            amount("1e40").is_err(),
            "out of Decimal's range: an error, not a wrong value"
        );
    }

    /// Why amounts have a reader: with the workspace's `serde-str` feature, `Decimal`'s own
    /// `Deserialize` takes strings only, so a number amount would fail the whole call.
    #[test]
    fn decimal_alone_refuses_json_numbers() {
        assert!(serde_json::from_str::<Decimal>("500.1").is_err());
        assert!(serde_json::from_str::<Decimal>(r#""500.1""#).is_ok());
    }

    #[test]
    fn timestamps_read_leniently() {
        let t = |s: &str| de::parse_time(s).map(|t| t.to_rfc3339());
        for (given, read) in [
            ("2026-01-05T10:00:00Z", "2026-01-05T10:00:00+00:00"),
            ("2026-01-05T11:00:00+01:00", "2026-01-05T10:00:00+00:00"),
            (
                "2026-01-05T10:00:00.123456",
                "2026-01-05T10:00:00.123456+00:00",
            ),
            ("2026-01-05 10:00:00", "2026-01-05T10:00:00+00:00"),
            ("2026-01-05", "2026-01-05T00:00:00+00:00"),
        ] {
            assert_eq!(t(given).as_deref(), Some(read), "{given}");
        }
        assert_eq!(t("yesterday"), None);
        assert_eq!(t(""), None);
    }

    /// An optional timestamp field takes any JSON value without failing the item: text that
    /// is a date-time is read, anything else (other text, null, numbers, arrays, objects,
    /// escaped strings included) is `None`, and the fields after it are still read.
    #[test]
    fn optional_timestamps_take_any_json_value() {
        #[derive(serde::Deserialize)]
        struct Item {
            #[serde(default, deserialize_with = "de::option_timestamp")]
            at: Option<chrono::DateTime<chrono::Utc>>,
            after: u8,
        }
        let read = |json: &str| {
            let item: Item = serde_json::from_str(&format!(r#"{{"at": {json}, "after": 7}}"#))
                .unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(item.after, 7, "{json}");
            item.at.map(|t| t.to_rfc3339())
        };
        assert_eq!(
            read(r#""2026-01-05T10:00:00Z""#).as_deref(),
            Some("2026-01-05T10:00:00+00:00")
        );
        assert_eq!(
            read(r#""2026-01-05T10:00:00\u005a""#).as_deref(),
            Some("2026-01-05T10:00:00+00:00"),
            "an escaped string is unescaped before parsing"
        );
        for other in [
            r#""not a date""#,
            "null",
            "true",
            "-3",
            "18446744073709551615",
            "1.5e300",
            r#"[1, {"a": [2]}, "x"]"#,
            r#"{"date": "2026-01-05", "nested": {"k": null}}"#,
        ] {
            assert_eq!(read(other), None, "{other}");
        }
        let absent: Item = serde_json::from_str(r#"{"after": 7}"#).unwrap();
        assert_eq!(absent.at, None);
    }

    #[test]
    fn open_enums_keep_unknown_values_and_round_trip() {
        let s: PaymentStatus = serde_json::from_str(r#""settling""#).unwrap();
        assert_eq!(s, PaymentStatus::Other("settling".into()));
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""settling""#);
        let a: ApprovalStatus = serde_json::from_str(r#""pending_approval""#).unwrap();
        assert!(a.is_pending());
        assert_eq!(a.to_string(), "pending_approval");
    }
}
