//! Test and demo harness. Starts moto in server mode on a free loopback port (the tests
//! start their own; nothing has to be running beforehand), seeds estates through the real
//! AWS SDK, and can put a fault-injecting proxy in front of the emulator.

pub mod demo;
pub mod estate;
pub mod iam;
pub mod pipeline;
pub mod pricing;
pub mod probe;
pub mod proxy;
pub mod service_catalog;
pub mod slack;
pub mod state_machine;
pub mod tables;
pub mod teams;
pub mod template;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_types::sdk_config::SharedCredentialsProvider;
use janitor_core::aws::AwsClients;

pub const HOME_ACCOUNT: &str = "123456789012";

/// The shipped policy with every age gate at zero (the emulator stamps every resource as
/// made "now", so nothing could ever be old enough there: idle, stopped long, an old
/// snapshot), and unattached volumes deleted (after their snapshot), so the emulator runs
/// prove that action under IAM too.
pub fn emulator_policy_toml() -> String {
    const SHIPPED: &str = "[rules.ebs_unattached]\naction = \"notify-only\"";
    let mut text = janitor_core::policy::BUILTIN_POLICY.to_owned();
    for (shipped, emulated) in [
        (SHIPPED, "[rules.ebs_unattached]\naction = \"snapshot-and-delete-volume\""),
        ("min_age_days = 7", "min_age_days = 0"),
        ("stopped_days = 30", "stopped_days = 0"),
        ("older_than_days = 90", "older_than_days = 0"),
        ("older_than_days = 30", "older_than_days = 0"),
        ("min_age_days = 30", "min_age_days = 0"),
        ("min_age_days = 1\n", "min_age_days = 0\n"),
        // The CloudTrail samples' creator (events/cloudtrail) is alice, whom Slack knows.
        ("owners = {}", "owners = { \"arn:aws:iam::*:user/alice\" = \"alice@example.com\" }"),
    ] {
        assert!(text.contains(shipped), "the built-in policy no longer says {shipped}");
        text = text.replace(shipped, emulated);
    }
    // The Service Catalog stub can backdate a product, so that rule keeps its real threshold;
    // its allow-list is the policy's own here (a scan from a laptop has no run bucket).
    for (emulated, kept) in [
        ("[rules.sc_product_stale]\nolder_than_days = 0", "[rules.sc_product_stale]\nolder_than_days = 90".to_owned()),
        (
            "allowed = []\nallow_list_key = \"config/allowed-launchers.txt\"",
            format!("allowed = [\"{}\"]", estate::ALLOWED_LAUNCHERS),
        ),
    ] {
        assert!(text.contains(emulated), "the built-in policy no longer says {emulated}");
        text = text.replace(emulated, &kept);
    }
    text
}

/// The emulator policy as the deployed pipeline runs it: the launcher allow-list read from
/// the run bucket, as the shipped policy says.
pub fn pipeline_policy_with_grace(grace: &str) -> String {
    let inline = format!("allowed = [\"{}\"]", estate::ALLOWED_LAUNCHERS);
    let text = emulator_policy_with_grace(grace);
    assert!(text.contains(&inline));
    text.replace(&inline, "allowed = []\nallow_list_key = \"config/allowed-launchers.txt\"")
}

/// The emulator policy with another grace period (`"0s"`, `"3s"`); panics if the built-in
/// policy stops spelling its grace period as expected, so a test never waits 72 hours.
pub fn emulator_policy_with_grace(grace: &str) -> String {
    const SHIPPED: &str = "grace_period = \"72h\"";
    let text = emulator_policy_toml();
    assert!(text.contains(SHIPPED), "the built-in policy no longer says {SHIPPED}");
    text.replace(SHIPPED, &format!("grace_period = \"{grace}\""))
}

pub fn emulator_policy() -> janitor_core::policy::Policy {
    janitor_core::policy::Policy::from_toml_str(&emulator_policy_toml(), "emulator policy")
        .unwrap_or_else(|e| panic!("the emulator policy must load: {e}"))
}
pub const HOME_REGION: &str = "us-east-1";

/// A moto server owned by one test (or the demo), with a Service Catalog stub beside it for
/// what moto lacks; killed when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub service_catalog: service_catalog::ServiceCatalogStub,
}

/// The repository checkout this harness was built from.
/// A bucket under S3 Object Lock with a default retention of `days` in compliance mode, as
/// the template makes its AnchorBucket.
pub async fn object_lock_bucket(s3: &aws_sdk_s3::Client, name: &str, days: i32) -> anyhow::Result<()> {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
    };
    s3.create_bucket().bucket(name).object_lock_enabled_for_bucket(true).send().await?;
    let retention = DefaultRetention::builder().mode(ObjectLockRetentionMode::Compliance).days(days).build();
    let config = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(ObjectLockRule::builder().default_retention(retention).build())
        .build();
    s3.put_object_lock_configuration().bucket(name).object_lock_configuration(config).send().await?;
    Ok(())
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `MOTO_SERVER`, else the repository's `.venv`, else `moto_server` on the PATH.
pub fn moto_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = repo_root().join(".venv/bin/moto_server");
    if venv.exists() { venv } else { PathBuf::from("moto_server") }
}

/// How the harness starts moto: `MOTO_SERVER` as given, else the venv's Python running
/// `moto_server.py` beside this crate (moto_server with its transaction backups made linear,
/// see there), else `moto_server` on the PATH.
pub fn moto_server_command() -> Command {
    let python = repo_root().join(".venv/bin/python3");
    if std::env::var_os("MOTO_SERVER").is_none() && python.exists() {
        let mut command = Command::new(python);
        command.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("moto_server.py"));
        command
    } else {
        Command::new(moto_server_binary())
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

impl Moto {
    pub fn start() -> anyhow::Result<Moto> {
        let binary = moto_server_binary();
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let mut child = moto_server_command()
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    anyhow::anyhow!("cannot start {} ({e}); run `make venv` or set MOTO_SERVER", binary.display())
                })?;
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if answers_http(port) {
                    let endpoint = format!("http://127.0.0.1:{port}");
                    let service_catalog = service_catalog::ServiceCatalogStub::start(&endpoint)?;
                    return Ok(Moto { child, endpoint, service_catalog });
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!("moto exited with {status}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            if last_error.is_empty() {
                last_error = "moto did not answer within 60 s".into();
            }
        }
        anyhow::bail!("{last_error}")
    }

    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }

    /// Clients of the emulator: moto, and the stub for Service Catalog and the Price List.
    pub async fn clients(&self) -> AwsClients {
        AwsClients::from_config(self.sdk_config().await)
            .with_service_catalog_endpoint(&self.service_catalog.endpoint)
            .with_pricing_endpoint(&self.service_catalog.endpoint)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK config aimed at an emulator endpoint with throwaway credentials.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    sdk_config_with(endpoint, "testing", "testing").await
}

/// SDK config aimed at an emulator endpoint with the given access key.
pub async fn sdk_config_with(endpoint: &str, key: &str, secret: &str) -> SdkConfig {
    let credentials = aws_sdk_dynamodb::config::Credentials::new(key, secret, None, None, "testkit");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(HOME_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .load()
        .await
}
