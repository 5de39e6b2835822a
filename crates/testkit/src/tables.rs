//! The janitor's three tables created as `template.yaml` declares them, for the emulator and
//! the demo (in AWS the template creates them).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use janitor_core::aws::TableNames;
use janitor_core::aws::dynamo::{AUDIT_BY_EVENT_INDEX, AUDIT_BY_RUN_INDEX, TTL_ATTRIBUTE};

fn attr(name: &str) -> anyhow::Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| anyhow::anyhow!(e))
}

fn key(name: &str, key_type: KeyType) -> anyhow::Result<KeySchemaElement> {
    KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().map_err(|e| anyhow::anyhow!(e))
}

fn gsi(name: &str, hash: &str, range: &str) -> anyhow::Result<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Creates the three tables as `template.yaml` declares them (for emulators and demos).
pub async fn create_tables(client: &Client, names: &TableNames) -> anyhow::Result<()> {
    let audit = client
        .create_table()
        .table_name(&names.audit)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("resource")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("run_id")?)
        .attribute_definitions(attr("event")?)
        .attribute_definitions(attr("at")?)
        .key_schema(key("resource", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(gsi(AUDIT_BY_RUN_INDEX, "run_id", "sk")?)
        .global_secondary_indexes(gsi(AUDIT_BY_EVENT_INDEX, "event", "at")?);
    ignore_existing(audit.send().await.map(|_| ()))?;
    for table in [&names.audit, &names.lock, &names.snooze] {
        if table != &names.audit {
            let create = client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attr("resource")?)
                .key_schema(key("resource", KeyType::Hash)?);
            ignore_existing(create.send().await.map(|_| ()))?;
        }
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .map_err(|e| anyhow::anyhow!(e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DynamoDB UpdateTimeToLive: {}", DisplayErrorContext(e)))?;
    }
    Ok(())
}

fn ignore_existing<E, R>(
    result: std::result::Result<(), aws_smithy_runtime_api::client::result::SdkError<E, R>>,
) -> anyhow::Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
        Err(e) => Err(anyhow::anyhow!("DynamoDB CreateTable: {}", DisplayErrorContext(e))),
    }
}
