//! Alert emails over SMTP (lettre, pooled connections). Each message carries the sale and the
//! user in `X-Flashsale-Sale` / `X-Flashsale-User` headers and a Message-ID derived from both, so
//! a receiving side can tell one alert from another and spot a duplicate.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Delivery, NotifySettings, Outcome};

#[derive(Clone)]
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Why the email channel cannot start; names the setting.
#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    #[error("--smtp-url {url:?} is not a usable SMTP URL ({reason}): give smtp://host:port")]
    Url { url: String, reason: String },
    #[error("--mail-from {from:?} is not an email address ({reason})")]
    From { from: String, reason: String },
}

impl EmailSender {
    pub fn new(smtp_url: &str, settings: &NotifySettings) -> Result<Self, EmailSetupError> {
        let bad_url = |reason: &str| EmailSetupError::Url {
            url: smtp_url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(smtp_url).map_err(|e| bad_url(&e.to_string()))?;
        if parsed.scheme() != "smtp" {
            return Err(bad_url("only plain smtp:// is supported"));
        }
        let host = parsed.host_str().ok_or_else(|| bad_url("no host"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(parsed.port().unwrap_or(25))
            .timeout(Some(settings.send_timeout))
            .pool_config(PoolConfig::new().max_size(settings.concurrency.max(1)))
            .build();
        let from = settings
            .mail_from
            .parse()
            .map_err(|e: lettre::address::AddressError| EmailSetupError::From {
                from: settings.mail_from.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self { transport, from })
    }

    pub async fn send(&self, delivery: &Delivery) -> Outcome {
        let to: Mailbox = match delivery.address.parse() {
            Ok(to) => to,
            Err(e) => return Outcome::Refused(format!("not an email address: {e}")),
        };
        let built = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("{} is live", delivery.sale_name))
            .message_id(Some(message_id(delivery)))
            .body(format!(
                "A product on your wishlist is in a flash sale that has just started: {}.\n\n\
                 sale: {}\nuser: {}\n",
                delivery.sale_name, delivery.sale_id, delivery.user_id
            ));
        let mut message = match built {
            Ok(message) => message,
            Err(e) => return Outcome::Refused(format!("the message could not be built: {e}")),
        };
        let headers = message.headers_mut();
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Flashsale-Sale"),
            delivery.sale_id.to_string(),
        ));
        headers.insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Flashsale-User"),
            delivery.user_id.clone(),
        ));
        match self.transport.send(message).await {
            Ok(_) => Outcome::Sent,
            Err(e) if e.is_permanent() => Outcome::Refused(format!("the SMTP server refused: {e}")),
            // 4xx answers, and connections that failed or timed out, may succeed later.
            Err(e) => Outcome::Temporary(format!("SMTP: {e}")),
        }
    }
}

/// `<sale.user-hex@flashsale>`: the user id is hex-encoded so any id makes a valid Message-ID.
pub fn message_id(delivery: &Delivery) -> String {
    let user: String = delivery
        .user_id
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("<{}.{user}@flashsale>", delivery.sale_id)
}
