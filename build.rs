//! Placeholder: the OpenAPI code generation lands with issue 2.
fn main() {}
