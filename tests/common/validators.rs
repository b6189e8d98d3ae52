//! cfn-lint and checkov, the independent judges. Filled in below.
