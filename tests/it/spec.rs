//! Spec tracking: the generated API surface (of the document, and of the Rust code generated
//! from it) is snapshotted, every operationId of the vendored document has a generated method,
//! and a changed document changes both surface descriptions exactly where the API changed.

use std::collections::BTreeSet;

use serde_json::{Value, json};

include!(concat!(env!("OUT_DIR"), "/ralio_api_operations.rs"));
// The type table build.rs generates with (`RUST_TYPES`).
include!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/openapi/rust_types.rs"
));

fn vendored() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/ralio.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn surface(doc: Value) -> String {
    let normalized = openapi_normalize::normalize(doc).unwrap();
    openapi_normalize::describe_surface(&normalized).unwrap()
}

/// The Rust surface progenitor generates from `doc` with the SDK's type table, described as
/// build.rs describes it: run in this process, no second crate build.
fn rust_surface(doc: Value) -> String {
    openapi_normalize::rust::generate(doc, &RUST_TYPES)
        .unwrap()
        .surface
}

fn operation_ids(doc: &Value) -> BTreeSet<String> {
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op.get("operationId")?.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn generated_api_surface() {
    insta::assert_snapshot!("ralio_api_surface", surface(vendored()));
}

#[test]
fn generated_rust_surface() {
    let surface = rust_surface(vendored());
    assert_eq!(
        surface,
        include_str!(concat!(env!("OUT_DIR"), "/ralio_rust_surface.txt")),
        "the surface this test describes is the one build.rs generated the crate from"
    );
    insta::assert_snapshot!("ralio_rust_surface", surface);
}

/// Adding an optional field to a schema is all it takes for `RalioClient` users to get it,
/// typed: the Rust surface gains exactly that field (and `client.transactions().list()` items
/// are these generated types, see `decoding.rs`).
#[test]
fn an_optional_field_in_the_document_reaches_the_rust_types() {
    let base = vendored();
    let mut changed = base.clone();
    let props = &mut changed["components"]["schemas"]["Transaction"]["properties"];
    assert!(props.get("category").is_none());
    props["category"] = json!({
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "title": "Category",
        "description": "Spending category."
    });
    let (added, removed) = line_diff(&rust_surface(base), &rust_surface(changed));
    assert_eq!(
        added,
        vec!["  Transaction.category: Option<String>".to_owned()]
    );
    assert!(removed.is_empty(), "{removed:?}");
}

/// A defaulted field of a new type, and a new decimal amount: both get their readers from the
/// type table with no code change.
#[test]
fn new_fields_get_their_readers_from_the_type_table() {
    let base = vendored();
    let mut changed = base.clone();
    let props = &mut changed["components"]["schemas"]["Transaction"]["properties"];
    props["tags"] = json!({"type": "array", "items": {"type": "string"}, "default": []});
    props["settled_at"] =
        json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]});
    let (added, removed) = line_diff(&rust_surface(base), &rust_surface(changed));
    assert_eq!(
        added,
        vec![
            "  Transaction.settled_at: Option<DateTime<Utc>> (default) (de: option_timestamp)"
                .to_owned(),
            "  Transaction.tags: Vec<String> (default) (de: null_as_default)".to_owned(),
        ]
    );
    assert!(removed.is_empty(), "{removed:?}");
}

#[test]
fn a_mark_on_a_missing_property_fails_generation_naming_it() {
    let mut doc = vendored();
    doc["components"]["schemas"]["Transaction"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("amount");
    let err = openapi_normalize::rust::generate(doc, &RUST_TYPES).unwrap_err();
    assert!(
        err.contains("/components/schemas/Transaction/properties/amount"),
        "{err}"
    );
}

#[test]
fn every_operation_id_has_a_generated_method() {
    let ids = operation_ids(&vendored());
    let expected: BTreeSet<&str> = [
        "register_credential_binding",
        "get_registration_status",
        "create_token",
        "list_agents",
        "chat",
        "chat_stream",
        "list_transactions",
        "list_payment_intents",
    ]
    .into();
    assert_eq!(
        ids.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        expected
    );

    // `call_every_operation` calls each builder method, so it only compiles when progenitor
    // generated all of them; the table must cover exactly the document's operationIds.
    let http = reqwest::Client::new();
    let client = ralio::api::Client::new_with_client(
        "http://127.0.0.1:9",
        http.clone(),
        reqwest_middleware::ClientBuilder::new(http).build(),
    );
    let called: BTreeSet<&str> = call_every_operation(&client).into_iter().collect();
    let table: BTreeSet<&str> = OPERATION_METHODS.iter().map(|(id, _)| *id).collect();
    assert_eq!(table, expected, "build.rs table vs the document");
    let methods: BTreeSet<&str> = OPERATION_METHODS.iter().map(|(_, m)| *m).collect();
    assert_eq!(called, methods);
}

/// The lines a line diff inserts into `before` to get `after`, and the lines it deletes.
fn line_diff(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for change in similar::TextDiff::from_lines(before, after).iter_all_changes() {
        let line = change.value().trim_end_matches('\n').to_owned();
        match change.tag() {
            similar::ChangeTag::Insert => added.push(line),
            similar::ChangeTag::Delete => removed.push(line),
            similar::ChangeTag::Equal => {}
        }
    }
    (added, removed)
}

#[test]
fn a_changed_document_changes_the_surface_exactly_there() {
    let base = vendored();
    let mut changed = base.clone();
    // 1. one added field
    let agent = &mut changed["components"]["schemas"]["Agent"]["properties"];
    assert!(agent.get("surface_probe").is_none());
    agent["surface_probe"] =
        json!({"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Surface Probe"});
    // 2. one added endpoint
    assert!(
        changed["paths"]
            .get("/api/surface-probes/{probe_id}")
            .is_none()
    );
    changed["paths"]["/api/surface-probes/{probe_id}"] = json!({"get": {
        "operationId": "get_surface_probe",
        "parameters": [{"name": "probe_id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "Successful Response", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Agent"}}}},
            "404": {"description": "Not found", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        },
        "security": [{"DPoP": ["agents:execute"]}]
    }});
    // 3. one removed parameter: the first query parameter of `list_transactions`
    let params = changed["paths"]["/api/transactions"]["get"]["parameters"]
        .as_array_mut()
        .unwrap();
    let gone = params
        .iter()
        .position(|p| p["in"] == "query")
        .expect("list_transactions has a query parameter");
    let gone = params.remove(gone)["name"].as_str().unwrap().to_owned();

    let (added, removed) = line_diff(&surface(base), &surface(changed));
    assert_eq!(
        added,
        vec![
            "get_surface_probe: GET /api/surface-probes/{probe_id}".to_owned(),
            "  auth: DPoP[agents:execute]".to_owned(),
            "  param path probe_id: string".to_owned(),
            "  response 200 application/json: Agent".to_owned(),
            "  errors (raw body): 404".to_owned(),
            "  Agent.surface_probe: string?, optional".to_owned(),
        ]
    );
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(
        removed[0].starts_with(&format!("  param query {gone}: ")),
        "{removed:?}"
    );
}

/// Applies a fixture's RFC 6902 patch (`add`, `remove`, `replace`) to `doc`.
fn apply_patch(doc: &mut Value, patch: &Value) {
    for op in patch.as_array().unwrap() {
        let path = op["path"].as_str().unwrap();
        let (parent, key) = path.rsplit_once('/').unwrap();
        let key = key.replace("~1", "/").replace("~0", "~");
        let parent = doc.pointer_mut(parent).unwrap_or_else(|| panic!("{path}"));
        match (op["op"].as_str().unwrap(), parent) {
            ("remove", Value::Object(m)) => {
                m.remove(&key).unwrap_or_else(|| panic!("{path}"));
            }
            ("remove", Value::Array(a)) => {
                a.remove(key.parse().unwrap());
            }
            ("add", Value::Array(a)) if key == "-" => a.push(op["value"].clone()),
            ("add" | "replace", Value::Object(m)) => {
                m.insert(key, op["value"].clone());
            }
            (other, _) => panic!("unsupported patch op {other} at {path}"),
        }
    }
}

fn semver_fixture(name: &str) -> Value {
    let path = format!(
        "{}/openapi/semver-fixtures/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The rule of `openapi/README.md`, checked in-process on the fixtures `just semver-rule`
/// gives to cargo-semver-checks: each `additive` fixture is classified minor and only adds to
/// the generated Rust surface; each `breaking` one is classified major and removes or changes
/// a line of it.
#[test]
fn the_semver_fixtures_are_classified_as_the_rule_says() {
    let mut base = vendored();
    apply_patch(&mut base, &semver_fixture("_probe")["patch"]);
    let base_surface = rust_surface(base.clone());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/semver-fixtures");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .filter(|n| !n.starts_with('_'))
        .collect();
    names.sort();
    assert_eq!(names.len(), 9, "{names:?}");
    for name in names {
        let fixture = semver_fixture(&name);
        let mut doc = base.clone();
        apply_patch(&mut doc, &fixture["patch"]);
        let changes = openapi_normalize::diff::classify(base.clone(), doc.clone()).unwrap();
        let release = openapi_normalize::diff::release(&changes);
        let (added, removed) = line_diff(&base_surface, &rust_surface(doc));
        match fixture["expect"].as_str().unwrap() {
            "additive" => {
                assert_eq!(release, "minor", "{name}: {changes:#?}");
                assert!(
                    removed.is_empty() && !added.is_empty(),
                    "{name}: -{removed:?} +{added:?}"
                );
            }
            "breaking" => {
                assert_eq!(release, "major", "{name}: {changes:#?}");
                assert!(
                    !removed.is_empty(),
                    "{name}: the Rust surface only grew: {added:?}"
                );
            }
            other => panic!("{name}: expect {other}"),
        }
    }
}

/// Every generated enum is open: a value the document does not list is kept, never a
/// deserialisation error, and written back as it came.
#[test]
fn generated_enums_keep_unknown_values() {
    use ralio::api::types::{Crv, Detail, LocationItem, RegisterCredentialBindingResponse};
    let crv: Crv = serde_json::from_value(json!("P-384")).unwrap();
    assert_eq!(crv, Crv::Other("P-384".into()));
    assert_eq!(serde_json::to_value(&crv).unwrap(), json!("P-384"));
    assert_eq!(crv.as_str(), "P-384");
    let known: Crv = serde_json::from_value(json!("P-256")).unwrap();
    assert_eq!(known, Crv::P256);
    assert_eq!(known.to_string(), "P-256");
    assert_eq!("P-256".parse::<Crv>(), Ok(Crv::P256));

    let detail: Detail = serde_json::from_value(json!(42)).unwrap();
    assert_eq!(detail, Detail::Other(json!(42)));
    let loc: LocationItem = serde_json::from_value(json!(true)).unwrap();
    assert_eq!(loc.to_string(), "true");
    let answer: RegisterCredentialBindingResponse =
        serde_json::from_value(json!({"state": "queued"})).unwrap();
    assert_eq!(
        answer,
        RegisterCredentialBindingResponse::Other(json!({"state": "queued"}))
    );
}

/// How users' own tests build response types: the builder, then `try_into()`. A field the
/// document adds later is optional in the builder, so this code keeps compiling; a required
/// field left unset is an error naming it.
#[test]
fn response_types_are_built_through_their_builders() {
    use ralio::api::types::Transaction;
    use ralio::types::{Decimal, PaymentStatus};
    let tx: Transaction = Transaction::builder()
        .id("tx-1")
        .amount(Decimal::new(50010, 2))
        .currency("EUR")
        .status(PaymentStatus::Completed)
        .try_into()
        .unwrap();
    assert_eq!(tx.amount.to_string(), "500.10");
    assert_eq!(tx.reference, None);
    let missing: Result<Transaction, _> = Transaction::builder().id("tx-1").try_into();
    assert!(missing.unwrap_err().to_string().contains("amount"));
}

/// Request bodies take their required fields in `builder(…)`; optional ones are setters.
#[test]
fn request_bodies_are_built_from_their_required_fields() {
    use ralio::api::types::ChatRequest;
    let body: ChatRequest = ChatRequest::builder("agent-1", "hello")
        .conversation_id(Some("c-1".to_owned()))
        .try_into()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({"agent_id": "agent-1", "message": "hello", "conversation_id": "c-1"})
    );
}
