//! `vendor-server dev …`: the main job on a local chain without any account. Deploys the project's test
//! stablecoins at fixed addresses, writes a development `.env`, pays a deposit address from the dev
//! chain's customer account, and runs a whole checkout (initiate → pay → finalize) against a running
//! server. Every command that sends a transaction refuses on a chain id other than 31337/1337.

use std::time::Duration;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, Bytes, U256, address};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::SolCall;
use anyhow::{Context, bail, ensure};
use clap::{Subcommand, ValueEnum};
use rand::RngCore;
use serde_json::{Value, json};

use crate::chain::wallet::{DEV_CHAIN_IDS, DEV_MNEMONIC, DepositKeys};
use crate::domain::money::UsdMicros;

sol! {
    interface ITestToken {
        function mint(address to, uint256 amount) external returns (bool);
        function transfer(address to, uint256 value) external returns (bool);
        function decimals() external view returns (uint8);
    }
}

/// Dev account 0 (anvil's first funded account): the local gas wallet.
const GAS_ACCOUNT: u32 = 0;
/// Dev account 1: the customer who pays.
const CUSTOMER_ACCOUNT: u32 = 1;
/// Dev account 9: deploys the test tokens (nonce 0 → USDC, nonce 1 → USDT), so their addresses are fixed.
const DEPLOYER_ACCOUNT: u32 = 9;
/// Dev account 8: the local treasury sweeps go to.
const TREASURY_ACCOUNT: u32 = 8;
/// Multicall3's canonical address (SPEC §9).
const MULTICALL3: Address = address!("cA11bde05977b3631167028862bE2a173976CA11");

const TEST_USDC: &str = include_str!("../../contracts/artifacts/TestUSDC.json");
const TEST_USDT: &str = include_str!("../../contracts/artifacts/TestUSDT.json");
const MULTICALL3_ARTIFACT: &str = include_str!("../../contracts/artifacts/Multicall3.json");

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Token {
    Usdc,
    Usdt,
}

impl Token {
    fn symbol(self) -> &'static str {
        match self {
            Self::Usdc => "USDC",
            Self::Usdt => "USDT",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Deploy the test USDC (EIP-3009) and USDT at their fixed addresses and place Multicall3 on a local
    /// chain (anvil); does nothing for what is already there. Prints the addresses.
    Chain {
        /// The local chain's JSON-RPC URL.
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
    },
    /// Print a development `.env` for the local chain and a local AWS (moto): a fresh random deposit
    /// mnemonic, data key and admin token; the dev chain's public gas key (accepted on 31337 only).
    Env {
        #[arg(long, default_value_t = 3001)]
        port: u16,
        #[arg(
            long,
            default_value = "postgres://postgres@127.0.0.1:5432/vendor_server"
        )]
        database_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// The local AWS endpoint (moto_server); empty = S3 offer off.
        #[arg(long, default_value = "http://127.0.0.1:5000")]
        aws_endpoint: String,
    },
    /// Mint test tokens on the local chain and pay them to ADDRESS from the dev customer account, then
    /// mine the blocks the deposit needs to count.
    Pay {
        /// The deposit address (from a checkout).
        #[arg(long)]
        to: Address,
        /// Amount in tokens (= USD), e.g. 5 or 2.5.
        #[arg(long)]
        amount: String,
        #[arg(long, value_enum, default_value = "usdc")]
        token: Token,
    },
    /// A whole checkout against the running server: initiate → pay → finalize. Prints the receipt and
    /// the customer's link.
    Checkout {
        /// The offer to buy.
        #[arg(long, default_value = "aws-s3-storage-giftcard")]
        offer: String,
        #[arg(long, value_enum, default_value = "usdc")]
        token: Token,
        /// Amount in tokens (= USD).
        #[arg(long, default_value = "5")]
        amount: String,
        /// The server's base URL (default: PUBLIC_BASE_URL).
        #[arg(long)]
        url: Option<String>,
    },
}

pub async fn run(command: DevCommand) -> anyhow::Result<()> {
    match command {
        DevCommand::Chain { rpc } => {
            let chain = LocalChain::connect(&rpc).await?;
            let (usdc, usdt) = chain.deploy_tokens().await?;
            println!("chain {} at {rpc}", chain.chain_id);
            println!("USDC_ADDRESS={}", usdc.to_checksum(None));
            println!("USDT_ADDRESS={}", usdt.to_checksum(None));
            println!("Multicall3 {}", MULTICALL3.to_checksum(None));
            Ok(())
        }
        DevCommand::Env {
            port,
            database_url,
            rpc,
            aws_endpoint,
        } => {
            print!("{}", dev_env(port, &database_url, &rpc, &aws_endpoint)?);
            Ok(())
        }
        DevCommand::Pay { to, amount, token } => {
            let (chain, token_address) = configured_chain(token).await?;
            let tx = chain.pay(token_address, to, &amount).await?;
            println!(
                "paid {amount} {} to {} (tx {tx}) and mined {} block(s): the deposit counts now",
                token.symbol(),
                to.to_checksum(None),
                chain.confirmations
            );
            Ok(())
        }
        DevCommand::Checkout {
            offer,
            token,
            amount,
            url,
        } => checkout(&offer, token, &amount, url).await,
    }
}

fn dev_signer(index: u32) -> anyhow::Result<PrivateKeySigner> {
    Ok(DepositKeys::from_phrase(DEV_MNEMONIC)?.signer(index)?)
}

/// The fixed addresses of the test tokens: the deployer's first two contracts.
pub fn token_addresses() -> anyhow::Result<(Address, Address)> {
    let deployer = dev_signer(DEPLOYER_ACCOUNT)?.address();
    Ok((deployer.create(0), deployer.create(1)))
}

fn dev_env(port: u16, database_url: &str, rpc: &str, aws_endpoint: &str) -> anyhow::Result<String> {
    use alloy::signers::local::coins_bip39::{English, Mnemonic};
    let mut rng = rand::rngs::OsRng;
    let mnemonic = Mnemonic::<English>::new_with_count(&mut rng, 12)
        .map_err(|e| anyhow::anyhow!("cannot generate a mnemonic: {e}"))?
        .to_phrase();
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    let mut admin = [0u8; 24];
    rng.fill_bytes(&mut admin);
    let gas = dev_signer(GAS_ACCOUNT)?;
    let treasury = dev_signer(TREASURY_ACCOUNT)?.address();
    let (usdc, usdt) = token_addresses()?;
    let aws = if aws_endpoint.is_empty() {
        "# AWS off (no local AWS endpoint).\nAWS_REGION=\n".to_owned()
    } else {
        format!(
            "# Local AWS (moto_server): the S3 offer provisions real buckets there.\n\
             AWS_REGION=us-east-1\nAWS_ACCESS_KEY_ID=testing\nAWS_SECRET_ACCESS_KEY=testing\n\
             AWS_ENDPOINT_URL={aws_endpoint}\nBILLING_BUCKET_NAME=vendor-billing\n"
        )
    };
    Ok(format!(
        "# vendor-server development settings, written by scripts/dev-server.sh (`vendor-server dev env`).\n\
         # For a local chain (anvil, chain id 31337) and a local AWS only: the gas key is anvil's public dev\n\
         # key, which the server refuses on any other chain. Replace everything here for production\n\
         # (see .env.example).\n\
         PORT={port}\n\
         PUBLIC_BASE_URL=http://localhost:{port}\n\
         DATABASE_URL={database_url}\n\
         LOG_FORMAT=pretty\n\
         RUST_LOG=vendor_server=info,warn\n\
         ADMIN_TOKEN=dev_{admin}\n\
         DATA_ENCRYPTION_KEY={key}\n\
         VENDOR_NAME=\"Local Dev Vendor\"\n\
         # Wallets: a fresh random deposit mnemonic; anvil's dev account 0 pays gas; account 8 is the treasury.\n\
         DEPOSIT_MNEMONIC=\"{mnemonic}\"\n\
         VENDOR_GAS_TANK_PRIVATE_KEY=0x{gas_key}\n\
         VENDOR_TREASURY_ADDRESS={treasury}\n\
         # The local chain, with the project's test USDC (EIP-3009) and USDT (`vendor-server dev chain`).\n\
         RPC_ENDPOINT={rpc}\n\
         CHAIN_ID_DEC=31337\n\
         CHAIN_NAME=local\n\
         CHAIN_EXPLORER_URL=\n\
         DEFAULT_BLOCK_CONFIRMATIONS=2\n\
         START_BLOCK=0\n\
         USDC_ADDRESS={usdc}\n\
         USDT_ADDRESS={usdt}\n\
         {aws}",
        admin = hex::encode(admin),
        key = hex::encode(key),
        gas_key = hex::encode(gas.to_bytes()),
        treasury = treasury.to_checksum(None),
        usdc = usdc.to_checksum(None),
        usdt = usdt.to_checksum(None),
    ))
}

/// A local development chain, refused unless its id is 31337 or 1337.
struct LocalChain {
    rpc: String,
    chain_id: u64,
    confirmations: u64,
}

impl LocalChain {
    async fn connect(rpc: &str) -> anyhow::Result<Self> {
        let provider = ProviderBuilder::new().connect_http(rpc.parse().context("RPC URL")?);
        let chain_id = provider.get_chain_id().await.with_context(|| {
            format!("the local chain at {rpc} does not answer (is anvil running?)")
        })?;
        ensure!(
            DEV_CHAIN_IDS.contains(&chain_id),
            "chain id {chain_id} is not a local development chain (31337/1337): `dev` commands never send \
             transactions anywhere else"
        );
        Ok(Self {
            rpc: rpc.to_owned(),
            chain_id,
            confirmations: 0,
        })
    }

    fn provider(&self, account: u32) -> anyhow::Result<DynProvider> {
        let wallet = EthereumWallet::from(dev_signer(account)?);
        Ok(ProviderBuilder::new()
            .wallet(wallet)
            .connect_http(self.rpc.parse().context("RPC URL")?)
            .erased())
    }

    async fn send(
        &self,
        account: u32,
        tx: TransactionRequest,
    ) -> anyhow::Result<alloy::rpc::types::TransactionReceipt> {
        let provider = self.provider(account)?;
        let receipt = provider
            .send_transaction(tx)
            .await
            .context("sending the transaction")?
            .with_timeout(Some(Duration::from_secs(60)))
            .get_receipt()
            .await
            .context("waiting for the transaction")?;
        ensure!(
            receipt.status(),
            "transaction {} reverted",
            receipt.transaction_hash
        );
        Ok(receipt)
    }

    /// Deploys TestUSDC and TestUSDT from the deployer (nonces 0 and 1) unless already there, and places
    /// Multicall3.
    async fn deploy_tokens(&self) -> anyhow::Result<(Address, Address)> {
        let provider = self.provider(DEPLOYER_ACCOUNT)?;
        let deployer = dev_signer(DEPLOYER_ACCOUNT)?.address();
        let (usdc, usdt) = token_addresses()?;
        for (address, artifact, nonce) in [(usdc, TEST_USDC, 0u64), (usdt, TEST_USDT, 1)] {
            if !provider.get_code_at(address).await?.is_empty() {
                continue;
            }
            let used = provider.get_transaction_count(deployer).await?;
            ensure!(
                used == nonce,
                "the deployer account {deployer} has already sent {used} transaction(s) on this chain, so the \
                 test tokens cannot get their fixed addresses: start a fresh anvil"
            );
            let code = artifact_bytes(artifact, "bytecode")?;
            let receipt = self
                .send(
                    DEPLOYER_ACCOUNT,
                    TransactionRequest::default().with_deploy_code(code),
                )
                .await?;
            ensure!(
                receipt.contract_address == Some(address),
                "the token was deployed at {:?}, not {address}",
                receipt.contract_address
            );
        }
        if provider.get_code_at(MULTICALL3).await?.is_empty() {
            let code = artifact_bytes(MULTICALL3_ARTIFACT, "deployedBytecode")?;
            provider
                .raw_request::<_, Value>("anvil_setCode".into(), (MULTICALL3, code))
                .await
                .context("placing Multicall3 (anvil_setCode)")?;
        }
        Ok((usdc, usdt))
    }

    /// Mints `amount` tokens to the customer account, transfers them to `to`, then mines the blocks the
    /// deposit needs to count. Returns the transfer's hash.
    async fn pay(&self, token: Address, to: Address, amount: &str) -> anyhow::Result<String> {
        let provider = self.provider(CUSTOMER_ACCOUNT)?;
        ensure!(
            !provider.get_code_at(token).await?.is_empty(),
            "no token contract at {token}: run `vendor-server dev chain` first"
        );
        let decimals = ITestToken::decimalsCall::abi_decode_returns(
            &provider
                .call(
                    TransactionRequest::default()
                        .to(token)
                        .with_input(ITestToken::decimalsCall {}.abi_encode()),
                )
                .await?,
        )?;
        let units = token_units(amount, decimals)?;
        let customer = dev_signer(CUSTOMER_ACCOUNT)?.address();
        let mint = ITestToken::mintCall {
            to: customer,
            amount: units,
        };
        self.send(
            CUSTOMER_ACCOUNT,
            TransactionRequest::default()
                .to(token)
                .with_input(mint.abi_encode()),
        )
        .await?;
        let transfer = ITestToken::transferCall { to, value: units };
        let receipt = self
            .send(
                CUSTOMER_ACCOUNT,
                TransactionRequest::default()
                    .to(token)
                    .with_input(transfer.abi_encode()),
            )
            .await?;
        if self.confirmations > 0 {
            provider
                .raw_request::<_, Value>(
                    "anvil_mine".into(),
                    (format!("{:#x}", self.confirmations),),
                )
                .await
                .context("mining confirmation blocks (anvil_mine)")?;
        }
        Ok(format!("{:#x}", receipt.transaction_hash))
    }
}

fn artifact_bytes(artifact: &str, field: &str) -> anyhow::Result<Bytes> {
    let json: Value = serde_json::from_str(artifact).context("contract artifact")?;
    let code = json[field]
        .as_str()
        .with_context(|| format!("contract artifact has no {field}"))?;
    Ok(code.parse()?)
}

/// `amount` (a decimal with up to 6 places) in token units of `decimals`.
fn token_units(amount: &str, decimals: u8) -> anyhow::Result<U256> {
    let micros = UsdMicros::parse_decimal(amount).map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
    ensure!(micros.0 > 0, "--amount must be positive");
    let micros = U256::from(micros.0.unsigned_abs());
    Ok(if decimals >= 6 {
        micros * U256::from(10u64).pow(U256::from(decimals - 6))
    } else {
        micros / U256::from(10u64).pow(U256::from(6 - decimals))
    })
}

/// The default chain from the configuration (`.env`) and the token to pay with.
async fn configured_chain(token: Token) -> anyhow::Result<(LocalChain, Address)> {
    use secrecy::ExposeSecret;
    let config = super::load_config()?;
    let chain = config
        .chains
        .first()
        .context("no chain is configured (RPC_ENDPOINT): run scripts/dev-server.sh first")?;
    let address = chain
        .tokens
        .iter()
        .find(|t| t.symbol.eq_ignore_ascii_case(token.symbol()))
        .map(|t| t.address)
        .with_context(|| format!("{} is not configured on {}", token.symbol(), chain.name))?;
    let mut local = LocalChain::connect(chain.rpc_url.expose_secret()).await?;
    ensure!(
        local.chain_id == chain.chain_id,
        "the RPC answers chain id {} but the configuration says {}",
        local.chain_id,
        chain.chain_id
    );
    local.confirmations = chain.confirmations;
    Ok((local, address))
}

async fn checkout(
    offer: &str,
    token: Token,
    amount: &str,
    url: Option<String>,
) -> anyhow::Result<()> {
    let base = match url {
        Some(url) => url,
        None => super::load_config()?.server.public_base_url.clone(),
    };
    let base = base.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()?;
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let mut request = http.request(method, &url);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("{url} did not answer (is the server running?)"))?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            ensure!(status.is_success(), "{url} answered {status}: {body}");
            Ok::<Value, anyhow::Error>(body)
        }
    };

    let offer_body = call(reqwest::Method::GET, format!("/v1/offer/{offer}"), None).await?;
    let options = offer_body["checkout_options"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let suffix = format!(":{}", token.symbol().to_lowercase());
    let flow = options
        .iter()
        .filter_map(|o| o["checkout_flow_id"].as_str())
        .find(|id| id.ends_with(&suffix))
        .or_else(|| {
            matches!(token, Token::Usdc)
                .then(|| options.first().and_then(|o| o["checkout_flow_id"].as_str()))
                .flatten()
        })
        .with_context(|| {
            format!(
                "offer {offer} has no {} checkout option on this server (is the chain configured?)",
                token.symbol()
            )
        })?
        .to_owned();
    println!("1. offer {offer}: checkout flow {flow}");

    let init = call(
        reqwest::Method::POST,
        "/v1/checkout/initiate".into(),
        Some(json!({"checkout_flow_id": flow, "email": "customer@example.com"})),
    )
    .await?;
    if init["success"] == json!(false) {
        bail!("initiate refused: {init}");
    }
    let session = init["checkout_session_id"]
        .as_str()
        .context("initiate answered no checkout_session_id")?
        .to_owned();
    let deposit: Address = init["crypto_checkout"]["receiving_address"]
        .as_str()
        .context("initiate answered no receiving_address")?
        .parse()?;
    println!(
        "2. checkout {session}: pay to {}",
        deposit.to_checksum(None)
    );

    let (chain, token_address) = configured_chain(token).await?;
    let tx = chain.pay(token_address, deposit, amount).await?;
    println!("3. paid {amount} {} (tx {tx})", token.symbol());

    let mut receipt = Value::Null;
    let officex_purchase_id = format!("PurchaseID_{}", uuid::Uuid::new_v4());
    for attempt in 0..30 {
        let finalize = call(
            reqwest::Method::POST,
            "/v1/checkout/finalize".into(),
            Some(json!({
                "checkout_flow_id": flow,
                "checkout_session_id": session,
                "officex_purchase_id": officex_purchase_id,
                "proxy_buyer_data": {"org_id": "DriveID_dev", "org_endpoint": "https://dev.icp0.io", "user_id": "UserID_dev"},
                "sweep_tokens": []
            })),
        )
        .await?;
        let status = finalize["receipt"]["status"].as_str().unwrap_or_default();
        if finalize["success"] == json!(true) && status == "RUNNING" {
            receipt = finalize;
            break;
        }
        if attempt == 29 {
            bail!("finalize did not complete: {finalize}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "4. finalized: receipt\n{}",
        serde_json::to_string_pretty(&receipt["receipt"])?
    );
    let link = receipt["receipt"]["delivery_url"]
        .as_str()
        .or_else(|| receipt["receipt"]["skip_to_final_redirect"].as_str())
        .unwrap_or_default();
    println!("\ncustomer page: {link}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_addresses_are_the_deployer_s_first_two_contracts() {
        let (usdc, usdt) = token_addresses().unwrap();
        assert_ne!(usdc, usdt);
        // Anvil account 9 (0xa0Ee…9720) at nonces 0 and 1.
        assert_eq!(
            dev_signer(DEPLOYER_ACCOUNT).unwrap().address(),
            crate::chain::wallet::DEV_ADDRESSES[9]
        );
    }

    #[test]
    fn amounts_become_token_units() {
        assert_eq!(token_units("5", 6).unwrap(), U256::from(5_000_000u64));
        assert_eq!(
            token_units("2.5", 18).unwrap(),
            U256::from(2_500_000_000_000_000_000u128)
        );
        assert!(token_units("0", 6).is_err());
        assert!(token_units("-1", 6).is_err());
        assert!(token_units("1.0000001", 6).is_err());
    }

    #[test]
    fn the_dev_env_has_fresh_secrets_each_time() {
        let a = dev_env(3001, "postgres://x/y", "http://127.0.0.1:8545", "").unwrap();
        let b = dev_env(3001, "postgres://x/y", "http://127.0.0.1:8545", "").unwrap();
        let mnemonic = |s: &str| {
            s.lines()
                .find(|l| l.starts_with("DEPOSIT_MNEMONIC"))
                .unwrap()
                .to_owned()
        };
        assert_ne!(mnemonic(&a), mnemonic(&b));
        assert!(a.contains("CHAIN_ID_DEC=31337"));
    }
}
