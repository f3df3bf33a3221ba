//! One test per classification rule, on the FastAPI fixture: `Item` is a request body (and a
//! response), `Pending` a response only.

use super::*;
use serde_json::json;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../tests/fixtures/fastapi.json")).unwrap()
}

/// The changes `edit` makes to the fixture, as printed.
fn after(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut new = fixture();
    edit(&mut new);
    classify(fixture(), new)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Exactly one change, of `class`, whose line contains every one of `words`.
#[track_caller]
fn one(changes: &[String], class: &str, words: &[&str]) {
    assert_eq!(changes.len(), 1, "{changes:#?}");
    let line = &changes[0];
    assert!(line.starts_with(class), "{line}");
    for w in words {
        assert!(line.contains(w), "`{w}` missing in: {line}");
    }
}

fn props<'a>(doc: &'a mut Value, schema: &str) -> &'a mut serde_json::Map<String, Value> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object_mut()
        .unwrap()
}

#[test]
fn the_same_api_formatted_ordered_or_spelled_differently_is_no_change() {
    let reordered: Value =
        serde_json::from_str(&serde_json::to_string_pretty(&fixture()).unwrap()).unwrap();
    assert!(classify(fixture(), reordered).unwrap().is_empty());
    // The 3.0 spelling the normaliser produces describes the same API as the 3.1 original.
    let normalised = crate::normalize(fixture()).unwrap();
    assert!(classify(fixture(), normalised).unwrap().is_empty());
}

#[test]
fn text_only_changes_are_additive_documentation() {
    let c = after(|d| {
        props(d, "Item").get_mut("id").unwrap()["description"] = json!("The item's id.");
    });
    one(
        &c,
        "additive",
        &["documentation", "/components/schemas/Item/properties/id"],
    );
}

#[test]
fn an_unexplained_change_is_breaking_and_named() {
    let c = after(|d| props(d, "Item").get_mut("id").unwrap()["readOnly"] = json!(true));
    one(
        &c,
        "breaking",
        &[
            "unclassified",
            "/components/schemas/Item/properties/id/readOnly",
        ],
    );
}

#[test]
fn operations_added_removed_and_moved() {
    let c = after(|d| {
        d["paths"]["/things"] = json!({"get": {"operationId": "list_things",
            "responses": {"200": {"description": "ok"}}}});
    });
    one(
        &c,
        "additive",
        &["operation list_things (GET /things)", "added"],
    );
    let c = after(|d| {
        d["paths"].as_object_mut().unwrap().remove("/events");
    });
    one(
        &c,
        "breaking",
        &["operation stream_events (POST /events)", "removed"],
    );
    let c = after(|d| {
        let events = d["paths"]
            .as_object_mut()
            .unwrap()
            .remove("/events")
            .unwrap();
        d["paths"]["/v2/events"] = events;
    });
    one(
        &c,
        "breaking",
        &[
            "operation stream_events (POST /v2/events)",
            "moved from POST /events",
        ],
    );
}

#[test]
fn parameters_added_removed_and_made_required() {
    fn params(d: &mut Value) -> &mut Vec<Value> {
        d["paths"]["/items/{item_id}"]["get"]["parameters"]
            .as_array_mut()
            .unwrap()
    }
    let c = after(|d| {
        params(d).push(json!({"name": "q", "in": "query", "schema": {"type": "string"}}))
    });
    one(
        &c,
        "additive",
        &["operation get_item", "new optional query parameter q"],
    );
    let c = after(|d| {
        params(d).push(
            json!({"name": "q", "in": "query", "required": true, "schema": {"type": "string"}}),
        );
    });
    one(
        &c,
        "breaking",
        &["operation get_item", "new required query parameter q"],
    );
    let c = after(|d| {
        params(d).remove(1);
    });
    one(
        &c,
        "breaking",
        &["operation get_item", "query parameter limit removed"],
    );
    let c = after(|d| params(d)[1]["required"] = json!(true));
    one(
        &c,
        "breaking",
        &["operation get_item", "query parameter limit now required"],
    );
}

#[test]
fn a_new_optional_request_field_is_additive_a_new_required_one_breaking() {
    let c = after(|d| {
        props(d, "Item").insert("color".into(), json!({"type": "string"}));
    });
    one(
        &c,
        "additive",
        &[
            "schema Item field color",
            "create_item",
            "new optional request field",
        ],
    );
    let c = after(|d| {
        props(d, "Item").insert("color".into(), json!({"type": "string"}));
        d["components"]["schemas"]["Item"]["required"]
            .as_array_mut()
            .unwrap()
            .push(json!("color"));
    });
    one(
        &c,
        "breaking",
        &["schema Item field color", "new required request field"],
    );
}

#[test]
fn a_new_response_field_is_additive_required_or_not() {
    let c = after(|d| {
        props(d, "Pending").insert("eta".into(), json!({"type": "integer"}));
        d["components"]["schemas"]["Pending"]["required"]
            .as_array_mut()
            .unwrap()
            .push(json!("eta"));
    });
    one(
        &c,
        "additive",
        &["schema Pending field eta", "new response field"],
    );
    let c = after(|d| {
        props(d, "Pending").insert("eta".into(), json!({"type": "integer"}));
    });
    one(
        &c,
        "additive",
        &["schema Pending field eta", "new optional response field"],
    );
}

#[test]
fn a_removed_field_is_breaking() {
    let c = after(|d| {
        props(d, "Pending").remove("poll_token");
        d["components"]["schemas"]["Pending"]["required"] = json!([]);
    });
    one(
        &c,
        "breaking",
        &["schema Pending field poll_token", "field removed"],
    );
}

#[test]
fn a_field_whose_rust_type_gains_or_loses_option_is_breaking() {
    // Response side: required → optional turns `String` into `Option<String>`.
    let c = after(|d| d["components"]["schemas"]["Pending"]["required"] = json!([]));
    one(
        &c,
        "breaking",
        &["schema Pending field poll_token", "Option"],
    );
    // … unless the new optional field has a default (it stays `String`).
    let c = after(|d| {
        d["components"]["schemas"]["Pending"]["required"] = json!([]);
        props(d, "Pending").get_mut("poll_token").unwrap()["default"] = json!("");
    });
    one(
        &c,
        "additive",
        &[
            "schema Pending field poll_token",
            "now optional (with a default)",
        ],
    );
    // Request side: any change of requiredness changes `builder(…)`.
    let c = after(|d| d["components"]["schemas"]["Item"]["required"] = json!(["id", "kind"]));
    one(
        &c,
        "breaking",
        &[
            "schema Item field price",
            "no longer an argument of `builder(…)`",
        ],
    );
}

#[test]
fn enum_values_added_are_additive_removed_breaking() {
    let two_kinds = |d: &mut Value| {
        props(d, "Item").insert(
            "kind".into(),
            json!({"type": "string", "enum": ["item", "bundle"]}),
        );
    };
    let c = after(two_kinds);
    assert!(
        c.len() == 1 && c[0].starts_with("additive") && c[0].contains("new enum value \"bundle\""),
        "{c:#?}"
    );
    let mut two = fixture();
    two_kinds(&mut two);
    let c: Vec<String> = classify(two, fixture())
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    one(
        &c,
        "breaking",
        &["schema Item field kind", "enum value \"bundle\" removed"],
    );
}

#[test]
fn narrowed_or_changed_types_are_breaking() {
    let c =
        after(|d| props(d, "Pending").get_mut("poll_token").unwrap()["type"] = json!("integer"));
    one(
        &c,
        "breaking",
        &["schema Pending field poll_token", "type string → integer"],
    );
    let c =
        after(|d| props(d, "Pending").get_mut("poll_token").unwrap()["enum"] = json!(["a", "b"]));
    one(
        &c,
        "breaking",
        &[
            "schema Pending field poll_token",
            "narrowed from any string",
        ],
    );
    let c = after(|d| {
        props(d, "ErrorBody").insert(
            "detail".into(),
            json!({"type": "string", "title": "Detail"}),
        );
    });
    one(
        &c,
        "breaking",
        &["schema ErrorBody field detail", "type anyOf → string"],
    );
    let c = after(|d| {
        props(d, "Pending").get_mut("poll_token").unwrap()["format"] = json!("date-time")
    });
    one(
        &c,
        "breaking",
        &["schema Pending field poll_token", "format"],
    );
}

#[test]
fn alternatives_added_are_additive_removed_breaking() {
    fn detail(d: &mut Value) -> &mut Vec<Value> {
        props(d, "ErrorBody").get_mut("detail").unwrap()["anyOf"]
            .as_array_mut()
            .unwrap()
    }
    let c = after(|d| detail(d).push(json!({"type": "array", "items": {}})));
    one(
        &c,
        "additive",
        &["schema ErrorBody field detail", "new alternative array"],
    );
    let c = after(|d| {
        detail(d).pop();
    });
    one(
        &c,
        "breaking",
        &["schema ErrorBody field detail", "alternative map removed"],
    );
}

#[test]
fn tighter_request_constraints_are_breaking_looser_ones_or_response_ones_additive() {
    let c = after(|d| props(d, "Item").get_mut("id").unwrap()["maxLength"] = json!(36));
    one(
        &c,
        "breaking",
        &["schema Item field id", "accepts fewer strings"],
    );
    let c = after(|d| props(d, "Pending").get_mut("poll_token").unwrap()["maxLength"] = json!(36));
    one(
        &c,
        "additive",
        &["schema Pending field poll_token", "accepts fewer strings"],
    );
    let c = after(|d| {
        d["paths"]["/items/{item_id}"]["get"]["parameters"][1]["schema"]["anyOf"][0]["maximum"] =
            json!(100);
    });
    one(
        &c,
        "breaking",
        &[
            "operation get_item",
            "query parameter limit",
            "accepts fewer integers",
        ],
    );
}

#[test]
fn an_integer_whose_rust_type_changes_is_breaking() {
    // `exclusiveMinimum: 0` is `minimum: 0` exclusive (u64); `minimum: 1` is `NonZeroU64`.
    let c = after(|d| {
        d["paths"]["/items/{item_id}"]["get"]["parameters"][1]["schema"]["anyOf"][0] =
            json!({"type": "integer", "minimum": 1});
    });
    assert!(
        c.iter()
            .any(|l| l.starts_with("breaking") && l.contains("Rust type changes")),
        "{c:#?}"
    );
}

#[test]
fn responses_types_kinds_and_error_statuses() {
    let c = after(|d| {
        d["paths"]["/items/{item_id}"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"] = json!({"$ref": "#/components/schemas/Pending"});
    });
    one(
        &c,
        "breaking",
        &["operation get_item", "response", "type Item → Pending"],
    );
    let c = after(|d| {
        d["paths"]["/items/{item_id}"]["get"]["responses"]["200"]["content"] =
            json!({"text/plain": {"schema": {"type": "string"}}});
    });
    one(
        &c,
        "breaking",
        &[
            "operation get_item",
            "response changed from JSON to byte stream",
        ],
    );
    let c = after(|d| {
        d["paths"]["/items/{item_id}"]["get"]["responses"]["429"] =
            json!({"description": "Slow down"});
    });
    one(
        &c,
        "additive",
        &["operation get_item", "error status 429 documented"],
    );
}

#[test]
fn a_new_required_scope_is_breaking() {
    let c =
        after(|d| d["paths"]["/items"]["post"]["security"] = json!([{"DPoP": ["items:write"]}]));
    one(
        &c,
        "breaking",
        &[
            "operation create_item",
            "now requires scope DPoP:items:write",
        ],
    );
}

#[test]
fn new_and_removed_types() {
    let c = after(|d| d["components"]["schemas"]["Extra"] = json!({"type": "string"}));
    one(&c, "additive", &["schema Extra", "new type"]);
    let mut with_extra = fixture();
    with_extra["components"]["schemas"]["Extra"] = json!({"type": "string"});
    let c: Vec<String> = classify(with_extra, fixture())
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    one(&c, "breaking", &["schema Extra", "type removed"]);
}

#[test]
fn the_release_is_the_strongest_class() {
    let change = |class| Change {
        class,
        subject: "s".into(),
        what: "w".into(),
    };
    assert_eq!(release(&[]), "none");
    assert_eq!(release(&[change(Class::Additive)]), "minor");
    assert_eq!(
        release(&[change(Class::Additive), change(Class::Breaking)]),
        "major"
    );
}

#[test]
fn a_document_that_cannot_be_normalised_is_an_error_naming_it() {
    let err = classify(fixture(), json!({"openapi": "2.0"})).unwrap_err();
    assert_eq!(err.which, "new");
    assert!(err.message.contains("2.0"), "{err}");
}
