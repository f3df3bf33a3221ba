use super::*;
use serde_json::json;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../tests/fixtures/fastapi.json")).unwrap()
}

#[test]
fn fastapi_31_fixture_normalises_to_30() {
    let out = normalize(fixture()).unwrap();
    insta::assert_json_snapshot!("fastapi_fixture_normalised", out);
}

#[test]
fn normalised_fixture_has_the_3_0_shapes_progenitor_needs() {
    let out = normalize(fixture()).unwrap();
    assert_eq!(out["openapi"], "3.0.3");
    assert!(out.get("webhooks").is_none() && out.get("jsonSchemaDialect").is_none());
    let item = &out["components"]["schemas"]["Item"]["properties"];
    assert_eq!(
        item["note"],
        json!({"type": "string", "nullable": true, "title": "Note"})
    );
    assert_eq!(
        item["owner"],
        json!({"allOf": [{"$ref": "#/components/schemas/Owner"}], "nullable": true, "description": "Who owns it"})
    );
    assert_eq!(item["kind"]["enum"], json!(["item"]));
    assert_eq!(item["price"]["example"], "500.00");
    assert_eq!(item["blob"], json!({"type": "string", "format": "byte"}));
    let limit = &out["paths"]["/items/{item_id}"]["get"]["parameters"][1]["schema"];
    assert_eq!(limit["minimum"], 0);
    assert_eq!(limit["exclusiveMinimum"], true);
    assert_eq!(limit["nullable"], true);
    // The $ref's description sibling documents the field: kept beside `allOf: [$ref]`.
    assert_eq!(
        out["components"]["schemas"]["Owner"]["properties"]["parent"],
        json!({"allOf": [{"$ref": "#/components/schemas/Owner"}], "description": "3.1 allows a sibling here"})
    );
    // One success media type; error bodies raw.
    let events = &out["paths"]["/events"]["post"]["responses"]["200"]["content"];
    assert_eq!(events.as_object().unwrap().len(), 1);
    assert!(events.get("text/event-stream").is_some());
    let errors = &out["paths"]["/items/{item_id}"]["get"]["responses"];
    assert!(errors["404"]["content"]["*/*"]["schema"]["$ref"].is_string());
    assert!(errors["422"]["content"]["*/*"].is_object());
    // Distinct success schemas merged into one.
    let create = &out["paths"]["/items"]["post"]["responses"];
    assert_eq!(
        create["201"]["content"]["application/json"]["schema"],
        create["202"]["content"]["application/json"]["schema"]
    );
    assert_eq!(
        create["201"]["content"]["application/json"]["schema"]["oneOf"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A 3.0 document passes through idempotently.
    assert_eq!(normalize(out.clone()).unwrap(), out);
}

/// Applies `edit` to the fixture and returns the error the normaliser reports.
fn error_after(edit: impl FnOnce(&mut Value)) -> NormalizeError {
    let mut doc = fixture();
    edit(&mut doc);
    normalize(doc).expect_err("the edited document must be rejected")
}

#[test]
fn rejects_swagger_2() {
    let err = error_after(|d| {
        d.as_object_mut().unwrap().remove("openapi");
        d["swagger"] = json!("2.0");
    });
    assert_eq!(err.path(), "/openapi");
    let err = error_after(|d| d["openapi"] = json!("2.0"));
    assert!(matches!(err, NormalizeError::UnsupportedVersion { .. }));
    assert!(err.to_string().contains("`2.0`"), "{err}");
}

#[test]
fn rejects_operation_without_operation_id_naming_its_path() {
    let err = error_after(|d| {
        d["paths"]["/items"]["post"]
            .as_object_mut()
            .unwrap()
            .remove("operationId");
    });
    assert_eq!(err.path(), "/paths/~1items/post");
    assert!(err.to_string().contains("operationId"), "{err}");
    assert!(err.to_string().contains("/paths/~1items/post"), "{err}");
}

#[test]
fn rejects_cookie_parameters() {
    let err = error_after(|d| {
        d["paths"]["/items/{item_id}"]["get"]["parameters"][1]["in"] = json!("cookie");
    });
    assert_eq!(err.path(), "/paths/~1items~1{item_id}/get/parameters/1");
}

#[test]
fn rejects_optional_path_parameter() {
    let err = error_after(|d| {
        d["paths"]["/items/{item_id}"]["get"]["parameters"][0]["required"] = json!(false);
    });
    assert_eq!(err.path(), "/paths/~1items~1{item_id}/get/parameters/0");
}

#[test]
fn rejects_request_body_with_two_media_types() {
    let err = error_after(|d| {
        d["paths"]["/items"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"] =
            json!({"schema": {"type": "object"}});
    });
    assert_eq!(err.path(), "/paths/~1items/post/requestBody/content");
}

#[test]
fn rejects_two_real_success_media_types() {
    let err = error_after(|d| {
        d["paths"]["/events"]["post"]["responses"]["200"]["content"]["application/json"] =
            json!({"schema": {"type": "object"}});
    });
    assert_eq!(err.path(), "/paths/~1events/post/responses/200/content");
}

#[test]
fn rejects_mixed_success_kinds() {
    let err = error_after(|d| {
        d["paths"]["/items"]["post"]["responses"]["204"] = json!({"description": "No content"});
    });
    assert_eq!(err.path(), "/paths/~1items/post/responses/204");
}

#[test]
fn rejects_default_response() {
    let err = error_after(|d| {
        d["paths"]["/events"]["post"]["responses"]["default"] = json!({"description": "?"});
    });
    assert_eq!(err.path(), "/paths/~1events/post/responses/default");
}

#[test]
fn rejects_unsupported_schema_keywords_deep_in_a_schema() {
    let err = error_after(|d| {
        d["components"]["schemas"]["Item"]["properties"]["tags"]["anyOf"][0]["prefixItems"] =
            json!([{"type": "string"}]);
    });
    assert_eq!(
        err.path(),
        "/components/schemas/Item/properties/tags/anyOf/0/prefixItems"
    );
}

#[test]
fn rejects_type_array_with_two_non_null_types() {
    let err = error_after(|d| {
        d["components"]["schemas"]["Item"]["properties"]["note"]["type"] =
            json!(["string", "integer", "null"]);
    });
    assert_eq!(err.path(), "/components/schemas/Item/properties/note/type");
}

#[test]
fn rejects_dangling_response_ref() {
    let err = error_after(|d| {
        d["components"]["responses"]
            .as_object_mut()
            .unwrap()
            .remove("NotFound");
    });
    assert_eq!(err.path(), "/paths/~1items~1{item_id}/get/responses/404");
}

#[test]
fn rejects_non_object_document() {
    let err = normalize(json!([1, 2])).unwrap_err();
    assert_eq!(err.path(), "");
    assert!(matches!(err, NormalizeError::WrongType { .. }));
}

#[test]
fn surface_of_the_fixture() {
    let out = normalize(fixture()).unwrap();
    insta::assert_snapshot!("fastapi_fixture_surface", describe_surface(&out).unwrap());
}

#[test]
fn marks_set_a_format_on_named_properties() {
    let mut doc = normalize(fixture()).unwrap();
    mark_formats(&mut doc, &[("Item.note", "decimal")]).unwrap();
    let note = &doc["components"]["schemas"]["Item"]["properties"]["note"];
    assert_eq!(note["format"], "decimal");
    assert_eq!(note["nullable"], true, "a nullable property stays nullable");
}

#[test]
fn a_mark_on_a_missing_property_or_a_reference_names_its_path() {
    let mut doc = normalize(fixture()).unwrap();
    let err = mark_formats(&mut doc, &[("Item.nope", "decimal")]).unwrap_err();
    assert_eq!(err.path(), "/components/schemas/Item/properties/nope");
    let err = mark_formats(&mut doc, &[("Item.owner", "decimal")]).unwrap_err();
    assert_eq!(err.path(), "/components/schemas/Item/properties/owner");
    let err = mark_formats(&mut doc, &[("no dot", "decimal")]).unwrap_err();
    assert!(err.to_string().contains("Schema.property"), "{err}");
}
