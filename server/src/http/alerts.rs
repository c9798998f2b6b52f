//! Wishlists, the product catalog, the preflight dry run and the alert record.
//!
//! - `POST /wishlist` (buyer): a user's wishlisted products and how to reach them (an email
//!   address, a Web Push subscription as the browser's `PushSubscription.toJSON()` gives it, or
//!   both). Validated whole before anything is stored; storing again replaces the contact and
//!   adds the products.
//! - `PUT /admin/products/{product_id}`: a catalog entry (name, list price), which the preflight
//!   measures a sale's price against.
//! - `POST /admin/sales/{sale_id}/preflight`: the preflight as a dry run; changes nothing.
//! - `GET /admin/sales/{sale_id}/alerts`: every planned alert with its state, and counts per
//!   channel; what the harness judges INV-8 against.

use axum::Json;
use axum::extract::{Path, Request, State};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::admin::Admin;
use super::{AppState, body};
use crate::error::ApiError;
use crate::preflight::{self, Stage};
use crate::sales::sale_not_found;

const MAX_USER_LEN: usize = 128;
const MAX_WISHLIST_PRODUCTS: usize = 100;
const MAX_ENDPOINT_LEN: usize = 2000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WishlistBody {
    user_id: String,
    product_ids: Vec<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    push_subscription: Option<PushSubscription>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushSubscription {
    endpoint: String,
    keys: PushSubscriptionKeys,
    // `PushSubscription.toJSON()` also carries expirationTime; accepted and unused.
    #[serde(default, rename = "expirationTime")]
    _expiration_time: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushSubscriptionKeys {
    p256dh: String,
    auth: String,
}

fn text_field(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid_field(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A product id as a sale's products take it (`sales::NewSale::problems`): 1 to 100 characters,
/// no NUL; a catalog entry or a wishlist must be able to name any product a sale can sell.
fn product_id_field(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.chars().count() > 100 {
        return Err(ApiError::invalid_field(
            field,
            "must be 1 to 100 characters",
        ));
    }
    if value.contains('\0') {
        return Err(ApiError::invalid_field(
            field,
            "must not contain a NUL character (U+0000)",
        ));
    }
    Ok(())
}

fn check_wishlist(body: &WishlistBody) -> Result<(), ApiError> {
    text_field("user_id", &body.user_id, MAX_USER_LEN)?;
    if body.product_ids.is_empty() || body.product_ids.len() > MAX_WISHLIST_PRODUCTS {
        return Err(ApiError::invalid_field(
            "product_ids",
            format!("must list 1 to {MAX_WISHLIST_PRODUCTS} products"),
        ));
    }
    for (i, product) in body.product_ids.iter().enumerate() {
        product_id_field(&format!("product_ids[{i}]"), product)?;
    }
    if body.email.is_none() && body.push_subscription.is_none() {
        return Err(ApiError::invalid_field(
            "email",
            "give an email address, a push_subscription, or both: an alert needs somewhere to go",
        ));
    }
    if let Some(email) = &body.email {
        if !is_plain_address(email) {
            return Err(ApiError::invalid_field(
                "email",
                "must be a plain address: letters, digits and . _ % + - before the @ (no \
                 leading, trailing or double dot), a domain of letter/digit/hyphen labels after \
                 it, at most 254 bytes",
            ));
        }
    }
    if let Some(sub) = &body.push_subscription {
        if !is_push_endpoint(&sub.endpoint) {
            return Err(ApiError::invalid_field(
                "push_subscription.endpoint",
                "must be an http(s) URL (a host of letter-led labels or an IPv4 address, an \
                 optional port, a path of letters, digits and . _ ~ / -) of at most 2000 bytes",
            ));
        }
        // The shape only: whether p256dh is a point on the curve is found when the alert is
        // encrypted, and recorded as a permanent refusal then (browsers always give one).
        if decodes_to(&sub.keys.p256dh, 65).is_none_or(|key| key[0] != 4) {
            return Err(ApiError::invalid_field(
                "push_subscription.keys.p256dh",
                "must be an uncompressed P-256 public key: 65 bytes starting with 0x04, base64url",
            ));
        }
        if decodes_to(&sub.keys.auth, 16).is_none() {
            return Err(ApiError::invalid_field(
                "push_subscription.keys.auth",
                "must be a 16-byte secret, base64url",
            ));
        }
    }
    Ok(())
}

/// Canonical unpadded base64url (as browsers give keys) decoding to exactly `len` bytes.
fn decodes_to(text: &str, len: usize) -> Option<Vec<u8>> {
    Base64UrlUnpadded::decode_vec(text)
        .ok()
        .filter(|bytes| bytes.len() == len)
}

/// The address rule of the contract (`server/openapi.json`, Wishlist.email): a dot-atom local
/// part of letters, digits and `._%+-`, `@`, a domain of 1-63-character labels of letters, digits
/// and inner hyphens; 254 bytes at most. Narrower than RFC 5322 on purpose: every address it
/// accepts is one the SMTP client sends to, so a stored address never fails later.
pub fn is_plain_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_%+-".contains(c))
        });
    address.len() <= 254 && local_ok && is_host(domain, true)
}

/// Dot-separated labels of 1-63 ASCII letters, digits and inner hyphens; unless
/// `digits_allowed_first`, each label starts with a letter (so no host reads as an IPv4 number).
fn is_host(host: &str, digits_allowed_first: bool) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= 63
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
                && (digits_allowed_first || bytes[0].is_ascii_alphabetic())
        })
}

/// The endpoint rule of the contract: `http(s)://host[:port][/path]`, the host's labels led by a
/// letter or a plain dotted-quad IPv4 address, a port up to 65535 (1-4 digits, or 5 without a
/// leading zero), a path of letters, digits
/// and `._~/-`; 2000 bytes at most.
pub fn is_push_endpoint(endpoint: &str) -> bool {
    let Some(rest) = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
    else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        p.bytes().all(|b| b.is_ascii_digit())
            && match p.len() {
                1..=4 => true,
                5 => !p.starts_with('0') && p.parse::<u16>().is_ok(),
                _ => false,
            }
    });
    let path_ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._~/-".contains(c));
    endpoint.len() <= MAX_ENDPOINT_LEN
        && (is_host(host, false) || is_ipv4(host))
        && port_ok
        && path_ok
}

/// A dotted-quad IPv4 address in its plain form (no leading zeros): 127.0.0.1.
fn is_ipv4(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

pub async fn put_wishlist(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let raw = body::read(request, state.settings.body_read_timeout).await?;
    let value = body::value_from_slice(&raw)?;
    let wishlist: WishlistBody = serde_json::from_value(value)
        .map_err(|err| ApiError::invalid_field("body", err.to_string()))?;
    check_wishlist(&wishlist)?;
    let (endpoint, p256dh, auth) = match &wishlist.push_subscription {
        Some(sub) => (
            Some(sub.endpoint.as_str()),
            Some(sub.keys.p256dh.as_str()),
            Some(sub.keys.auth.as_str()),
        ),
        None => (None, None, None),
    };
    let mut tx = state.pool.begin().await?;
    sqlx::query(
        "INSERT INTO notification_contacts (user_id, email, push_endpoint, push_p256dh, push_auth)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email,
             push_endpoint = EXCLUDED.push_endpoint, push_p256dh = EXCLUDED.push_p256dh,
             push_auth = EXCLUDED.push_auth",
    )
    .bind(&wishlist.user_id)
    .bind(&wishlist.email)
    .bind(endpoint)
    .bind(p256dh)
    .bind(auth)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO wishlist_entries (user_id, product_id)
         SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(&wishlist.user_id)
    .bind(&wishlist.product_ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(json!({
        "user_id": wishlist.user_id,
        "product_ids": wishlist.product_ids,
        "email": wishlist.email.is_some(),
        "push": wishlist.push_subscription.is_some(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBody {
    name: String,
    list_price_cents: i64,
}

pub async fn put_product(
    _admin: Admin,
    State(state): State<AppState>,
    Path(product_id): Path<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    product_id_field("product_id", &product_id)?;
    let raw = body::read(request, state.settings.body_read_timeout).await?;
    let value = body::value_from_slice(&raw)?;
    let product: ProductBody = serde_json::from_value(value)
        .map_err(|err| ApiError::invalid_field("body", err.to_string()))?;
    if product.name.trim().is_empty() || product.name.chars().count() > 200 {
        return Err(ApiError::invalid_field(
            "name",
            "must be 1 to 200 characters",
        ));
    }
    if product.name.contains('\0') {
        return Err(ApiError::invalid_field(
            "name",
            "must not contain a NUL character (U+0000)",
        ));
    }
    if product.list_price_cents < 1 {
        return Err(ApiError::invalid_field(
            "list_price_cents",
            "must be at least 1",
        ));
    }
    sqlx::query(
        "INSERT INTO products (product_id, name, list_price_cents) VALUES ($1, $2, $3)
         ON CONFLICT (product_id) DO UPDATE
         SET name = EXCLUDED.name, list_price_cents = EXCLUDED.list_price_cents",
    )
    .bind(&product_id)
    .bind(&product.name)
    .bind(product.list_price_cents)
    .execute(&state.pool)
    .await?;
    Ok(Json(json!({
        "product_id": product_id,
        "name": product.name,
        "list_price_cents": product.list_price_cents,
    })))
}

pub async fn preflight(
    _admin: Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = body::sale_id(&raw_id)?;
    let mut conn = state.pool.acquire().await?;
    let problems = preflight::check(&mut conn, id, Stage::DryRun)
        .await?
        .ok_or_else(|| sale_not_found(id))?;
    let (state_now, refused_with): (String, Option<Value>) =
        sqlx::query_as("SELECT state, preflight_problems FROM flash_sales WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Json(json!({
        "sale_id": id,
        "state": state_now,
        "ready": problems.is_empty(),
        "problems": problems,
        // What stopped the activation job, if it ran and refused.
        "activation_refused_with": refused_with,
    })))
}

type AlertRow = (
    String,
    String,
    String,
    i32,
    Option<OffsetDateTime>,
    Option<String>,
);

pub async fn export_alerts(
    _admin: Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = body::sale_id(&raw_id)?;
    let sale: Option<(String, Option<OffsetDateTime>)> =
        sqlx::query_as("SELECT state, activated_at FROM flash_sales WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
    let (sale_state, activated_at) = sale.ok_or_else(|| sale_not_found(id))?;
    let rows: Vec<AlertRow> = sqlx::query_as(
        "SELECT user_id, channel, state, attempts, sent_at, detail
         FROM notification_deliveries WHERE sale_id = $1 ORDER BY channel, user_id",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await?;
    let mut counts = json!({});
    let mut unfinished = 0usize;
    for (_, channel, delivery_state, ..) in &rows {
        let slot = &mut counts[channel.as_str()][delivery_state.as_str()];
        *slot = json!(slot.as_u64().unwrap_or(0) + 1);
        if matches!(delivery_state.as_str(), "pending" | "sending") {
            unfinished += 1;
        }
    }
    let rfc3339 = |at: Option<OffsetDateTime>| {
        at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    let deliveries: Vec<Value> = rows
        .iter()
        .map(
            |(user_id, channel, delivery_state, attempts, sent_at, detail)| {
                json!({
                    "user_id": user_id,
                    "channel": channel,
                    "state": delivery_state,
                    "attempts": attempts,
                    "sent_at": rfc3339(*sent_at),
                    "detail": detail,
                })
            },
        )
        .collect();
    Ok(Json(json!({
        "sale_id": id,
        "state": sale_state,
        "activated_at": rfc3339(activated_at),
        // Every planned alert is sent, refused or in doubt: nothing more will happen.
        "finished": unfinished == 0,
        "counts": counts,
        "deliveries": deliveries,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_contract_rule() {
        for good in [
            "a@b",
            "first.last+tag@mail.example.test",
            "x_%-@1.2.3.4",
            "a@b-c.d",
        ] {
            assert!(is_plain_address(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "@b",
            "a@",
            ".a@b",
            "a.@b",
            "a..b@c",
            "a@-b",
            "a@b-",
            "a@b..c",
            "a b@c",
            "\"q\"@c",
            "a@b@c",
            &format!("a@{}", "x".repeat(64)),
        ] {
            assert!(!is_plain_address(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints_follow_the_contract_rule() {
        for good in [
            "https://push.example.test/abc",
            "http://a:8080/push/12",
            "https://a",
            "https://fcm.googleapis.com/fcm/send/x-Y_z~1",
        ] {
            assert!(is_push_endpoint(good), "{good}");
        }
        for bad in [
            "ftp://a/b",
            "https://",
            "https://1.2.3/x",
            "https://01.2.3.4/x",
            "https://1.2.3.256/x",
            "https://a:/x",
            "https://a:65536",
            "https://a:01234",
            "https://a/x?y=1",
            "https://-a/x",
            "https://a b/x",
            "https://a/\u{0}",
        ] {
            assert!(!is_push_endpoint(bad), "{bad}");
        }
    }

    #[test]
    fn keys_must_be_canonical_unpadded_base64url() {
        let p256dh = format!("BA{}A", "A".repeat(84));
        assert_eq!(decodes_to(&p256dh, 65).map(|k| k[0]), Some(4));
        // The same with padding, or with non-zero bits after the last byte, is refused: the
        // contract's pattern admits exactly the canonical form.
        assert!(decodes_to(&format!("{p256dh}="), 65).is_none());
        assert!(decodes_to(&format!("BA{}B", "A".repeat(84)), 65).is_none());
        assert!(decodes_to(&format!("{}g", "A".repeat(21)), 16).is_some());
        assert!(decodes_to(&format!("{}h", "A".repeat(21)), 16).is_none());
    }
}
