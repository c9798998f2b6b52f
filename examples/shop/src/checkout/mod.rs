//! A checkout, from a validated request for a known drop to its business outcome, in the
//! variant the shop runs: [`correct`] or [`broken`].

pub mod broken;
pub mod correct;
pub mod ledger;

use std::future::Future;
use std::time::Duration;

use crate::Shop;
use crate::config::Variant;
use crate::drops::KnownDrop;

/// The longest a buyer waits on PostgreSQL for one step (a read, or the whole purchase
/// transaction) before being told the outcome is unknown. Without it, a database whose link
/// went silent would hold buyers until TCP gives up, minutes later.
pub const DATABASE_DEADLINE: Duration = Duration::from_secs(5);

/// A checkout request whose fields passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub customer: String,
    pub sku: String,
    pub units: i32,
    /// `X-Request-Key`: the idempotency key, scoped to the drop.
    pub key: Option<String>,
}

/// A purchase as the buyer is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub reference: String,
    pub units: i32,
    /// Whose purchase it is: a key replays only for the request it was made for.
    pub customer: String,
}

/// A business outcome: each is answered with HTTP 200 and its `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `replayed` when the purchase was made earlier under the same key.
    Confirmed {
        purchase: Purchase,
        replayed: bool,
    },
    SoldOut,
    LimitReached,
    Closed,
    WrongSku,
    /// The key was used on this drop for another customer or another quantity: refused, never
    /// answered with someone else's purchase.
    KeyReused,
}

impl Outcome {
    pub fn replayed(purchase: Purchase) -> Self {
        Outcome::Confirmed {
            purchase,
            replayed: true,
        }
    }
}

/// The purchase's fate is not known to the shop: PostgreSQL failed or did not answer in time.
/// The buyer may retry with the same key and will get the purchase if it was made.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("PostgreSQL: {0}")]
    Database(#[from] sqlx::Error),
    #[error("PostgreSQL did not answer within {0:?}")]
    Deadline(Duration),
}

/// Runs one checkout in the shop's variant.
pub async fn run(
    shop: &Shop,
    drop: &KnownDrop,
    request: &CheckoutRequest,
) -> Result<Outcome, CheckoutError> {
    let outcome = match shop.variant {
        Variant::Correct => correct::checkout(shop, drop, request).await,
        Variant::Broken => broken::checkout(shop, drop, request).await,
    }?;
    Ok(match outcome {
        Outcome::Confirmed {
            purchase,
            replayed: true,
        } if purchase.customer != request.customer || purchase.units != request.units => {
            Outcome::KeyReused
        }
        outcome => outcome,
    })
}

/// `step` bounded by [`DATABASE_DEADLINE`].
pub(crate) async fn within_deadline<T>(
    step: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, CheckoutError> {
    match tokio::time::timeout(DATABASE_DEADLINE, step).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(CheckoutError::Deadline(DATABASE_DEADLINE)),
    }
}
