//! Finalize: idempotent by `checkout_session_id` and crash-safe. One transaction credits the confirmed
//! deposits, creates the purchase, queues its notifications and stores the receipt (sealed, with the
//! customer key); provisioning follows, awaited up to `FINALIZE_PROVISION_WAIT_SECS` but never past
//! `REQUEST_TIMEOUT_SECS` minus 5 s, and is retried by a job when it is not done. Any later call with
//! the same `officex_purchase_id` returns the stored receipt (with secrets within 24 hours, including
//! the resource's once provisioning delivered them); another `officex_purchase_id` is a 409. A
//! checkout finishes on the offer terms stored at initiate, even after the offer or its chain is
//! retired.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::PgConnection;

use super::receipt::{self, Receipt, ReceiptCipher};
use super::{Checkout, CheckoutError, Checkouts, Loaded, credit, provision, totals};
use crate::billing::purchases::{self, NewPurchase};
use crate::billing::{BillingError, Triggers};
use crate::catalog::Offer;
use crate::config::FINALIZE_TIMEOUT_MARGIN;
use crate::domain::ids::{CheckoutSessionId, PurchaseId};
use crate::domain::money::UsdMicros;
use crate::notify::{self, Channel};
use crate::providers::Delivered;

/// What finalize is told.
#[derive(Debug, Clone, Default)]
pub struct FinalizeInput {
    pub flow_id: String,
    pub session: Option<CheckoutSessionId>,
    pub officex_purchase_id: String,
    pub tracer: Option<String>,
    pub org_id: Option<String>,
    pub org_host: Option<String>,
    pub user_id: Option<String>,
}

/// The result of finalize.
#[derive(Debug, Clone)]
pub enum Finalized {
    Done {
        message: String,
        receipt: Box<Receipt>,
    },
    /// A business refusal (`success:false`); nothing changed and the funds stay creditable.
    Refused { message: String },
}

/// When finalize must have answered: `REQUEST_TIMEOUT_SECS` minus 5 s from now (SPEC §9), less a
/// second for the work after the last wait.
fn answer_deadline(cx: &Checkouts) -> Instant {
    let budget = cx
        .config
        .server
        .request_timeout
        .saturating_sub(FINALIZE_TIMEOUT_MARGIN)
        .saturating_sub(Duration::from_secs(1));
    Instant::now() + budget
}

/// Whether `flow_id` names a way to pay for the checkout's offer (the one it was started on, or
/// another flow of the same offer), even when the offer or its chain has been retired since.
pub(super) async fn check_flow(
    cx: &Checkouts,
    flow_id: &str,
    checkout: &Checkout,
    offer: &Offer,
) -> Result<(), CheckoutError> {
    let same_offer = flow_id == checkout.flow_id
        || offer.legacy_flow_id.as_deref() == Some(flow_id)
        || flow_id
            .split_once(':')
            .is_some_and(|(offer_id, _)| offer_id == checkout.offer_id);
    if same_offer {
        return Ok(());
    }
    match cx
        .catalog
        .resolve_flow(&cx.pool, &cx.config.chains, flow_id)
        .await?
    {
        Some((other, _)) if other.offer_id == checkout.offer_id => Ok(()),
        Some(_) => Err(CheckoutError::Invalid(
            "checkout_session_id belongs to another offer's checkout flow".into(),
        )),
        None => Err(CheckoutError::FlowNotFound),
    }
}

/// One finalize call: what it was told and the world it read once (the checkout with its stored
/// offer terms), passed down its steps: [`Self::check_paid`], then in one transaction
/// [`Self::claim`], [`Self::create_purchase`], [`Self::credit`], [`Self::store_receipt`]; then
/// [`Self::provision`]. A finalized checkout goes to [`Self::replay`] instead.
struct Finalize<'a> {
    cx: &'a Checkouts,
    input: &'a FinalizeInput,
    loaded: Loaded,
    cipher: ReceiptCipher,
    deadline: Instant,
}

/// What the finalize transaction made: the purchase, its customer key and its full receipt.
struct Created {
    purchase_id: PurchaseId,
    customer_key: SecretString,
    receipt: Receipt,
}

#[tracing::instrument(skip_all, fields(session = ?input.session), err(level = "info"))]
pub async fn finalize(cx: &Checkouts, input: &FinalizeInput) -> Result<Finalized, CheckoutError> {
    let deadline = answer_deadline(cx);
    let Some(session) = input.session else {
        return Err(CheckoutError::Invalid(
            "checkout_session_id is required".into(),
        ));
    };
    // The terms the checkout was started with, whatever happened to the offer or chain since.
    let Some(loaded) = Loaded::by_session(&cx.pool, session).await? else {
        cx.catalog
            .resolve_flow(&cx.pool, &cx.config.chains, &input.flow_id)
            .await?
            .ok_or(CheckoutError::FlowNotFound)?;
        return Ok(Finalized::Refused {
            message: format!("Wallet not found for checkout_session_id={session}"),
        });
    };
    check_flow(cx, &input.flow_id, &loaded.checkout, &loaded.offer).await?;
    let cipher =
        ReceiptCipher::new(cx.config.data_encryption_key.as_ref().ok_or_else(|| {
            CheckoutError::NotConfigured("DATA_ENCRYPTION_KEY is not set".into())
        })?)?;
    let mut run = Finalize {
        cx,
        input,
        loaded,
        cipher,
        deadline,
    };
    if run.loaded.checkout.purchase_id.is_some() {
        return run.replay().await;
    }
    if let Some(refused) = run.check_paid().await? {
        return Ok(refused);
    }
    match run.commit().await? {
        Some(created) => Ok(run.provision(created).await),
        // A concurrent finalize of this checkout won.
        None => run.replay().await,
    }
}

impl Finalize<'_> {
    fn session(&self) -> CheckoutSessionId {
        self.loaded.checkout.session
    }

    /// Scans the checkout's address and refuses (nothing charged) below the offer's minimum.
    async fn check_paid(&self) -> Result<Option<Finalized>, CheckoutError> {
        let failures = self.scan_bounded().await?;
        let found = totals(&self.cx.pool, self.session()).await?;
        let minimum = self.loaded.offer.min_deposit;
        if found.counted() >= minimum {
            return Ok(None);
        }
        if let Some(failure) = failures.into_iter().next() {
            return Err(failure.into());
        }
        let pending = if found.pending.0 > 0 {
            format!(
                " {} USD more is waiting for block confirmations; try again shortly.",
                found.pending
            )
        } else {
            String::new()
        };
        Ok(Some(Finalized::Refused {
            message: format!(
                "Insufficient funds. Found: {} USD confirmed, Required: {minimum} USD.{pending} Nothing was charged: send the difference to {} and finalize again; everything received stays credited to this checkout.",
                found.counted(),
                super::explorer_link(self.cx, &self.loaded.checkout)
            ),
        }))
    }

    /// Scans the checkout's address on every chain, giving up (as an RPC failure) after half the
    /// time left before the deadline: the deposits already recorded still count.
    async fn scan_bounded(&self) -> Result<Vec<crate::chain::ChainError>, CheckoutError> {
        let limit = self.deadline.saturating_duration_since(Instant::now()) / 2;
        let checkout = &self.loaded.checkout;
        match tokio::time::timeout(limit, super::scan_checkout(self.cx, checkout)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(?limit, "chain scan cut short to answer in time");
                Ok(vec![crate::chain::ChainError::Rpc {
                    chain: checkout.chain_name.clone(),
                    detail: "the scan did not finish in time".into(),
                }])
            }
        }
    }

    /// One transaction: the purchase, its credits, its notifications and its receipt. `None` when
    /// a concurrent finalize of this checkout committed first.
    async fn commit(&mut self) -> Result<Option<Created>, CheckoutError> {
        let mut tx = self.cx.pool.begin().await?;
        if !self.claim(&mut tx).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let (purchase_id, customer_key) = self.create_purchase(&mut tx).await?;
        let credited = self.credit(&mut tx, purchase_id).await?;
        // Lease: this request provisions now; the retry job takes over if it does not finish.
        sqlx::query!(
            "update purchase set resource_status = 'provisioning',
                 next_provision_at = now() + make_interval(secs => $2)
             where purchase_id = $1",
            purchase_id.0,
            provision::LEASE_SECS
        )
        .execute(&mut *tx)
        .await?;
        let receipt = self
            .store_receipt(&mut tx, purchase_id, &customer_key)
            .await?;
        // After the checkout row names the purchase: sweeps of its address confirmed before
        // finalize are found through it.
        crate::billing::ledger::charge_sweep_fees(&mut tx, purchase_id, |c| {
            self.cx.chains.sweep_fee(c)
        })
        .await?;
        tx.commit().await?;
        tracing::info!(%purchase_id, %credited, "checkout finalized");
        Ok(Some(Created {
            purchase_id,
            customer_key,
            receipt,
        }))
    }

    /// Locks the checkout row against a concurrent finalize; `false` (with the loaded value
    /// updated) when that one already finalized it.
    async fn claim(&mut self, tx: &mut PgConnection) -> Result<bool, CheckoutError> {
        let locked = sqlx::query!(
            "select purchase_id, officex_purchase_id from checkout
             where checkout_session_id = $1 for update",
            self.session().0
        )
        .fetch_one(&mut *tx)
        .await?;
        let checkout = &mut self.loaded.checkout;
        checkout.purchase_id = locked.purchase_id.map(PurchaseId);
        checkout.officex_purchase_id = locked.officex_purchase_id;
        Ok(checkout.purchase_id.is_none())
    }

    /// The purchase, for the buyer named at initiate or now; a reused `officex_purchase_id` is a 409.
    async fn create_purchase(
        &self,
        tx: &mut PgConnection,
    ) -> Result<(PurchaseId, SecretString), CheckoutError> {
        let (input, checkout, offer) = (self.input, &self.loaded.checkout, &self.loaded.offer);
        let created = purchases::create(
            tx,
            &NewPurchase {
                offer_id: offer.offer_id.clone(),
                title: offer.title.clone(),
                customer_email: checkout.customer_email.clone(),
                customer_user_id: input.user_id.clone().or(checkout.customer_user_id.clone()),
                customer_org_id: input.org_id.clone().or(checkout.customer_org_id.clone()),
                customer_org_host: input
                    .org_host
                    .clone()
                    .or(checkout.customer_org_host.clone()),
                officex_purchase_id: Some(input.officex_purchase_id.clone()),
                tracer: input.tracer.clone().or(checkout.tracer.clone()),
            },
        )
        .await
        .map_err(|e| match e {
            BillingError::Db(sqlx::Error::Database(db))
                if db.constraint() == Some("purchase_officex_purchase_id_key") =>
            {
                in_use()
            }
            other => other.into(),
        })?;
        Ok((created.id, created.customer_key))
    }

    /// Credits the checkout's confirmed deposits and sets the thresholds; returns the total credited.
    async fn credit(
        &self,
        tx: &mut PgConnection,
        purchase_id: PurchaseId,
    ) -> Result<UsdMicros, CheckoutError> {
        let deposits = sqlx::query_scalar!(
            "select deposit_id from deposit where checkout_session_id = $1 and status = 'confirmed' order by deposit_id",
            self.session().0
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut total = UsdMicros::ZERO;
        for id in deposits {
            if let Some(c) = credit::credit_deposit(tx, id, purchase_id, false).await? {
                total = UsdMicros(total.0 + c.amount.0);
            }
        }
        // Thresholds from everything credited at finalize (1 + 99 paid in one checkout is a $100
        // purchase), on the offer's terms as they were at initiate; a purchase finalized with
        // nothing paid (an offer without minimum) takes them from the offer's minimum, and is
        // suspended like any other when its balance is at or below them (SPEC §9).
        let offer = &self.loaded.offer;
        let basis = if total.0 > 0 {
            total
        } else {
            offer.min_deposit
        };
        let t = Triggers::from_first_credit(
            basis,
            offer.low_trigger,
            offer.critical_trigger,
            offer.termination_trigger,
        );
        sqlx::query!(
            "update purchase set low_trigger_micros = $2, critical_trigger_micros = $3,
                 termination_trigger_micros = $4
             where purchase_id = $1",
            purchase_id.0,
            t.low.0,
            t.critical.0,
            t.termination.0
        )
        .execute(&mut *tx)
        .await?;
        Ok(total)
    }

    /// Marks the checkout finalized, stores its receipts (the full one sealed, with the customer
    /// key) and queues the OfficeX record; returns the full receipt.
    async fn store_receipt(
        &mut self,
        tx: &mut PgConnection,
        purchase_id: PurchaseId,
        customer_key: &SecretString,
    ) -> Result<Receipt, CheckoutError> {
        let officex_purchase_id = &self.input.officex_purchase_id;
        sqlx::query!(
            "update checkout set purchase_id = $2, officex_purchase_id = $3, finalized_at = now()
             where checkout_session_id = $1",
            self.session().0,
            purchase_id.0,
            officex_purchase_id,
        )
        .execute(&mut *tx)
        .await?;
        let checkout = &mut self.loaded.checkout;
        checkout.purchase_id = Some(purchase_id);
        checkout.officex_purchase_id = Some(officex_purchase_id.clone());
        let (cx, offer, checkout) = (self.cx, &self.loaded.offer, &self.loaded.checkout);
        let key = customer_key.expose_secret();
        let full = build_receipt(cx, offer, checkout, purchase_id, Some(key), None, false);
        let public = build_receipt(cx, offer, checkout, purchase_id, None, None, false);
        receipt::store(tx, &self.cipher, checkout.session, &full, &public).await?;
        // The `purchase.created` webhook is queued by `purchases::create` itself.
        notify::enqueue(
            tx,
            Channel::Officex,
            "purchase.created",
            Some(purchase_id),
            &json!({}),
            Some(&format!("officex:purchase.created:{purchase_id}")),
        )
        .await?;
        Ok(full)
    }

    /// Provisions with the loaded value, waiting a bounded time (never past the answer deadline);
    /// the task keeps going (and records its result) if we stop waiting, a replay of this finalize
    /// then returns the secrets, and the retry job covers a crash.
    async fn provision(self, created: Created) -> Finalized {
        let Created {
            purchase_id,
            customer_key,
            receipt,
        } = created;
        let cx = self.cx.clone();
        let loaded = self.loaded;
        let email = loaded.checkout.customer_email.clone();
        let task = tokio::spawn(async move {
            let p = provision::Provisioning {
                purchase_id,
                offer: loaded.offer.clone(),
                customer_email: email,
                loaded: Some(&loaded),
                customer_key: Some(&customer_key),
            };
            provision::run(&cx, &p).await
        });
        let wait = self
            .cx
            .config
            .checkout
            .provision_wait
            .min(self.deadline.saturating_duration_since(Instant::now()));
        let receipt = match tokio::time::timeout(wait, task).await {
            Ok(Ok(Ok((_, Some(delivered))))) => delivered,
            Ok(Ok(Ok((_, None)))) => receipt,
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "recording provisioning failed");
                receipt
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "provisioning task failed");
                receipt
            }
            Err(_) => {
                tracing::info!(
                    ?wait,
                    "provisioning continues after finalize answers AWAITING"
                );
                receipt
            }
        };
        Finalized::Done {
            message: done_message(&receipt),
            receipt: Box::new(receipt),
        }
    }

    /// A finalized checkout again, for the same `officex_purchase_id` (another one is 409
    /// `officex_purchase_id_in_use`): the sealed receipt within 24 hours (with the resource's
    /// secrets once provisioning delivered them), else the receipt without secrets. The status is
    /// current.
    async fn replay(&self) -> Result<Finalized, CheckoutError> {
        let checkout = &self.loaded.checkout;
        let purchase_id = checkout
            .purchase_id
            .ok_or_else(|| CheckoutError::Internal("replay of an unfinalized checkout".into()))?;
        // One checkout, one OfficeX purchase (SPEC §9): another id is a conflict, never a receipt.
        if checkout.officex_purchase_id.as_deref() != Some(self.input.officex_purchase_id.as_str())
        {
            return Err(in_use());
        }
        // A replay racing the first call waits for the same provisioning, within its own deadline;
        // the receipt and the resource's status are read together (provisioning changes both).
        let until = self
            .deadline
            .min(Instant::now() + self.cx.config.checkout.provision_wait);
        let now = loop {
            let now = sqlx::query!(
                r#"select p.resource_status,
                          case when c.receipt_sealed_until > now() then c.receipt_sealed end as receipt_sealed
                   from checkout c join purchase p using (purchase_id)
                   where c.checkout_session_id = $1"#,
                checkout.session.0
            )
            .fetch_one(&self.cx.pool)
            .await?;
            if now.resource_status != "provisioning" || Instant::now() >= until {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let ready = now.resource_status == "ready";
        let sealed = now
            .receipt_sealed
            .as_deref()
            .and_then(|s| self.cipher.open(s, &checkout.session.to_string()));
        let mut receipt = match sealed {
            Some(r) => r,
            None => build_receipt(
                self.cx,
                &self.loaded.offer,
                checkout,
                purchase_id,
                None,
                None,
                ready,
            ),
        };
        receipt.status = if ready { "RUNNING" } else { "AWAITING" }.into();
        Ok(Finalized::Done {
            message: done_message(&receipt),
            receipt: Box::new(receipt),
        })
    }
}

/// `officex_purchase_id` names another purchase than this checkout's.
fn in_use() -> CheckoutError {
    CheckoutError::Conflict {
        code: "officex_purchase_id_in_use",
        message: "officex_purchase_id is already used by another purchase, or this checkout was finalized with another officex_purchase_id; finalize each checkout with its own officex_purchase_id".into(),
    }
}

fn done_message(receipt: &Receipt) -> String {
    if receipt.status == "RUNNING" {
        "Payment confirmed and your purchase is ready.".into()
    } else {
        "Payment confirmed; your purchase is being set up and will be ready shortly.".into()
    }
}

/// The receipt for a finalized checkout. With `customer_key`, the customer links carry it in the URL
/// fragment; with `delivered`, the provider's secrets are included (gift card as
/// `skip_to_final_redirect`, a key as `redeem_code`).
pub fn build_receipt(
    cx: &Checkouts,
    offer: &Offer,
    checkout: &Checkout,
    purchase_id: PurchaseId,
    customer_key: Option<&str>,
    delivered: Option<&Delivered>,
    ready: bool,
) -> Receipt {
    let config = &cx.config;
    let page = config.public_url("/v1/dashboard/customer");
    let link = match customer_key {
        Some(key) => {
            format!("{page}#vendor_purchase_id={purchase_id}&customer_billing_api_key={key}")
        }
        None => format!("{page}#vendor_purchase_id={purchase_id}"),
    };
    let redeem_url = delivered
        .and_then(|d| d.redeem_url.as_ref())
        .map(|u| u.expose_secret().to_owned());
    let redeem_code = delivered
        .and_then(|d| d.redeem_code.as_ref())
        .map(|c| c.expose_secret().to_owned());
    let about_url = offer
        .about_url
        .clone()
        .unwrap_or_else(|| config.public_url(&format!("/v1/offer/{}", offer.offer_id)));
    let (skip_to_final_redirect, skip_to_final_cta, vendor_notes) = match &redeem_url {
        // The gift card URL holds the storage credentials: it is only ever in the redirect, never in
        // `vendor_notes` (officex.app copies the notes into a record other org members see).
        Some(url) => (
            url.clone(),
            "View Giftcard".to_owned(),
            "Open the gift card with View Giftcard. It holds the storage credentials: pass it on only to the person who should use the storage.".to_owned(),
        ),
        None => (
            link.clone(),
            "Open your purchase".to_owned(),
            format!(
                "Top up any time by sending {} to {}; your balance and usage are on your purchase page.",
                accepted_tokens(cx),
                checkout.deposit_address
            ),
        ),
    };
    let chain = cx.chains.get(&checkout.chain_name);
    Receipt {
        vendor_disclaimer: disclaimer(cx, checkout),
        checkout_session_id: checkout.session.to_string(),
        checkout_flow_id: checkout.flow_id.clone(),
        skip_to_final_redirect,
        skip_to_final_cta,
        vendor_name: config.vendor.name.clone(),
        vendor_id: config.vendor.id.clone().unwrap_or_default(),
        status: if ready { "RUNNING" } else { "AWAITING" }.into(),
        description: delivered
            .map(|d| d.description.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| offer.description.clone()),
        about_url,
        billing_url: link.clone(),
        support_url: link.clone(),
        title: offer.title.clone(),
        subtitle: format!(
            "{} | {} top-up wallet",
            config.vendor.name,
            chain.map_or(checkout.chain_name.as_str(), |c| c.name())
        ),
        pricing: offer.pricing_line.clone(),
        vendor_notes,
        redeem_code,
        delivery_url: Some(link),
        vendor_purchase_id: purchase_id.to_string(),
        customer_billing_api_key: customer_key.map(str::to_owned),
    }
}

/// What this server really accepts at a deposit address, e.g. "USDC/USDT on base, USDC on polygon".
fn accepted_tokens(cx: &Checkouts) -> String {
    let accepted: Vec<String> = cx
        .chains
        .iter()
        .filter(|c| !c.config.tokens.is_empty())
        .map(|c| {
            let tokens: Vec<String> = c
                .config
                .tokens
                .iter()
                .map(|t| t.symbol.to_uppercase())
                .collect();
            format!("{} on {}", tokens.join("/"), c.name())
        })
        .collect();
    if accepted.is_empty() {
        "supported stablecoins".to_owned()
    } else {
        accepted.join(", ")
    }
}

/// The disclaimer shown with a checkout.
pub fn disclaimer(cx: &Checkouts, checkout: &Checkout) -> String {
    format!(
        "Only send {} to {}. Deposits count after block confirmations; other tokens are not credited automatically.",
        accepted_tokens(cx),
        checkout.deposit_address
    )
}
