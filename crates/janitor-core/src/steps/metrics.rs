//! The metric check: EC2 is idle when every daily CPU average of the look-back window is
//! at or below the threshold; RDS when it had no connection at all. Missing or partial
//! data, or a resource younger than the minimum age, is never idle.

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use serde_json::json;

use crate::Deps;
use crate::audit::{AuditEvent, AuditEventType};
use crate::cost::{self, Billable};
use crate::discovery::annotate_history;
use crate::error::Result;
use crate::model::*;
use crate::policy::IdleWindow;
use crate::ports::{MetricQuery, MetricSeries, MetricWindow};
use crate::rules::MetricSpec;

const ACTOR: &str = "metric-check";

/// Whole UTC days ending at today's midnight, so every day in the window is complete.
pub fn window_ending(now: DateTime<Utc>, days: u32) -> MetricWindow {
    let end = now.duration_trunc(TimeDelta::days(1)).unwrap_or(now);
    MetricWindow { start: end - Duration::days(i64::from(days)), end, days }
}

#[derive(Debug, Clone, PartialEq)]
pub enum IdleVerdict {
    Idle { reason: String, evidence: serde_json::Value },
    NotIdle { reason: String, evidence: serde_json::Value },
}

fn too_young(launched_at: Option<DateTime<Utc>>, window: IdleWindow, now: DateTime<Utc>) -> Option<IdleVerdict> {
    let min_age = Duration::days(i64::from(window.min_age_days));
    match launched_at {
        Some(at) if now - at < min_age => Some(IdleVerdict::NotIdle {
            reason: format!("younger than the minimum age of {} days", window.min_age_days),
            evidence: json!({ "launched_at": at, "min_age_days": window.min_age_days }),
        }),
        _ => None,
    }
}

/// The window's daily values in order, or why there are too few to judge.
pub(crate) fn coverage(series: &MetricSeries, window: &MetricWindow) -> Result<Vec<f64>, IdleVerdict> {
    let mut by_day: HashMap<i64, f64> = HashMap::new();
    for (at, value) in series {
        if *at >= window.start && *at < window.end {
            by_day.insert((*at - window.start).num_days(), *value);
        }
    }
    if by_day.len() < window.days as usize {
        return Err(IdleVerdict::NotIdle {
            reason: format!("not enough data: {} of {} days have datapoints", by_day.len(), window.days),
            evidence: json!({ "days_with_data": by_day.len(), "days": window.days }),
        });
    }
    let mut days: Vec<(i64, f64)> = by_day.into_iter().collect();
    days.sort_by_key(|(d, _)| *d);
    Ok(days.into_iter().map(|(_, v)| v).collect())
}

pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub use crate::rules::ec2_idle_cpu::judge_cpu;
pub use crate::rules::rds_idle::judge_connections;

struct Group<'a> {
    rule: RuleId,
    spec: MetricSpec,
    candidates: Vec<&'a Candidate>,
}

/// Judges every candidate with one batched metric read per rule and turns the idle ones
/// into findings.
pub async fn check_candidates(deps: &Deps, mut payload: StepPayload) -> Result<StepPayload> {
    let scope = payload.run.scope()?.clone();
    let now = deps.clock.now();
    let run_id = payload.run.id.clone();
    let candidates = std::mem::take(&mut payload.candidates);
    let (mut idle, events) = judge_candidates(deps, &scope, &run_id, &candidates, now, ACTOR).await?;
    annotate_history(deps, &run_id, &mut idle, now).await?;
    payload.findings.extend(idle);
    payload.findings.sort_by(|a, b| a.key.cmp(&b.key));
    payload.tally.found = payload.findings.len();
    payload.tally.savings_found = cost::totals(&payload.findings).monthly_savings;
    payload.recount();
    deps.audit.record(&events).await?;
    tracing::info!(scope = %scope, findings = payload.count, "metric check done");
    Ok(payload)
}

/// The idle candidates as findings (sorted by key), with an IDLE / NOT_IDLE event for each
/// candidate saying why. Writes nothing.
pub(crate) async fn judge_candidates(
    deps: &Deps,
    scope: &Scope,
    run_id: &str,
    candidates: &[Candidate],
    now: DateTime<Utc>,
    actor: &str,
) -> Result<(Vec<Finding>, Vec<AuditEvent>)> {
    let p = &deps.policy;
    let mut events = Vec::new();
    let mut verdicts: Vec<(&Candidate, IdleVerdict)> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for c in candidates {
        let rule = c.rule;
        let spec = if p.rules.on(rule) { rule.rule().metric(p) } else { None };
        let Some(spec) = spec.filter(|_| rule.kind() == c.key.kind()) else {
            verdicts.push((
                c,
                IdleVerdict::NotIdle {
                    reason: format!("{rule} is not on, or reads no metric for {}", c.key.kind()),
                    evidence: serde_json::Value::Null,
                },
            ));
            continue;
        };
        if let Some(verdict) = too_young(c.launched_at, spec.window, now) {
            verdicts.push((c, verdict));
            continue;
        }
        match groups.iter_mut().find(|g| g.rule == rule) {
            Some(group) => group.candidates.push(c),
            None => groups.push(Group { rule, spec, candidates: vec![c] }),
        }
    }

    for group in &groups {
        let window = window_ending(now, group.spec.window.lookback_days);
        let queries: Vec<MetricQuery> = group
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| MetricQuery {
                id: format!("q{i}"),
                namespace: group.spec.namespace,
                metric: group.spec.metric,
                dimension: group.spec.dimension,
                dimension_value: c.key.id().to_owned(),
                stat: group.spec.stat,
            })
            .collect();
        let series = deps.metrics.daily_series(scope, &queries, &window).await?;
        for (query, candidate) in queries.iter().zip(&group.candidates) {
            let points = series.get(&query.id).cloned().unwrap_or_default();
            verdicts.push((candidate, group.rule.rule().judge_series(p, &points, &window)));
        }
    }

    let mut idle = Vec::new();
    for (candidate, verdict) in verdicts {
        let policy = candidate.rule;
        let action = policy.rule().idle_action();
        let (event, is_idle, reason, evidence) = match verdict {
            IdleVerdict::Idle { reason, evidence } => (AuditEventType::Idle, true, reason, evidence),
            IdleVerdict::NotIdle { reason, evidence } => (AuditEventType::NotIdle, false, reason, evidence),
        };
        if !is_idle {
            let detail = json!({ "reason": reason, "evidence": evidence });
            events.push(
                AuditEvent::new(candidate.key.as_str(), run_id, event, now, actor, detail).with_policy(Some(policy)),
            );
            continue;
        }
        // The owner still hears of it; the janitor just never takes that action here.
        let (action, reason, evidence) = match &candidate.notify_only {
            Some(why) => {
                let mut evidence = evidence;
                if let Some(map) = evidence.as_object_mut() {
                    map.insert("notify_only".into(), json!(why));
                }
                (Action::NotifyOnly, format!("{reason}; notify only: {why}"), evidence)
            }
            None => (action, reason, evidence),
        };
        let billable = candidate
            .billable
            .clone()
            .unwrap_or_else(|| Billable::Unpriced { why: "its listing told nothing to price it by".into() });
        let cost = cost::estimate(deps.prices.as_ref(), candidate.key.region(), &billable, action).await;
        // As discovery's DISCOVERED row: the finding whole, so the run's trail exports it.
        let detail =
            json!({ "reason": reason, "evidence": evidence, "action": action, "owner": candidate.owner, "cost": cost });
        events
            .push(AuditEvent::new(candidate.key.as_str(), run_id, event, now, actor, detail).with_policy(Some(policy)));
        idle.push(Finding {
            arn: candidate.arn.clone(),
            evidence,
            owner: candidate.owner.clone(),
            cost: Some(cost),
            ..Finding::new(candidate.key.clone(), policy, reason, action)
        });
    }
    idle.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((idle, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 16, 0, 0).unwrap()
    }

    fn daily(values: &[f64]) -> (MetricSeries, MetricWindow) {
        let w = window_ending(now(), values.len() as u32);
        let series = values
            .iter()
            .enumerate()
            .map(|(i, v)| (w.start + Duration::days(i as i64) + Duration::hours(12), *v))
            .collect();
        (series, w)
    }

    #[test]
    fn window_is_whole_days_ending_at_midnight() {
        let w = window_ending(now(), 7);
        assert_eq!(w.end, Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap());
        assert_eq!(w.start, Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap());
    }

    #[test]
    fn cpu_threshold_is_inclusive_and_needs_every_day() {
        let (s, w) = daily(&[4.9; 7]);
        assert!(matches!(judge_cpu(&s, &w, 5.0), IdleVerdict::Idle { .. }));
        let (s, w) = daily(&[5.0; 7]);
        assert!(matches!(judge_cpu(&s, &w, 5.0), IdleVerdict::Idle { .. }));
        let (s, w) = daily(&[1.0, 1.0, 1.0, 5.1, 1.0, 1.0, 1.0]);
        assert!(matches!(judge_cpu(&s, &w, 5.0), IdleVerdict::NotIdle { .. }));
        let (mut s, w) = daily(&[1.0; 7]);
        s.remove(3);
        match judge_cpu(&s, &w, 5.0) {
            IdleVerdict::NotIdle { reason, .. } => assert!(reason.contains("6 of 7"), "{reason}"),
            other => panic!("partial data judged {other:?}"),
        }
        assert!(matches!(judge_cpu(&Vec::new(), &w, 5.0), IdleVerdict::NotIdle { .. }));
    }

    #[test]
    fn connections_must_be_zero_throughout() {
        let (s, w) = daily(&[0.0; 7]);
        assert!(matches!(judge_connections(&s, &w), IdleVerdict::Idle { .. }));
        let (s, w) = daily(&[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(matches!(judge_connections(&s, &w), IdleVerdict::NotIdle { .. }));
    }

    #[test]
    fn young_resources_are_not_idle() {
        let window = IdleWindow { lookback_days: 7, min_age_days: 7 };
        assert!(too_young(Some(now() - Duration::days(1)), window, now()).is_some());
        assert!(too_young(Some(now() - Duration::days(8)), window, now()).is_none());
        let no_gate = IdleWindow { lookback_days: 7, min_age_days: 0 };
        assert!(too_young(Some(now()), no_gate, now()).is_none());
    }
}
