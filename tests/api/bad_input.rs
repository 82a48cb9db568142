//! Property test (issue 10 #15, issue 11 #5): arbitrary strings — NUL, huge, unicode, control
//! characters, numbers and dates as strings, ids, other JSON types — thrown at every text field of
//! every JSON route (and the path and query text of the GET routes) never give a 5xx, and every
//! 4xx carries the error body `{"error", "code"}`.
//!
//! The generator is seeded: `BAD_INPUT_SEED=<n>` replays a run, `BAD_INPUT_CASES=<n>` sets the
//! cases per route (default 60). A failure prints the seed, the route and the request.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::checkout::{GEMINI_USDC, Pay, setup_with};

/// Numbers and dates written as strings, and other strings that parsers trip on.
const SPECIAL: &[&str] = &[
    "",
    " ",
    "\t\n",
    "0",
    "-0",
    "-1",
    "1e309",
    "-1e309",
    "1e-400",
    "NaN",
    "Infinity",
    "99999999999999999999999999999999999999",
    "-9223372036854775809",
    "18446744073709551616",
    "0x10",
    "1_000",
    "1,5",
    "١٢٣",
    "９",
    "0.0000001",
    "-5000-01-01",
    "+275760-09-13T00:00:00Z",
    "-4713-11-24T00:00:00Z",
    "0000-00-00",
    "2026-02-30",
    "9999-12-31T23:59:59Z",
    "1970-01-01",
    "262143-12-31",
    "daily",
    "yearly",
    "CustomerPurchaseID_",
    "CustomerPurchaseID_00000000-0000-0000-0000-000000000000",
    "CheckoutSessionID_zz",
    "CheckoutWalletID_",
    "DriveID_",
    "UserID_",
    "PurchaseID_",
    "TracerID_\u{0}",
    "' or 1=1 --",
    "\"; drop table purchase; --",
    "../../../../etc/passwd",
    "%00",
    "%",
    "\\u0000",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "http://169.254.169.254/latest/meta-data/",
    "https://user:pass@[::1]:99999/",
    "javascript:alert(1)",
    "//",
    "a@b",
    "@",
    "vst_",
    "vsc_",
    "Bearer ",
];

/// Characters that are valid in a Rust string but unusual everywhere else.
const ODD_CHARS: &[char] = &[
    '\u{0}',
    '\u{1}',
    '\u{7}',
    '\u{8}',
    '\u{b}',
    '\u{c}',
    '\u{1b}',
    '\u{1f}',
    '\u{7f}',
    '\u{85}',
    '\u{a0}',
    '\u{ad}',
    '\u{200b}',
    '\u{200d}',
    '\u{2028}',
    '\u{2029}',
    '\u{202e}',
    '\u{feff}',
    '\u{fffd}',
    '\u{ffff}',
    '\u{10ffff}',
    '\u{e000}',
    '\u{301}',
    'é',
    'ß',
    'İ',
    'ﬀ',
    '漢',
    '𝕏',
    '😀',
    '\\',
    '"',
    '\'',
    '/',
    '?',
    '#',
    '&',
    '=',
    '+',
    ';',
    ':',
    '%',
    '\n',
    '\r',
    '\t',
];

struct Gen(StdRng);

impl Gen {
    fn string(&mut self) -> String {
        let rng = &mut self.0;
        match rng.gen_range(0..10) {
            // NUL somewhere in something ordinary.
            0 | 9 => {
                let mut s = (*SPECIAL.choose(rng).unwrap_or(&"x")).to_owned();
                let at = (0..=s.len())
                    .filter(|i| s.is_char_boundary(*i))
                    .collect::<Vec<_>>();
                let at = *at.choose(rng).unwrap_or(&0);
                s.insert(at, '\0');
                s
            }
            // Huge.
            1 => {
                let unit = *ODD_CHARS.choose(rng).unwrap_or(&'x');
                let mut s = "x".repeat(rng.gen_range(1_000..200_000));
                s.push(unit);
                s
            }
            // Random odd characters.
            2 | 3 => (0..rng.gen_range(1..40))
                .map(|_| *ODD_CHARS.choose(rng).unwrap_or(&'x'))
                .collect(),
            // Any scalar value.
            4 => (0..rng.gen_range(1..20))
                .map(|_| {
                    loop {
                        if let Some(c) = char::from_u32(rng.gen_range(0..0x11_0000)) {
                            break c;
                        }
                    }
                })
                .collect(),
            // Concatenations of the special strings.
            5 => format!(
                "{}{}",
                SPECIAL.choose(rng).unwrap_or(&""),
                SPECIAL.choose(rng).unwrap_or(&"")
            ),
            // Valid-looking prefixed ids with a random uuid.
            6 => format!(
                "{}{}",
                [
                    "CustomerPurchaseID_",
                    "CheckoutSessionID_",
                    "PurchaseID_",
                    "DriveID_"
                ]
                .choose(rng)
                .unwrap_or(&""),
                uuid::Uuid::new_v4()
            ),
            _ => (*SPECIAL.choose(rng).unwrap_or(&"")).to_owned(),
        }
    }

    /// A value for a JSON text field: mostly strings, sometimes another JSON type.
    fn value(&mut self) -> Value {
        match self.0.gen_range(0..10) {
            0 => match self.0.gen_range(0..9) {
                0 => json!(i64::MIN),
                1 => json!(u64::MAX),
                2 => json!(1.0e308),
                3 => json!(-0.000_000_1),
                4 => json!(true),
                5 => Value::Null,
                6 => json!([self.string(), 1, null]),
                7 => json!({"nested": {"k": self.string()}}),
                _ => {
                    let mut deep = json!(1);
                    for _ in 0..self.0.gen_range(100..200) {
                        deep = json!([deep]);
                    }
                    deep
                }
            },
            _ => Value::String(self.string()),
        }
    }

    /// A string for a path segment or query value (bounded so the request line stays sane).
    fn short_string(&mut self) -> String {
        let mut s = self.string();
        if s.len() > 4_000 {
            let mut end = 4_000;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    }
}

/// One request to throw.
struct Case {
    method: Method,
    url: Url,
    key: Option<String>,
    body: Option<Value>,
}

/// Replaces 1–2 of `fields` (dotted paths into `base`) with generated values.
fn mutate(g: &mut Gen, base: &Value, fields: &[&str]) -> Value {
    let mut body = base.clone();
    let count = g.0.gen_range(1..=fields.len().min(2));
    for field in fields.choose_multiple(&mut g.0, count) {
        let value = g.value();
        let mut target = &mut body;
        let parts: Vec<&str> = field.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            if !target.get(*part).is_some_and(Value::is_object) {
                target[*part] = json!({});
            }
            target = &mut target[*part];
        }
        target[parts[parts.len() - 1]] = value;
    }
    body
}

struct World {
    purchase: String,
    customer_key: String,
    token: String,
    paid_sessions: Vec<String>,
    unpaid_session: String,
    finalized_session: String,
}

fn case(g: &mut Gen, app_url: &Url, w: &World, route: &'static str) -> Case {
    let url = |path: &str| app_url.join(path).unwrap();
    let segment = |g: &mut Gen, prefix: &str, suffix: Option<&str>| {
        let mut u = app_url.clone();
        {
            let mut segments = u.path_segments_mut().unwrap();
            segments.clear();
            for part in prefix.split('/').filter(|p| !p.is_empty()) {
                segments.push(part);
            }
            segments.push(&g.short_string());
            if let Some(suffix) = suffix {
                segments.push(suffix);
            }
        }
        u
    };
    let post = |url: Url, key: Option<&str>, body: Value| Case {
        method: Method::POST,
        url,
        key: key.map(str::to_owned),
        body: Some(body),
    };
    let session = |g: &mut Gen| {
        [
            w.paid_sessions
                .choose(&mut g.0)
                .cloned()
                .unwrap_or_default(),
            w.unpaid_session.clone(),
            w.finalized_session.clone(),
        ]
        .choose(&mut g.0)
        .cloned()
        .unwrap_or_default()
    };
    match route {
        "appstore suggest" => {
            let mut u = url("/v1/appstore/suggest");
            for field in ["country", "language", "profession", "limit"] {
                if g.0.gen_bool(0.6) {
                    let v = g.short_string();
                    u.query_pairs_mut().append_pair(field, &v);
                }
            }
            Case {
                method: Method::GET,
                url: u,
                key: None,
                body: None,
            }
        }
        "appstore list" => Case {
            method: Method::GET,
            url: segment(g, "/v1/appstore/list", None),
            key: None,
            body: None,
        },
        "offer" => Case {
            method: Method::GET,
            url: segment(g, "/v1/offer", None),
            key: None,
            body: None,
        },
        "checkout initiate" => post(
            url("/v1/checkout/initiate"),
            None,
            mutate(
                g,
                &json!({"checkout_flow_id": GEMINI_USDC, "org_id": "DriveID_o", "user_id": "UserID_u",
                        "host": "https://o.icp0.io", "tracer": "TracerID_t", "email": "c@example.com"}),
                &[
                    "checkout_flow_id",
                    "org_id",
                    "user_id",
                    "host",
                    "tracer",
                    "email",
                ],
            ),
        ),
        "checkout validate" => {
            let s = session(g);
            post(
                url("/v1/checkout/validate"),
                None,
                mutate(
                    g,
                    &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": s,
                            "note": "n", "tracer": "TracerID_t"}),
                    &["checkout_flow_id", "checkout_session_id", "note", "tracer"],
                ),
            )
        }
        "checkout finalize" => {
            let s = session(g);
            let officex = format!("PurchaseID_{}", uuid::Uuid::new_v4());
            post(
                url("/v1/checkout/finalize"),
                None,
                mutate(
                    g,
                    &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": s,
                            "officex_purchase_id": officex, "note": "n", "tracer": "TracerID_t",
                            "proxy_buyer_data": {"org_id": "DriveID_abc", "org_host": "https://abc.icp0.io",
                                                 "org_endpoint": "https://abc.icp0.io", "user_id": "UserID_u"},
                            "sweep_tokens": ["usdc"]}),
                    &[
                        "checkout_flow_id",
                        "checkout_session_id",
                        "officex_purchase_id",
                        "note",
                        "tracer",
                        "proxy_buyer_data.org_id",
                        "proxy_buyer_data.org_host",
                        "proxy_buyer_data.org_endpoint",
                        "proxy_buyer_data.user_id",
                        "sweep_tokens",
                        "proxy_buyer_data",
                    ],
                ),
            )
        }
        "checkout topup" => {
            let s = w.finalized_session.clone();
            post(
                url("/v1/checkout/topup"),
                Some(&w.customer_key),
                mutate(
                    g,
                    &json!({"checkout_session_id": s, "note": "n", "tracer": "TracerID_t", "sweep_tokens": []}),
                    &["checkout_session_id", "note", "tracer", "sweep_tokens"],
                ),
            )
        }
        "verify-topup" => post(
            url(&format!("/v1/purchase/{}/verify-topup", w.purchase)),
            Some(&w.customer_key),
            mutate(
                g,
                &json!({"min_target_balance": 1}),
                &["min_target_balance"],
            ),
        ),
        "purchase get" => Case {
            method: Method::GET,
            url: segment(g, "/v1/purchase", None),
            key: Some(w.customer_key.clone()),
            body: None,
        },
        "purchase get (key)" => {
            let mut u = url(&format!("/v1/purchase/{}", w.purchase));
            let v = g.short_string();
            u.query_pairs_mut().append_pair("auth", &v);
            Case {
                method: Method::GET,
                url: u,
                key: None,
                body: None,
            }
        }
        "meter-usage" => post(
            url(&format!("/v1/purchase/{}/meter-usage", w.purchase)),
            Some(&w.token),
            mutate(
                g,
                &json!({"purchase_id": w.purchase, "timestamp": "2026-03-02T10:15:00Z", "usage_amount": "1",
                        "usage_unit": "tokens", "billed_amount": "0.000001", "description": "d",
                        "metadata": {"model": "m"}, "idempotency_key": format!("k-{}", uuid::Uuid::new_v4())}),
                &[
                    "purchase_id",
                    "timestamp",
                    "usage_amount",
                    "usage_unit",
                    "billed_amount",
                    "description",
                    "metadata",
                    "metadata.model",
                    "idempotency_key",
                ],
            ),
        ),
        "meter-usage (path)" => post(
            segment(g, "/v1/purchase", Some("meter-usage")),
            Some(&w.token),
            json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "0.000001"}),
        ),
        "historical-billing" => post(
            url(&format!("/v1/purchase/{}/historical-billing", w.purchase)),
            Some(&w.customer_key),
            mutate(
                g,
                &json!({"interval": "daily", "start_date": "2026-01-01", "end_date": "2026-03-01"}),
                &["interval", "start_date", "end_date"],
            ),
        ),
        "validate-auth" => post(
            url(&format!("/v1/purchase/{}/validate-auth", w.purchase)),
            None,
            mutate(g, &json!({"api_key": w.customer_key}), &["api_key"]),
        ),
        "validate-auth (path)" => post(
            segment(g, "/v1/purchase", Some("validate-auth")),
            None,
            json!({"api_key": w.customer_key}),
        ),
        other => panic!("unknown route {other}"),
    }
}

const ROUTES: &[&str] = &[
    "appstore suggest",
    "appstore list",
    "offer",
    "checkout initiate",
    "checkout validate",
    "checkout finalize",
    "checkout topup",
    "verify-topup",
    "purchase get",
    "purchase get (key)",
    "meter-usage",
    "meter-usage (path)",
    "historical-billing",
    "validate-auth",
    "validate-auth (path)",
];

async fn world(p: &Pay, pool: &PgPool) -> World {
    let mut paid_sessions = Vec::new();
    for _ in 0..4 {
        let (session, address) = p.initiate(GEMINI_USDC).await;
        p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
        paid_sessions.push(session);
    }
    let (unpaid_session, _) = p.initiate(GEMINI_USDC).await;
    let (finalized_session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 5_000_000).await;
    p.anvil.mine(2).await;
    let f = p
        .finalize(GEMINI_USDC, &finalized_session, "PurchaseID_bad_input")
        .await;
    let receipt = &f["receipt"];
    let (_, token) = vendor_server::billing::tokens::create(pool, "bad input")
        .await
        .unwrap();
    World {
        purchase: receipt["vendor_purchase_id"].as_str().unwrap().to_owned(),
        customer_key: receipt["customer_billing_api_key"]
            .as_str()
            .unwrap()
            .to_owned(),
        token: secrecy::ExposeSecret::expose_secret(&token).to_owned(),
        paid_sessions,
        unpaid_session,
        finalized_session,
    }
}

fn shown(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 600 {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[sqlx::test]
async fn arbitrary_strings_in_every_text_field_never_give_a_5xx(pool: PgPool) {
    let seed: u64 = std::env::var("BAD_INPUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cases: usize = std::env::var("BAD_INPUT_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("BAD_INPUT_SEED={seed} BAD_INPUT_CASES={cases}");
    let p = setup_with(
        pool.clone(),
        &[("CHECKOUT_RATE_LIMIT_PER_MINUTE", "100000")],
        0,
        false,
    )
    .await;
    let w = world(&p, &pool).await;
    let base = Url::parse(&p.app.base_url).unwrap();
    let mut g = Gen(StdRng::seed_from_u64(seed));
    let mut failures = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..cases {
        for route in ROUTES {
            let c = case(&mut g, &base, &w, route);
            let mut request = p.app.client.request(c.method.clone(), c.url.clone());
            if let Some(key) = &c.key {
                request = request.bearer_auth(key);
            }
            if let Some(body) = &c.body {
                request = request.json(body);
            }
            let what = || {
                format!(
                    "seed {seed} case {n} {route}: {} {} body {}",
                    c.method,
                    c.url.as_str().chars().take(300).collect::<String>(),
                    c.body.as_ref().map(shown).unwrap_or_default()
                )
            };
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{}: no answer: {e}", what()));
                    continue;
                }
            };
            let status = response.status();
            *statuses.entry(status.as_u16()).or_default() += 1;
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_server_error() {
                failures.push(format!("{}: {status} {}", what(), shown(&body)));
            } else if status.is_client_error()
                && !(body["error"].is_string() && body["code"].is_string())
            {
                failures.push(format!(
                    "{}: {status} without the error body: {}",
                    what(),
                    shown(&body)
                ));
            }
        }
    }
    println!("statuses: {statuses:?}");
    // The server is still whole: the ledger sums to the balances, and a plain call works.
    let (status, body) = p
        .app
        .get_auth(&format!("/v1/purchase/{}", w.purchase), &w.customer_key)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mismatched: i64 = sqlx::query_scalar(
        "select count(*) from purchase p where balance_micros <>
           (select coalesce(sum(amount_micros), 0) from ledger_entry l where l.purchase_id = p.purchase_id)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
