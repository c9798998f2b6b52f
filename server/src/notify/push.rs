//! Alert messages by Web Push: the payload encrypted for the subscription (RFC 8291, aes128gcm,
//! by web-push-native), POSTed to its endpoint (RFC 8030) with a VAPID authorization (RFC 8292)
//! signed here, through reqwest.
//!
//! The VAPID token is signed here rather than by web-push-native because that crate sets the
//! token's audience to `scheme://host`, dropping the port; RFC 8292 §2 asks for the endpoint's
//! origin, which keeps a non-default port (a push service on loopback in tests, for one).

use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::json;
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::jwt_simple::prelude::Duration as JwtDuration;
use web_push_native::p256::PublicKey;
use web_push_native::{Auth, WebPushBuilder};

use super::{Delivery, NotifySettings, Outcome};

/// How long a push service should keep an undelivered alert: a flash sale is short.
pub const MESSAGE_TTL: Duration = Duration::from_secs(3600);

/// A VAPID token is good for 12 hours; it is signed again after this long, per origin.
const TOKEN_REUSE: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct PushSender {
    vapid: Arc<ES256KeyPair>,
    /// Signed tokens per push-service origin: every subscription of one push service shares an
    /// audience, so one ECDSA signature serves a whole fan-out (as push libraries do).
    tokens: Arc<std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, String)>>>,
    /// The VAPID public key as the `k=` parameter carries it (uncompressed point, base64url).
    vapid_public: String,
    subject: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for PushSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSender")
            .field("vapid_public", &self.vapid_public)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "--vapid-private-key is not a P-256 private key ({reason}): give the raw 32-byte key, \
     base64url without padding (the public key browsers subscribe with is derived from it)"
)]
pub struct VapidKeyError {
    reason: String,
}

impl PushSender {
    pub fn new(vapid_private_key: &str, settings: &NotifySettings) -> Result<Self, VapidKeyError> {
        let raw =
            Base64UrlUnpadded::decode_vec(vapid_private_key.trim()).map_err(|e| VapidKeyError {
                reason: e.to_string(),
            })?;
        let vapid = ES256KeyPair::from_bytes(&raw).map_err(|e| VapidKeyError {
            reason: e.to_string(),
        })?;
        let vapid_public = Base64UrlUnpadded::encode_string(
            &vapid.public_key().public_key().to_bytes_uncompressed(),
        );
        let http = reqwest::Client::builder()
            .timeout(settings.send_timeout)
            .pool_max_idle_per_host(settings.concurrency as usize)
            .build()
            .map_err(|e| VapidKeyError {
                reason: format!("the HTTP client could not start: {e}"),
            })?;
        Ok(Self {
            vapid: Arc::new(vapid),
            tokens: Arc::default(),
            vapid_public,
            subject: settings.vapid_subject.clone(),
            http,
        })
    }

    /// The VAPID public key, base64url: what a page passes to `pushManager.subscribe` as its
    /// `applicationServerKey`.
    pub fn public_key(&self) -> &str {
        &self.vapid_public
    }

    pub async fn send(&self, delivery: &Delivery) -> Outcome {
        let Some(keys) = &delivery.push_keys else {
            return Outcome::Refused(
                "the user's push subscription was removed or replaced after the alert was planned"
                    .into(),
            );
        };
        let request = match self.request(delivery, &keys.p256dh, &keys.auth) {
            Ok(request) => request,
            Err(why) => return Outcome::Refused(why),
        };
        match self.http.execute(request).await {
            Ok(response) => classify(response.status().as_u16()),
            Err(e) => Outcome::Temporary(format!("push endpoint unreachable: {e}")),
        }
    }

    fn request(
        &self,
        delivery: &Delivery,
        p256dh: &str,
        auth: &str,
    ) -> Result<reqwest::Request, String> {
        let endpoint: url::Url = delivery
            .address
            .parse()
            .map_err(|e| format!("the endpoint is not a URL: {e}"))?;
        let ua_public = Base64UrlUnpadded::decode_vec(p256dh)
            .ok()
            .and_then(|bytes| PublicKey::from_sec1_bytes(&bytes).ok())
            .ok_or("the subscription's p256dh is not a P-256 public key")?;
        let auth_bytes = Base64UrlUnpadded::decode_vec(auth)
            .ok()
            .filter(|bytes| bytes.len() == 16)
            .ok_or("the subscription's auth secret is not 16 bytes")?;
        let uri = delivery
            .address
            .parse()
            .map_err(|e| format!("the endpoint is not a URI: {e}"))?;
        let payload = json!({
            "sale_id": delivery.sale_id,
            "user_id": delivery.user_id,
            "title": format!("{} is live", delivery.sale_name),
        });
        let built = WebPushBuilder::new(uri, ua_public, Auth::clone_from_slice(&auth_bytes))
            .with_valid_duration(MESSAGE_TTL)
            .build(payload.to_string())
            .map_err(|e| format!("the message could not be encrypted: {e}"))?;
        let token = self.vapid_token(&endpoint)?;
        let (parts, body) = built.into_parts();
        let mut request = self
            .http
            .post(endpoint)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("vapid t={token}, k={}", self.vapid_public),
            )
            // A sale alert is worth waking a device for (RFC 8030 §5.3).
            .header("Urgency", "high")
            .body(body);
        for (name, value) in &parts.headers {
            request = request.header(name.as_str(), value.as_bytes());
        }
        request
            .build()
            .map_err(|e| format!("the request could not be built: {e}"))
    }

    /// The VAPID JWT (RFC 8292 §2): audience the endpoint's origin, expiry 12 hours ahead (the
    /// RFC allows at most 24), subject the operator's contact; reused for an hour per origin.
    fn vapid_token(&self, endpoint: &url::Url) -> Result<String, String> {
        let origin = endpoint.origin().ascii_serialization();
        if let Some((signed_at, token)) = self.tokens.lock().expect("token cache").get(&origin) {
            if signed_at.elapsed() < TOKEN_REUSE {
                return Ok(token.clone());
            }
        }
        let claims = Claims::create(JwtDuration::from_hours(12))
            .with_audience(&origin)
            .with_subject(&self.subject);
        let token = self
            .vapid
            .sign(claims)
            .map_err(|e| format!("the VAPID token could not be signed: {e}"))?;
        self.tokens
            .lock()
            .expect("token cache")
            .insert(origin, (std::time::Instant::now(), token.clone()));
        Ok(token)
    }
}

/// What a push service's status means (RFC 8030 §5, and what the big push services document).
pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Sent,
        404 | 410 => Outcome::Gone(format!(
            "the push service answered {status}: the subscription no longer exists"
        )),
        429 | 500..=599 => Outcome::Temporary(format!("the push service answered {status}")),
        _ => Outcome::Refused(format!(
            "the push service refused the message with {status}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_answers_are_classified_as_the_rfc_says() {
        assert_eq!(classify(201), Outcome::Sent);
        assert!(matches!(classify(410), Outcome::Gone(_)));
        assert!(matches!(classify(404), Outcome::Gone(_)));
        assert!(matches!(classify(429), Outcome::Temporary(_)));
        assert!(matches!(classify(503), Outcome::Temporary(_)));
        assert!(matches!(classify(413), Outcome::Refused(_)));
        assert!(matches!(classify(403), Outcome::Refused(_)));
    }
}
