//! Brings existing resources up to what provisioning does now: every S3 bucket provisioned before the
//! hardening (public access blocked, bucket-owner object ownership, access logging into
//! `S3_ACCESS_LOG_BUCKET`) gets it at the next start. `s3_bucket_setup` records what each bucket
//! has, so a pass only touches buckets that are behind (a new log bucket counts as behind); the
//! calls themselves are idempotent, so two replicas doing the same bucket is harmless.

use sqlx::PgPool;

use super::Providers;
use crate::domain::Outcome;
use crate::domain::ids::PurchaseId;

/// Buckets upgraded per pass.
pub const BATCH_SIZE: i64 = 50;

/// One pass over up to [`BATCH_SIZE`] S3 purchases whose bucket is behind. A bucket that fails is
/// logged and tried again on a later pass; the others go on.
pub async fn run_once(
    pool: &PgPool,
    providers: &Providers,
    log_bucket: Option<&str>,
) -> anyhow::Result<Outcome> {
    let Ok(provider) = providers.get("s3") else {
        return Ok(Outcome::Idle);
    };
    let rows = sqlx::query!(
        "select p.purchase_id, p.resource_state from purchase p join offer o using (offer_id)
         left join s3_bucket_setup s using (purchase_id)
         where o.provider = 's3' and p.resource_status in ('ready', 'suspended')
           and (s.purchase_id is null or s.log_bucket is distinct from $1)
         order by p.purchase_id limit $2",
        log_bucket,
        BATCH_SIZE
    )
    .fetch_all(pool)
    .await?;
    let mut done = 0;
    for row in rows {
        let id = PurchaseId(row.purchase_id);
        if let Err(e) = provider.upgrade(id, &row.resource_state).await {
            tracing::warn!(purchase_id = %id, error = %e, "bucket upgrade failed; retried later");
            continue;
        }
        sqlx::query!(
            "insert into s3_bucket_setup (purchase_id, log_bucket) values ($1, $2)
             on conflict (purchase_id) do update set log_bucket = excluded.log_bucket, hardened_at = now()",
            row.purchase_id,
            log_bucket
        )
        .execute(pool)
        .await?;
        done += 1;
    }
    Ok(if done == 0 {
        Outcome::Idle
    } else {
        Outcome::Processed(done)
    })
}
