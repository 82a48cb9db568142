//! Wire identifiers with the original's readable prefixes (`CustomerPurchaseID_<uuid>`, …).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must look like {prefix}<uuid>")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.strip_prefix($prefix)
                    .and_then(|rest| Uuid::parse_str(rest).ok())
                    .map(Self)
                    .ok_or(IdError { kind: stringify!($name), prefix: $prefix })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        /// On the wire: `<prefix><uuid>` (OpenAPI component of the same name).
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .pattern(Some(concat!(
                        "^",
                        $prefix,
                        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
                    )))
                    .description(Some(concat!($prefix, "<uuid>")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A purchase on this server; also the S3/CUR tag value.
    PurchaseId,
    "CustomerPurchaseID_"
);
prefixed_id!(
    /// One checkout session (`initiate` → `finalize`).
    CheckoutSessionId,
    "CheckoutSessionID_"
);
prefixed_id!(
    /// The deposit wallet of a checkout.
    CheckoutWalletId,
    "CheckoutWalletID_"
);
prefixed_id!(
    /// A refund of unused balance or unclaimed money.
    RefundId,
    "RefundID_"
);

prefixed_id!(
    /// A client-supplied or generated tracer.
    TracerId,
    "TracerID_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_prefix() {
        let id = PurchaseId::new();
        let text = id.to_string();
        assert!(text.starts_with("CustomerPurchaseID_"));
        assert_eq!(text.parse::<PurchaseId>(), Ok(id));
        assert!(
            "CheckoutSessionID_nope"
                .parse::<CheckoutSessionId>()
                .is_err()
        );
        assert!(id.0.to_string().parse::<PurchaseId>().is_err());
    }
}
