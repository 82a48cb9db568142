//! A local stand-in for a customer's OfficeX drive: the canister's `purchases/update` and
//! `purchases/get` REST routes, its envelope, and its SIGNATURE token check, written from CANISTER
//! `rest/auth.rs` and `rest/purchases/{handler,types}.rs` independently of the server's code.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use ic_agent::export::Principal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// How long the canister accepts a challenge.
const VALIDITY_MS: u64 = 30_000;

/// The canister's `SignatureAuthChallenge`, in its field order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Challenge {
    pub timestamp_ms: u64,
    pub drive_canister_id: String,
    pub self_auth_principal: Vec<u8>,
    pub canonical_principal: String,
}

#[derive(Debug, Deserialize)]
struct Proof {
    auth_type: String,
    challenge: Challenge,
    signature: Vec<u8>,
}

/// The canister's check of `Authorization: Bearer <token>`: the requester's `UserID_…` and the
/// challenge, or why it is refused.
pub fn verify_token(header: Option<&str>, now_ms: u64) -> Result<(String, Challenge), String> {
    let header = header.ok_or("no authorization header")?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or("not a Bearer token")?
        .trim();
    let padded = match token.len() % 4 {
        0 => token.to_owned(),
        n => format!("{token}{}", "=".repeat(4 - n)),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(padded)
        .map_err(|e| format!("not base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8")?;
    let proof: Proof = serde_json::from_str(&text).map_err(|e| format!("not a proof: {e}"))?;
    if proof.auth_type != "SIGNATURE" {
        return Err("not a SIGNATURE proof".into());
    }
    if now_ms > proof.challenge.timestamp_ms + VALIDITY_MS {
        return Err("challenge expired".into());
    }
    let signed = serde_json::to_string(&proof.challenge).map_err(|e| e.to_string())?;
    let key = &proof.challenge.self_auth_principal;
    if key.len() != 32 {
        return Err("public key is not 32 bytes".into());
    }
    let public =
        ic_ed25519::PublicKey::deserialize_raw(key).map_err(|_| "public key is invalid")?;
    public
        .verify_signature(signed.as_bytes(), &proof.signature)
        .map_err(|_| "signature does not verify")?;
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(key);
    let principal = Principal::self_authenticating(&der).to_text();
    if principal != proof.challenge.canonical_principal {
        return Err("canonical principal does not match the key".into());
    }
    Ok((format!("UserID_{principal}"), proof.challenge))
}

/// Fields the canister's `UpdatePurchaseRequestBody` knows. The stand-in refuses any other field
/// (the canister ignores them), so a test catches the server sending something it should not.
const UPDATE_FIELDS: &[&str] = &[
    "id",
    "title",
    "vendor_name",
    "vendor_id",
    "description",
    "notes",
    "template_id",
    "about_url",
    "status",
    "billing_url",
    "support_url",
    "delivery_url",
    "verification_url",
    "auth_installation_url",
    "subtitle",
    "pricing",
    "next_delivery_date",
    "vendor_notes",
    "related_resources",
    "tracer",
    "labels",
    "external_id",
    "external_payload",
];

/// The canister's `PurchaseStatus`.
pub const STATUSES: &[&str] = &[
    "REQUESTED",
    "AWAITING",
    "RUNNING",
    "BLOCKED",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "PAYMENT_REQUIRED",
    "REFUNDED",
    "ARCHIVED",
    "UNKNOWN",
];

/// An update the drive applied.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub org_id: String,
    pub body: Value,
    pub challenge: Challenge,
    pub authorization: String,
}

#[derive(Default)]
struct Inner {
    records: HashMap<String, Value>,
    accepted: Vec<Accepted>,
    rejected: Vec<(u16, String)>,
    requests: usize,
    /// Statuses forced on the next authenticated calls (500, 404, …), before anything is applied.
    scripted: VecDeque<u16>,
}

#[derive(Clone, Default)]
struct Drive(Arc<Mutex<Inner>>);

fn envelope_err(status: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({"err": {"code": status, "message": message}})),
    )
        .into_response()
}

fn envelope_ok(data: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({"ok": {"data": data}}))).into_response()
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap()
}

impl Drive {
    /// Authenticates and applies the script; `Err` is the error status and message to answer.
    fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<(String, Challenge, String), (u16, &'static str)> {
        let header = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut inner = self.0.lock().unwrap();
        inner.requests += 1;
        match verify_token(header.as_deref(), now_ms()) {
            Err(reason) => {
                inner.rejected.push((401, reason));
                Err((401, "Unauthorized"))
            }
            Ok((user, challenge)) => {
                if let Some(status) = inner.scripted.pop_front() {
                    inner.rejected.push((status, "scripted".into()));
                    let message = if status == 404 {
                        "Not found"
                    } else {
                        "scripted failure"
                    };
                    return Err((status, message));
                }
                Ok((user, challenge, header.unwrap_or_default()))
            }
        }
    }
}

fn validate(body: &Value) -> Result<(), String> {
    let object = body.as_object().ok_or("body is not an object")?;
    for key in object.keys() {
        if !UPDATE_FIELDS.contains(&key.as_str()) {
            return Err(format!("unknown field `{key}`"));
        }
    }
    if !object.get("id").is_some_and(Value::is_string) {
        return Err("missing field `id`".into());
    }
    if let Some(status) = object.get("status")
        && !status.as_str().is_some_and(|s| STATUSES.contains(&s))
    {
        return Err(format!("unknown variant {status}"));
    }
    for url in [
        "about_url",
        "billing_url",
        "support_url",
        "delivery_url",
        "verification_url",
        "auth_installation_url",
    ] {
        if let Some(v) = object.get(url) {
            let ok = v.as_str().is_some_and(|s| {
                s.len() <= 4096 && (s.starts_with("https://") || s.starts_with("http://"))
            });
            if !ok {
                return Err(format!("{url} is not a URL"));
            }
        }
    }
    for (field, max) in [("pricing", 256), ("subtitle", 256), ("vendor_notes", 8192)] {
        if let Some(v) = object.get(field)
            && v.as_str().is_none_or(|s| s.len() > max)
        {
            return Err(format!("{field} must be {max} characters or less"));
        }
    }
    Ok(())
}

async fn update(
    State(drive): State<Drive>,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (user, challenge, authorization) = match drive.authenticate(&headers) {
        Ok(auth) => auth,
        Err((status, message)) => return envelope_err(status, message),
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return envelope_err(400, &format!("Invalid request format: {e}")),
    };
    if let Err(message) = validate(&body) {
        drive
            .0
            .lock()
            .unwrap()
            .rejected
            .push((400, message.clone()));
        return envelope_err(400, &format!("Invalid request format: {message}"));
    }
    let mut inner = drive.0.lock().unwrap();
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    let Some(record) = inner.records.get_mut(&id) else {
        inner.rejected.push((404, format!("no record {id}")));
        return envelope_err(404, "Not found");
    };
    if record["vendor_id"] != json!(user) {
        inner
            .rejected
            .push((401, format!("{user} is not the vendor")));
        return envelope_err(401, "Unauthorized");
    }
    for (key, value) in body.as_object().into_iter().flatten() {
        if key != "id" {
            record[key] = value.clone();
        }
    }
    record["updated_at"] = json!(now_ms());
    let data = record.clone();
    inner.accepted.push(Accepted {
        org_id,
        body,
        challenge,
        authorization,
    });
    envelope_ok(data)
}

async fn get_one(
    State(drive): State<Drive>,
    Path((_org_id, purchase_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (user, _, _) = match drive.authenticate(&headers) {
        Ok(auth) => auth,
        Err((status, message)) => return envelope_err(status, message),
    };
    let inner = drive.0.lock().unwrap();
    match inner.records.get(&purchase_id) {
        None => envelope_err(404, "Not found"),
        Some(record) if record["vendor_id"] != json!(user) => envelope_err(401, "Unauthorized"),
        Some(record) => envelope_ok(record.clone()),
    }
}

/// A running stand-in drive.
pub struct StandInDrive {
    pub addr: SocketAddr,
    drive: Drive,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StandInDrive {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StandInDrive {
    pub async fn start() -> Self {
        let drive = Drive::default();
        let app = Router::new()
            .route("/v1/drive/{org_id}/purchases/update", post(update))
            .route(
                "/v1/drive/{org_id}/purchases/get/{purchase_id}",
                get(get_one),
            )
            .with_state(drive.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            drive,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`: the org host to give purchases.
    pub fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The client's own `purchases/create` landing: a record as officex.app creates it from the
    /// receipt (status `REQUESTED` since the canister has no `PAID`).
    pub fn create_record(&self, purchase_id: &str, vendor_id: &str) {
        self.drive.0.lock().unwrap().records.insert(
            purchase_id.to_owned(),
            json!({
                "id": purchase_id,
                "vendor_id": vendor_id,
                "vendor_name": "Vendor",
                "status": "REQUESTED",
                "title": "from the receipt",
                "billing_url": "",
                "support_url": "",
                "delivery_url": "",
                "pricing": "",
                "vendor_notes": "",
                "notes": "customer's own notes",
            }),
        );
    }

    pub fn record(&self, purchase_id: &str) -> Option<Value> {
        self.drive
            .0
            .lock()
            .unwrap()
            .records
            .get(purchase_id)
            .cloned()
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.drive.0.lock().unwrap().accepted.clone()
    }

    pub fn rejected(&self) -> Vec<(u16, String)> {
        self.drive.0.lock().unwrap().rejected.clone()
    }

    /// Every request that reached the drive.
    pub fn requests(&self) -> usize {
        self.drive.0.lock().unwrap().requests
    }

    /// The next authenticated calls answer these statuses without applying anything.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.drive
            .0
            .lock()
            .unwrap()
            .scripted
            .extend(statuses.iter().copied());
    }
}
