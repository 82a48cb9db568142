//! S3 storage: one bucket per purchase with its own IAM user, access key and inline policy limited to
//! that bucket, delivered as the OfficeX disk gift card.
//!
//! Every name derives from the purchase id, so each step is idempotent: a provisioning retried after
//! a crash reuses what exists, and deletion (keys, policies, user, every object version and delete
//! marker, multipart uploads, then the bucket) can run again after stopping anywhere.

use async_trait::async_trait;
use aws_sdk_iam::types::StatusType;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketLoggingStatus, CorsConfiguration, CorsRule,
    CreateBucketConfiguration, Delete, LoggingEnabled, ObjectIdentifier, ObjectOwnership,
    OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration, Tag, Tagging,
};
use base64::Engine;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    Delivered, NewCredential, ProviderError, ProvisionRequest, ResourceInfo, ResourceProvider,
};
use crate::aws::log_prefix;
use crate::config::{AwsConfig, Config};
use crate::domain::ids::PurchaseId;

/// The tag the cost import groups costs by (its value is the `CustomerPurchaseID_…`).
pub const PURCHASE_TAG: &str = "officex_vendor_purchase_id";
/// The bucket prefix when the offer's settings do not set `bucket_prefix`.
pub const DEFAULT_BUCKET_PREFIX: &str = "officex-";
/// `DeleteObjects` takes at most this many keys.
const DELETE_BATCH: usize = 1000;
/// Rounds of "empty, then delete the bucket" before giving up (objects written concurrently).
const DELETE_ROUNDS: usize = 5;

/// The longest a provisioning attempt (creation, then cleanup after a failure) may run: half the
/// provisioning lease, so an attempt always ends before another worker may retry the purchase.
pub const PROVISION_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// What the provider needs besides the AWS clients.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub region: String,
    /// `AWS_ENDPOINT_URL` (emulator or S3-compatible store); `None` for AWS itself.
    pub endpoint_url: Option<String>,
    pub vendor_name: String,
    /// `OFFICEX_APP_URL`: gift card redeem links point there.
    pub officex_app_url: String,
    /// `S3_ACCESS_LOG_BUCKET`: where each bucket's server access logs go (`access-logs/<bucket>/`).
    pub access_log_bucket: Option<String>,
}

impl S3Settings {
    /// The S3 endpoint the customer's disk talks to.
    pub fn customer_endpoint(&self) -> String {
        match &self.endpoint_url {
            Some(url) => url.clone(),
            // The original's value for us-east-1; the regional endpoint elsewhere.
            None if self.region == "us-east-1" => "https://s3.amazonaws.com".to_owned(),
            None => format!("https://s3.{}.amazonaws.com", self.region),
        }
    }
}

/// The non-secret state kept with the purchase (`Delivered::state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3State {
    pub bucket: String,
    pub region: String,
    pub iam_user: String,
    pub access_key_id: String,
    pub policy_name: String,
    /// When the access key was issued (unset for keys issued before this was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The names of one purchase's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub bucket: String,
    pub iam_user: String,
    pub policy_name: String,
}

impl Names {
    /// `<prefix>customerpurchaseid-<uuid>` as the original (63 characters with `officex-`), or
    /// `<prefix><uuid>` when a longer prefix would pass S3's 63-character limit.
    pub fn for_purchase(prefix: &str, id: PurchaseId) -> Result<Self, ProviderError> {
        let prefix = prefix.to_ascii_lowercase();
        let long = format!("{prefix}customerpurchaseid-{}", id.0);
        let bucket = if long.len() <= 63 {
            long
        } else {
            format!("{prefix}{}", id.0)
        };
        if !valid_bucket_name(&bucket) {
            return Err(ProviderError::Permanent(format!(
                "the offer's bucket_prefix {prefix:?} does not give a valid S3 bucket name \
                 (lowercase letters, digits and '-', at most 27 characters)"
            )));
        }
        Ok(Self {
            iam_user: bucket.clone(),
            policy_name: bucket.clone(),
            bucket,
        })
    }
}

/// S3's bucket naming rules (without dots, which break virtual-hosted TLS).
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.starts_with("xn--")
        && !name.starts_with("sthree-")
        && !name.ends_with("-s3alias")
        && !name.ends_with("--ol-s3")
}

/// The inline policy: list the bucket, read/write/delete its objects (multipart included), nothing
/// else.
pub fn policy_document(bucket: &str) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Bucket",
                "Effect": "Allow",
                "Action": [
                    "s3:ListBucket",
                    "s3:GetBucketLocation",
                    "s3:GetBucketPolicy",
                    "s3:ListBucketMultipartUploads"
                ],
                "Resource": [format!("arn:aws:s3:::{bucket}")]
            },
            {
                "Sid": "Objects",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:GetObjectTagging",
                    "s3:PutObjectTagging",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"
                ],
                "Resource": [format!("arn:aws:s3:::{bucket}/*")]
            }
        ]
    })
}

/// The credentials inside the gift card (`auth_json`, a JSON string in the payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskAuth {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub region: String,
}

/// `RedeemDiskGiftCard_BTOA` of `@officexapp/types`: current clients read `billing_url`, older
/// ones `endpoint`; both carry the customer page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GiftCard {
    pub name: String,
    pub disk_type: String,
    pub public_note: String,
    /// `DiskAuth` as a JSON string.
    pub auth_json: String,
    pub billing_url: String,
    pub endpoint: String,
}

impl GiftCard {
    /// `{app}/org/current/redeem/disk-giftcard?redeem=<url-safe base64, no padding, of the JSON>`.
    pub fn redeem_url(&self, officex_app_url: &str) -> String {
        let payload = serde_json::to_vec(self).unwrap_or_default();
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        format!(
            "{}/org/current/redeem/disk-giftcard?redeem={encoded}",
            officex_app_url.trim_end_matches('/')
        )
    }

    /// Decodes the `redeem` parameter of a redeem URL (as the OfficeX client does).
    pub fn from_redeem_url(url: &str) -> Option<Self> {
        let (_, query) = url.split_once("?redeem=")?;
        let encoded = query.split('&').next()?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The S3 provider.
#[derive(Clone)]
pub struct S3Provider {
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    settings: S3Settings,
}

impl S3Provider {
    /// Clients for `config.aws`: its region, endpoint, static credentials (else the SDK's own chain:
    /// env, profile, instance role) and deadlines ([`crate::aws::timeouts`]), shared with the cost import.
    pub async fn from_config(aws: &AwsConfig, config: &Config) -> Self {
        let sdk = crate::aws::sdk_config(aws).await;
        let settings = S3Settings {
            region: aws.region.clone(),
            endpoint_url: aws.endpoint_url.clone(),
            vendor_name: config.vendor.name.clone(),
            officex_app_url: config.officex.app_url.clone(),
            access_log_bucket: aws.access_log_bucket.clone(),
        };
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                // Emulators and most S3-compatible stores only speak path-style.
                .force_path_style(aws.endpoint_url.is_some())
                .build(),
        );
        let iam = aws_sdk_iam::Client::new(&sdk);
        Self::with_clients(s3, iam, settings)
    }

    /// From ready clients (tests point them at an emulator).
    pub fn with_clients(
        s3: aws_sdk_s3::Client,
        iam: aws_sdk_iam::Client,
        settings: S3Settings,
    ) -> Self {
        Self { s3, iam, settings }
    }

    async fn create_all(
        &self,
        names: &Names,
        request: &ProvisionRequest,
    ) -> Result<Delivered, ProviderError> {
        let bucket = &names.bucket;
        let region = &self.settings.region;
        let mut create = self.s3.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {}
            // A retried provisioning: the bucket is already ours.
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {}
            Err(e) => return Err(classify("CreateBucket", e)),
        }
        harden_bucket(&self.s3, bucket, self.settings.access_log_bucket.as_deref()).await?;
        let tag = Tag::builder()
            .key(PURCHASE_TAG)
            .value(request.purchase_id.to_string())
            .build()
            .map_err(build_error)?;
        self.s3
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(
                Tagging::builder()
                    .tag_set(tag)
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await
            .map_err(|e| classify("PutBucketTagging", e))?;
        let rule = CorsRule::builder()
            .allowed_headers("*")
            .set_allowed_methods(Some(
                ["GET", "PUT", "POST", "DELETE", "HEAD"]
                    .map(str::to_owned)
                    .to_vec(),
            ))
            .allowed_origins("*")
            .expose_headers("ETag")
            .max_age_seconds(3000)
            .build()
            .map_err(build_error)?;
        self.s3
            .put_bucket_cors()
            .bucket(bucket)
            .cors_configuration(
                CorsConfiguration::builder()
                    .cors_rules(rule)
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await
            .map_err(|e| classify("PutBucketCors", e))?;

        let user_tag = aws_sdk_iam::types::Tag::builder()
            .key(PURCHASE_TAG)
            .value(request.purchase_id.to_string())
            .build()
            .map_err(build_error)?;
        match self
            .iam
            .create_user()
            .user_name(&names.iam_user)
            .tags(user_tag)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("EntityAlreadyExists") => {}
            Err(e) => return Err(classify("CreateUser", e)),
        }
        self.iam
            .put_user_policy()
            .user_name(&names.iam_user)
            .policy_name(&names.policy_name)
            .policy_document(policy_document(bucket).to_string())
            .send()
            .await
            .map_err(|e| classify("PutUserPolicy", e))?;
        // Keys left by an earlier attempt were never delivered: their secrets are gone.
        self.delete_access_keys(&names.iam_user).await?;
        let created = self
            .iam
            .create_access_key()
            .user_name(&names.iam_user)
            .send()
            .await
            .map_err(|e| classify("CreateAccessKey", e))?;
        let key = created.access_key().ok_or_else(|| {
            ProviderError::Retryable("CreateAccessKey returned no key".to_owned())
        })?;

        let auth = DiskAuth {
            endpoint: self.settings.customer_endpoint(),
            access_key: key.access_key_id().to_owned(),
            secret_key: key.secret_access_key().to_owned(),
            bucket: bucket.clone(),
            region: region.clone(),
        };
        let vendor = &self.settings.vendor_name;
        let card = GiftCard {
            name: format!("Amazon Storage {vendor}"),
            disk_type: "AWS_BUCKET".to_owned(),
            public_note: format!("Amazon S3 Storage Giftcard from \"{vendor}\""),
            auth_json: serde_json::to_string(&auth).map_err(|e| {
                ProviderError::Permanent(format!("cannot encode the gift card: {e}"))
            })?,
            billing_url: request.customer_url.clone(),
            endpoint: request.customer_url.clone(),
        };
        let state = S3State {
            bucket: bucket.clone(),
            region: region.clone(),
            iam_user: names.iam_user.clone(),
            access_key_id: auth.access_key,
            policy_name: names.policy_name.clone(),
            access_key_created_at: Some(chrono::Utc::now()),
        };
        Ok(Delivered {
            description: format!("S3 bucket {bucket} in {region}"),
            redeem_url: Some(SecretString::from(
                card.redeem_url(&self.settings.officex_app_url),
            )),
            redeem_code: None,
            state: serde_json::to_value(&state).map_err(|e| {
                ProviderError::Permanent(format!("cannot encode the resource state: {e}"))
            })?,
        })
    }

    /// Deletes every access key of `user`; a missing user is fine.
    async fn delete_access_keys(&self, user: &str) -> Result<(), ProviderError> {
        for key_id in self.access_key_ids(user).await? {
            self.delete_access_key(user, &key_id).await?;
        }
        Ok(())
    }

    /// The user's access key ids (none when the user does not exist).
    async fn access_key_ids(&self, user: &str) -> Result<Vec<String>, ProviderError> {
        Ok(self
            .access_keys(user)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// The user's access keys with their status (none when the user does not exist).
    async fn access_keys(
        &self,
        user: &str,
    ) -> Result<Vec<(String, Option<StatusType>)>, ProviderError> {
        let listed = match self.iam.list_access_keys().user_name(user).send().await {
            Ok(listed) => listed,
            Err(e) if e.code() == Some("NoSuchEntity") => return Ok(Vec::new()),
            Err(e) => return Err(classify("ListAccessKeys", e)),
        };
        Ok(listed
            .access_key_metadata()
            .iter()
            .filter_map(|k| {
                k.access_key_id()
                    .map(|id| (id.to_owned(), k.status().cloned()))
            })
            .collect())
    }

    /// Deletes one access key of `user`; one already gone is fine.
    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), ProviderError> {
        match self
            .iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchEntity") => Ok(()),
            Err(e) => Err(classify("DeleteAccessKey", e)),
        }
    }

    /// A new access key for the purchase's user in place of `state.access_key_id`, which is
    /// deleted. Keys left by an interrupted rotation (never delivered) go first, as IAM allows two
    /// keys per user; a suspended purchase's new key is inactive like the old one.
    async fn replace_access_key(&self, state: &S3State) -> Result<NewCredential, ProviderError> {
        let user = &state.iam_user;
        let keys = self.access_keys(user).await?;
        let Some((_, status)) = keys.iter().find(|(id, _)| *id == state.access_key_id) else {
            return Err(ProviderError::Permanent(format!(
                "IAM user {user} no longer has the purchase's access key (the resource was deleted)"
            )));
        };
        let inactive = *status == Some(StatusType::Inactive);
        for (id, _) in keys.iter().filter(|(id, _)| *id != state.access_key_id) {
            self.delete_access_key(user, id).await?;
        }
        let created = self
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .map_err(|e| classify("CreateAccessKey", e))?;
        let key = created.access_key().ok_or_else(|| {
            ProviderError::Retryable("CreateAccessKey returned no key".to_owned())
        })?;
        if inactive {
            self.iam
                .update_access_key()
                .user_name(user)
                .access_key_id(key.access_key_id())
                .status(StatusType::Inactive)
                .send()
                .await
                .map_err(|e| classify("UpdateAccessKey", e))?;
        }
        self.delete_access_key(user, &state.access_key_id).await?;
        let next = S3State {
            access_key_id: key.access_key_id().to_owned(),
            access_key_created_at: Some(chrono::Utc::now()),
            ..state.clone()
        };
        Ok(NewCredential {
            secret: SecretString::from(key.secret_access_key().to_owned()),
            access_key_id: Some(next.access_key_id.clone()),
            hint: crate::billing::keys::hint(&next.access_key_id),
            state: Some(serde_json::to_value(&next).map_err(|e| {
                ProviderError::Permanent(format!("cannot encode the resource state: {e}"))
            })?),
        })
    }

    /// Sets every access key of the user to `status`.
    async fn set_keys_status(
        &self,
        state: &S3State,
        status: StatusType,
    ) -> Result<(), ProviderError> {
        let mut ids = self.access_key_ids(&state.iam_user).await?;
        if ids.is_empty() {
            return Err(ProviderError::Permanent(format!(
                "IAM user {} has no access key (the resource was deleted)",
                state.iam_user
            )));
        }
        ids.sort();
        for key_id in ids {
            self.iam
                .update_access_key()
                .user_name(&state.iam_user)
                .access_key_id(&key_id)
                .status(status.clone())
                .send()
                .await
                .map_err(|e| classify("UpdateAccessKey", e))?;
        }
        Ok(())
    }

    /// Removes the IAM user with its keys and inline policies. Missing pieces are skipped.
    async fn delete_user(&self, user: &str) -> Result<(), ProviderError> {
        self.delete_access_keys(user).await?;
        let policies = match self.iam.list_user_policies().user_name(user).send().await {
            Ok(listed) => listed.policy_names().to_vec(),
            Err(e) if e.code() == Some("NoSuchEntity") => return Ok(()),
            Err(e) => return Err(classify("ListUserPolicies", e)),
        };
        for policy in policies {
            match self
                .iam
                .delete_user_policy()
                .user_name(user)
                .policy_name(&policy)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Some("NoSuchEntity") => {}
                Err(e) => return Err(classify("DeleteUserPolicy", e)),
            }
        }
        match self.iam.delete_user().user_name(user).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchEntity") => Ok(()),
            Err(e) => Err(classify("DeleteUser", e)),
        }
    }

    /// Deletes every object version and delete marker, aborts multipart uploads, then deletes the
    /// bucket. Lists from the start each pass, so it resumes wherever an earlier run stopped.
    async fn delete_bucket(&self, bucket: &str) -> Result<(), ProviderError> {
        for _ in 0..DELETE_ROUNDS {
            loop {
                let listed = match self
                    .s3
                    .list_object_versions()
                    .bucket(bucket)
                    .max_keys(DELETE_BATCH as i32)
                    .send()
                    .await
                {
                    Ok(listed) => listed,
                    Err(e) if e.code() == Some("NoSuchBucket") => return Ok(()),
                    Err(e) => return Err(classify("ListObjectVersions", e)),
                };
                let mut ids = Vec::new();
                let versions = listed.versions().iter().map(|v| (v.key(), v.version_id()));
                let markers = listed
                    .delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id()));
                for (key, version) in versions.chain(markers) {
                    let Some(key) = key else { continue };
                    ids.push(
                        ObjectIdentifier::builder()
                            .key(key)
                            .set_version_id(version.map(str::to_owned))
                            .build()
                            .map_err(build_error)?,
                    );
                }
                if ids.is_empty() {
                    break;
                }
                for batch in ids.chunks(DELETE_BATCH) {
                    let deleted = match self
                        .s3
                        .delete_objects()
                        .bucket(bucket)
                        .delete(
                            Delete::builder()
                                .set_objects(Some(batch.to_vec()))
                                .quiet(true)
                                .build()
                                .map_err(build_error)?,
                        )
                        .send()
                        .await
                    {
                        Ok(deleted) => deleted,
                        Err(e) if e.code() == Some("NoSuchBucket") => return Ok(()),
                        Err(e) => return Err(classify("DeleteObjects", e)),
                    };
                    if let Some(failed) = deleted.errors().first() {
                        return Err(ProviderError::Retryable(format!(
                            "DeleteObjects in {bucket}: {} of {} keys failed, first {:?}: {}",
                            deleted.errors().len(),
                            batch.len(),
                            failed.key().unwrap_or_default(),
                            failed.code().unwrap_or_default()
                        )));
                    }
                }
            }
            loop {
                let listed = match self.s3.list_multipart_uploads().bucket(bucket).send().await {
                    Ok(listed) => listed,
                    Err(e) if e.code() == Some("NoSuchBucket") => return Ok(()),
                    Err(e) => return Err(classify("ListMultipartUploads", e)),
                };
                let uploads: Vec<(String, String)> = listed
                    .uploads()
                    .iter()
                    .filter_map(|u| Some((u.key()?.to_owned(), u.upload_id()?.to_owned())))
                    .collect();
                if uploads.is_empty() {
                    break;
                }
                for (key, upload_id) in uploads {
                    match self
                        .s3
                        .abort_multipart_upload()
                        .bucket(bucket)
                        .key(&key)
                        .upload_id(&upload_id)
                        .send()
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if matches!(e.code(), Some("NoSuchUpload" | "NoSuchBucket")) => {}
                        Err(e) => return Err(classify("AbortMultipartUpload", e)),
                    }
                }
            }
            match self.s3.delete_bucket().bucket(bucket).send().await {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == Some("NoSuchBucket") => return Ok(()),
                // Something was written meanwhile: empty it again.
                Err(e) if e.code() == Some("BucketNotEmpty") => continue,
                Err(e) => return Err(classify("DeleteBucket", e)),
            }
        }
        Err(ProviderError::Retryable(format!(
            "bucket {bucket} was still not empty after {DELETE_ROUNDS} rounds"
        )))
    }

    /// Access first (no new writes), then the data and the bucket. The bucket is attempted even
    /// when IAM fails (the suspended key cannot write anyway); the first error is returned.
    async fn remove_all(&self, bucket: &str, user: &str) -> Result<(), ProviderError> {
        let user_removed = self.delete_user(user).await;
        let bucket_removed = self.delete_bucket(bucket).await;
        user_removed.and(bucket_removed)
    }
}

/// Blocks public access (all four settings), enforces bucket-owner object ownership (ACLs off) and,
/// with a log bucket, turns on server access logging into [`log_prefix`] there. Every call is a
/// plain `Put…`, so running it again on a hardened bucket changes nothing.
pub async fn harden_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    log_bucket: Option<&str>,
) -> Result<(), ProviderError> {
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify("PutPublicAccessBlock", e))?;
    s3.put_bucket_ownership_controls()
        .bucket(bucket)
        .ownership_controls(
            OwnershipControls::builder()
                .rules(
                    OwnershipControlsRule::builder()
                        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                        .build()
                        .map_err(build_error)?,
                )
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| classify("PutBucketOwnershipControls", e))?;
    if let Some(log_bucket) = log_bucket {
        s3.put_bucket_logging()
            .bucket(bucket)
            .bucket_logging_status(
                BucketLoggingStatus::builder()
                    .logging_enabled(
                        LoggingEnabled::builder()
                            .target_bucket(log_bucket)
                            .target_prefix(log_prefix(bucket))
                            .build()
                            .map_err(build_error)?,
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify("PutBucketLogging", e))?;
    }
    Ok(())
}

fn parse_state(state: &serde_json::Value) -> Result<S3State, ProviderError> {
    serde_json::from_value(state.clone())
        .map_err(|e| ProviderError::Permanent(format!("unreadable S3 resource state: {e}")))
}

#[async_trait]
impl ResourceProvider for S3Provider {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn info(&self, state: &serde_json::Value) -> ResourceInfo {
        let state: Option<S3State> = serde_json::from_value(state.clone()).ok();
        let region = state.as_ref().map(|s| s.region.clone());
        ResourceInfo {
            kind: self.kind(),
            bucket: state.map(|s| s.bucket),
            endpoint: Some(self.settings.endpoint_url.clone().unwrap_or_else(|| {
                format!(
                    "https://s3.{}.amazonaws.com",
                    region.as_deref().unwrap_or(&self.settings.region)
                )
            })),
            region,
            gateway_base_url: None,
        }
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %request.purchase_id), err)]
    async fn provision(&self, request: &ProvisionRequest) -> Result<Delivered, ProviderError> {
        let prefix = request
            .offer
            .settings
            .get("bucket_prefix")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(DEFAULT_BUCKET_PREFIX);
        let names = Names::for_purchase(prefix, request.purchase_id)?;
        // Creation and cleanup both end within the deadline (each AWS call has its own too), so
        // this attempt never acts after another worker took the purchase over.
        let started = std::time::Instant::now();
        let created =
            tokio::time::timeout(PROVISION_DEADLINE * 2 / 3, self.create_all(&names, request))
                .await
                .unwrap_or_else(|_| {
                    Err(ProviderError::Retryable(
                        "AWS provisioning did not finish within its deadline".to_owned(),
                    ))
                });
        match created {
            Ok(delivered) => {
                tracing::info!(bucket = %names.bucket, "S3 bucket provisioned");
                Ok(delivered)
            }
            Err(e) => {
                // Leave nothing half-made; if AWS is unreachable the cleanup fails too, and the
                // retried provisioning (same names) or a later delete finishes the job.
                let left = PROVISION_DEADLINE.saturating_sub(started.elapsed());
                match tokio::time::timeout(left, self.remove_all(&names.bucket, &names.iam_user))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(cleanup)) => {
                        tracing::warn!(bucket = %names.bucket, error = %cleanup, "cleanup after a failed provisioning failed");
                    }
                    Err(_) => {
                        tracing::warn!(bucket = %names.bucket, "cleanup after a failed provisioning ran out of time");
                    }
                }
                Err(e)
            }
        }
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn upgrade(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        let state = parse_state(state)?;
        harden_bucket(
            &self.s3,
            &state.bucket,
            self.settings.access_log_bucket.as_deref(),
        )
        .await?;
        tracing::info!(%purchase_id, bucket = %state.bucket, "S3 bucket hardened");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn suspend(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        let state = parse_state(state)?;
        self.set_keys_status(&state, StatusType::Inactive).await?;
        tracing::info!(%purchase_id, user = %state.iam_user, "S3 access key deactivated");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn resume(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        let state = parse_state(state)?;
        self.set_keys_status(&state, StatusType::Active).await?;
        tracing::info!(%purchase_id, user = %state.iam_user, "S3 access key reactivated");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn rotate_credential(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<NewCredential, ProviderError> {
        let state = parse_state(state)?;
        let new = tokio::time::timeout(PROVISION_DEADLINE, self.replace_access_key(&state))
            .await
            .unwrap_or_else(|_| {
                Err(ProviderError::Retryable(
                    "AWS did not answer within the deadline".to_owned(),
                ))
            })?;
        tracing::info!(%purchase_id, user = %state.iam_user, "S3 access key replaced");
        Ok(new)
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn delete(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        if state.as_object().is_some_and(serde_json::Map::is_empty) {
            // Provisioning never delivered (it cleans up after itself): nothing to remove.
            tracing::warn!(%purchase_id, "no S3 resource recorded for this purchase; nothing to delete");
            return Ok(());
        }
        let state = parse_state(state)?;
        self.remove_all(&state.bucket, &state.iam_user).await?;
        tracing::info!(%purchase_id, bucket = %state.bucket, "S3 bucket deleted");
        Ok(())
    }
}

fn build_error(e: aws_sdk_s3::error::BuildError) -> ProviderError {
    ProviderError::Permanent(format!("invalid AWS request: {e}"))
}

/// Unreachable, throttled or failing AWS is retryable; a refused request is not.
fn classify<E>(operation: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => {
            err.raw_response()
                .is_some_and(|r| r.status().as_u16() >= 500 || r.status().as_u16() == 429)
                || matches!(
                    err.code(),
                    Some(
                        "Throttling"
                            | "ThrottlingException"
                            | "SlowDown"
                            | "RequestLimitExceeded"
                            | "ServiceUnavailable"
                            | "InternalError"
                            | "OperationAborted"
                    )
                )
        }
        _ => false,
    };
    let message = format!("AWS {operation}: {}", DisplayErrorContext(&err));
    if retryable {
        ProviderError::Retryable(message)
    } else {
        ProviderError::Permanent(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_the_original_and_s3_rules() {
        let id: PurchaseId = "CustomerPurchaseID_0f8fad5b-d9cb-469f-a165-70867728950e"
            .parse()
            .unwrap();
        let names = Names::for_purchase("officex-", id).unwrap();
        assert_eq!(
            names.bucket,
            "officex-customerpurchaseid-0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        assert_eq!(names.bucket.len(), 63);
        assert_eq!(names.iam_user, names.bucket);
        let names = Names::for_purchase("Acme-Storage-", id).unwrap();
        assert_eq!(
            names.bucket,
            "acme-storage-0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        for bad in ["x_y-", "-a", "xn--", &"a".repeat(28), "dots.are.out-"] {
            assert!(Names::for_purchase(bad, id).is_err(), "{bad}");
        }
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name("abc-"));
        assert!(valid_bucket_name("abc"));
    }

    #[test]
    fn policy_is_limited_to_the_bucket() {
        let doc = policy_document("b1");
        for statement in doc["Statement"].as_array().unwrap() {
            for resource in statement["Resource"].as_array().unwrap() {
                let r = resource.as_str().unwrap();
                assert!(r == "arn:aws:s3:::b1" || r == "arn:aws:s3:::b1/*", "{r}");
            }
            for action in statement["Action"].as_array().unwrap() {
                let a = action.as_str().unwrap();
                assert!(a.starts_with("s3:") && !a.contains('*'), "{a}");
            }
        }
    }

    #[test]
    fn gift_card_round_trips_through_the_redeem_url() {
        let card = GiftCard {
            name: "Amazon Storage V".into(),
            disk_type: "AWS_BUCKET".into(),
            public_note: "n".into(),
            auth_json: r#"{"secret_key":"s+/="}"#.into(),
            billing_url: "https://v.example/p#k=1".into(),
            endpoint: "https://v.example/p#k=1".into(),
        };
        let url = card.redeem_url("https://officex.app/");
        let (base, encoded) = url.split_once("?redeem=").unwrap();
        assert_eq!(base, "https://officex.app/org/current/redeem/disk-giftcard");
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{encoded}"
        );
        let back = GiftCard::from_redeem_url(&url).unwrap();
        assert_eq!(back.auth_json, card.auth_json);
        assert_eq!(back.billing_url, back.endpoint);
    }

    #[test]
    fn customer_endpoint_follows_the_region_or_the_override() {
        let mut s = S3Settings {
            region: "us-east-1".into(),
            endpoint_url: None,
            vendor_name: "v".into(),
            officex_app_url: "https://officex.app".into(),
            access_log_bucket: None,
        };
        assert_eq!(s.customer_endpoint(), "https://s3.amazonaws.com");
        s.region = "eu-west-1".into();
        assert_eq!(s.customer_endpoint(), "https://s3.eu-west-1.amazonaws.com");
        s.endpoint_url = Some("http://127.0.0.1:9000".into());
        assert_eq!(s.customer_endpoint(), "http://127.0.0.1:9000");
    }
}
