//! Configuration tests: every variable parsed and checked, defaults, and the errors that name the variable.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const DB: (&str, &str) = ("DATABASE_URL", "postgres://u:secretpw@localhost/db");

#[test]
fn minimal_config_uses_defaults() {
    let c = Config::from_vars(&vars(&[DB])).unwrap();
    assert_eq!(c.server.port, 3001);
    assert_eq!(c.server.public_base_url, "http://localhost:3001");
    assert!(c.chains.is_empty());
    assert!(c.aws.is_none() && c.gemini.is_none());
    assert_eq!(c.billing.cost_markup_bps, 3600);
    assert_eq!(c.billing.cron, "0 0 3 * * *");
    assert_eq!(c.checkout.expiry, Duration::from_secs(86_400));
}

#[test]
fn missing_database_url_names_the_variable() {
    let err = Config::from_vars(&vars(&[])).unwrap_err();
    assert!(
        err.to_string().starts_with("DATABASE_URL is not set"),
        "{err}"
    );
}

#[test]
fn malformed_values_name_the_variable() {
    for (pairs, var) in [
        (vec![DB, ("PORT", "eighty")], "PORT"),
        (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
        (
            vec![DB, ("VENDOR_TREASURY_ADDRESS", "0x12")],
            "VENDOR_TREASURY_ADDRESS",
        ),
        (
            vec![
                DB,
                ("RPC_ENDPOINT", "http://x"),
                ("USDC_ADDRESS", "0x0000000000000000000000000000000000000001"),
            ],
            "CHAIN_ID_DEC",
        ),
        (
            vec![DB, ("COST_MARKUP_PERCENT", "-3")],
            "COST_MARKUP_PERCENT",
        ),
        (
            vec![DB, ("DATA_ENCRYPTION_KEY", "abc")],
            "DATA_ENCRYPTION_KEY",
        ),
        (vec![DB, ("VENDOR_ID", "bob")], "VENDOR_ID"),
        (
            vec![DB, ("VENDOR_WEBHOOK_URL", "https://example.com/hook")],
            "VENDOR_WEBHOOK_SECRET",
        ),
        (vec![DB, ("JOBS_ENABLED", "maybe")], "JOBS_ENABLED"),
        (
            vec![DB, ("DEPOSIT_MNEMONIC", "one two three")],
            "DEPOSIT_MNEMONIC",
        ),
    ] {
        let err = Config::from_vars(&vars(&pairs)).unwrap_err();
        assert!(err.to_string().starts_with(var), "{var}: {err}");
    }
}

#[test]
fn original_names_are_honoured() {
    let c = Config::from_vars(&vars(&[
        DB,
        ("SERVER_DOMAIN", "vendor.example.com"),
        ("LOG_LEVEL", "debug"),
        ("RPC_ENDPOINT", "http://127.0.0.1:8545"),
        ("CHAIN_ID_DEC", "84532"),
        ("CHAIN_NAME", "Base Sepolia"),
        ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
        ("VENDOR_ID", "Anon@UserID_abc"),
    ]))
    .unwrap();
    assert_eq!(c.server.public_base_url, "https://vendor.example.com");
    assert_eq!(c.server.log_filter, "debug");
    assert_eq!(c.chains[0].name, "base-sepolia");
    assert_eq!(c.chains[0].tokens[0].symbol, "usdc");
    assert!(c.chains[0].tokens[0].eip3009);
    assert_eq!(c.vendor.id.as_deref(), Some("UserID_abc"));
}

#[test]
fn secrets_are_not_in_debug_output() {
    let c = Config::from_vars(&vars(&[
        DB,
        (
            "DEPOSIT_MNEMONIC",
            "test test test test test test test test test test test junk",
        ),
        ("GEMINI_API_KEY", "AIzaTopSecret"),
        ("ADMIN_TOKEN", "admin-token-0123456789"),
    ]))
    .unwrap();
    let debug = format!("{c:?}");
    for secret in [
        "secretpw",
        "junk",
        "AIzaTopSecret",
        "admin-token-0123456789",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
}

#[test]
fn payment_settings_have_defaults_and_are_validated() {
    let c = Config::from_vars(&vars(&[
        DB,
        ("RPC_ENDPOINT", "http://127.0.0.1:8545"),
        ("CHAIN_ID_DEC", "31337"),
        ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
    ]))
    .unwrap();
    let chain = &c.chains[0];
    assert_eq!(
        (
            chain.log_chunk_blocks,
            chain.reorg_window_blocks,
            chain.start_block
        ),
        (2000, 128, None)
    );
    assert_eq!(c.checkout.initiate_per_minute, 20);
    assert_eq!(c.checkout.provision_wait, Duration::from_secs(20));
    for (var, value) in [
        ("CHECKOUT_RATE_LIMIT_PER_MINUTE", "0"),
        ("FINALIZE_PROVISION_WAIT_SECS", "soon"),
        ("SWEEP_FEE_USD", "-1"),
        ("LOG_CHUNK_BLOCKS", "0"),
    ] {
        let err = Config::from_vars(&vars(&[
            DB,
            ("RPC_ENDPOINT", "http://127.0.0.1:8545"),
            ("CHAIN_ID_DEC", "31337"),
            ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
            (var, value),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(var) || text.starts_with("CHAINS_FILE"),
            "{var}: {text}"
        );
    }
}

#[test]
fn several_rpc_endpoints_per_chain() {
    let chain_vars = |rpc: &'static str| {
        vars(&[
            DB,
            ("RPC_ENDPOINT", rpc),
            ("CHAIN_ID_DEC", "31337"),
            ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
        ])
    };
    let c = Config::from_vars(&chain_vars(
        "http://127.0.0.1:8545, https://rpc.example/v2/KEY-1 ,",
    ))
    .unwrap();
    let urls: Vec<&str> = c.chains[0].endpoints().map(|u| u.expose_secret()).collect();
    assert_eq!(
        urls,
        ["http://127.0.0.1:8545", "https://rpc.example/v2/KEY-1"]
    );
    assert_eq!(c.chains[0].rpc_timeout_secs, 15);
    assert!(!format!("{:?}", c.chains[0]).contains("KEY-1"));
    let err = Config::from_vars(&chain_vars("http://127.0.0.1:8545,ws://KEY-2@x"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("RPC_ENDPOINT"), "{err}");
    assert!(!err.contains("KEY-2"), "{err}");

    // The chains file: `rpc_urls` alone, or after `rpc_url`.
    let path = std::env::temp_dir().join(format!("chains-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &path,
        r#"
        [[chains]]
        name = "one"
        chain_id = 1
        rpc_urls = ["https://a.example/k1", "https://b.example/k2"]
        rpc_timeout_secs = 4
        tokens = []
        [[chains]]
        name = "two"
        chain_id = 2
        rpc_url = "https://c.example"
        rpc_urls = ["https://d.example"]
        tokens = []
        [[chains]]
        name = "three"
        chain_id = 3
        rpc_url = "https://e.example"
        tokens = []
        "#,
    )
    .unwrap();
    let file = path.to_string_lossy().into_owned();
    let c = Config::from_vars(&vars(&[DB, ("CHAINS_FILE", &file)])).unwrap();
    let all: Vec<Vec<&str>> = c
        .chains
        .iter()
        .map(|c| c.endpoints().map(|u| u.expose_secret()).collect())
        .collect();
    assert_eq!(
        all,
        [
            vec!["https://a.example/k1", "https://b.example/k2"],
            vec!["https://c.example", "https://d.example"],
            vec!["https://e.example"],
        ]
    );
    assert_eq!(c.chains[0].rpc_timeout_secs, 4);
    std::fs::write(
        &path,
        "[[chains]]\nname = \"none\"\nchain_id = 1\ntokens = []\n",
    )
    .unwrap();
    let err = Config::from_vars(&vars(&[DB, ("CHAINS_FILE", &file)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one JSON-RPC endpoint"), "{err}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn aws_static_credentials_come_in_pairs_and_stay_secret() {
    let c = Config::from_vars(&vars(&[
        DB,
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIsecret"),
    ]))
    .unwrap();
    let creds = c.aws.as_ref().unwrap().credentials.as_ref().unwrap();
    assert_eq!(creds.access_key_id, "AKIDEXAMPLE");
    assert!(!format!("{c:?}").contains("wJalrXUtnFEMIsecret"));
    let c = Config::from_vars(&vars(&[DB, ("AWS_REGION", "us-east-1")])).unwrap();
    assert!(c.aws.unwrap().credentials.is_none());
    let err = Config::from_vars(&vars(&[
        DB,
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    ]))
    .unwrap_err();
    assert!(
        err.to_string().starts_with("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
}

#[test]
fn aws_deadlines_and_gateway_body_limits_have_sane_defaults() {
    let c = Config::from_vars(&vars(&[
        DB,
        ("AWS_REGION", "us-east-1"),
        ("GEMINI_API_KEY", "k"),
    ]))
    .unwrap();
    let aws = c.aws.unwrap();
    assert_eq!(aws.operation_timeout, Duration::from_secs(30));
    assert_eq!(aws.attempt_timeout, Duration::from_secs(10));
    let gemini = c.gemini.unwrap();
    assert_eq!(gemini.max_body_bytes, 20 * 1024 * 1024);
    assert_eq!(gemini.body_read_timeout, Duration::from_secs(60));
    for bad in ["0", "600"] {
        let err = Config::from_vars(&vars(&[
            DB,
            ("AWS_REGION", "us-east-1"),
            ("AWS_OPERATION_TIMEOUT_SECS", bad),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().starts_with("AWS_OPERATION_TIMEOUT_SECS"),
            "{err}"
        );
    }
}

#[test]
fn redact_url_hides_passwords() {
    assert_eq!(
        redact_url("postgres://u:pw@h:5432/db"),
        "postgres://***@h:5432/db"
    );
    assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
}

#[test]
fn http_limits_have_defaults_and_parse_trusted_proxies() {
    let c = Config::from_vars(&vars(&[DB])).unwrap();
    let l = &c.server.limits;
    assert_eq!(l.header_read_timeout, Duration::from_secs(10));
    assert_eq!(l.keep_alive_timeout, Duration::from_secs(60));
    assert_eq!(l.body_read_timeout, Duration::from_secs(10));
    assert_eq!(l.max_header_bytes, 32 * 1024);
    assert_eq!(l.max_connections, 1024);
    assert_eq!(l.max_connections_per_ip, 64);
    assert!(l.trusted_proxies.is_empty());
    let c = Config::from_vars(&vars(&[
        DB,
        ("TRUSTED_PROXIES", " 172.30.0.0/24, 127.0.0.1,fd00::1/64 "),
    ]))
    .unwrap();
    let nets: Vec<String> = c
        .server
        .limits
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["172.30.0.0/24", "127.0.0.1/32", "fd00::/64"]);
    for (var, value) in [
        ("TRUSTED_PROXIES", "caddy"),
        ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ("MAX_HEADER_BYTES", "1024"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS_PER_IP", "0"),
        ("HEADER_READ_TIMEOUT_SECS", "0"),
        ("BODY_READ_TIMEOUT_SECS", "soon"),
    ] {
        let err = Config::from_vars(&vars(&[DB, (var, value)])).unwrap_err();
        assert!(err.to_string().starts_with(var), "{err}");
    }
}
