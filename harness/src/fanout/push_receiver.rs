//! A Web Push service on loopback for wishlist-alert runs: one endpoint per generated
//! subscription, `POST /push/{index}`. Each message is accepted only as a browser's push service
//! would: a VAPID token (RFC 8292) signed by the key the subscription was made with, for this
//! origin, expiring within 24 hours; the aes128gcm content encoding and a TTL (RFC 8030); and a
//! body that decrypts with the subscription's private key and auth secret (RFC 8291). What fails
//! any of these is answered 400/401/403 and kept as a rejection, which the checker reports.
//! Subscriptions marked gone answer 410, as a push service does for an unsubscribed browser.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use base64ct::{Base64UrlUnpadded, Encoding};
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use web_push_native::Auth;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256PublicKey};
use web_push_native::jwt_simple::claims::NoCustomClaims;
use web_push_native::jwt_simple::common::VerificationOptions;
use web_push_native::p256::SecretKey;

/// A browser's subscription as the harness plays it: the private half stays here.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub user_id: String,
    secret: SecretKey,
    auth: [u8; 16],
}

impl Subscriber {
    /// `count` subscriptions drawn from `seed`, for users `user_ids[i]`.
    pub fn generate(user_ids: &[String], seed: u64) -> Vec<Subscriber> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        user_ids
            .iter()
            .map(|user_id| {
                let secret = loop {
                    let bytes: [u8; 32] = rng.random();
                    if let Ok(secret) = SecretKey::from_slice(&bytes) {
                        break secret;
                    }
                };
                Subscriber {
                    user_id: user_id.clone(),
                    secret,
                    auth: rng.random(),
                }
            })
            .collect()
    }

    /// The `keys` of `PushSubscription.toJSON()`: p256dh (uncompressed point) and auth, base64url.
    pub fn keys(&self) -> (String, String) {
        let public = self.secret.public_key();
        let point = web_push_native::p256::EncodedPoint::from(public);
        (
            Base64UrlUnpadded::encode_string(point.as_bytes()),
            Base64UrlUnpadded::encode_string(&self.auth),
        )
    }
}

/// One message the receiver accepted.
#[derive(Debug, Clone)]
pub struct ReceivedPush {
    /// The subscription it was sent to.
    pub subscriber: usize,
    /// From the decrypted payload.
    pub sale_id: Option<String>,
    pub user_id: Option<String>,
    pub at: Instant,
}

#[derive(Debug)]
struct Shared {
    subscribers: Vec<Subscriber>,
    /// The VAPID public key (uncompressed point) the subscriptions were made with.
    vapid_public: Vec<u8>,
    origin: String,
    gone: HashSet<usize>,
    received: Mutex<Vec<ReceivedPush>>,
    rejected: Mutex<Vec<String>>,
    gone_hits: Mutex<Vec<usize>>,
}

/// The running receiver.
#[derive(Debug)]
pub struct PushReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl PushReceiver {
    /// Serves `subscribers` on a loopback port; `vapid_public` is the key (base64url, as the
    /// server's `k=` parameter carries it) the subscriptions were made with; `gone` answer 410.
    pub async fn start(
        subscribers: Vec<Subscriber>,
        vapid_public: &str,
        gone: HashSet<usize>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let vapid_public = Base64UrlUnpadded::decode_vec(vapid_public).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("VAPID key: {e}"))
        })?;
        let shared = Arc::new(Shared {
            subscribers,
            vapid_public,
            origin: format!("http://{addr}"),
            gone,
            received: Mutex::new(Vec::new()),
            rejected: Mutex::new(Vec::new()),
            gone_hits: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/push/{index}", post(receive))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// The endpoint of subscription `index`.
    pub fn endpoint(&self, index: usize) -> String {
        format!("http://{}/push/{index}", self.addr)
    }

    pub fn received_count(&self) -> usize {
        self.shared.received.lock().expect("push store").len()
    }

    pub fn received(&self) -> Vec<ReceivedPush> {
        self.shared.received.lock().expect("push store").clone()
    }

    /// Messages refused for a protocol reason, each with the reason.
    pub fn rejected(&self) -> Vec<String> {
        self.shared.rejected.lock().expect("push store").clone()
    }

    /// Sends to gone subscriptions (answered 410).
    pub fn gone_hits(&self) -> Vec<usize> {
        self.shared.gone_hits.lock().expect("push store").clone()
    }
}

impl Drop for PushReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(index): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let Some(subscriber) = shared.subscribers.get(index) else {
        return (StatusCode::NOT_FOUND, "no such subscription").into_response();
    };
    if shared.gone.contains(&index) {
        shared.gone_hits.lock().expect("push store").push(index);
        return (StatusCode::GONE, "unsubscribed").into_response();
    }
    match accept(&shared, subscriber, &headers, body) {
        Ok(payload) => {
            let value: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
            let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            shared
                .received
                .lock()
                .expect("push store")
                .push(ReceivedPush {
                    subscriber: index,
                    sale_id: text("sale_id"),
                    user_id: text("user_id"),
                    at: Instant::now(),
                });
            (
                StatusCode::CREATED,
                [(header::LOCATION, format!("/messages/{index}"))],
                "",
            )
                .into_response()
        }
        Err((status, reason)) => {
            shared
                .rejected
                .lock()
                .expect("push store")
                .push(format!("subscription {index}: {reason}"));
            (status, reason).into_response()
        }
    }
}

/// Checks a push request as a push service would and decrypts it.
fn accept(
    shared: &Shared,
    subscriber: &Subscriber,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = value("authorization")
        .ok_or((StatusCode::UNAUTHORIZED, "no Authorization header".into()))?;
    let (token, key) = parse_vapid(authorization).ok_or((
        StatusCode::UNAUTHORIZED,
        format!("Authorization is not `vapid t=…, k=…`: {authorization}"),
    ))?;
    let key_bytes = Base64UrlUnpadded::decode_vec(key)
        .map_err(|_| (StatusCode::UNAUTHORIZED, "k= is not base64url".to_owned()))?;
    if key_bytes != shared.vapid_public {
        return Err((
            StatusCode::FORBIDDEN,
            "the VAPID key is not the one the subscription was made with".into(),
        ));
    }
    let public = ES256PublicKey::from_bytes(&key_bytes).map_err(|e| {
        (
            StatusCode::UNAUTHORIZED,
            format!("k= is not a P-256 key: {e}"),
        )
    })?;
    let options = VerificationOptions {
        allowed_audiences: Some(HashSet::from([shared.origin.clone()])),
        ..Default::default()
    };
    let claims = public
        .verify_token::<NoCustomClaims>(token, Some(options))
        .map_err(|e| {
            (
                StatusCode::FORBIDDEN,
                format!("the VAPID token does not verify: {e}"),
            )
        })?;
    let now = web_push_native::jwt_simple::prelude::Clock::now_since_epoch();
    let day = web_push_native::jwt_simple::prelude::Duration::from_hours(24);
    match claims.expires_at {
        None => return Err((StatusCode::FORBIDDEN, "the VAPID token has no exp".into())),
        Some(exp) if exp > now + day => {
            return Err((
                StatusCode::FORBIDDEN,
                "the VAPID token expires more than 24 hours ahead".into(),
            ));
        }
        Some(_) => {}
    }
    if claims.subject.is_none() {
        return Err((StatusCode::FORBIDDEN, "the VAPID token has no sub".into()));
    }
    if value("content-encoding") != Some("aes128gcm") {
        return Err((
            StatusCode::BAD_REQUEST,
            "Content-Encoding is not aes128gcm".into(),
        ));
    }
    if value("ttl").and_then(|t| t.parse::<u64>().ok()).is_none() {
        return Err((StatusCode::BAD_REQUEST, "no valid TTL header".into()));
    }
    web_push_native::decrypt(
        body.to_vec(),
        &subscriber.secret,
        &Auth::clone_from_slice(&subscriber.auth),
    )
    .map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body does not decrypt with the subscription's keys: {e:?}"),
        )
    })
}

/// `vapid t=<token>, k=<key>` → (token, key).
fn parse_vapid(authorization: &str) -> Option<(&str, &str)> {
    let rest = authorization.strip_prefix("vapid ")?;
    let mut token = None;
    let mut key = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k);
        }
    }
    Some((token?, key?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vapid_header_is_read_in_either_order() {
        assert_eq!(parse_vapid("vapid t=abc, k=def"), Some(("abc", "def")));
        assert_eq!(parse_vapid("vapid k=def,t=abc"), Some(("abc", "def")));
        assert_eq!(parse_vapid("WebPush abc"), None);
        assert_eq!(parse_vapid("vapid t=abc"), None);
    }
}
