//! VPC security groups of a region (seeds 002/004: network exposure), with their inbound
//! permissions as EC2 lists them: one entry per protocol and port range, each with its CIDRs.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Kind, Listing, ResourceKind, Seen};
use crate::error::Result;
use crate::model::{ResourceKey, Scope, Tags};
use crate::rules::Resource;

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: Option<String>,
    pub ingress: Vec<IngressPermission>,
    pub tags: Tags,
}

/// One inbound permission: a protocol (`tcp`, `udp`, `icmp`, a number, or `-1` for all)
/// and a port range (absent for all traffic), open to these CIDRs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressPermission {
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv4: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<String>,
}

impl IngressPermission {
    /// Whether the permission lets TCP or UDP traffic reach `port`: all traffic does, and a
    /// TCP/UDP range (by name or protocol number) that contains it.
    /// TCP or UDP, by name or protocol number.
    pub fn tcp_or_udp(&self) -> bool {
        matches!(self.protocol.as_str(), "tcp" | "udp" | "6" | "17")
    }

    /// Its port range, when it names one (not "all ports").
    pub fn port_range(&self) -> Option<(u16, u16)> {
        let from = u16::try_from(self.from_port?).ok().filter(|p| *p >= 1)?;
        let to = u16::try_from(self.to_port?).ok().filter(|p| *p >= from)?;
        Some((from, to))
    }

    pub fn reaches(&self, port: u16) -> bool {
        let port = i32::from(port);
        match self.protocol.as_str() {
            "-1" | "all" => true,
            "tcp" | "udp" | "6" | "17" => {
                // EC2 answers -1/-1 (or nothing) for "all ports" of TCP or UDP.
                let from = self.from_port.filter(|p| *p >= 0).unwrap_or(0);
                let to = self.to_port.filter(|p| *p >= 0).unwrap_or(65535);
                from <= port && port <= to
            }
            _ => false,
        }
    }
}

pub struct SecurityGroups;

#[async_trait]
impl Kind for SecurityGroups {
    type Item = SecurityGroup;
    const KIND: ResourceKind = ResourceKind::SecurityGroup;
    const ACCOUNT_WIDE: bool = false;

    async fn list(deps: &crate::Deps, scope: &Scope) -> Result<Listing<SecurityGroup>> {
        Ok(Listing::of(deps.inventory.security_groups(scope).await?))
    }

    fn seen<'a>(scope: &Scope, item: &'a SecurityGroup) -> Seen<'a> {
        Seen {
            key: ResourceKey::new(&scope.account, &scope.region, Self::KIND, &item.id),
            arn: Some(format!("arn:aws:ec2:{}:{}:security-group/{}", scope.region, scope.account, item.id)),
            created_at: None,
            tags: Some(&item.tags),
            resource: Resource::SecurityGroup(item),
        }
    }

    fn billable(_item: &SecurityGroup) -> crate::cost::Billable {
        crate::cost::Billable::Free { why: "a security group is not billed".into() }
    }
}

#[cfg(test)]
mod tests {
    use super::IngressPermission;

    fn perm(protocol: &str, from: Option<i32>, to: Option<i32>) -> IngressPermission {
        IngressPermission { protocol: protocol.into(), from_port: from, to_port: to, ipv4: vec![], ipv6: vec![] }
    }

    #[test]
    fn a_permission_reaches_the_ports_of_its_range_and_protocol() {
        assert!(perm("-1", None, None).reaches(22));
        assert!(perm("tcp", Some(22), Some(22)).reaches(22));
        assert!(perm("tcp", Some(0), Some(65535)).reaches(3389));
        assert!(perm("6", Some(3000), Some(4000)).reaches(3306));
        assert!(perm("tcp", Some(-1), Some(-1)).reaches(5432), "-1/-1 is every port");
        assert!(!perm("tcp", Some(443), Some(443)).reaches(22));
        assert!(!perm("icmp", Some(-1), Some(-1)).reaches(22), "ICMP has no ports");
    }
}
