//! `testkit`: seeds an emulator for the demo and the benchmark.
//! The endpoint comes from `AWS_ENDPOINT_URL`, as for every SDK client.

use anyhow::Context;
use clap::{Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use janitor_core::aws::{DynamoSnoozeStore, TableNames};
use testkit::estate::{MEMBER_ACCOUNT, Seeder, seed_bench, seed_twins};
use testkit::{HOME_ACCOUNT, sdk_config_for};

#[derive(Parser)]
#[command(name = "testkit", about = "Seeds the AWS emulator for the Cloud Janitor demo and benchmark")]
struct Cli {
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the audit, lock and snooze tables `{prefix}-audit` etc.
    Tables {
        #[arg(long, default_value = "demo")]
        prefix: String,
    },
    /// Seed the twin estate (a violating and a compliant twin of every rule) and print it.
    Twins {
        #[arg(long, default_value = "demo")]
        prefix: String,
    },
    /// Seed `per_region` instances in each region, with a week of CPU data.
    Bench {
        #[arg(long, value_delimiter = ',', default_value = "us-east-1,eu-west-1")]
        regions: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        per_region: i32,
    },
    /// Print the policy the emulator runs with (the shipped one, age gate off).
    Policy,
    /// A recording Slack stub on a free loopback port, until killed; prints its API URL.
    SlackStub,
    /// The Service Catalog stub beside the emulator, until killed; prints its endpoint (for
    /// `AWS_ENDPOINT_URL_SERVICE_CATALOG`). `--twins` provisions the twin estate's products.
    ServiceCatalog {
        #[arg(long)]
        twins: bool,
    },
    /// The action half of the demo: the shipped state machine run locally in dry-run, a
    /// snooze click, then enforce (needs `cargo build --workspace --bins` and `make node_modules`).
    Pipeline {
        #[arg(long, default_value = "demo")]
        prefix: String,
        /// Where the handlers' logs and call lists go.
        #[arg(long, default_value = ".demo")]
        work: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if endpoint_is_remote(&cli.endpoint) {
        anyhow::bail!("refusing to seed {}: testkit only talks to an emulator on loopback", cli.endpoint);
    }
    let clients = janitor_core::aws::AwsClients::from_config(sdk_config_for(&cli.endpoint).await);
    match cli.command {
        Command::Tables { prefix } => {
            testkit::tables::create_tables(&clients.dynamodb(), &TableNames::with_prefix(&prefix)).await?;
        }
        Command::Twins { prefix } => {
            let tables = TableNames::with_prefix(&prefix);
            let snoozes = DynamoSnoozeStore::new(clients.dynamodb(), &tables.snooze);
            let estate = seed_twins(
                &Seeder::new(clients.clone(), HOME_ACCOUNT),
                &Seeder::new(clients, MEMBER_ACCOUNT),
                &snoozes,
            )
            .await
            .context("seeding the twin estate")?;
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header(["resource", "should be flagged"]);
            for key in &estate.expected_findings {
                table.add_row([key.as_str(), "yes"]);
            }
            for key in &estate.untouchable {
                table.add_row([key.as_str(), "no (compliant, protected or snoozed)"]);
            }
            println!("{table}");
        }
        Command::Bench { regions, per_region } => {
            let seeded = seed_bench(&Seeder::new(clients, HOME_ACCOUNT), &regions, per_region).await?;
            println!("{seeded}");
        }
        Command::Policy => print!("{}", testkit::emulator_policy_toml()),
        Command::SlackStub => {
            let stub = testkit::slack::SlackStub::start().await?;
            println!("{}", stub.api_url());
            std::future::pending::<()>().await;
        }
        Command::ServiceCatalog { twins } => {
            let stub = testkit::service_catalog::ServiceCatalogStub::start(&cli.endpoint)?;
            if twins {
                testkit::estate::provision_catalog_twins(&stub);
            }
            println!("{}", stub.endpoint);
            std::future::pending::<()>().await;
        }
        Command::Pipeline { prefix, work } => testkit::demo::narrate(clients, &cli.endpoint, &prefix, &work).await?,
    }
    Ok(())
}

fn endpoint_is_remote(endpoint: &str) -> bool {
    let authority = endpoint.split("://").nth(1).unwrap_or(endpoint).split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    !(host == "localhost" || host == "::1" || host.starts_with("127."))
}
