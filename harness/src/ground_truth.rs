//! The server's ground truth, read back through the admin export after a run.
//!
//! The harness never looks into the server's database: it reads the order ledger and the
//! inventory view over HTTP, so it can verify a server it did not start.

use serde::{Deserialize, Serialize};

/// One persisted order, as the admin export lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerOrder {
    pub order_id: String,
    pub buyer_id: String,
    pub quantity: u32,
    pub idempotency_key: String,
    /// Which claim path decided the order (`redis`, `postgres`, …); informational.
    pub decided_by: String,
    /// RFC 3339 time the order was committed.
    pub created_at: String,
}

/// The inventory view of one sale as the admin export reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryView {
    /// `None` for an unlimited sale.
    pub cap: Option<u64>,
    /// The Redis counter, `None` when it is not loaded or Redis is unreachable.
    pub redis_counter: Option<i64>,
    /// `flash_sales.quantity_sold`, kept in sync asynchronously; `None` when the target's view
    /// does not report it (INV-6 then cannot judge it: "not checked" for that figure).
    #[serde(default)]
    pub quantity_sold: Option<i64>,
    /// Sum of the quantities of the persisted orders: the truth.
    pub units_in_orders: i64,
    /// Units in live cart holds (stored live, expired or not yet reaped), when the target's
    /// view reports them; a Redis counter counts these beside the orders' units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units_in_live_holds: Option<i64>,
}

/// One cart hold as the admin export lists it (`GET /admin/sales/{id}/holds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerHold {
    pub hold_id: String,
    pub buyer_id: String,
    pub quantity: u32,
    /// `live`, `checked_out`, `released` or `expired` (a stored `live` past `expires_at` is
    /// reported `expired` before it is reaped).
    pub state: String,
    /// RFC 3339 times.
    pub created_at: String,
    pub expires_at: String,
    /// When the hold stopped being live (checked out, released, reaped); `None` while it is
    /// stored live.
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub order_id: Option<String>,
}

/// Everything the checker needs from the server after a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub orders: Vec<LedgerOrder>,
    pub inventory: InventoryView,
}

impl Ledger {
    /// Units in persisted orders, computed from the order list itself rather than trusting the
    /// server's own `units_in_orders` figure.
    pub fn persisted_units(&self) -> u64 {
        self.orders.iter().map(|o| u64::from(o.quantity)).sum()
    }
}

/// The inventory view read after the run's last answer (and once faults healed), for INV-6
/// (convergence). `waited_ms` is how long after the last answer the harness waited for it to
/// settle: 0 when the first reading already agreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledInventory {
    pub view: InventoryView,
    pub waited_ms: u64,
}
