// The type table: how the document's schemas become the SDK's Rust types. Included by
// `build.rs` (which generates the code) and by `tests/it/spec.rs` (which describes the Rust
// surface of a patched document). `openapi/README.md` explains each part and how to add one.

/// How `openapi/ralio.json` becomes Rust types.
#[allow(dead_code)]
const RUST_TYPES: openapi_normalize::rust::RustTypes<'static> = openapi_normalize::rust::RustTypes {
    // "Schema.property" → the `format` the normaliser sets on it.
    marks: &[
        ("Agent.agent_number", "number-string"),
        ("Message.role", "message-role"),
        ("PaymentInstruction.amount", "decimal"),
        ("PaymentInstruction.status", "payment-status"),
        ("PaymentInstruction.transaction_status", "payment-status"),
        ("PaymentIntent.approval_status", "approval-status"),
        ("PaymentIntent.execution_status", "payment-status"),
        ("PaymentIntent.total_amount", "decimal"),
        ("Transaction.amount", "decimal"),
        ("Transaction.date", "date-time"),
        ("Transaction.status", "payment-status"),
    ],
    // A string schema with this `format` → this Rust type (its own `Deserialize` reads it).
    conversions: &[
        ("password", "crate::redacted::RedactedString"),
        ("decimal", "::rust_decimal::Decimal"),
        ("payment-status", "crate::types::PaymentStatus"),
        ("approval-status", "crate::types::ApprovalStatus"),
        ("message-role", "crate::types::MessageRole"),
        ("number-string", "crate::types::NumberString"),
    ],
    // A field of this generated type → read with this function (`crate::types::de`).
    readers: &[
        ("::rust_decimal::Decimal", "crate::types::de::decimal"),
        ("::std::option::Option<::rust_decimal::Decimal>", "crate::types::de::option_decimal"),
        ("::chrono::DateTime<::chrono::offset::Utc>", "crate::types::de::timestamp"),
        (
            "::std::option::Option<::chrono::DateTime<::chrono::offset::Utc>>",
            "crate::types::de::option_timestamp",
        ),
        ("crate::types::NumberString", "crate::types::de::number_string"),
        ("::std::option::Option<crate::types::NumberString>", "crate::types::de::option_number_string"),
    ],
    // A non-`Option` field the document gives a default → `null` reads as that default.
    null_as_default: "crate::types::de::null_as_default",
};
