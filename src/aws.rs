//! The AWS SDK configuration the S3 provider, the cost import and the S3 usage estimate share: region,
//! endpoint override (an emulator), static credentials when configured, and the timeouts of every
//! call; and where server access logs go.

use crate::config::AwsConfig;

/// The deadlines of every AWS call (S3, IAM, Cost Explorer): one operation, retries included, ends
/// within `operation_timeout`, one HTTP attempt within `attempt_timeout` (a connection within at
/// most 5 s of it). A streamed download (a CUR file) is bounded until its headers arrive; its body
/// is read as it comes.
pub fn timeouts(aws: &AwsConfig) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(aws.operation_timeout)
        .operation_attempt_timeout(aws.attempt_timeout)
        .connect_timeout(aws.attempt_timeout.min(std::time::Duration::from_secs(5)))
        .build()
}

/// The AWS SDK configuration: region, optional endpoint (an emulator) and optional static credentials.
pub async fn sdk_config(aws: &AwsConfig) -> aws_config::SdkConfig {
    use secrecy::ExposeSecret;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(aws.region.clone()))
        .timeout_config(timeouts(aws));
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(creds) = &aws.credentials {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose_secret().to_owned(),
            creds
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "vendor-server-config",
        ));
    }
    loader.load().await
}

/// The root of every customer bucket's log prefix in `S3_ACCESS_LOG_BUCKET`.
pub const LOG_PREFIX_ROOT: &str = "access-logs/";

/// Where a customer bucket's server access logs go in the log bucket: `access-logs/<bucket>/`.
pub fn log_prefix(bucket: &str) -> String {
    format!("{LOG_PREFIX_ROOT}{bucket}/")
}
