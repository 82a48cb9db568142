//! Offers and curated appstore lists: defined in the offers file, synced to the database at start.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::domain::money::UsdMicros;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("offers file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("offers file {path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The providers an offer can be delivered by.
pub const PROVIDERS: &[&str] = &["s3", "gemini"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    #[serde(default)]
    pub offers: Vec<OfferDef>,
    #[serde(default)]
    pub lists: Vec<ListDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferDef {
    pub id: String,
    pub sku: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub provider: String,
    #[serde(default)]
    pub legacy_flow_id: Option<String>,
    #[serde(default)]
    pub about_url: Option<String>,
    #[serde(default)]
    pub pricing_line: String,
    pub minimum_deposit_usd: String,
    #[serde(default)]
    pub suggested_deposit_usd: Option<String>,
    #[serde(default)]
    pub maximum_deposit_usd: Option<String>,
    /// Accepted token symbols (empty: all configured tokens).
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub triggers: Option<TriggerDefs>,
    #[serde(default)]
    pub metadata: toml::Table,
    #[serde(default)]
    pub settings: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDefs {
    pub low_usd: Option<String>,
    pub critical_usd: Option<String>,
    pub termination_usd: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListDef {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub offers: Vec<String>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub countries: Vec<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub professions: Vec<String>,
}

/// An offer as validated from the file, amounts exact.
struct OfferRow<'a> {
    def: &'a OfferDef,
    min: UsdMicros,
    suggested: UsdMicros,
    max: UsdMicros,
    low: Option<UsdMicros>,
    critical: Option<UsdMicros>,
    termination: Option<UsdMicros>,
    metadata: serde_json::Value,
    settings: serde_json::Value,
}

impl CatalogFile {
    /// Reads and parses the offers file.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|detail| CatalogError::Invalid {
            path: path.display().to_string(),
            detail,
        })
    }

    /// Parses and validates the file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        file.rows()?;
        Ok(file)
    }

    fn rows(&self) -> Result<Vec<OfferRow<'_>>, String> {
        let mut ids = HashSet::new();
        let mut skus = HashSet::new();
        let mut flows = HashSet::new();
        let mut rows = Vec::with_capacity(self.offers.len());
        for def in &self.offers {
            let id = &def.id;
            if !valid_slug(id) {
                return Err(format!("offer id {id:?} must be 1-64 of [A-Za-z0-9_-]"));
            }
            if !ids.insert(id.as_str()) || !skus.insert(def.sku.as_str()) {
                return Err(format!("offer {id}: id and sku must be unique"));
            }
            if let Some(flow) = &def.legacy_flow_id
                && (flow.contains(':') || !flows.insert(flow.as_str()))
            {
                return Err(format!(
                    "offer {id}: legacy_flow_id must be unique and contain no ':'"
                ));
            }
            if !PROVIDERS.contains(&def.provider.as_str()) {
                return Err(format!("offer {id}: provider must be one of {PROVIDERS:?}"));
            }
            let amount = |field: &str, value: &str| {
                UsdMicros::parse_decimal(value)
                    .ok()
                    .filter(|a| a.0 >= 0)
                    .ok_or_else(|| {
                        format!(
                            "offer {id}: {field} must be a non-negative USD decimal, got {value:?}"
                        )
                    })
            };
            let opt =
                |field: &str, value: Option<&String>| value.map(|v| amount(field, v)).transpose();
            let min = amount("minimum_deposit_usd", &def.minimum_deposit_usd)?;
            let suggested =
                opt("suggested_deposit_usd", def.suggested_deposit_usd.as_ref())?.unwrap_or(min);
            let max = opt("maximum_deposit_usd", def.maximum_deposit_usd.as_ref())?
                .unwrap_or(UsdMicros(10_000_000_000));
            if !(min <= suggested && suggested <= max) {
                return Err(format!(
                    "offer {id}: deposits must satisfy minimum <= suggested <= maximum"
                ));
            }
            let triggers = def.triggers.as_ref();
            let low = opt(
                "triggers.low_usd",
                triggers.and_then(|t| t.low_usd.as_ref()),
            )?;
            let critical = opt(
                "triggers.critical_usd",
                triggers.and_then(|t| t.critical_usd.as_ref()),
            )?;
            let termination = opt(
                "triggers.termination_usd",
                triggers.and_then(|t| t.termination_usd.as_ref()),
            )?;
            if let (Some(l), Some(c)) = (low, critical)
                && c > l
            {
                return Err(format!(
                    "offer {id}: critical trigger must not exceed the low trigger"
                ));
            }
            if let (Some(c), Some(t)) = (critical, termination)
                && t > c
            {
                return Err(format!(
                    "offer {id}: termination trigger must not exceed the critical trigger"
                ));
            }
            let to_json = |table: &toml::Table| {
                serde_json::to_value(table).map_err(|e| format!("offer {id}: {e}"))
            };
            rows.push(OfferRow {
                def,
                min,
                suggested,
                max,
                low,
                critical,
                termination,
                metadata: to_json(&def.metadata)?,
                settings: to_json(&def.settings)?,
            });
        }
        let mut list_ids = HashSet::new();
        for list in &self.lists {
            if !valid_slug(&list.id) || !list_ids.insert(list.id.as_str()) {
                return Err(format!(
                    "list id {:?} must be unique and 1-64 of [A-Za-z0-9_-]",
                    list.id
                ));
            }
            let mut seen = HashSet::new();
            for offer in &list.offers {
                if !ids.contains(offer.as_str()) || !seen.insert(offer) {
                    return Err(format!(
                        "list {}: offer {offer:?} is unknown or repeated",
                        list.id
                    ));
                }
            }
        }
        Ok(rows)
    }

    /// Writes the file's offers and lists to the database in one transaction. Offers and lists no
    /// longer in the file are deactivated, never deleted (purchases reference them).
    #[tracing::instrument(skip_all, fields(offers = self.offers.len(), lists = self.lists.len()), err)]
    pub async fn sync(&self, pool: &PgPool) -> Result<(), CatalogError> {
        let rows = self.rows().map_err(|detail| CatalogError::Invalid {
            path: "(parsed)".into(),
            detail,
        })?;
        let mut tx = pool.begin().await?;
        // Serialise concurrent syncs from several replicas starting together.
        sqlx::query!("select pg_advisory_xact_lock(hashtext('vendor_server.catalog_sync'))")
            .execute(&mut *tx)
            .await?;
        let ids: Vec<String> = self.offers.iter().map(|o| o.id.clone()).collect();
        // Release legacy flow ids / skus held by offers that are no longer in the file.
        sqlx::query!(
            "update offer set active = false, legacy_flow_id = null, sku = offer_id || ':retired:' || sku
             where offer_id <> all($1) and active",
            &ids
        )
        .execute(&mut *tx)
        .await?;
        for r in &rows {
            let d = r.def;
            sqlx::query!(
                r#"insert into offer (offer_id, sku, title, description, provider, legacy_flow_id, about_url,
                        pricing_line, metadata, settings, tokens, min_deposit_micros, suggested_deposit_micros,
                        max_deposit_micros, low_trigger_micros, critical_trigger_micros, termination_trigger_micros,
                        active)
                   values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, true)
                   on conflict (offer_id) do update set
                        sku = excluded.sku, title = excluded.title, description = excluded.description,
                        provider = excluded.provider, legacy_flow_id = excluded.legacy_flow_id,
                        about_url = excluded.about_url, pricing_line = excluded.pricing_line,
                        metadata = excluded.metadata, settings = excluded.settings, tokens = excluded.tokens,
                        min_deposit_micros = excluded.min_deposit_micros,
                        suggested_deposit_micros = excluded.suggested_deposit_micros,
                        max_deposit_micros = excluded.max_deposit_micros,
                        low_trigger_micros = excluded.low_trigger_micros,
                        critical_trigger_micros = excluded.critical_trigger_micros,
                        termination_trigger_micros = excluded.termination_trigger_micros,
                        active = true"#,
                d.id,
                d.sku,
                d.title,
                d.description,
                d.provider,
                d.legacy_flow_id,
                d.about_url,
                d.pricing_line,
                r.metadata,
                r.settings,
                &d.tokens.iter().map(|t| t.to_ascii_lowercase()).collect::<Vec<_>>(),
                r.min.0,
                r.suggested.0,
                r.max.0,
                r.low.map(|a| a.0),
                r.critical.map(|a| a.0),
                r.termination.map(|a| a.0),
            )
            .execute(&mut *tx)
            .await?;
        }
        let list_ids: Vec<String> = self.lists.iter().map(|l| l.id.clone()).collect();
        sqlx::query!(
            "update appstore_list set active = false where list_id <> all($1)",
            &list_ids
        )
        .execute(&mut *tx)
        .await?;
        for list in &self.lists {
            let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
            sqlx::query!(
                "insert into appstore_list (list_id, title, description, priority, countries, languages, professions, active)
                 values ($1, $2, $3, $4, $5, $6, $7, true)
                 on conflict (list_id) do update set title = excluded.title, description = excluded.description,
                     priority = excluded.priority, countries = excluded.countries, languages = excluded.languages,
                     professions = excluded.professions, active = true",
                list.id,
                list.title,
                list.description,
                list.priority,
                &lower(&list.countries),
                &lower(&list.languages),
                &lower(&list.professions),
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "delete from appstore_list_offer where list_id = $1",
                list.id
            )
            .execute(&mut *tx)
            .await?;
            let positions: Vec<i32> = (0..).take(list.offers.len()).collect();
            sqlx::query!(
                "insert into appstore_list_offer (list_id, offer_id, position)
                 select $1, offer_id, position from unnest($2::text[], $3::int[]) as t(offer_id, position)",
                list.id,
                &list.offers,
                &positions,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An offer as stored (also kept with each checkout as the terms it was started on).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Offer {
    pub offer_id: String,
    pub sku: String,
    pub title: String,
    pub description: String,
    pub provider: String,
    pub legacy_flow_id: Option<String>,
    pub about_url: Option<String>,
    pub pricing_line: String,
    pub metadata: serde_json::Value,
    pub settings: serde_json::Value,
    pub tokens: Vec<String>,
    pub min_deposit: UsdMicros,
    pub suggested_deposit: UsdMicros,
    pub max_deposit: UsdMicros,
    pub low_trigger: Option<UsdMicros>,
    pub critical_trigger: Option<UsdMicros>,
    pub termination_trigger: Option<UsdMicros>,
}

impl Offer {
    /// Whether the offer accepts a token symbol.
    pub fn accepts(&self, symbol: &str) -> bool {
        self.tokens.is_empty() || self.tokens.iter().any(|t| t == symbol)
    }
}

macro_rules! offer_select {
    ($where:literal, $($arg:expr),*) => {
        sqlx::query!(
            r#"select offer_id, sku, title, description, provider, legacy_flow_id, about_url, pricing_line,
                      metadata, settings, tokens, min_deposit_micros, suggested_deposit_micros, max_deposit_micros,
                      low_trigger_micros, critical_trigger_micros, termination_trigger_micros
               from offer "# + $where,
            $($arg),*
        )
    };
}

macro_rules! offer_from_row {
    ($r:expr) => {{
        let r = $r;
        Offer {
            offer_id: r.offer_id,
            sku: r.sku,
            title: r.title,
            description: r.description,
            provider: r.provider,
            legacy_flow_id: r.legacy_flow_id,
            about_url: r.about_url,
            pricing_line: r.pricing_line,
            metadata: r.metadata,
            settings: r.settings,
            tokens: r.tokens,
            min_deposit: UsdMicros(r.min_deposit_micros),
            suggested_deposit: UsdMicros(r.suggested_deposit_micros),
            max_deposit: UsdMicros(r.max_deposit_micros),
            low_trigger: r.low_trigger_micros.map(UsdMicros),
            critical_trigger: r.critical_trigger_micros.map(UsdMicros),
            termination_trigger: r.termination_trigger_micros.map(UsdMicros),
        }
    }};
}

/// One active offer by id, from the database (request paths read the [`Snapshot`]).
pub async fn find_offer(pool: &PgPool, offer_id: &str) -> Result<Option<Offer>, sqlx::Error> {
    let row = offer_select!("where offer_id = $1 and active", offer_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| offer_from_row!(r)))
}

/// One offer by id, active or retired (a paid checkout finishes on its offer even after retirement).
pub async fn find_offer_any(pool: &PgPool, offer_id: &str) -> Result<Option<Offer>, sqlx::Error> {
    let row = offer_select!("where offer_id = $1", offer_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| offer_from_row!(r)))
}

/// An active appstore list.
#[derive(Debug, Clone)]
pub struct AppstoreList {
    pub list_id: String,
    pub title: String,
    pub description: String,
    pub priority: i32,
    pub countries: Vec<String>,
    pub languages: Vec<String>,
    pub professions: Vec<String>,
}

/// Every active list.
pub async fn lists(pool: &PgPool) -> Result<Vec<AppstoreList>, sqlx::Error> {
    sqlx::query_as!(
        AppstoreList,
        "select list_id, title, description, priority, countries, languages, professions
         from appstore_list where active order by list_id"
    )
    .fetch_all(pool)
    .await
}

/// Hints a client gives `suggest` about itself.
#[derive(Debug, Default, Clone)]
pub struct SuggestHints {
    pub country: Option<String>,
    pub language: Option<String>,
    pub profession: Option<String>,
}

/// Ranks lists for the hints: each matching hint adds weight to the list's own priority; lists that
/// target a hint the caller does not match rank lower; ties by id.
pub fn rank_lists(mut lists: Vec<AppstoreList>, hints: &SuggestHints) -> Vec<AppstoreList> {
    fn score(targets: &[String], hint: Option<&String>) -> i64 {
        match (targets.is_empty(), hint) {
            (true, _) => 0,
            (false, None) => 0,
            (false, Some(h))
                if targets
                    .iter()
                    .any(|t| h.to_lowercase().contains(t.as_str()) || t == &h.to_lowercase()) =>
            {
                100
            }
            (false, Some(_)) => -50,
        }
    }
    let key = |l: &AppstoreList| {
        i64::from(l.priority)
            + score(&l.countries, hints.country.as_ref())
            + score(&l.languages, hints.language.as_ref())
            + score(&l.professions, hints.profession.as_ref())
    };
    lists.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.list_id.cmp(&b.list_id)));
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_offers_file_is_valid() {
        let file = CatalogFile::parse(include_str!("../config/offers.toml")).unwrap();
        assert!(
            file.offers
                .iter()
                .any(|o| o.id == "aws-s3-storage-giftcard")
        );
        assert!(file.offers.iter().any(|o| o.id == "gemini-api-gateway"));
        assert!(file.lists.len() >= 3);
    }

    #[test]
    fn invalid_files_are_refused_with_a_reason() {
        let base = r#"
[[offers]]
id = "a"
sku = "a"
title = "A"
provider = "s3"
minimum_deposit_usd = "1"
"#;
        assert!(CatalogFile::parse(base).is_ok());
        for (extra, reason) in [
            (
                "[[lists]]\nid = \"l\"\ntitle = \"L\"\noffers = [\"nope\"]\n",
                "unknown",
            ),
            (
                "[[offers]]\nid = \"a\"\nsku = \"b\"\ntitle = \"B\"\nprovider = \"s3\"\nminimum_deposit_usd = \"1\"\n",
                "unique",
            ),
        ] {
            let err = CatalogFile::parse(&format!("{base}{extra}")).unwrap_err();
            assert!(err.contains(reason), "{err}");
        }
        let bad_amount = base.replace("\"1\"", "\"1.0000001\"");
        assert!(
            CatalogFile::parse(&bad_amount)
                .unwrap_err()
                .contains("minimum_deposit_usd")
        );
        let bad_provider = base.replace("\"s3\"", "\"ftp\"");
        assert!(
            CatalogFile::parse(&bad_provider)
                .unwrap_err()
                .contains("provider")
        );
        assert!(CatalogFile::parse("[[offers]]\nid = 3").is_err());
    }

    fn list(id: &str, priority: i32, professions: &[&str], languages: &[&str]) -> AppstoreList {
        AppstoreList {
            list_id: id.into(),
            title: id.into(),
            description: String::new(),
            priority,
            countries: vec![],
            languages: languages.iter().map(|s| (*s).to_owned()).collect(),
            professions: professions.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn ranking_prefers_matching_hints() {
        let lists = vec![
            list("storage", 20, &["photographer"], &[]),
            list("ai", 10, &["writer"], &[]),
        ];
        let ids = |v: Vec<AppstoreList>| v.into_iter().map(|l| l.list_id).collect::<Vec<_>>();
        assert_eq!(
            ids(rank_lists(lists.clone(), &SuggestHints::default())),
            ["storage", "ai"]
        );
        let writer = SuggestHints {
            profession: Some("Writer".into()),
            ..Default::default()
        };
        assert_eq!(ids(rank_lists(lists, &writer)), ["ai", "storage"]);
    }
}

/// One way to pay for an offer: a chain and a token, named by a flow id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutFlow {
    pub flow_id: String,
    pub offer_id: String,
    pub chain: String,
    pub token: String,
}

/// Every flow of an offer on the configured chains: `<offer_id>:<chain>:<token>` for each accepted
/// token, plus the offer's legacy flow id (first chain, USDC) when it has one.
pub fn checkout_flows(offer: &Offer, chains: &[crate::config::ChainConfig]) -> Vec<CheckoutFlow> {
    let mut flows = Vec::new();
    if let (Some(legacy), Some(chain)) = (&offer.legacy_flow_id, chains.first())
        && chain.tokens.iter().any(|t| t.symbol == "usdc")
        && offer.accepts("usdc")
    {
        flows.push(CheckoutFlow {
            flow_id: legacy.clone(),
            offer_id: offer.offer_id.clone(),
            chain: chain.name.clone(),
            token: "usdc".into(),
        });
    }
    for chain in chains {
        for token in chain.tokens.iter().filter(|t| offer.accepts(&t.symbol)) {
            flows.push(CheckoutFlow {
                flow_id: format!("{}:{}:{}", offer.offer_id, chain.name, token.symbol),
                offer_id: offer.offer_id.clone(),
                chain: chain.name.clone(),
                token: token.symbol.clone(),
            });
        }
    }
    flows
}

/// Resolves a flow id to its offer and flow; `None` when unknown (or not payable on this configuration).
pub fn resolve_flow(
    catalog: &Catalog,
    chains: &[crate::config::ChainConfig],
    flow_id: &str,
) -> Option<(Offer, CheckoutFlow)> {
    let offer = match flow_id.split_once(':') {
        Some((offer_id, _)) => catalog.offer(offer_id),
        None => catalog.offer_by_legacy_flow(flow_id),
    }?;
    let flow = checkout_flows(offer, chains)
        .into_iter()
        .find(|f| f.flow_id == flow_id)?;
    Some((offer.clone(), flow))
}

/// The active offers and lists, in memory: loaded from the database (after the offers file was
/// synced at start) on first use, then read without a database round trip.
#[derive(Debug, Default)]
pub struct Catalog {
    offers: HashMap<String, Offer>,
    /// Legacy flow id -> offer id.
    legacy_flows: HashMap<String, String>,
    /// Active lists by id, each with its active offers' ids in list order.
    lists: Vec<(AppstoreList, Vec<String>)>,
}

impl Catalog {
    /// Reads the active offers and lists from the database.
    pub async fn load(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let rows = offer_select!("where active",).fetch_all(pool).await?;
        let offers: HashMap<String, Offer> = rows
            .into_iter()
            .map(|r| {
                let offer = offer_from_row!(r);
                (offer.offer_id.clone(), offer)
            })
            .collect();
        let legacy_flows = offers
            .values()
            .filter_map(|o| Some((o.legacy_flow_id.clone()?, o.offer_id.clone())))
            .collect();
        let entries = sqlx::query!(
            "select list_id, offer_id from appstore_list_offer order by list_id, position"
        )
        .fetch_all(pool)
        .await?;
        let lists = lists(pool)
            .await?
            .into_iter()
            .map(|list| {
                let ids = entries
                    .iter()
                    .filter(|e| e.list_id == list.list_id && offers.contains_key(&e.offer_id))
                    .map(|e| e.offer_id.clone())
                    .collect();
                (list, ids)
            })
            .collect();
        Ok(Self {
            offers,
            legacy_flows,
            lists,
        })
    }

    /// One active offer by id.
    pub fn offer(&self, offer_id: &str) -> Option<&Offer> {
        self.offers.get(offer_id)
    }

    /// The active offer whose legacy flow id is `flow_id`.
    pub fn offer_by_legacy_flow(&self, flow_id: &str) -> Option<&Offer> {
        self.offer(self.legacy_flows.get(flow_id)?)
    }

    /// Every active list holding at least one active offer for which `sold` is true, by id.
    pub fn lists_offering(&self, sold: impl Fn(&Offer) -> bool) -> Vec<AppstoreList> {
        self.lists
            .iter()
            .filter(|(_, ids)| ids.iter().filter_map(|id| self.offer(id)).any(&sold))
            .map(|(list, _)| list.clone())
            .collect()
    }

    /// One active list and its active offers in list order; `None` for an unknown list.
    pub fn list_with_offers(&self, list_id: &str) -> Option<(&AppstoreList, Vec<&Offer>)> {
        let (list, ids) = self.lists.iter().find(|(l, _)| l.list_id == list_id)?;
        Some((list, ids.iter().filter_map(|id| self.offer(id)).collect()))
    }
}

/// The current [`Catalog`], shared by every handler and swapped atomically by [`Snapshot::reload`].
/// The catalog changes only when the offers file is synced at start, so a replica sees another
/// replica's sync at its own next start.
#[derive(Clone, Default)]
pub struct Snapshot(Arc<ArcSwapOption<Catalog>>);

impl Snapshot {
    /// The current catalog, loaded from the database on first use.
    pub async fn current(&self, pool: &PgPool) -> Result<Arc<Catalog>, sqlx::Error> {
        match self.0.load_full() {
            Some(catalog) => Ok(catalog),
            None => self.reload(pool).await,
        }
    }

    /// Reads the catalog from the database and swaps it in.
    pub async fn reload(&self, pool: &PgPool) -> Result<Arc<Catalog>, sqlx::Error> {
        let catalog = Arc::new(Catalog::load(pool).await?);
        self.0.store(Some(catalog.clone()));
        Ok(catalog)
    }

    /// Resolves a flow id against the current catalog (see [`resolve_flow`]).
    pub async fn resolve_flow(
        &self,
        pool: &PgPool,
        chains: &[crate::config::ChainConfig],
        flow_id: &str,
    ) -> Result<Option<(Offer, CheckoutFlow)>, sqlx::Error> {
        Ok(resolve_flow(&*self.current(pool).await?, chains, flow_id))
    }
}
