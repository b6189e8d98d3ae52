//! Rust actions: transform logic a document cannot express, one file each.
//!
//! An action is named by a document's `action` field; the document still owns the id,
//! explanation and selector. Actions only read the template and propose changes.

mod bucket_logging;
mod kms;
mod package_registry;
mod prod_approval;
mod vpc;

use super::Action;

/// The names documents may use in `action`.
pub const NAMES: &[&str] = &[
    "bucket-logging",
    "kms",
    "vpc",
    "package-registry",
    "prod-approval",
];

/// The action with this name.
pub fn find(name: &str) -> Option<&'static dyn Action> {
    match name {
        "bucket-logging" => Some(&bucket_logging::BucketLogging),
        "kms" => Some(&kms::Kms),
        "vpc" => Some(&vpc::Vpc),
        "package-registry" => Some(&package_registry::PackageRegistry),
        "prod-approval" => Some(&prod_approval::ProdApproval),
        _ => None,
    }
}
