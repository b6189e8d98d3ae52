//! The environment's network as template values: literals, or `Ref`s to SSM-typed parameters.
//!
//! A value the config gives literally is written as it is. A value given as `{"ssm": "/name"}`
//! becomes a template parameter of the matching `AWS::SSM::Parameter::Value<…>` type, defaulting
//! to that name, so CloudFormation reads Parameter Store at deploy time; the parameter names are
//! fixed ([`Part::parameter`]) so a second run finds them. Only the parameters something refers
//! to are added. Nothing here proposes changes; the action does.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::config::{Source, VpcConfig};
use crate::error::{Error, Result};
use crate::transform::cfn::ref_to;

/// One of the three network values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    VpcId,
    SubnetIds,
    SecurityGroupIds,
}

impl Part {
    /// The template parameter added when the value comes from SSM.
    pub fn parameter(self) -> &'static str {
        match self {
            Part::VpcId => "CdkHardenVpcId",
            Part::SubnetIds => "CdkHardenSubnetIds",
            Part::SecurityGroupIds => "CdkHardenSecurityGroupIds",
        }
    }

    /// The SSM parameter type, so CloudFormation checks the value before it creates anything.
    pub fn ssm_type(self) -> &'static str {
        match self {
            Part::VpcId => "AWS::SSM::Parameter::Value<AWS::EC2::VPC::Id>",
            Part::SubnetIds => "AWS::SSM::Parameter::Value<List<AWS::EC2::Subnet::Id>>",
            Part::SecurityGroupIds => {
                "AWS::SSM::Parameter::Value<List<AWS::EC2::SecurityGroup::Id>>"
            }
        }
    }

    /// The config key, for messages.
    pub fn config_key(self) -> &'static str {
        match self {
            Part::VpcId => "vpc.vpcId",
            Part::SubnetIds => "vpc.subnetIds",
            Part::SecurityGroupIds => "vpc.securityGroupIds",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Part::VpcId => "VPC id",
            Part::SubnetIds => "subnet ids",
            Part::SecurityGroupIds => "security group ids",
        }
    }
}

/// The ARN prefix the `ec2:Subnet` condition matches subnets with. Subnet ids are unique, so the
/// partition, region and account are wildcards: the account because subnets shared from a
/// network account (AWS RAM) carry the owner's account in their ARN, and all three because an
/// `Fn::Join` delimiter (needed for SSM lists) cannot contain a reference.
pub const SUBNET_ARN_PREFIX: &str = "arn:*:ec2:*:*:subnet/";

/// Hands out the network values and remembers which SSM parameters they need.
pub struct Network<'a> {
    config: &'a VpcConfig,
    used: BTreeSet<Part>,
}

impl<'a> Network<'a> {
    /// Checks the config's literal values; errors name the environment and the key.
    pub fn new(config: &'a VpcConfig, environment: &str) -> Result<Network<'a>> {
        let bad = |part: Part, problem: String| Error::Environment {
            environment: environment.to_string(),
            problem: format!("`{}`: {problem}", part.config_key()),
        };
        let ssm_ok = |part: Part, name: &str| {
            if name.trim().is_empty() {
                Err(bad(part, "the SSM parameter name is empty".into()))
            } else if !crate::transform::cfn::is_ssm_parameter_name(name) {
                Err(bad(
                    part,
                    format!("`{name}` is not an SSM parameter name (1 to 2,048 letters, digits and `_.-/`)"),
                ))
            } else {
                Ok(())
            }
        };
        match &config.vpc_id {
            Source::Literal(id) if !id.starts_with("vpc-") => {
                return Err(bad(
                    Part::VpcId,
                    format!("`{id}` is not a VPC id (`vpc-…`)"),
                ));
            }
            Source::Ssm(s) => ssm_ok(Part::VpcId, &s.ssm)?,
            Source::Literal(_) => {}
        }
        for (part, source, prefix, max) in [
            (Part::SubnetIds, &config.subnet_ids, "subnet-", 16),
            (Part::SecurityGroupIds, &config.security_group_ids, "sg-", 5),
        ] {
            match source {
                Source::Literal(ids) => {
                    if ids.is_empty() || ids.len() > max {
                        return Err(bad(
                            part,
                            format!("give 1 to {max} {}, not {}", part.what(), ids.len()),
                        ));
                    }
                    if let Some(id) = ids.iter().find(|id| !id.starts_with(prefix)) {
                        return Err(bad(
                            part,
                            format!("`{id}` is not one of the {} (`{prefix}…`)", part.what()),
                        ));
                    }
                }
                Source::Ssm(s) => ssm_ok(part, &s.ssm)?,
            }
        }
        Ok(Network {
            config,
            used: BTreeSet::new(),
        })
    }

    /// The value of one part: a literal, or a `Ref` to its parameter.
    pub fn value(&mut self, part: Part) -> Value {
        let literal = match part {
            Part::VpcId => literal(&self.config.vpc_id),
            Part::SubnetIds => literal(&self.config.subnet_ids),
            Part::SecurityGroupIds => literal(&self.config.security_group_ids),
        };
        literal.unwrap_or_else(|| {
            self.used.insert(part);
            ref_to(part.parameter())
        })
    }

    /// `VpcConfig` of an `AWS::Lambda::Function`.
    pub fn lambda_vpc_config(&mut self) -> Value {
        json!({
            "SecurityGroupIds": self.value(Part::SecurityGroupIds),
            "SubnetIds": self.value(Part::SubnetIds),
        })
    }

    /// `VpcConfig` of an `AWS::CodeBuild::Project`.
    pub fn codebuild_vpc_config(&mut self) -> Value {
        json!({
            "SecurityGroupIds": self.value(Part::SecurityGroupIds),
            "Subnets": self.value(Part::SubnetIds),
            "VpcId": self.value(Part::VpcId),
        })
    }

    /// The subnet ARN patterns for the `ec2:Subnet` condition (`ArnLike`), one per subnet: a
    /// literal list, or for an SSM list `Fn::Split` over `Fn::Join`, which prefixes every id.
    pub fn subnet_arn_patterns(&mut self) -> Value {
        match &self.config.subnet_ids {
            Source::Literal(ids) => ids
                .iter()
                .map(|id| json!(format!("{SUBNET_ARN_PREFIX}{id}")))
                .collect(),
            Source::Ssm(_) => {
                let list = self.value(Part::SubnetIds);
                json!({
                    "Fn::Split": [
                        ",",
                        { "Fn::Join": ["", [SUBNET_ARN_PREFIX, { "Fn::Join": [format!(",{SUBNET_ARN_PREFIX}"), list] }]] }
                    ]
                })
            }
        }
    }

    /// The parameters the values handed out refer to, in a fixed order, each as
    /// (name, definition).
    pub fn parameters(&self) -> Vec<(&'static str, Value)> {
        self.used
            .iter()
            .map(|part| {
                let name = match part {
                    Part::VpcId => ssm_name(&self.config.vpc_id),
                    Part::SubnetIds => ssm_name(&self.config.subnet_ids),
                    Part::SecurityGroupIds => ssm_name(&self.config.security_group_ids),
                }
                .expect("only SSM values use parameters");
                (
                    part.parameter(),
                    json!({
                        "Type": part.ssm_type(),
                        "Default": name,
                        "Description": format!(
                            "The {} that functions and builds run in, read from SSM Parameter Store by cdk-harden's vpc transform.",
                            part.what()
                        ),
                    }),
                )
            })
            .collect()
    }
}

fn literal<T: serde::Serialize>(source: &Source<T>) -> Option<Value> {
    match source {
        Source::Literal(v) => Some(serde_json::to_value(v).expect("config values serialize")),
        Source::Ssm(_) => None,
    }
}

fn ssm_name<T>(source: &Source<T>) -> Option<&str> {
    match source {
        Source::Literal(_) => None,
        Source::Ssm(s) => Some(&s.ssm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SsmRef;

    fn literal_config() -> VpcConfig {
        VpcConfig {
            vpc_id: Source::Literal("vpc-1".into()),
            subnet_ids: Source::Literal(vec!["subnet-a".into(), "subnet-b".into()]),
            security_group_ids: Source::Literal(vec!["sg-1".into()]),
        }
    }

    fn ssm(name: &str) -> SsmRef {
        SsmRef { ssm: name.into() }
    }

    #[test]
    fn literal_values_are_written_as_given_and_need_no_parameters() {
        let config = literal_config();
        let mut n = Network::new(&config, "1/r").unwrap();
        assert_eq!(
            n.codebuild_vpc_config(),
            json!({"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-a", "subnet-b"], "VpcId": "vpc-1"})
        );
        assert_eq!(
            n.subnet_arn_patterns(),
            json!([
                "arn:*:ec2:*:*:subnet/subnet-a",
                "arn:*:ec2:*:*:subnet/subnet-b"
            ])
        );
        assert!(n.parameters().is_empty());
    }

    #[test]
    fn ssm_values_become_typed_parameters_only_when_used() {
        let config = VpcConfig {
            vpc_id: Source::Ssm(ssm("/net/vpc")),
            subnet_ids: Source::Ssm(ssm("/net/subnets")),
            security_group_ids: Source::Ssm(ssm("/net/sgs")),
        };
        let mut n = Network::new(&config, "1/r").unwrap();
        assert_eq!(
            n.lambda_vpc_config(),
            json!({"SecurityGroupIds": {"Ref": "CdkHardenSecurityGroupIds"}, "SubnetIds": {"Ref": "CdkHardenSubnetIds"}})
        );
        let names: Vec<_> = n.parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["CdkHardenSubnetIds", "CdkHardenSecurityGroupIds"]);
        n.codebuild_vpc_config();
        let params = n.parameters();
        assert_eq!(params[0].0, "CdkHardenVpcId");
        assert_eq!(
            params[0].1["Type"],
            "AWS::SSM::Parameter::Value<AWS::EC2::VPC::Id>"
        );
        assert_eq!(params[0].1["Default"], "/net/vpc");
        assert_eq!(
            params[1].1["Type"],
            "AWS::SSM::Parameter::Value<List<AWS::EC2::Subnet::Id>>"
        );
        assert_eq!(
            params[2].1["Type"],
            "AWS::SSM::Parameter::Value<List<AWS::EC2::SecurityGroup::Id>>"
        );
    }

    #[test]
    fn ssm_subnet_arns_are_built_by_joining_and_splitting() {
        let mut config = literal_config();
        config.subnet_ids = Source::Ssm(ssm("/net/subnets"));
        let mut n = Network::new(&config, "1/r").unwrap();
        let v = n.subnet_arn_patterns();
        assert_eq!(v["Fn::Split"][0], ",");
        let join = &v["Fn::Split"][1]["Fn::Join"];
        assert_eq!(join[1][0], SUBNET_ARN_PREFIX);
        assert_eq!(join[1][1]["Fn::Join"][0], format!(",{SUBNET_ARN_PREFIX}"));
        assert_eq!(
            join[1][1]["Fn::Join"][1],
            json!({"Ref": "CdkHardenSubnetIds"})
        );
        // The delimiter of Fn::Join must be a literal string.
        assert!(join[1][1]["Fn::Join"][0].is_string());
    }

    #[test]
    fn bad_literals_are_errors_naming_the_environment_and_key() {
        let mut config = literal_config();
        config.subnet_ids = Source::Literal(vec![]);
        let err = Network::new(&config, "222222222222/eu-west-1")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("222222222222/eu-west-1") && err.contains("vpc.subnetIds"),
            "{err}"
        );
        let mut config = literal_config();
        config.security_group_ids = Source::Literal(vec!["subnet-x".into()]);
        let err = Network::new(&config, "e").err().unwrap().to_string();
        assert!(
            err.contains("vpc.securityGroupIds") && err.contains("subnet-x"),
            "{err}"
        );
        let mut config = literal_config();
        config.vpc_id = Source::Literal("vpc1".into());
        assert!(Network::new(&config, "e").is_err());
    }
}
