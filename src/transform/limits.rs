//! CloudFormation's limits on one template, checked on what hardening made of it.
//!
//! Hardening adds resources (a key, an access-log bucket, policies) and parameters (SSM
//! lookups), and grows the text. A template that was within CloudFormation's limits and is not
//! after hardening would be rejected at deploy time, so it is an error here, before anything is
//! written. A template already past a limit as synthesized is left to CloudFormation: hardening
//! did not break it. The limits are those of CloudFormation's quotas, as cfn-lint checks them.

use serde_json::Value;

use crate::error::{Error, Result};

/// The most entries CloudFormation accepts in each counted section of a template.
pub const SECTIONS: [(&str, usize); 4] = [
    ("Resources", 500),
    ("Parameters", 200),
    ("Outputs", 200),
    ("Mappings", 200),
];

/// The largest template body CloudFormation reads from S3, in bytes (cfn-lint's figure).
pub const BODY_BYTES: usize = 1_000_000;

/// The number of entries of each of [`SECTIONS`] in `template`.
pub fn counts(template: &Value) -> [usize; 4] {
    SECTIONS.map(|(section, _)| {
        template
            .get(section)
            .and_then(Value::as_object)
            .map_or(0, |m| m.len())
    })
}

/// An error if hardening took a section from within its limit to past it.
pub fn check_counts(before: [usize; 4], after: [usize; 4]) -> Result<()> {
    for (i, (section, limit)) in SECTIONS.into_iter().enumerate() {
        exceeded(section, before[i], after[i], limit)?;
    }
    Ok(())
}

/// An error if hardening took the template's text from within the size limit to past it.
pub fn check_size(before: usize, after: usize) -> Result<()> {
    exceeded("bytes", before, after, BODY_BYTES)
}

fn exceeded(what: &'static str, before: usize, after: usize, limit: usize) -> Result<()> {
    if before <= limit && after > limit {
        return Err(Error::Limit {
            what,
            before,
            after,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_limit_hardening_passes_is_an_error() {
        let template = json!({"Resources": {"A": {}, "B": {}}, "Parameters": {"P": {}}});
        assert_eq!(counts(&template), [2, 1, 0, 0]);
        assert!(check_counts([500, 200, 200, 200], [500, 200, 200, 200]).is_ok());
        let err = check_counts([498, 199, 0, 0], [503, 199, 0, 0]).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "hardening would give the template 503 Resources; CloudFormation allows at most 500 (it had 498): "
            ),
            "{err}"
        );
        let err = check_counts([10, 199, 0, 0], [10, 202, 0, 0]).unwrap_err();
        assert!(err.to_string().contains("202 Parameters"), "{err}");
        // Already past the limit as synthesized: not hardening's doing.
        assert!(check_counts([501, 0, 0, 0], [506, 0, 0, 0]).is_ok());
        assert!(check_size(999_999, 1_000_000).is_ok());
        let err = check_size(949_862, 1_135_640).unwrap_err();
        assert!(err.to_string().contains("1135640 bytes"), "{err}");
        assert!(check_size(1_000_001, 1_200_000).is_ok());
    }
}
