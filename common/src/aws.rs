//! AWS SDK configuration shared by the S3 and SQS adapters, loaded once per cold start.
//!
//! Region, credentials and endpoint come from the SDK's usual sources (`AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, the Lambda role, `AWS_ENDPOINT_URL` for a local emulator). The SDK's
//! behaviour is pinned to a dated version, so an SDK upgrade cannot silently change retries
//! or timeouts.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::{self, ConfigError};

/// Settings the SDK does not read by itself.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Path-style S3 addressing (`http://host/bucket/key`), which emulators need.
    /// `VOX_S3_PATH_STYLE`; default: on when `AWS_ENDPOINT_URL` is set.
    pub s3_path_style: bool,
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let emulated = config::optional("AWS_ENDPOINT_URL")?.is_some();
        Ok(Self {
            s3_path_style: config::parsed_or("VOX_S3_PATH_STYLE", emulated)?,
        })
    }
}

/// Loads the SDK configuration; the region defaults to `eu-central-1` when none is set.
pub async fn load() -> SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(Region::new("eu-central-1"));
    aws_config::defaults(BehaviorVersion::v2026_01_12())
        .region(region)
        .load()
        .await
}

/// The SDK configuration for a local emulator at `endpoint` with fixed test credentials
/// (requests must still be signed: an emulator routes unsigned SQS calls elsewhere).
pub async fn local(endpoint: &str) -> SdkConfig {
    let credentials = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "local");
    aws_config::defaults(BehaviorVersion::v2026_01_12())
        .region(Region::new("eu-central-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .load()
        .await
}
