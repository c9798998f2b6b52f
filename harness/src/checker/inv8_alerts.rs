//! INV-8 Alerts once: every wishlist alert of a sale reaches its user at most once per channel,
//! and at least once unless the channel refused it for good and the server recorded that.
//!
//! The evidence is what the harness's own endpoints received (the SMTP sink and the Web Push
//! receiver, which decrypts each message and checks its VAPID token), against the recipients
//! the run set up and the server's record of each delivery. Judged:
//!
//! - **at most once**: no (user, channel) received twice;
//! - **at least once**: every expected (user, channel) received one, or the server recorded a
//!   permanent refusal (a gone subscription, a mailbox refused) — a delivery recorded `sent` that
//!   never arrived, or one left `in_doubt` by a crash, is lost;
//! - **to the right people**: nothing arrived for a user who was not a recipient, or for another
//!   sale; nothing the push receiver had to reject (bad VAPID token, undecryptable body).
//!
//! A fan-out that had not finished by the deadline cannot be judged for "at least once": if
//! nothing else is wrong the verdict is "not checked", never "held".

use std::collections::{BTreeMap, BTreeSet};

use super::{Counterexample, InvariantResult};

pub const ID: &str = "INV-8";
const NAME: &str = "alerts once";
const SHOWN: usize = 5;

/// A recipient the run set up: this user should hear on this channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub user_id: String,
    pub channel: &'static str,
}

/// One alert an endpoint accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub user_id: Option<String>,
    pub sale_id: Option<String>,
    pub channel: &'static str,
}

/// The server's record of one delivery (`GET /admin/sales/{id}/alerts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub user_id: String,
    pub channel: String,
    pub state: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AlertEvidence<'a> {
    pub sale_id: &'a str,
    pub expected: &'a [Expected],
    pub observed: &'a [Observed],
    pub records: &'a [Record],
    /// Messages the push receiver refused, with the reason.
    pub rejected: &'a [String],
    /// Whether the server reported every delivery settled before the run's deadline.
    pub finished: bool,
}

pub fn check(evidence: &AlertEvidence) -> InvariantResult {
    let expected: BTreeSet<(&str, &str)> = evidence
        .expected
        .iter()
        .map(|e| (e.user_id.as_str(), e.channel))
        .collect();
    let mut arrived: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut strays = Vec::new();
    for o in evidence.observed {
        match (&o.user_id, &o.sale_id) {
            (Some(user), Some(sale))
                if sale == evidence.sale_id && expected.contains(&(user.as_str(), o.channel)) =>
            {
                *arrived.entry((user.as_str(), o.channel)).or_default() += 1;
            }
            _ => strays.push(format!(
                "{} for user {:?} of sale {:?}",
                o.channel, o.user_id, o.sale_id
            )),
        }
    }
    let records: BTreeMap<(&str, &str), &Record> = evidence
        .records
        .iter()
        .map(|r| ((r.user_id.as_str(), r.channel.as_str()), r))
        .collect();

    let twice: Vec<String> = arrived
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((user, channel), n)| format!("{user} ({channel} ×{n})"))
        .collect();
    let mut lost = Vec::new();
    let mut refused_for_good = 0usize;
    for key @ (user, channel) in &expected {
        if arrived.contains_key(key) {
            continue;
        }
        match records.get(key) {
            Some(r) if r.state == "refused" => refused_for_good += 1,
            Some(r) => lost.push(format!("{user} ({channel}, recorded {})", r.state)),
            None => lost.push(format!("{user} ({channel}, never planned)")),
        }
    }
    let delivered = arrived.len();
    let summary = format!(
        "{} of {} expected alerts arrived ({} email, {} push), {} refused for good and recorded, \
         {} arrived twice or more, {} lost, {} to the wrong recipient, {} rejected by the push \
         receiver",
        delivered,
        expected.len(),
        arrived.keys().filter(|(_, c)| *c == "email").count(),
        arrived.keys().filter(|(_, c)| *c == "push").count(),
        refused_for_good,
        twice.len(),
        if evidence.finished {
            lost.len().to_string()
        } else {
            "? (unfinished)".into()
        },
        strays.len(),
        evidence.rejected.len(),
    );

    let mut problems = Vec::new();
    let mut list = |what: &str, items: &[String]| {
        if !items.is_empty() {
            let shown: Vec<&str> = items.iter().take(SHOWN).map(String::as_str).collect();
            let more = items.len().saturating_sub(SHOWN);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            problems.push(format!(
                "{} {what}: {}{tail}",
                items.len(),
                shown.join(", ")
            ));
        }
    };
    list("alerts arrived more than once", &twice);
    list("alerts went to the wrong recipient", &strays);
    list(
        "push messages were rejected by the receiver",
        evidence.rejected,
    );
    if evidence.finished {
        list("alerts never arrived", &lost);
    }
    if !problems.is_empty() {
        return InvariantResult::violated(
            NAME,
            summary,
            Counterexample {
                explanation: problems.join("; "),
                orders: Vec::new(),
                attempts: Vec::new(),
                omitted_orders: 0,
                omitted_attempts: 0,
            },
        );
    }
    if !evidence.finished {
        return InvariantResult::not_checked(
            NAME,
            format!(
                "{summary}; the fan-out had not finished by the deadline, so whether every alert \
                 arrives at least once is unknown"
            ),
        );
    }
    if expected.is_empty() {
        return InvariantResult::not_checked(NAME, "the run planned no alert".into());
    }
    InvariantResult::held(NAME, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::Verdict;

    fn expected(users: &[&str]) -> Vec<Expected> {
        users
            .iter()
            .flat_map(|u| {
                ["email", "push"].map(|channel| Expected {
                    user_id: (*u).into(),
                    channel,
                })
            })
            .collect()
    }

    fn seen(user: &str, channel: &'static str) -> Observed {
        Observed {
            user_id: Some(user.into()),
            sale_id: Some("s".into()),
            channel,
        }
    }

    fn record(user: &str, channel: &str, state: &str) -> Record {
        Record {
            user_id: user.into(),
            channel: channel.into(),
            state: state.into(),
            detail: None,
        }
    }

    fn judge(observed: &[Observed], records: &[Record], finished: bool) -> InvariantResult {
        let expected = expected(&["a", "b"]);
        check(&AlertEvidence {
            sale_id: "s",
            expected: &expected,
            observed,
            records,
            rejected: &[],
            finished,
        })
    }

    #[test]
    fn each_alert_once_holds() {
        let observed = [
            seen("a", "email"),
            seen("a", "push"),
            seen("b", "email"),
            seen("b", "push"),
        ];
        assert_eq!(judge(&observed, &[], true).verdict, Verdict::Held);
    }

    #[test]
    fn a_duplicate_is_a_violation_even_when_unfinished() {
        let observed = [seen("a", "email"), seen("a", "email")];
        let result = judge(&observed, &[], false);
        assert_eq!(result.verdict, Verdict::Violated);
        let why = result.counterexample.unwrap().explanation;
        assert!(why.contains("a (email ×2)"), "{why}");
    }

    #[test]
    fn a_missing_alert_is_lost_unless_refused_for_good() {
        let observed = [seen("a", "email"), seen("a", "push"), seen("b", "email")];
        let lost = judge(&observed, &[record("b", "push", "sent")], true);
        assert_eq!(lost.verdict, Verdict::Violated);
        assert!(
            lost.counterexample
                .unwrap()
                .explanation
                .contains("b (push, recorded sent)")
        );
        let refused = judge(&observed, &[record("b", "push", "refused")], true);
        assert_eq!(refused.verdict, Verdict::Held, "{}", refused.summary);
        let in_doubt = judge(&observed, &[record("b", "push", "in_doubt")], true);
        assert_eq!(in_doubt.verdict, Verdict::Violated);
    }

    #[test]
    fn an_unfinished_fanout_without_other_fault_is_not_checked() {
        let observed = [seen("a", "email")];
        assert_eq!(judge(&observed, &[], false).verdict, Verdict::NotChecked);
    }

    #[test]
    fn alerts_to_strangers_or_for_another_sale_are_violations() {
        let mut observed = vec![
            seen("a", "email"),
            seen("a", "push"),
            seen("b", "email"),
            seen("b", "push"),
        ];
        observed.push(seen("mallory", "email"));
        assert_eq!(judge(&observed, &[], true).verdict, Verdict::Violated);
        observed.pop();
        observed.push(Observed {
            user_id: Some("a".into()),
            sale_id: Some("other".into()),
            channel: "push",
        });
        assert_eq!(judge(&observed, &[], true).verdict, Verdict::Violated);
    }
}
