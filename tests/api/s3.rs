//! The S3 provider against a real AWS emulator (moto_server) with the real AWS SDK.

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ObjectIdentifier, VersioningConfiguration,
};
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use vendor_server::catalog::Offer;
use vendor_server::domain::ids::PurchaseId;
use vendor_server::domain::money::UsdMicros;
use vendor_server::providers::s3::{
    DiskAuth, GiftCard, Names, PURCHASE_TAG, S3Provider, S3Settings, S3State,
};
use vendor_server::providers::{ProviderError, ProvisionRequest, ResourceProvider};

use crate::moto::Moto;

const REGION: &str = "us-east-1";

fn settings(moto: &Moto, region: &str) -> S3Settings {
    S3Settings {
        region: region.to_owned(),
        endpoint_url: Some(moto.url.clone()),
        vendor_name: "Test Vendor".to_owned(),
        officex_app_url: "https://officex.app".to_owned(),
        access_log_bucket: None,
    }
}

fn s3_provider(moto: &Moto, region: &str, access_key: &str, secret: &str) -> S3Provider {
    S3Provider::with_clients(
        moto.s3(region, access_key, secret),
        moto.iam(region, access_key, secret),
        settings(moto, region),
    )
}

fn offer() -> Offer {
    Offer {
        offer_id: "aws-s3-storage-giftcard".into(),
        sku: "aws-s3-storage".into(),
        title: "Amazon S3 Storage Bucket".into(),
        description: String::new(),
        provider: "s3".into(),
        legacy_flow_id: None,
        about_url: None,
        pricing_line: String::new(),
        metadata: json!({}),
        settings: json!({"bucket_prefix": "officex-"}),
        tokens: Vec::new(),
        min_deposit: UsdMicros(1_000_000),
        suggested_deposit: UsdMicros(2_000_000),
        max_deposit: UsdMicros(10_000_000_000),
        low_trigger: None,
        critical_trigger: None,
        termination_trigger: None,
    }
}

fn customer_url(id: PurchaseId) -> String {
    format!(
        "https://vendor.example/v1/dashboard/purchase#vendor_purchase_id={id}&customer_billing_api_key=vsc_x"
    )
}

fn request(id: PurchaseId) -> ProvisionRequest {
    ProvisionRequest {
        purchase_id: id,
        offer: offer(),
        customer_email: None,
        customer_url: customer_url(id),
    }
}

/// Creates the vendor's own IAM user with `policy` (while moto still accepts anything) and returns
/// its key.
async fn vendor_credentials(moto: &Moto, policy: Value) -> (String, String) {
    let iam = moto.iam(REGION, "test", "test");
    iam.create_user()
        .user_name("vendor-admin")
        .send()
        .await
        .unwrap();
    iam.put_user_policy()
        .user_name("vendor-admin")
        .policy_name("vendor")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    let created = iam
        .create_access_key()
        .user_name("vendor-admin")
        .send()
        .await
        .unwrap();
    let key = created.access_key().unwrap();
    (
        key.access_key_id().to_owned(),
        key.secret_access_key().to_owned(),
    )
}

fn allow_all() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
}

fn card_of(delivered: &vendor_server::providers::Delivered) -> (GiftCard, DiskAuth, S3State) {
    let url = delivered.redeem_url.as_ref().unwrap().expose_secret();
    assert!(
        url.starts_with("https://officex.app/org/current/redeem/disk-giftcard?redeem="),
        "{url}"
    );
    let card = GiftCard::from_redeem_url(url).unwrap();
    let auth: DiskAuth = serde_json::from_str(&card.auth_json).unwrap();
    let state: S3State = serde_json::from_value(delivered.state.clone()).unwrap();
    (card, auth, state)
}

/// AWS returns policy documents URL-encoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn bucket_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => true,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => false,
        Err(e) => panic!("head_bucket: {e:?}"),
    }
}

async fn user_exists(iam: &aws_sdk_iam::Client, user: &str) -> bool {
    match iam.get_user().user_name(user).send().await {
        Ok(_) => true,
        Err(e) if e.code() == Some("NoSuchEntity") => false,
        Err(e) => panic!("get_user: {e:?}"),
    }
}

/// Turns versioning on and writes `versions` object versions over 40 keys, a delete marker on 10
/// keys and 3 unfinished multipart uploads (one with a part).
async fn fill_versioned(s3: &aws_sdk_s3::Client, bucket: &str, versions: usize) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    futures::stream::iter(0..versions)
        .map(|i| {
            let s3 = s3.clone();
            let bucket = bucket.to_owned();
            async move {
                s3.put_object()
                    .bucket(bucket)
                    .key(format!("dir/k{:02}", i % 40))
                    .body(ByteStream::from(format!("v{i}").into_bytes()))
                    .send()
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for i in 0..10 {
        s3.delete_object()
            .bucket(bucket)
            .key(format!("dir/k{i:02}"))
            .send()
            .await
            .unwrap();
    }
    for i in 0..3 {
        let upload = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(format!("big{i}"))
            .send()
            .await
            .unwrap();
        if i == 0 {
            s3.upload_part()
                .bucket(bucket)
                .key("big0")
                .upload_id(upload.upload_id().unwrap())
                .part_number(1)
                .body(ByteStream::from(vec![7u8; 1024]))
                .send()
                .await
                .unwrap();
        }
    }
    let listed = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    if versions > 1000 {
        assert_eq!(listed.is_truncated(), Some(true), "more than one page");
    }
    let uploads = s3
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 3);
}

#[tokio::test]
async fn gift_card_credentials_reach_their_bucket_and_nothing_else() {
    let moto = Moto::start().await;
    let region = "eu-west-1";
    let (access_key, secret) = vendor_credentials(&moto, allow_all()).await;
    moto.enforce_iam().await;
    let vendor_s3 = moto.s3(region, &access_key, &secret);
    vendor_s3
        .create_bucket()
        .bucket("someone-elses-bucket")
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let provider = s3_provider(&moto, region, &access_key, &secret);
    let id = PurchaseId::new();
    let delivered = provider.provision(&request(id)).await.unwrap();

    let (card, auth, state) = card_of(&delivered);
    let names = Names::for_purchase("officex-", id).unwrap();
    assert_eq!(card.name, "Amazon Storage Test Vendor");
    assert_eq!(card.disk_type, "AWS_BUCKET");
    assert_eq!(card.billing_url, customer_url(id));
    assert_eq!(card.endpoint, customer_url(id));
    assert_eq!(
        (auth.endpoint.as_str(), auth.region.as_str()),
        (moto.url.as_str(), region)
    );
    assert_eq!(auth.bucket, names.bucket);
    // What the customer page shows: the gift card's bucket, region and endpoint, no secret.
    let info = provider.info(&delivered.state);
    assert_eq!(
        (info.kind, info.bucket.as_deref(), info.region.as_deref()),
        ("s3", Some(names.bucket.as_str()), Some(region))
    );
    assert_eq!(info.endpoint.as_deref(), Some(moto.url.as_str()));
    assert!(
        !serde_json::to_string(&info)
            .unwrap()
            .contains(&auth.secret_key)
    );
    assert_eq!(
        state,
        S3State {
            bucket: names.bucket.clone(),
            region: region.to_owned(),
            iam_user: names.iam_user.clone(),
            access_key_id: auth.access_key.clone(),
            policy_name: names.policy_name.clone(),
            access_key_created_at: state.access_key_created_at,
        }
    );
    assert!(!delivered.description.contains(&auth.secret_key));
    assert!(!delivered.state.to_string().contains(&auth.secret_key));
    assert!(delivered.redeem_code.is_none());

    let tags = vendor_s3
        .get_bucket_tagging()
        .bucket(&auth.bucket)
        .send()
        .await
        .unwrap();
    let tag = tags
        .tag_set()
        .iter()
        .find(|t| t.key() == PURCHASE_TAG)
        .unwrap();
    assert_eq!(tag.value(), id.to_string());
    let cors = vendor_s3
        .get_bucket_cors()
        .bucket(&auth.bucket)
        .send()
        .await
        .unwrap();
    let rule = &cors.cors_rules()[0];
    assert_eq!(rule.allowed_origins(), ["*"]);
    assert!(rule.allowed_methods().iter().any(|m| m == "PUT"));

    // The customer, with only the gift card: read and write in their bucket.
    let customer = moto.s3(&auth.region, &auth.access_key, &auth.secret_key);
    customer
        .put_object()
        .bucket(&auth.bucket)
        .key("docs/hello.txt")
        .body(ByteStream::from_static(b"hello officex"))
        .send()
        .await
        .unwrap();
    let got = customer
        .get_object()
        .bucket(&auth.bucket)
        .key("docs/hello.txt")
        .send()
        .await
        .unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"hello officex");
    let listed = customer
        .list_objects_v2()
        .bucket(&auth.bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(1));

    // … and nothing else.
    let denied = |code: Option<&str>| code == Some("AccessDenied");
    let e = customer
        .put_object()
        .bucket("someone-elses-bucket")
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert!(denied(e.code()), "{e:?}");
    let e = customer
        .list_objects_v2()
        .bucket("someone-elses-bucket")
        .send()
        .await
        .unwrap_err();
    assert!(denied(e.code()), "{e:?}");
    let e = customer
        .delete_bucket()
        .bucket(&auth.bucket)
        .send()
        .await
        .unwrap_err();
    assert!(denied(e.code()), "{e:?}");
    let e = customer
        .put_bucket_policy()
        .bucket(&auth.bucket)
        .policy(allow_all().to_string())
        .send()
        .await
        .unwrap_err();
    assert!(denied(e.code()), "{e:?}");
    let customer_iam = moto.iam(&auth.region, &auth.access_key, &auth.secret_key);
    let e = customer_iam
        .create_user()
        .user_name("escalate")
        .send()
        .await
        .unwrap_err();
    // (moto's IAM error body is not the SDK's format: check the status.)
    assert_eq!(
        e.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{e:?}"
    );

    // Deletion with the vendor's (enforced) credentials removes it all.
    provider.delete(id, &delivered.state).await.unwrap();
    assert!(!bucket_exists(&vendor_s3, &auth.bucket).await);
    assert!(bucket_exists(&vendor_s3, "someone-elses-bucket").await);
}

#[tokio::test]
async fn suspend_deactivates_the_key_and_resume_reactivates_it() {
    let moto = Moto::start().await;
    let provider = s3_provider(&moto, REGION, "test", "test");
    let iam = moto.iam(REGION, "test", "test");
    let id = PurchaseId::new();
    let delivered = provider.provision(&request(id)).await.unwrap();
    let (_, auth, state) = card_of(&delivered);
    let status = || async {
        let keys = iam
            .list_access_keys()
            .user_name(&state.iam_user)
            .send()
            .await
            .unwrap();
        let keys = keys.access_key_metadata();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].access_key_id(), Some(auth.access_key.as_str()));
        keys[0].status().unwrap().as_str().to_owned()
    };
    assert_eq!(status().await, "Active");

    // The policy, read back through IAM, is limited to the bucket.
    let policy = iam
        .get_user_policy()
        .user_name(&state.iam_user)
        .policy_name(&state.policy_name)
        .send()
        .await
        .unwrap();
    let text = policy.policy_document();
    let doc: Value = serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&percent_decode(text)))
        .unwrap();
    let mut resources = Vec::new();
    for statement in doc["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        for r in statement["Resource"].as_array().unwrap() {
            resources.push(r.as_str().unwrap().to_owned());
        }
    }
    resources.sort();
    assert_eq!(
        resources,
        [
            format!("arn:aws:s3:::{}", state.bucket),
            format!("arn:aws:s3:::{}/*", state.bucket)
        ]
    );

    provider.suspend(id, &delivered.state).await.unwrap();
    assert_eq!(status().await, "Inactive");
    provider.suspend(id, &delivered.state).await.unwrap();
    assert_eq!(status().await, "Inactive", "suspending twice is harmless");
    // The data is kept.
    assert!(bucket_exists(&moto.s3(REGION, "test", "test"), &state.bucket).await);
    provider.resume(id, &delivered.state).await.unwrap();
    assert_eq!(status().await, "Active");

    // Once deleted, suspend is refused clearly; delete stays fine.
    provider.delete(id, &delivered.state).await.unwrap();
    assert!(matches!(
        provider.suspend(id, &delivered.state).await,
        Err(ProviderError::Permanent(_))
    ));
    provider.delete(id, &delivered.state).await.unwrap();
}

#[tokio::test]
async fn delete_removes_every_version_marker_and_upload_then_the_bucket_and_user() {
    let moto = Moto::start().await;
    let provider = s3_provider(&moto, REGION, "test", "test");
    let s3 = moto.s3(REGION, "test", "test");
    let iam = moto.iam(REGION, "test", "test");
    let id = PurchaseId::new();
    let delivered = provider.provision(&request(id)).await.unwrap();
    let (_, _, state) = card_of(&delivered);
    fill_versioned(&s3, &state.bucket, 1001).await;
    provider.delete(id, &delivered.state).await.unwrap();
    assert!(!bucket_exists(&s3, &state.bucket).await);
    assert!(!user_exists(&iam, &state.iam_user).await);
    // Again: everything is already gone, nothing fails.
    provider.delete(id, &delivered.state).await.unwrap();
}

#[tokio::test]
async fn delete_completes_after_a_crash_halfway() {
    let moto = Moto::start().await;
    let provider = s3_provider(&moto, REGION, "test", "test");
    let s3 = moto.s3(REGION, "test", "test");
    let iam = moto.iam(REGION, "test", "test");

    // A deletion that died after removing the key, the policy and 500 versions.
    let id = PurchaseId::new();
    let delivered = provider.provision(&request(id)).await.unwrap();
    let (_, _, state) = card_of(&delivered);
    fill_versioned(&s3, &state.bucket, 1001).await;
    iam.delete_access_key()
        .user_name(&state.iam_user)
        .access_key_id(&state.access_key_id)
        .send()
        .await
        .unwrap();
    iam.delete_user_policy()
        .user_name(&state.iam_user)
        .policy_name(&state.policy_name)
        .send()
        .await
        .unwrap();
    let listed = s3
        .list_object_versions()
        .bucket(&state.bucket)
        .max_keys(500)
        .send()
        .await
        .unwrap();
    let ids: Vec<ObjectIdentifier> = listed
        .versions()
        .iter()
        .map(|v| {
            ObjectIdentifier::builder()
                .key(v.key().unwrap())
                .set_version_id(v.version_id().map(str::to_owned))
                .build()
                .unwrap()
        })
        .collect();
    assert!(ids.len() >= 400, "{}", ids.len());
    s3.delete_objects()
        .bucket(&state.bucket)
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    provider.delete(id, &delivered.state).await.unwrap();
    assert!(!bucket_exists(&s3, &state.bucket).await);
    assert!(!user_exists(&iam, &state.iam_user).await);

    // A deletion stopped at an arbitrary point (its future dropped), then run again.
    let id = PurchaseId::new();
    let delivered = provider.provision(&request(id)).await.unwrap();
    let (_, _, state) = card_of(&delivered);
    fill_versioned(&s3, &state.bucket, 300).await;
    let _ = tokio::time::timeout(
        Duration::from_millis(150),
        provider.delete(id, &delivered.state),
    )
    .await;
    provider.delete(id, &delivered.state).await.unwrap();
    assert!(!bucket_exists(&s3, &state.bucket).await);
    assert!(!user_exists(&iam, &state.iam_user).await);
}

#[tokio::test]
async fn failed_provisioning_cleans_up_and_says_whether_to_retry() {
    let moto = Moto::start().await;
    let s3 = moto.s3(REGION, "test", "test");
    let dead = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    };
    let dead_sdk = moto
        .sdk_config(REGION, "test", "test")
        .into_builder()
        .endpoint_url(&dead)
        .build();

    // IAM unreachable after the bucket was made: retryable, and the bucket is gone again.
    let provider = S3Provider::with_clients(
        s3.clone(),
        aws_sdk_iam::Client::new(&dead_sdk),
        settings(&moto, REGION),
    );
    let id = PurchaseId::new();
    let err = provider.provision(&request(id)).await.unwrap_err();
    assert!(matches!(err, ProviderError::Retryable(_)), "{err:?}");
    let names = Names::for_purchase("officex-", id).unwrap();
    assert!(!bucket_exists(&s3, &names.bucket).await);

    // AWS unreachable altogether: retryable.
    let provider = S3Provider::with_clients(
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&dead_sdk)
                .force_path_style(true)
                .build(),
        ),
        aws_sdk_iam::Client::new(&dead_sdk),
        settings(&moto, REGION),
    );
    let err = provider
        .provision(&request(PurchaseId::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Retryable(_)), "{err:?}");

    // Refused at the last step (no right to create access keys): not retryable, and the bucket,
    // the user and its policy are removed.
    let (access_key, secret) = vendor_credentials(
        &moto,
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "iam:CreateAccessKey", "Resource": "*"}
        ]}),
    )
    .await;
    moto.enforce_iam().await;
    let provider = s3_provider(&moto, REGION, &access_key, &secret);
    let id = PurchaseId::new();
    let err = provider.provision(&request(id)).await.unwrap_err();
    match &err {
        ProviderError::Permanent(message) => {
            assert!(message.contains("CreateAccessKey"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let names = Names::for_purchase("officex-", id).unwrap();
    let vendor_s3 = moto.s3(REGION, &access_key, &secret);
    let vendor_iam = moto.iam(REGION, &access_key, &secret);
    assert!(!bucket_exists(&vendor_s3, &names.bucket).await);
    assert!(!user_exists(&vendor_iam, &names.iam_user).await);
}

#[tokio::test]
async fn a_retried_provisioning_reuses_the_names_and_issues_one_fresh_key() {
    let moto = Moto::start().await;
    let provider = s3_provider(&moto, REGION, "test", "test");
    let iam = moto.iam(REGION, "test", "test");
    let id = PurchaseId::new();
    let first = provider.provision(&request(id)).await.unwrap();
    let second = provider.provision(&request(id)).await.unwrap();
    let (_, first_auth, _) = card_of(&first);
    let (_, second_auth, state) = card_of(&second);
    assert_eq!(first_auth.bucket, second_auth.bucket);
    assert_ne!(first_auth.access_key, second_auth.access_key);
    let keys = iam
        .list_access_keys()
        .user_name(&state.iam_user)
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = keys
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id())
        .collect();
    assert_eq!(ids, [second_auth.access_key.as_str()]);
    provider.delete(id, &second.state).await.unwrap();
    // A purchase whose provisioning never delivered has nothing recorded: deleting it is a no-op.
    provider
        .delete(PurchaseId::new(), &json!({}))
        .await
        .unwrap();
}

/// An AWS endpoint that accepts connections and never answers (a stalled IAM or S3): every
/// provider call fails within the configured deadline instead of hanging past the provisioning
/// lease, where a retry could run beside it and delete the key it already delivered.
#[tokio::test]
async fn a_stalled_aws_endpoint_fails_within_the_configured_deadline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = vendor_server::config::Config::from_vars(&crate::helpers::test_vars(
        "http://127.0.0.1:1",
        &[
            ("AWS_REGION", REGION),
            ("AWS_ENDPOINT_URL", &url),
            ("AWS_ACCESS_KEY_ID", "AKIDSTALLED"),
            ("AWS_SECRET_ACCESS_KEY", "stalled-secret"),
            ("AWS_OPERATION_TIMEOUT_SECS", "2"),
            ("AWS_ATTEMPT_TIMEOUT_SECS", "1"),
        ],
    ))
    .unwrap();
    let provider = S3Provider::from_config(config.aws.as_ref().unwrap(), &config).await;

    // Provisioning: CreateBucket stalls, then the cleanup's IAM and S3 calls stall too; each ends
    // at its 2 s deadline.
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        provider.provision(&request(PurchaseId::new())),
    )
    .await
    .expect("provisioning against a stalled AWS hung for 60 s");
    let took = started.elapsed();
    assert!(
        matches!(&result, Err(ProviderError::Retryable(m)) if m.contains("CreateBucket")),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(12), "took {took:?}");

    // Suspension (IAM ListAccessKeys) likewise.
    let state = json!({
        "bucket": "officex-x", "region": REGION, "iam_user": "officex-x",
        "access_key_id": "AKIDX", "policy_name": "officex-x"
    });
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        provider.suspend(PurchaseId::new(), &state),
    )
    .await
    .expect("suspension against a stalled AWS hung for 60 s");
    assert!(
        matches!(result, Err(ProviderError::Retryable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// The log bucket's policy as README "S3 costs" gives it: the logging service principal may write.
pub async fn create_log_bucket(s3: &aws_sdk_s3::Client, log_bucket: &str) {
    s3.create_bucket().bucket(log_bucket).send().await.unwrap();
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "S3ServerAccessLogsPolicy",
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": ["s3:PutObject"],
            "Resource": format!("arn:aws:s3:::{log_bucket}/*"),
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}
        }]
    });
    s3.put_bucket_policy()
        .bucket(log_bucket)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
}

/// Public access blocked (all four), ACLs off, and (with a log bucket) access logs into
/// `access-logs/<bucket>/` there.
pub async fn assert_hardened(s3: &aws_sdk_s3::Client, bucket: &str, log_bucket: Option<&str>) {
    let block = s3
        .get_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let c = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            c.block_public_acls(),
            c.ignore_public_acls(),
            c.block_public_policy(),
            c.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true)),
        "{bucket}"
    );
    let ownership = s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rules = ownership.ownership_controls().unwrap().rules();
    assert_eq!(
        rules.first().map(|r| r.object_ownership().clone()),
        Some(aws_sdk_s3::types::ObjectOwnership::BucketOwnerEnforced)
    );
    let logging = s3.get_bucket_logging().bucket(bucket).send().await.unwrap();
    match log_bucket {
        Some(log_bucket) => {
            let enabled = logging.logging_enabled().expect("logging on");
            assert_eq!(enabled.target_bucket(), log_bucket);
            assert_eq!(enabled.target_prefix(), format!("access-logs/{bucket}/"));
        }
        None => assert!(logging.logging_enabled().is_none()),
    }
}

#[tokio::test]
async fn buckets_block_public_access_enforce_bucket_ownership_and_log_their_requests() {
    let moto = Moto::start().await;
    let s3 = moto.s3(REGION, "test", "test");
    create_log_bucket(&s3, "vendor-access-logs").await;
    let mut with_logs = settings(&moto, REGION);
    with_logs.access_log_bucket = Some("vendor-access-logs".into());
    let provider = S3Provider::with_clients(
        moto.s3(REGION, "test", "test"),
        moto.iam(REGION, "test", "test"),
        with_logs,
    );
    let id = PurchaseId::new();
    let delivered = provider.provision(&request(id)).await.unwrap();
    let (_, _, state) = card_of(&delivered);
    assert_hardened(&s3, &state.bucket, Some("vendor-access-logs")).await;

    // Without a log bucket: hardened, no logging.
    let plain = s3_provider(&moto, REGION, "test", "test");
    let id = PurchaseId::new();
    let (_, _, state) = card_of(&plain.provision(&request(id)).await.unwrap());
    assert_hardened(&s3, &state.bucket, None).await;

    // A bucket made before the hardening gets it from `upgrade`, as often as it runs.
    s3.create_bucket()
        .bucket("officex-made-before")
        .send()
        .await
        .unwrap();
    let old = json!({"bucket": "officex-made-before", "region": REGION, "iam_user": "u",
                     "access_key_id": "AKIA", "policy_name": "p"});
    for _ in 0..2 {
        provider.upgrade(id, &old).await.unwrap();
        assert_hardened(&s3, "officex-made-before", Some("vendor-access-logs")).await;
    }
}
