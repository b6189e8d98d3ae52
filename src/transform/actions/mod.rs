//! Rust actions: transform logic a document cannot express, one file each.
//!
//! An action is named by a document's `action` field; the document still owns the id,
//! explanation and selector. Actions only read the template and propose changes.

mod bucket_logging;

use super::Action;

/// The names documents may use in `action`.
pub const NAMES: &[&str] = &["bucket-logging"];

/// The action with this name.
pub fn find(name: &str) -> Option<&'static dyn Action> {
    match name {
        "bucket-logging" => Some(&bucket_logging::BucketLogging),
        _ => None,
    }
}
