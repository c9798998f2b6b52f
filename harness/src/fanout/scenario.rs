//! The `wishlist-fanout` scenario file: how many wishlisted subscribers, which channels, when the
//! sale starts, how fast the server may send, and the faults (the server restarted mid-fan-out,
//! the mail server refusing for a while). Parsed strictly: unknown keys are refused, and every
//! problem of a file is listed at once.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `kind` a fan-out scenario file declares at its top.
pub const KIND: &str = "wishlist-fanout";

/// Whether a scenario file is a fan-out one (its top-level `kind`), without judging the rest.
pub fn is_fanout_file(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| t.get("kind").and_then(|k| k.as_str()).map(|k| k == KIND))
        .unwrap_or(false)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanoutScenario {
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub seed: Option<u64>,
    pub fanout: FanoutSpec,
    #[serde(default)]
    pub faults: Vec<FanoutFault>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanoutSpec {
    /// Users with a product of the sale in their wishlist, each reachable on every channel.
    pub subscribers: u32,
    /// `email`, `push`, or both (the default).
    #[serde(default = "both_channels")]
    pub channels: Vec<String>,
    /// Push subscriptions that answer 410 Gone: the server must record the refusal, remove the
    /// subscription, and not retry.
    #[serde(default)]
    pub gone_subscriptions: u32,
    /// The sale is created this far ahead of its start, with activation left to the job.
    #[serde(with = "humantime_serde", default = "default_starts_in")]
    pub starts_in: Duration,
    /// The fan-out must settle within this long after the sale starts.
    #[serde(with = "humantime_serde", default = "default_within")]
    pub within: Duration,
    /// The server's limit, per channel.
    #[serde(default = "default_rate")]
    pub sends_per_second: u32,
    /// The server's sends in flight, per channel.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Connections the harness registers the wishlists over.
    #[serde(default = "default_registration_connections")]
    pub registration_connections: u32,
}

fn both_channels() -> Vec<String> {
    vec!["email".into(), "push".into()]
}
fn default_starts_in() -> Duration {
    Duration::from_secs(2)
}
fn default_within() -> Duration {
    Duration::from_secs(120)
}
fn default_rate() -> u32 {
    2_000
}
fn default_concurrency() -> u32 {
    32
}
fn default_registration_connections() -> u32 {
    64
}

/// A fault of a fan-out run, triggered when the harness's endpoints have received
/// `after_deliveries` alerts (both channels together), i.e. mid-fan-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FanoutFault {
    /// The server stopped as a deploy stops it (graceful: what it started it finishes) and
    /// started again on the same database after `down_for`.
    RestartServer {
        after_deliveries: u64,
        #[serde(with = "humantime_serde", default = "default_down_for")]
        down_for: Duration,
    },
    /// The server SIGKILLed (the `flashsale-server` binary is run as a child process for this),
    /// started again on the same database after `down_for`: the sends it had in flight are in
    /// doubt — recorded so a few seconds later, never resent.
    KillServer {
        after_deliveries: u64,
        #[serde(with = "humantime_serde", default = "default_down_for")]
        down_for: Duration,
    },
    /// The SMTP server answers every message with 451 (try again later) for `for`.
    SmtpRefuse {
        after_deliveries: u64,
        #[serde(rename = "for", with = "humantime_serde")]
        refuse_for: Duration,
    },
}

fn default_down_for() -> Duration {
    Duration::from_millis(200)
}

impl FanoutFault {
    pub fn after_deliveries(&self) -> u64 {
        match self {
            FanoutFault::RestartServer {
                after_deliveries, ..
            }
            | FanoutFault::KillServer {
                after_deliveries, ..
            }
            | FanoutFault::SmtpRefuse {
                after_deliveries, ..
            } => *after_deliveries,
        }
    }

    /// The arrivals after which it fires, to change (a scaled-down copy of a scenario).
    pub fn after_deliveries_mut(&mut self) -> &mut u64 {
        match self {
            FanoutFault::RestartServer {
                after_deliveries, ..
            }
            | FanoutFault::KillServer {
                after_deliveries, ..
            }
            | FanoutFault::SmtpRefuse {
                after_deliveries, ..
            } => after_deliveries,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            FanoutFault::RestartServer {
                after_deliveries,
                down_for,
            } => format!(
                "restart-server after {after_deliveries} deliveries, down for {}",
                humantime::format_duration(*down_for)
            ),
            FanoutFault::KillServer {
                after_deliveries,
                down_for,
            } => format!(
                "kill-server after {after_deliveries} deliveries, down for {}",
                humantime::format_duration(*down_for)
            ),
            FanoutFault::SmtpRefuse {
                after_deliveries,
                refuse_for,
            } => format!(
                "smtp-refuse after {after_deliveries} deliveries, for {}",
                humantime::format_duration(*refuse_for)
            ),
        }
    }
}

impl FanoutScenario {
    pub fn from_path(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read scenario file {}: {e} (check the path)",
                path.display()
            )
        })?;
        let default_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::from_toml_str(&text, &default_name)
    }

    pub fn from_toml_str(text: &str, default_name: &str) -> Result<Self, String> {
        let mut scenario: FanoutScenario = toml::from_str(text).map_err(|e| {
            format!(
                "scenario `{default_name}` is not a valid wishlist-fanout scenario: {}\nfix the \
                 key or value marked above (unknown keys are rejected to catch typos)",
                e.to_string().trim_end()
            )
        })?;
        if scenario.name.is_empty() {
            scenario.name = default_name.to_owned();
        }
        let problems = scenario.problems();
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(format!(
                "scenario `{}` has {} problem(s); fix each of them:\n{}",
                scenario.name,
                problems.len(),
                problems
                    .iter()
                    .map(|p| format!("  - {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
        }
    }

    pub fn uses(&self, channel: &str) -> bool {
        self.fanout.channels.iter().any(|c| c == channel)
    }

    /// Alerts the run expects to see arrive (gone subscriptions are refused instead).
    pub fn expected_arrivals(&self) -> u64 {
        let per_channel = u64::from(self.fanout.subscribers);
        let email = if self.uses("email") { per_channel } else { 0 };
        let push = if self.uses("push") {
            per_channel - u64::from(self.fanout.gone_subscriptions)
        } else {
            0
        };
        email + push
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let f = &self.fanout;
        if self.kind != KIND {
            problems.push(format!(
                "kind is {:?}; a fan-out scenario says kind = \"{KIND}\"",
                self.kind
            ));
        }
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || self.name.is_empty()
        {
            problems.push(format!(
                "name {:?} must be letters, digits, '-' and '_' (it names the results directory)",
                self.name
            ));
        }
        if !(1..=100_000).contains(&f.subscribers) {
            problems.push("fanout.subscribers must be between 1 and 100000".into());
        }
        if f.channels.is_empty() {
            problems.push("fanout.channels must name at least one of \"email\", \"push\"".into());
        }
        for c in &f.channels {
            if c != "email" && c != "push" {
                problems.push(format!(
                    "fanout.channels has {c:?}; the channels are \"email\" and \"push\""
                ));
            }
        }
        if f.gone_subscriptions > 0 && !self.uses("push") {
            problems.push("fanout.gone_subscriptions needs the \"push\" channel".into());
        }
        if f.gone_subscriptions > f.subscribers {
            problems.push("fanout.gone_subscriptions cannot exceed fanout.subscribers".into());
        }
        if f.starts_in < Duration::from_secs(1) || f.starts_in > Duration::from_secs(3600) {
            problems.push(
                "fanout.starts_in must be between 1s and 1h (the activation job runs a second \
                 ahead of the start)"
                    .into(),
            );
        }
        if f.within < Duration::from_secs(1) || f.within > Duration::from_secs(24 * 3600) {
            problems.push("fanout.within must be between 1s and 24h".into());
        }
        if !(1..=100_000).contains(&f.sends_per_second) {
            problems.push("fanout.sends_per_second must be between 1 and 100000".into());
        }
        if !(1..=1_000).contains(&f.concurrency) {
            problems.push("fanout.concurrency must be between 1 and 1000".into());
        }
        if !(1..=1_000).contains(&f.registration_connections) {
            problems.push("fanout.registration_connections must be between 1 and 1000".into());
        }
        for (i, fault) in self.faults.iter().enumerate() {
            if fault.after_deliveries() >= self.expected_arrivals().max(1) {
                problems.push(format!(
                    "faults[{i}].after_deliveries is {}, but the run expects only {} arrivals: \
                     the fault would never fire mid-fan-out",
                    fault.after_deliveries(),
                    self.expected_arrivals()
                ));
            }
            match fault {
                FanoutFault::SmtpRefuse { refuse_for, .. } => {
                    if !self.uses("email") {
                        problems.push(format!(
                            "faults[{i}] (smtp-refuse) needs the \"email\" channel"
                        ));
                    }
                    if refuse_for.is_zero() || *refuse_for > f.within {
                        problems.push(format!(
                            "faults[{i}].for must be above 0 and at most fanout.within"
                        ));
                    }
                }
                FanoutFault::RestartServer { down_for, .. }
                | FanoutFault::KillServer { down_for, .. } => {
                    if *down_for > Duration::from_secs(60) {
                        problems.push(format!("faults[{i}].down_for must be at most 60s"));
                    }
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
kind = "wishlist-fanout"
name = "t"
[fanout]
subscribers = 100
[[faults]]
kind = "restart-server"
after_deliveries = 50
[[faults]]
kind = "smtp-refuse"
after_deliveries = 10
for = "1s"
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let s = FanoutScenario::from_toml_str(GOOD, "x").unwrap();
        assert_eq!(s.fanout.channels, ["email", "push"]);
        assert_eq!(s.expected_arrivals(), 200);
        assert_eq!(s.faults.len(), 2);
        assert!(is_fanout_file(GOOD));
        assert!(!is_fanout_file("name = \"x\"\n[sale]\ncap = 1\n"));
    }

    #[test]
    fn every_problem_is_listed() {
        let text = r#"
kind = "wishlist-fanout"
[fanout]
subscribers = 0
channels = ["sms"]
gone_subscriptions = 5
starts_in = "10ms"
[[faults]]
kind = "smtp-refuse"
after_deliveries = 10
for = "0s"
"#;
        let err = FanoutScenario::from_toml_str(text, "bad").unwrap_err();
        for part in [
            "subscribers",
            "\"sms\"",
            "gone_subscriptions",
            "starts_in",
            "faults[0].after_deliveries",
            "faults[0] (smtp-refuse)",
            "faults[0].for",
        ] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_fault_kinds_are_refused() {
        let typo = GOOD.replace("subscribers = 100", "subscriber = 100");
        assert!(
            FanoutScenario::from_toml_str(&typo, "x")
                .unwrap_err()
                .contains("subscriber")
        );
        let kind = GOOD.replace("restart-server", "reboot");
        assert!(FanoutScenario::from_toml_str(&kind, "x").is_err());
    }
}
