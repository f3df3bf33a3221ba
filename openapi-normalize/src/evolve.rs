//! Shapes the generated `types` so that an additive change to the document is a semver-minor
//! change of the generated crate (feature `rust`):
//!
//! - every struct and enum of `types` is `#[non_exhaustive]`: a new field or value is not a
//!   break for code that builds or matches them outside the crate;
//! - every enum is open: a string enum (`enum: ["a", "b"]`) becomes its known values plus
//!   `Other(String)` (its own `Deserialize` keeps any string), an untagged enum (`anyOf`,
//!   `oneOf`) gains a last `Other(serde_json::Value)` variant, so a value the document adds
//!   later is kept, never a deserialisation error;
//! - request bodies (the types an operation's `body` takes, and the types they contain) are
//!   built with `Type::builder(required fields…)`: a new required field changes that
//!   signature, so it is a visible break, while a new optional field is one more setter. The
//!   operation builders' `body_map` (which starts from an empty body and would turn a new
//!   required field into a run-time error) is hidden;
//! - response types keep `Type::builder()` (every field a setter, then `try_into()`), the
//!   documented way for users' tests to build them that survives new fields.
//!
//! A shape this module cannot open fails generation with a message naming the type.

use std::collections::{BTreeMap, BTreeSet};

use quote::{format_ident, quote};
use syn::visit_mut::VisitMut;

use crate::rust::{type_key, types_module};

fn non_exhaustive() -> syn::Attribute {
    syn::parse_quote!(#[non_exhaustive])
}

fn is_serde_with(attr: &syn::Attribute, word: &str) -> bool {
    attr.path().is_ident("serde") && quote!(#attr).to_string().contains(word)
}

/// The wire value of a unit variant: its `#[serde(rename = "…")]`, else its name.
fn wire_value(v: &syn::Variant) -> Result<String, String> {
    for attr in v.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let mut found = None;
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let lit: syn::LitStr = meta.value()?.parse()?;
                found = Some(lit.value());
            } else if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        })
        .map_err(|e| format!("generated serde attribute does not parse: {e}"))?;
        if let Some(f) = found {
            return Ok(f);
        }
    }
    Ok(v.ident.to_string())
}

/// The names of the `types` items that `ty` mentions.
fn mentioned(ty: &str, names: &BTreeSet<String>) -> Vec<String> {
    ty.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| names.contains(*w))
        .map(str::to_owned)
        .collect()
}

/// The `types` a request body is made of: each operation builder's `body` argument type, and
/// every type of `types` its fields (or variants) mention, transitively.
fn request_types(file: &syn::File) -> BTreeSet<String> {
    let mut roots = Vec::new();
    for item in &file.items {
        let syn::Item::Mod(m) = item else { continue };
        if m.ident != "builder" {
            continue;
        }
        for imp in m.content.iter().flat_map(|(_, i)| i) {
            let syn::Item::Impl(imp) = imp else { continue };
            for f in &imp.items {
                let syn::ImplItem::Fn(f) = f else { continue };
                if f.sig.ident != "body" {
                    continue;
                }
                let bounds = f.sig.generics.where_clause.as_ref().map(|w| {
                    w.predicates
                        .iter()
                        .map(|p| quote!(#p).to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                roots.extend(bounds);
            }
        }
    }
    let Some(items) = file.items.iter().find_map(|item| match item {
        syn::Item::Mod(m) if m.ident == "types" => m.content.as_ref().map(|(_, i)| i),
        _ => None,
    }) else {
        return BTreeSet::new();
    };
    let mut contains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let names: BTreeSet<String> = items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Struct(s) => Some(s.ident.to_string()),
            syn::Item::Enum(e) => Some(e.ident.to_string()),
            syn::Item::Type(t) => Some(t.ident.to_string()),
            _ => None,
        })
        .collect();
    for item in items {
        let (name, tys): (String, Vec<&syn::Type>) = match item {
            syn::Item::Struct(s) => (
                s.ident.to_string(),
                s.fields.iter().map(|f| &f.ty).collect(),
            ),
            syn::Item::Enum(e) => (
                e.ident.to_string(),
                e.variants
                    .iter()
                    .flat_map(|v| v.fields.iter().map(|f| &f.ty))
                    .collect(),
            ),
            syn::Item::Type(t) => (t.ident.to_string(), vec![&*t.ty]),
            _ => continue,
        };
        let entry = contains.entry(name).or_default();
        for ty in tys {
            entry.extend(mentioned(&type_key(ty), &names));
        }
    }
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = roots
        .iter()
        .flat_map(|r| {
            // `V: std::convert::TryInto<types::ChatRequest>, …`: the type after `types ::`.
            r.split("types ::")
                .skip(1)
                .filter_map(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|n| names.contains(n))
        .collect();
    while let Some(n) = todo.pop() {
        if out.insert(n.clone()) {
            todo.extend(contains.get(&n).into_iter().flatten().cloned());
        }
    }
    out
}

/// Adds `Self::Other(x) => x.fmt(f)` to the `match` of a generated `Display` impl.
struct AddOtherArm;

impl VisitMut for AddOtherArm {
    fn visit_expr_match_mut(&mut self, m: &mut syn::ExprMatch) {
        m.arms.push(syn::parse_quote!(Self::Other(x) => x.fmt(f),));
    }
}

fn impl_target(imp: &syn::ItemImpl) -> String {
    type_key(&imp.self_ty)
}

fn impl_trait(imp: &syn::ItemImpl) -> Option<String> {
    imp.trait_
        .as_ref()
        .and_then(|(_, p, _)| p.segments.last())
        .map(|s| s.ident.to_string())
}

/// See the module documentation.
pub(crate) fn shape_for_evolution(file: &mut syn::File) -> Result<(), String> {
    let requests = request_types(file);

    // Operation builders: `body_map` starts from an empty body (a new required field would be
    // a run-time error there); `body(Type::builder(…))` is the documented way.
    for item in file.items.iter_mut() {
        let syn::Item::Mod(m) = item else { continue };
        if m.ident != "builder" {
            continue;
        }
        for imp in m.content.iter_mut().flat_map(|(_, i)| i) {
            let syn::Item::Impl(imp) = imp else { continue };
            for f in imp.items.iter_mut() {
                if let syn::ImplItem::Fn(f) = f
                    && f.sig.ident == "body_map"
                {
                    f.attrs.push(syn::parse_quote!(#[doc(hidden)]));
                }
            }
        }
    }

    let Some(items) = types_module(file) else {
        return Ok(());
    };
    let mut string_enums = BTreeSet::new();
    let mut untagged = BTreeSet::new();
    let mut added: Vec<syn::Item> = Vec::new();
    let mut fields: BTreeMap<String, Vec<(syn::Ident, syn::Type)>> = BTreeMap::new();
    for item in items.iter_mut() {
        match item {
            syn::Item::Struct(s) => {
                s.attrs.push(non_exhaustive());
                if let syn::Fields::Named(named) = &s.fields {
                    fields.insert(
                        s.ident.to_string(),
                        named
                            .named
                            .iter()
                            .filter_map(|f| Some((f.ident.clone()?, f.ty.clone())))
                            .collect(),
                    );
                }
            }
            syn::Item::Enum(e) => {
                let name = e.ident.clone();
                if e.variants.iter().any(|v| v.ident == "Other") {
                    return Err(format!(
                        "enum `{name}` has a value named `Other`, the name of the variant that keeps unknown values; rename it in the document or teach openapi-normalize another name"
                    ));
                }
                let is_untagged = e.attrs.iter().any(|a| is_serde_with(a, "untagged"));
                let all_unit = e
                    .variants
                    .iter()
                    .all(|v| matches!(v.fields, syn::Fields::Unit));
                if is_untagged {
                    e.attrs.push(non_exhaustive());
                    e.variants.push(syn::parse_quote! {
                        /// A value of a shape this version of the SDK does not know, kept as sent.
                        Other(::serde_json::Value)
                    });
                    untagged.insert(name.to_string());
                } else if all_unit && !e.attrs.iter().any(|a| is_serde_with(a, "tag")) {
                    let docs: Vec<&syn::Attribute> = e
                        .attrs
                        .iter()
                        .filter(|a| a.path().is_ident("doc"))
                        .collect();
                    let mut idents = Vec::new();
                    let mut wires = Vec::new();
                    let mut vattrs = Vec::new();
                    for v in &e.variants {
                        idents.push(v.ident.clone());
                        wires.push(wire_value(v)?);
                        vattrs.push(
                            v.attrs
                                .iter()
                                .filter(|a| !a.path().is_ident("serde"))
                                .cloned()
                                .collect::<Vec<_>>(),
                        );
                    }
                    let open: syn::ItemEnum = syn::parse_quote! {
                        #(#docs)*
                        #[derive(Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
                        #[non_exhaustive]
                        pub enum #name {
                            #( #(#vattrs)* #idents, )*
                            /// A value this version of the SDK does not know, kept as sent.
                            Other(::std::string::String),
                        }
                    };
                    *e = open;
                    let impls: syn::File = syn::parse_quote! {
                        impl #name {
                            /// The value as it appears on the wire.
                            pub fn as_str(&self) -> &str {
                                match self {
                                    #( Self::#idents => #wires, )*
                                    Self::Other(s) => s,
                                }
                            }
                        }
                        impl ::std::fmt::Display for #name {
                            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                                f.write_str(self.as_str())
                            }
                        }
                        impl ::std::convert::From<&str> for #name {
                            fn from(value: &str) -> Self {
                                match value {
                                    #( #wires => Self::#idents, )*
                                    other => Self::Other(other.to_owned()),
                                }
                            }
                        }
                        impl ::std::convert::From<::std::string::String> for #name {
                            fn from(value: ::std::string::String) -> Self {
                                match value.as_str() {
                                    #( #wires => Self::#idents, )*
                                    _ => Self::Other(value),
                                }
                            }
                        }
                        impl ::std::str::FromStr for #name {
                            type Err = ::std::convert::Infallible;
                            fn from_str(value: &str) -> ::std::result::Result<Self, Self::Err> {
                                Ok(Self::from(value))
                            }
                        }
                        impl ::serde::Serialize for #name {
                            fn serialize<S: ::serde::Serializer>(
                                &self,
                                serializer: S,
                            ) -> ::std::result::Result<S::Ok, S::Error> {
                                serializer.serialize_str(self.as_str())
                            }
                        }
                        impl<'de> ::serde::Deserialize<'de> for #name {
                            fn deserialize<D: ::serde::Deserializer<'de>>(
                                deserializer: D,
                            ) -> ::std::result::Result<Self, D::Error> {
                                let value =
                                    <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(
                                        deserializer,
                                    )?;
                                Ok(Self::from(value.as_ref()))
                            }
                        }
                    };
                    added.extend(impls.items);
                    string_enums.insert(name.to_string());
                } else {
                    return Err(format!(
                        "enum `{name}` has a shape openapi-normalize cannot open (neither a string enum nor untagged); extend openapi-normalize's `evolve` module"
                    ));
                }
            }
            _ => {}
        }
    }

    // The string enums' generated conversions and `Display` are replaced by the open ones.
    items.retain(|item| match item {
        syn::Item::Impl(imp) => {
            !(string_enums.contains(&impl_target(imp))
                && matches!(
                    impl_trait(imp).as_deref(),
                    Some("Display" | "FromStr" | "TryFrom")
                ))
        }
        _ => true,
    });
    for item in items.iter_mut() {
        let syn::Item::Impl(imp) = item else { continue };
        let target = impl_target(imp);
        if !untagged.contains(&target) {
            continue;
        }
        match impl_trait(imp).as_deref() {
            Some("Display") => AddOtherArm.visit_item_impl_mut(imp),
            Some("From" | "Default") | None => {}
            Some(other) => {
                if quote!(#imp).to_string().contains("match") {
                    return Err(format!(
                        "the generated `{other}` impl of `{target}` matches on its variants; openapi-normalize cannot add the `Other` variant there"
                    ));
                }
            }
        }
    }

    // Request bodies: `builder(required…)`; response types: `builder()` documented.
    let required = required_fields(items);
    for item in items.iter_mut() {
        let syn::Item::Impl(imp) = item else { continue };
        if imp.trait_.is_some() {
            continue;
        }
        let target = impl_target(imp);
        for f in imp.items.iter_mut() {
            let syn::ImplItem::Fn(f) = f else { continue };
            if f.sig.ident != "builder" {
                continue;
            }
            let name = format_ident!("{target}");
            if requests.contains(&target) {
                let req: Vec<(syn::Ident, syn::Type)> = required
                    .get(&target)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| fields.get(&target)?.iter().find(|(i, _)| i == r).cloned())
                    .collect();
                let idents: Vec<&syn::Ident> = req.iter().map(|(i, _)| i).collect();
                let tys: Vec<&syn::Type> = req.iter().map(|(_, t)| t).collect();
                let generics: Vec<syn::Ident> =
                    (0..req.len()).map(|i| format_ident!("T{i}")).collect();
                let doc = format!(
                    " Starts a `{target}` request body with its required fields; set optional \
                     fields with the builder's methods and pass the builder to the operation's \
                     `body(…)` (or `try_into()` it). A required field the API adds later is a \
                     new argument here, so the compiler points at every call to update."
                );
                *f = syn::parse_quote! {
                    #[doc = #doc]
                    pub fn builder<#(#generics),*>(#(#idents: #generics),*) -> builder::#name
                    where
                        #(
                            #generics: ::std::convert::TryInto<#tys>,
                            <#generics as ::std::convert::TryInto<#tys>>::Error: ::std::fmt::Display,
                        )*
                    {
                        builder::#name::default() #( .#idents(#idents) )*
                    }
                };
            } else {
                let doc = format!(
                    " Starts building a `{target}` (for tests and fakes): set fields with the \
                     builder's methods, then `try_into()` (an unset required field is an \
                     error). Fields the API adds later are optional here, so code written \
                     this way keeps compiling."
                );
                f.attrs.push(syn::parse_quote!(#[doc = #doc]));
            }
        }
    }
    // A request builder's `Default` starts with its required fields unset: not the way to
    // build one (see `builder(…)` above), so it is hidden.
    if let Some(builders) = items.iter_mut().find_map(|i| match i {
        syn::Item::Mod(m) if m.ident == "builder" => m.content.as_mut().map(|(_, i)| i),
        _ => None,
    }) {
        for item in builders.iter_mut() {
            if let syn::Item::Impl(imp) = item
                && impl_trait(imp).as_deref() == Some("Default")
                && requests.contains(&impl_target(imp))
            {
                imp.attrs.push(syn::parse_quote!(#[doc(hidden)]));
            }
        }
    }
    items.extend(added);
    Ok(())
}

/// Each struct's required fields (in declaration order): those its generated builder's
/// `Default` leaves as `Err("no value supplied for …")`.
fn required_fields(items: &[syn::Item]) -> BTreeMap<String, Vec<syn::Ident>> {
    let mut out = BTreeMap::new();
    let Some(builders) = items.iter().find_map(|i| match i {
        syn::Item::Mod(m) if m.ident == "builder" => m.content.as_ref().map(|(_, i)| i),
        _ => None,
    }) else {
        return out;
    };
    for item in builders {
        let syn::Item::Impl(imp) = item else { continue };
        if impl_trait(imp).as_deref() != Some("Default") {
            continue;
        }
        let mut req = Vec::new();
        for f in &imp.items {
            let syn::ImplItem::Fn(f) = f else { continue };
            for stmt in &f.block.stmts {
                let syn::Stmt::Expr(syn::Expr::Struct(s), _) = stmt else {
                    continue;
                };
                for fv in &s.fields {
                    let is_err = matches!(&fv.expr, syn::Expr::Call(c)
                        if matches!(&*c.func, syn::Expr::Path(p) if p.path.is_ident("Err")));
                    if let (true, syn::Member::Named(id)) = (is_err, &fv.member) {
                        req.push(id.clone());
                    }
                }
            }
        }
        out.insert(impl_target(imp), req);
    }
    out
}
