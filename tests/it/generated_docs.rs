//! The generated types carry the document's descriptions, so `cargo doc` (and docs.rs) shows
//! what each type and field means: a user reads `ChatResponse::reply` or
//! `PaymentIntent::approval_status` in the crate's docs, not in `openapi/ralio.json`.

use std::collections::BTreeMap;

/// The generated client, as `src/api.rs` includes it.
const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/ralio_api.rs"));
const DOCUMENT: &str = include_str!("../../openapi/ralio.json");

/// The doc comment of an item, its lines joined with a space.
fn doc(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join(" ").trim().to_owned()
}

/// The name a field has on the wire: its `#[serde(rename = "…")]`, else its identifier.
fn wire_name(field: &syn::Field) -> String {
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let mut renamed = None;
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                renamed = Some(meta.value()?.parse::<syn::LitStr>()?.value());
            } else if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        });
        if let Some(name) = renamed {
            return name;
        }
    }
    field.ident.as_ref().unwrap().to_string()
}

/// The structs of `ralio::api::types`, by name (not its `builder` and `error` submodules).
fn generated_structs() -> BTreeMap<String, syn::ItemStruct> {
    let file = syn::parse_file(GENERATED).unwrap();
    let types = file
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Mod(m) if m.ident == "types" => m.content.as_ref().map(|(_, items)| items),
            _ => None,
        })
        .expect("a `types` module in the generated code");
    types
        .iter()
        .filter_map(|item| match item {
            syn::Item::Struct(s) => Some((s.ident.to_string(), s.clone())),
            _ => None,
        })
        .collect()
}

/// `HTTPValidationError` and `HttpValidationError`, `Body_create_token` and
/// `BodyCreateToken`: one key.
fn key(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

#[test]
fn every_generated_struct_and_field_shows_the_documents_description() {
    let document: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let structs = generated_structs();
    let mut fields_checked = 0;
    for (schema_name, schema) in schemas {
        let Some(properties) = schema["properties"].as_object() else {
            continue;
        };
        let (name, generated) = structs
            .iter()
            .find(|(name, _)| key(name) == key(schema_name))
            .unwrap_or_else(|| panic!("no generated struct for the schema {schema_name}"));
        let described = schema["description"]
            .as_str()
            .unwrap_or_else(|| panic!("the schema {schema_name} has no description"));
        assert_eq!(doc(&generated.attrs), described, "the doc of {name}");
        let syn::Fields::Named(fields) = &generated.fields else {
            panic!("{name} has no named fields")
        };
        for (property, value) in properties {
            let field = fields
                .named
                .iter()
                .find(|f| wire_name(f) == *property)
                .unwrap_or_else(|| panic!("{name} has no field for {property}"));
            let described = value["description"].as_str().unwrap_or_else(|| {
                panic!("{schema_name}.{property} has no description in openapi/ralio.json")
            });
            assert_eq!(
                doc(&field.attrs),
                described,
                "the doc of {name}::{}",
                field.ident.as_ref().unwrap()
            );
            fields_checked += 1;
        }
    }
    assert!(fields_checked > 50, "{fields_checked}");
    // What a newcomer looked up in the document.
    let field_doc = |ty: &str, field: &str| {
        let syn::Fields::Named(fields) = &structs[ty].fields else {
            unreachable!()
        };
        doc(&fields
            .named
            .iter()
            .find(|f| f.ident.as_ref().unwrap() == field)
            .unwrap()
            .attrs)
    };
    assert!(field_doc("ChatResponse", "reply").contains("reply text"));
    assert!(field_doc("ChatResponse", "conversation_id").contains("next message"));
    assert!(field_doc("PaymentIntent", "total_amount").contains("exact decimal"));
    assert!(field_doc("PaymentIntent", "approval_status").contains("pending_approval"));
}
