//! Spec tracking: the generated API surface is snapshotted, every operationId of the vendored
//! document has a generated method, and a changed document changes the surface description
//! exactly where the API changed.

use std::collections::BTreeSet;

use serde_json::{Value, json};

include!(concat!(env!("OUT_DIR"), "/ralio_api_operations.rs"));

fn vendored() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/ralio.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn surface(doc: Value) -> String {
    let normalized = openapi_normalize::normalize(doc).unwrap();
    openapi_normalize::describe_surface(&normalized).unwrap()
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
    changed["components"]["schemas"]["Agent"]["properties"]["spend_limit"] =
        json!({"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Spend Limit"});
    // 2. one added endpoint
    changed["paths"]["/api/agents/{agent_id}"] = json!({"get": {
        "operationId": "get_agent",
        "parameters": [{"name": "agent_id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "Successful Response", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Agent"}}}},
            "404": {"description": "Not found", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        },
        "security": [{"DPoP": []}]
    }});
    // 3. one removed parameter
    let params = changed["paths"]["/api/transactions"]["get"]["parameters"]
        .as_array_mut()
        .unwrap();
    let before = params.len();
    params.retain(|p| p["name"] != "agent_id");
    assert_eq!(params.len(), before - 1);

    let (added, removed) = line_diff(&surface(base), &surface(changed));
    assert_eq!(
        added,
        vec![
            "get_agent: GET /api/agents/{agent_id}".to_owned(),
            "  auth: DPoP[]".to_owned(),
            "  param path agent_id: string".to_owned(),
            "  response 200 application/json: Agent".to_owned(),
            "  errors (raw body): 404".to_owned(),
            "  Agent.spend_limit: string?, optional".to_owned(),
        ]
    );
    assert_eq!(
        removed,
        vec!["  param query agent_id: string?, optional".to_owned()]
    );
}
