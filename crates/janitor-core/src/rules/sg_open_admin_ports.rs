//! Seeds 002/004 (security): a security group that lets the whole internet (`0.0.0.0/0` or
//! `::/0`) reach an administration or database port. The action revokes exactly the
//! world-open ranges found (the same protocol, ports and CIDR), nothing else of the group.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Judgement, Resource, Rule, RuleConfig, RuleDoc, yes};
use crate::kinds::security_group::IngressPermission;
use crate::model::{Action, ResourceKind};
use crate::policy::Policy;

pub const WORLD_V4: &str = "0.0.0.0/0";
pub const WORLD_V6: &str = "::/0";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// TCP/UDP ports nobody should reach from anywhere.
    #[serde(default = "default_ports")]
    pub ports: Vec<u16>,
    #[serde(default = "default_action")]
    pub action: OpenPortsAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpenPortsAction {
    RevokeOpenIngress,
    NotifyOnly,
}

/// SSH, RDP, and the usual database and cache ports (MySQL, PostgreSQL, SQL Server,
/// Oracle, MongoDB, Redis, Elasticsearch, Memcached).
fn default_ports() -> Vec<u16> {
    vec![22, 3389, 3306, 5432, 1433, 1521, 27017, 6379, 9200, 11211]
}

fn default_action() -> OpenPortsAction {
    OpenPortsAction::RevokeOpenIngress
}

impl From<OpenPortsAction> for Action {
    fn from(value: OpenPortsAction) -> Action {
        match value {
            OpenPortsAction::RevokeOpenIngress => Action::RevokeOpenIngress,
            OpenPortsAction::NotifyOnly => Action::NotifyOnly,
        }
    }
}

/// A list longer than this is not "admin ports" any more.
pub const MAX_PORTS: usize = 64;

impl RuleConfig for Config {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn validate(&self, table: &str) -> Result<(), String> {
        if self.ports.is_empty() || self.ports.contains(&0) || self.ports.len() > MAX_PORTS {
            return Err(format!("{table}.ports: needs 1 to {MAX_PORTS} ports, each between 1 and 65535"));
        }
        Ok(())
    }
}

/// Whether revoking the permission cuts access to listed ports only: TCP or UDP, and every
/// port of its range on the list. Revoking "all traffic" or `0-65535` from the internet
/// would take a public web tier down with the SSH port, so such a finding is notify-only.
pub fn revocable(p: &IngressPermission, ports: &[u16]) -> bool {
    p.tcp_or_udp() && p.port_range().is_some_and(|(from, to)| (from..=to).all(|port| ports.contains(&port)))
}

/// The world-open part of each permission that reaches one of `ports`, as the evidence
/// carries it and the action revokes it.
pub fn open_to_world(ingress: &[IngressPermission], ports: &[u16]) -> Vec<(IngressPermission, Vec<u16>)> {
    ingress
        .iter()
        .filter_map(|p| {
            let reached: Vec<u16> = ports.iter().copied().filter(|port| p.reaches(*port)).collect();
            let open = IngressPermission {
                ipv4: p.ipv4.iter().filter(|c| c.as_str() == WORLD_V4).cloned().collect(),
                ipv6: p.ipv6.iter().filter(|c| c.as_str() == WORLD_V6).cloned().collect(),
                ..p.clone()
            };
            let world_open = !open.ipv4.is_empty() || !open.ipv6.is_empty();
            (world_open && !reached.is_empty()).then_some((open, reached))
        })
        .collect()
}

pub struct SgOpenAdminPorts;
pub const RULE: SgOpenAdminPorts = SgOpenAdminPorts;

impl Rule for SgOpenAdminPorts {
    fn at_creation(&self) -> bool {
        true
    }
    fn kind(&self) -> ResourceKind {
        ResourceKind::SecurityGroup
    }
    fn doc(&self) -> RuleDoc {
        RuleDoc {
            resource: "security group",
            violating_when: "`0.0.0.0/0` or `::/0` may reach an admin or database port (22, 3389, 3306, 5432, …)",
            action: "revoke just those world-open ranges (or `notify-only`)",
        }
    }
    fn iam_actions(&self) -> &'static [&'static str] {
        &["ec2:DescribeSecurityGroups", "ec2:RevokeSecurityGroupIngress"]
    }
    fn judge(&self, policy: &Policy, _now: chrono::DateTime<chrono::Utc>, resource: Resource<'_>) -> Judgement {
        let (Resource::SecurityGroup(group), Some(config)) = (resource, &policy.rules.sg_open_admin_ports) else {
            return Judgement::Complies;
        };
        let open = open_to_world(&group.ingress, &config.ports);
        if open.is_empty() {
            return Judgement::Complies;
        }
        let mut ports: Vec<u16> = open.iter().flat_map(|(_, ports)| ports.iter().copied()).collect();
        ports.sort_unstable();
        ports.dedup();
        let shown: Vec<String> = ports.iter().map(u16::to_string).collect();
        let wide: Vec<&IngressPermission> =
            open.iter().map(|(p, _)| p).filter(|p| !revocable(p, &config.ports)).collect();
        let mut evidence = json!({
            "open": open.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            "ports": ports,
            "vpc_id": group.vpc_id,
        });
        let action = if wide.is_empty() {
            config.action.into()
        } else {
            evidence["notify_only_because"] =
                json!("a world-open range also reaches ports not on the list; revoking it would cut those too");
            evidence["wide"] = json!(wide);
            Action::NotifyOnly
        };
        Judgement::Violates {
            reason: format!("{} ({}) is open to the internet on port {}", group.id, group.name, shown.join(", ")),
            evidence,
            action,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(protocol: &str, from: i32, to: i32, v4: &[&str], v6: &[&str]) -> IngressPermission {
        IngressPermission {
            protocol: protocol.into(),
            from_port: Some(from),
            to_port: Some(to),
            ipv4: v4.iter().map(|s| (*s).to_owned()).collect(),
            ipv6: v6.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn only_world_open_ranges_on_listed_ports_are_reported_and_only_their_world_cidrs() {
        let ingress = vec![
            perm("tcp", 22, 22, &["10.0.0.0/8", WORLD_V4], &[]),
            perm("tcp", 443, 443, &[WORLD_V4], &[WORLD_V6]),
            perm("tcp", 5432, 5432, &["192.168.0.0/16"], &[]),
            perm("tcp", 3000, 4000, &[], &[WORLD_V6]),
        ];
        let open = open_to_world(&ingress, &default_ports());
        assert_eq!(open.len(), 2, "{open:?}");
        assert_eq!(open[0].0.ipv4, [WORLD_V4], "the private range of the same permission is left alone");
        assert_eq!(open[0].1, [22]);
        assert_eq!(open[1].0.ipv6, [WORLD_V6]);
        assert_eq!(open[1].1, [3389, 3306]);
        assert!(open_to_world(&ingress, &[8080]).is_empty());
    }

    #[test]
    fn only_a_range_of_listed_ports_is_revocable_all_traffic_is_reported() {
        let ports = default_ports();
        assert!(revocable(&perm("tcp", 22, 22, &[WORLD_V4], &[]), &ports));
        assert!(revocable(&perm("udp", 5432, 5432, &[WORLD_V4], &[]), &ports));
        assert!(!revocable(&perm("tcp", 0, 65535, &[WORLD_V4], &[]), &ports), "would cut 80 and 443 too");
        assert!(!revocable(&perm("tcp", 20, 23, &[WORLD_V4], &[]), &ports), "21 and 23 are not listed");
        assert!(!revocable(&perm("-1", -1, -1, &[WORLD_V4], &[]), &ports));
        assert!(!revocable(&perm("icmp", -1, -1, &[WORLD_V4], &[]), &ports));
        let policy = Policy::builtin().unwrap();
        let group = crate::ports::SecurityGroup {
            id: "sg-1".into(),
            name: "web".into(),
            vpc_id: None,
            ingress: vec![perm("-1", -1, -1, &[WORLD_V4], &[])],
            tags: Default::default(),
        };
        match RULE.judge(&policy, chrono::Utc::now(), Resource::SecurityGroup(&group)) {
            Judgement::Violates { action, evidence, .. } => {
                assert_eq!(action, Action::NotifyOnly);
                assert!(evidence["notify_only_because"].is_string());
            }
            other => panic!("all traffic from anywhere reaches 22: {other:?}"),
        }
    }
}
