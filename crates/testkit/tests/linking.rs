//! Each Lambda links only the SDK clients its own steps call. The first line of proof is the
//! IAM-enforced state-machine run of the real binaries (a step needing an adapter its
//! function does not wire fails there); this is the second: the dependency graph cargo
//! resolves for each function alone, as `cargo lambda build -p <function>` builds it.

use std::collections::BTreeSet;
use std::process::Command;

use janitor_core::HANDLERS;

/// The SDK service crates each function links, besides STS (assume-role into member
/// accounts). No SSO: that is for people, and only the command line turns it on.
fn expected(handler: &str) -> &'static [&'static str] {
    match handler {
        "discovery" => &[
            "dynamodb",
            "ec2",
            "iam",
            "lambda",
            "organizations",
            "pricing",
            "rds",
            "s3",
            "s3control",
            "servicecatalog",
        ],
        "recheck" => {
            &["cloudwatch", "dynamodb", "ec2", "iam", "lambda", "pricing", "rds", "s3", "s3control", "servicecatalog"]
        }
        "metric-check" => &["cloudwatch", "dynamodb", "pricing", "s3"],
        "lock" => &["dynamodb", "s3", "sns"],
        // Teams (its secret), email (SNS) and the snooze links' key (KMS).
        "notify" => &["dynamodb", "kms", "s3", "secretsmanager", "sns"],
        "snooze" => &["dynamodb", "kms", "secretsmanager"],
        "onboard" => &[
            "dynamodb",
            "ec2",
            "iam",
            "kms",
            "lambda",
            "rds",
            "s3",
            "s3control",
            "secretsmanager",
            "servicecatalog",
            "sns",
        ],
        "remediate" => &["dynamodb", "ec2", "iam", "rds", "s3", "s3control", "secretsmanager", "sns"],
        other => panic!("no expectation for handler {other}"),
    }
}

fn linked_sdk_crates(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.strip_prefix("aws-sdk-").map(str::to_owned))
        .filter(|service| service != "sts")
        .collect()
}

#[test]
fn every_function_links_only_the_sdk_clients_its_steps_call() {
    for handler in HANDLERS {
        let linked = linked_sdk_crates(handler);
        let want: BTreeSet<String> = expected(handler).iter().map(|s| s.to_string()).collect();
        assert_eq!(linked, want, "SDK crates linked by {handler}");
    }
}
