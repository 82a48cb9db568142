//! A real AWS emulator for tests: `moto_server` (PyPI `moto[server]`, installed by
//! `scripts/install-tools.sh`) on a free port, killed when dropped, and AWS SDK clients pointed at it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
use tokio::process::{Child, Command};

/// Finds a test tool in `$TOOLS_DIR/venv/bin`, `$TOOLS_DIR/bin` or `PATH`, or fails the test with
/// what to run.
pub fn find_tool(name: &str) -> PathBuf {
    let tools_dir = std::env::var_os("TOOLS_DIR").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/vendor-server-tools")
        },
        PathBuf::from,
    );
    let mut candidates = vec![
        tools_dir.join("venv/bin").join(name),
        tools_dir.join("bin").join(name),
    ];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(name)));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found in $TOOLS_DIR or PATH: run scripts/install-tools.sh first")
        })
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `moto_server`.
pub struct Moto {
    pub url: String,
    _child: Option<Child>,
}

impl Moto {
    pub async fn start() -> Self {
        let bin = find_tool("moto_server");
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client
                .get(format!("{url}/moto-api/data.json"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {url} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            url,
            _child: Some(child),
        }
    }

    /// A moto_server someone else started (and stops).
    pub fn attach(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            _child: None,
        }
    }

    /// Forgets every resource and queued result (`/moto-api/reset`).
    pub async fn reset(&self) {
        let status = reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.url))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "reset: {status}");
    }

    /// Queues `GetCostAndUsage` answers (moto's configurable Cost Explorer results).
    pub async fn queue_cost_and_usage(&self, results: serde_json::Value) {
        let status = reqwest::Client::new()
            .post(format!(
                "{}/moto-api/static/ce/cost-and-usage-results",
                self.url
            ))
            .json(&serde_json::json!({ "results": results }))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 201, "queueing Cost Explorer results");
    }

    /// From now on moto checks every request's signature and IAM policies (moto enforces IAM only
    /// in this mode).
    pub async fn enforce_iam(&self) {
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.url))
            .body("0")
            .send()
            .await
            .expect("reset-auth");
        assert!(response.status().is_success());
    }

    pub fn sdk_config(
        &self,
        region: &str,
        access_key: &str,
        secret: &str,
    ) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                Credentials::new(access_key, secret, None, None, "test"),
            ))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .build()
    }

    pub fn s3(&self, region: &str, access_key: &str, secret: &str) -> aws_sdk_s3::Client {
        let sdk = self.sdk_config(region, access_key, secret);
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        )
    }

    pub fn iam(&self, region: &str, access_key: &str, secret: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config(region, access_key, secret))
    }

    pub fn cloudwatch(
        &self,
        region: &str,
        access_key: &str,
        secret: &str,
    ) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk_config(region, access_key, secret))
    }
}

/// Publishes a bucket's daily `BucketSizeBytes` as S3 does: namespace `AWS/S3`, dimensions
/// `BucketName` and `StorageType`, unit `Bytes`, one datapoint at 00:00 UTC of `day`.
pub async fn put_bucket_size(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    bucket: &str,
    storage_type: &str,
    day: chrono::NaiveDate,
    bytes: u64,
) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
    let at = day.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    cloudwatch
        .put_metric_data()
        .namespace("AWS/S3")
        .metric_data(
            MetricDatum::builder()
                .metric_name("BucketSizeBytes")
                .dimensions(
                    Dimension::builder()
                        .name("BucketName")
                        .value(bucket)
                        .build(),
                )
                .dimensions(
                    Dimension::builder()
                        .name("StorageType")
                        .value(storage_type)
                        .build(),
                )
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(at))
                .value(bytes as f64)
                .unit(StandardUnit::Bytes)
                .build(),
        )
        .send()
        .await
        .unwrap();
}
