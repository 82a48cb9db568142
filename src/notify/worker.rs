//! The delivery worker: claims due outbox rows per channel (`claim_due`) and delivers them —
//! signed webhooks to `VENDOR_WEBHOOK_URL`, customer emails and operator alerts over SMTP
//! (`SMTP_URL`) — recording every attempt (`record`: backoff with jitter, `Retry-After` honoured,
//! failed after the schedule). A webhook or email that fails for good raises an operator alert
//! (`VENDOR_ALERT_EMAIL` and an error log), never through the webhook.
//!
//! A channel that is not configured completes its rows as `skipped` (with the reason in
//! `last_error`) instead of leaving them pending forever; alerts are always logged at error level,
//! so an alert skipped for lack of SMTP still reaches the logs (and Sentry). `officex` rows belong to
//! the OfficeX worker and are left alone here.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use sqlx::PgPool;

use super::events::{self, Alert, Email};
use super::{Channel, Delivery, OutboxItem, claim_due, record};
use crate::config::Config;
use crate::domain::Outcome;

/// Rows claimed per channel and pass.
pub const BATCH_SIZE: i64 = 20;
/// How long a webhook receiver has to answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an SMTP exchange may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

type Mailer = AsyncSmtpTransport<Tokio1Executor>;

/// What a notify pass works with.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    pool: &'a PgPool,
    config: &'a Config,
    http: &'a reqwest::Client,
}

/// One pass over the webhook, email and alert channels.
pub async fn run_once(
    pool: &PgPool,
    config: &Config,
    http: &reqwest::Client,
) -> anyhow::Result<Outcome> {
    let cx = &Ctx { pool, config, http };
    let mut done = 0;
    done += webhooks(cx).await?;
    done += emails(cx, Channel::Email).await?;
    done += emails(cx, Channel::Alert).await?;
    Ok(if done == 0 {
        Outcome::Idle
    } else {
        Outcome::Processed(done)
    })
}

/// Completes every pending row of `channel` as skipped.
async fn skip_all(pool: &PgPool, channel: Channel, reason: &str) -> anyhow::Result<usize> {
    let done = sqlx::query!(
        "update outbox set status = 'skipped', last_error = $2
         where channel = $1 and status = 'pending'",
        channel.as_str(),
        reason
    )
    .execute(pool)
    .await?;
    let n = usize::try_from(done.rows_affected()).unwrap_or(usize::MAX);
    if n > 0 {
        tracing::debug!(channel = channel.as_str(), n, reason, "outbox rows skipped");
    }
    Ok(n)
}

async fn skip_one(pool: &PgPool, item: &OutboxItem, reason: &str) -> anyhow::Result<()> {
    sqlx::query!(
        "update outbox set status = 'skipped', last_error = $2 where outbox_id = $1",
        item.outbox_id,
        reason
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records an attempt; a row that has now failed for good raises an operator alert.
async fn finish(
    cx: &Ctx<'_>,
    item: &OutboxItem,
    delivery: &Delivery,
    took: Duration,
) -> anyhow::Result<()> {
    let failed = record(cx.pool, item, delivery, took).await?;
    if failed && item.channel != Channel::Alert.as_str() {
        let error = match delivery {
            Delivery::Retry { error, .. } | Delivery::GiveUp { error, .. } => error.as_str(),
            Delivery::Delivered { .. } | Delivery::Skipped { .. } => "",
        };
        tracing::error!(
            outbox_id = item.outbox_id,
            channel = %item.channel,
            event_type = %item.event_type,
            attempts = item.attempt,
            error,
            "notification failed for good"
        );
        let alert = Alert {
            subject: format!("{} delivery failed: {}", item.channel, item.event_type),
            text: format!(
                "The {} notification {} ({}) could not be delivered after {} attempts.\nLast error: {error}\nPurchase: {}\n",
                item.channel,
                events::event_wire_id(item.event_id),
                item.event_type,
                item.attempt,
                item.purchase_id.map(|p| p.to_string()).unwrap_or_default(),
            ),
        };
        let mut conn = cx.pool.acquire().await?;
        events::alert(
            &mut conn,
            &format!("{}.failed", item.channel),
            item.purchase_id,
            &alert,
            Some(&format!("alert:outbox:{}", item.outbox_id)),
        )
        .await?;
    }
    Ok(())
}

async fn webhooks(cx: &Ctx<'_>) -> anyhow::Result<usize> {
    let notify = &cx.config.notify;
    let (Some(url), Some(secret)) = (&notify.webhook_url, &notify.webhook_secret) else {
        return skip_all(cx.pool, Channel::Webhook, "VENDOR_WEBHOOK_URL is not set").await;
    };
    let items = claim_due(cx.pool, Channel::Webhook, BATCH_SIZE).await?;
    let n = items.len();
    let results = join_all(items.iter().map(|item| async move {
        let started = Instant::now();
        let delivery = send_webhook(cx, url, secret.expose_secret().as_bytes(), item).await;
        finish(cx, item, &delivery, started.elapsed()).await
    }))
    .await;
    for r in results {
        r?;
    }
    Ok(n)
}

async fn send_webhook(cx: &Ctx<'_>, url: &str, secret: &[u8], item: &OutboxItem) -> Delivery {
    let body = events::webhook_body(
        item.event_id,
        &item.event_type,
        item.created_at,
        &item.payload,
    );
    let signature = events::signature_header(secret, Utc::now().timestamp(), body.as_bytes());
    let sent = cx
        .http
        .post(url)
        .timeout(WEBHOOK_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Vendor-Event-Id", events::event_wire_id(item.event_id))
        .header("X-Vendor-Signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            let http_status = Some(i32::from(status.as_u16()));
            if status.is_success() {
                Delivery::Delivered { http_status }
            } else {
                Delivery::Retry {
                    http_status,
                    error: format!("receiver answered HTTP {status}"),
                    retry_after: retry_after(response.headers()),
                }
            }
        }
        // Without the URL: it may carry a token of the vendor's.
        Err(e) => Delivery::Retry {
            http_status: None,
            error: e.without_url().to_string(),
            retry_after: None,
        },
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The SMTP transport for `SMTP_URL`: `smtp://host:port` (STARTTLS required, or
/// `?tls=opportunistic`), `smtp://host:port?tls=none` (no TLS: a local sink), `smtps://…` (TLS),
/// with `user:pass@` if needed.
pub fn mailer(smtp_url: &str) -> anyhow::Result<Mailer> {
    let mut url =
        reqwest::Url::parse(smtp_url).map_err(|_| anyhow::anyhow!("SMTP_URL is not a URL"))?;
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // Secure by default: plain `smtp://` means STARTTLS; `?tls=none` asks for no TLS (a local sink).
    if url.scheme() == "smtp" && !pairs.iter().any(|(k, _)| k == "tls") {
        pairs.push(("tls".into(), "required".into()));
    }
    pairs.retain(|(k, v)| !(k == "tls" && v == "none"));
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Ok(Mailer::from_url(url.as_str())
        .map_err(|e| anyhow::anyhow!("SMTP_URL is not usable: {e}"))?
        .timeout(Some(SMTP_TIMEOUT))
        .build())
}

async fn emails(cx: &Ctx<'_>, channel: Channel) -> anyhow::Result<usize> {
    let notify = &cx.config.notify;
    let to_operator = channel == Channel::Alert;
    let missing = match (&notify.smtp_url, &notify.alert_email) {
        (None, _) => Some("SMTP_URL is not set"),
        (Some(_), None) if to_operator => Some("VENDOR_ALERT_EMAIL is not set"),
        _ => None,
    };
    if let Some(reason) = missing {
        if !to_operator {
            return skip_all(cx.pool, channel, reason).await;
        }
        // Alerts still reach the logs.
        let items = claim_due(cx.pool, channel, BATCH_SIZE).await?;
        for item in &items {
            log_alert(item);
            skip_one(cx.pool, item, reason).await?;
        }
        return Ok(items.len());
    }
    let items = claim_due(cx.pool, channel, BATCH_SIZE).await?;
    if items.is_empty() {
        return Ok(0);
    }
    let smtp_url = notify
        .smtp_url
        .as_ref()
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_default();
    let mailer = mailer(&smtp_url);
    let n = items.len();
    let results = join_all(items.iter().map(|item| {
        let mailer = &mailer;
        async move {
            if to_operator && item.attempt == 1 {
                log_alert(item);
            }
            let started = Instant::now();
            let delivery = match mailer {
                Ok(mailer) => send_email(cx, mailer, item).await,
                Err(e) => Delivery::Retry {
                    http_status: None,
                    error: e.to_string(),
                    retry_after: None,
                },
            };
            finish(cx, item, &delivery, started.elapsed()).await
        }
    }))
    .await;
    for r in results {
        r?;
    }
    Ok(n)
}

/// The alert an `Alert`-channel row carries. Modules write `{subject, text}` or `{message, …}` with
/// extra fields; whatever the shape, the operator gets a subject (the event type when none is given)
/// and a text (the message, else the whole payload), never a silently dropped alert.
fn alert_of(item: &OutboxItem) -> Alert {
    let field = |name: &str| {
        item.payload
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Alert {
        subject: field("subject").unwrap_or_else(|| item.event_type.clone()),
        text: field("text")
            .or_else(|| field("message"))
            .unwrap_or_else(|| serde_json::to_string_pretty(&item.payload).unwrap_or_default()),
    }
}

fn log_alert(item: &OutboxItem) {
    let alert = alert_of(item);
    tracing::error!(
        event_type = %item.event_type,
        subject = %alert.subject,
        text = %alert.text,
        "operator alert"
    );
}

async fn send_email(cx: &Ctx<'_>, mailer: &Mailer, item: &OutboxItem) -> Delivery {
    let notify = &cx.config.notify;
    let email = if item.channel == Channel::Alert.as_str() {
        let a = alert_of(item);
        Ok(Email {
            to: notify.alert_email.clone().unwrap_or_default(),
            subject: format!("[{}] {}", cx.config.vendor.name, a.subject),
            text: a.text,
        })
    } else {
        serde_json::from_value::<Email>(item.payload.clone())
    };
    let give_up = |error: String| Delivery::GiveUp {
        http_status: None,
        error,
    };
    let email = match email {
        Ok(e) => e,
        Err(e) => return give_up(format!("malformed email payload: {e}")),
    };
    let from: Mailbox = match notify.from_email.parse() {
        Ok(m) => m,
        Err(e) => return give_up(format!("NOTIFY_FROM_EMAIL is not an address: {e}")),
    };
    let to: Mailbox = match email.to.parse() {
        Ok(m) => m,
        Err(e) => return give_up(format!("recipient is not an address: {e}")),
    };
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(email.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(email.text);
    let message = match message {
        Ok(m) => m,
        Err(e) => return give_up(format!("cannot build the message: {e}")),
    };
    match mailer.send(message).await {
        Ok(response) => Delivery::Delivered {
            http_status: Some(i32::from(u16::from(response.code()))),
        },
        Err(e) if e.is_permanent() => give_up(format!("SMTP refused: {e}")),
        Err(e) => Delivery::Retry {
            http_status: None,
            error: format!("SMTP: {e}"),
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn alerts_of_every_module_shape_are_readable() {
        let item = |event: &str, payload: serde_json::Value| super::OutboxItem {
            outbox_id: 1,
            channel: "alert".into(),
            event_id: uuid::Uuid::new_v4(),
            event_type: event.into(),
            purchase_id: None,
            payload,
            attempt: 1,
            created_at: chrono::Utc::now(),
        };
        let own = super::alert_of(&item("x", serde_json::json!({"subject": "S", "text": "T"})));
        assert_eq!((own.subject.as_str(), own.text.as_str()), ("S", "T"));
        // The payments and OfficeX modules write `message` (and more fields), sometimes no subject.
        let sweep = super::alert_of(&item(
            "gas.low",
            serde_json::json!({"message": "fund it", "chain_id": 1}),
        ));
        assert_eq!(
            (sweep.subject.as_str(), sweep.text.as_str()),
            ("gas.low", "fund it")
        );
        let bare = super::alert_of(&item(
            "deposit.reorged",
            serde_json::json!({"tx_hash": "0xab"}),
        ));
        assert!(bare.text.contains("0xab"));
    }

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn smtp_urls_are_accepted() {
        assert!(mailer("smtp://127.0.0.1:2525?tls=none").is_ok());
        assert!(mailer("smtp://u:p@mail.example.com:587?tls=required").is_ok());
        assert!(mailer("smtps://mail.example.com").is_ok());
        assert!(mailer("ftp://x").is_err());
        assert!(mailer("not a url").is_err());
    }
}
