//! Alert emails over SMTP. Each message carries the sale and the user in `X-Flashsale-Sale` /
//! `X-Flashsale-User` headers and a Message-ID derived from both, so a receiving side can tell one
//! alert from another and spot a duplicate.
//!
//! The messages are built by lettre and sent through lettre's SMTP connection, command by command,
//! over connections this module pools itself, for two reasons:
//!
//! - **at most once**: a failure before the message's final `.` means nothing was delivered (safe
//!   to retry); a failure after it without an SMTP reply (the connection dropped, no answer) means
//!   the relay may have taken the message, so it is recorded in doubt, never retried. lettre's
//!   transport reports both the same way;
//! - **TCP_NODELAY**: lettre writes a message's body and its final `.` separately, and with
//!   Nagle's algorithm the `.` waits for the relay's (delayed) ACK of the body: 40 ms per message
//!   on Linux, which capped a channel at 25 messages per second per connection. lettre's
//!   transport does not set the option; the connections here do.

use std::sync::{Arc, Mutex};

use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;

use super::{Delivery, NotifySettings, Outcome};

#[derive(Clone)]
pub struct EmailSender {
    relay: (String, u16),
    from: Mailbox,
    /// Idle connections, each after a completed message.
    idle: Arc<Mutex<Vec<AsyncSmtpConnection>>>,
    max_idle: usize,
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
        let relay = (host.to_owned(), parsed.port().unwrap_or(25));
        let from = settings
            .mail_from
            .parse()
            .map_err(|e: lettre::address::AddressError| EmailSetupError::From {
                from: settings.mail_from.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            relay,
            from,
            idle: Arc::default(),
            max_idle: settings.concurrency.max(1) as usize,
        })
    }

    async fn connection(&self) -> Result<AsyncSmtpConnection, String> {
        if let Some(conn) = self.idle.lock().expect("smtp pool").pop() {
            return Ok(conn);
        }
        let stream = tokio::net::TcpStream::connect((self.relay.0.as_str(), self.relay.1))
            .await
            .map_err(|e| format!("cannot connect to the SMTP relay: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        AsyncSmtpConnection::connect_with_transport(Box::new(stream), &ClientId::default())
            .await
            .map_err(|e| format!("the SMTP relay did not greet: {e}"))
    }

    fn give_back(&self, conn: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().expect("smtp pool");
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
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
        let mut conn = match self.connection().await {
            Ok(conn) => conn,
            Err(why) => return Outcome::Temporary(why),
        };
        // Before the final `.`: whatever fails, nothing was delivered.
        let envelope: &Envelope = message.envelope();
        let before_data = async {
            conn.command(Mail::new(envelope.from().cloned(), vec![]))
                .await?;
            for to in envelope.to() {
                conn.command(Rcpt::new(to.clone(), vec![])).await?;
            }
            conn.command(Data).await
        };
        if let Err(e) = before_data.await {
            return if e.is_permanent() {
                Outcome::Refused(format!("the SMTP relay refused: {e}"))
            } else if e.is_transient() {
                // A reply: the connection is still in step, and can serve the next message.
                let _ = conn.command(lettre::transport::smtp::commands::Rset).await;
                self.give_back(conn);
                Outcome::Temporary(format!("SMTP: {e}"))
            } else {
                Outcome::Temporary(format!("SMTP: {e}"))
            };
        }
        // The message and its final `.`: only an SMTP reply settles the outcome.
        match conn.message(&message.formatted()).await {
            Ok(_) => {
                self.give_back(conn);
                Outcome::Sent
            }
            Err(e) if e.is_permanent() => Outcome::Refused(format!("the SMTP relay refused: {e}")),
            Err(e) if e.is_transient() => Outcome::Temporary(format!("SMTP: {e}")),
            Err(e) => Outcome::NoAnswer(format!(
                "the connection failed after the message was sent, before the relay answered: {e}"
            )),
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
