//! OpenAPI 3.1 → 3.0.3 normaliser for progenitor. Work in progress.
