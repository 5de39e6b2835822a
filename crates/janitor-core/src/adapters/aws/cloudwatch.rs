//! `CloudWatchMetrics`: GetMetricData with up to 500 queries a call, never one call per
//! resource.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

use super::{AwsClients, to_chrono, to_smithy};
use crate::error::{JanitorError, Result};
use crate::model::Scope;
use crate::ports::{MetricQuery, MetricSeries, MetricSource, MetricWindow};

/// GetMetricData's limit on queries per request.
pub const MAX_QUERIES_PER_CALL: usize = 500;
const ONE_DAY_SECONDS: i32 = 86_400;

pub struct CloudWatchMetrics {
    clients: AwsClients,
}

impl CloudWatchMetrics {
    pub fn new(clients: AwsClients) -> Self {
        CloudWatchMetrics { clients }
    }
}

fn to_sdk_query(q: &MetricQuery) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace(q.namespace)
        .metric_name(q.metric)
        .dimensions(Dimension::builder().name(q.dimension).value(&q.dimension_value).build())
        .build();
    MetricDataQuery::builder()
        .id(&q.id)
        .metric_stat(MetricStat::builder().metric(metric).period(ONE_DAY_SECONDS).stat(q.stat.as_str()).build())
        .return_data(true)
        .build()
}

#[async_trait]
impl MetricSource for CloudWatchMetrics {
    async fn daily_series(
        &self,
        scope: &Scope,
        queries: &[MetricQuery],
        window: &MetricWindow,
    ) -> Result<HashMap<String, MetricSeries>> {
        let cloudwatch = self.clients.cloudwatch(&scope.account, &scope.region).await?;
        let mut series: HashMap<String, MetricSeries> = queries.iter().map(|q| (q.id.clone(), Vec::new())).collect();
        for chunk in queries.chunks(MAX_QUERIES_PER_CALL) {
            let sdk_queries: Vec<MetricDataQuery> = chunk.iter().map(to_sdk_query).collect();
            let pages: Vec<_> = cloudwatch
                .get_metric_data()
                .set_metric_data_queries(Some(sdk_queries))
                .start_time(to_smithy(window.start))
                .end_time(to_smithy(window.end))
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| JanitorError::from_sdk("cloudwatch", "GetMetricData", e))?;
            for result in pages.iter().flat_map(|page| page.metric_data_results()) {
                // A query CloudWatch could not answer is no datapoint: for a rule where a
                // missing day counts as zero (Lambda invocations) it would read as "unused".
                use aws_sdk_cloudwatch::types::StatusCode;
                match result.status_code() {
                    Some(StatusCode::Forbidden) => {
                        return Err(JanitorError::AccessDenied {
                            service: "cloudwatch",
                            operation: "GetMetricData",
                            message: format!("query {} was forbidden", result.id().unwrap_or("?")),
                        });
                    }
                    Some(StatusCode::InternalError) => {
                        return Err(JanitorError::Transient {
                            service: "cloudwatch",
                            operation: "GetMetricData",
                            message: format!("query {} answered InternalError", result.id().unwrap_or("?")),
                        });
                    }
                    _ => {}
                }
                let Some(points) = result.id().and_then(|id| series.get_mut(id)) else { continue };
                points.extend(
                    result.timestamps().iter().zip(result.values()).filter_map(|(t, v)| Some((to_chrono(t)?, *v))),
                );
            }
        }
        Ok(series)
    }
}
