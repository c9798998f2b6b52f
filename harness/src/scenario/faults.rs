//! The fault vocabulary of a scenario: which faults the harness can inject, when and for how
//! long, and where the in-process server's Redis and PostgreSQL come from.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the in-process server's Redis comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RedisMode {
    /// The machine's Redis (`REDIS_URL`): fast, but the harness cannot kill or pause it.
    #[default]
    Shared,
    /// A Redis container started through testcontainers for this run, which Redis faults need.
    Container,
}

/// `[redis]`: how the in-process server reaches Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    #[serde(default)]
    pub mode: RedisMode,
    /// Route the server's Redis traffic through the harness's fault proxy (link faults need it).
    #[serde(default)]
    pub proxy: bool,
    /// The server's Redis claim timeout (default: the server's own, 250ms).
    #[serde(with = "humantime_serde", default)]
    pub timeout: Option<Duration>,
}

/// `[postgres]`: how the in-process server reaches PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PostgresSpec {
    /// Route the server's PostgreSQL traffic through the fault proxy (`pg-down` needs it).
    #[serde(default)]
    pub proxy: bool,
}

/// The fault kinds of docs/faults.md the harness can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// NEM-kill: SIGKILL the Redis container; `duration` later it starts again, empty.
    Kill,
    /// NEM-stop: graceful stop, started again after `duration` (empty: nothing is persisted).
    Stop,
    /// NEM-pause: the Redis process is frozen; sockets stay open, commands hang.
    Pause,
    /// NEM-rollback: the sale's counter set back by `rollback_by` units (a lagging replica).
    Rollback,
    /// NEM-flush-scripts: `SCRIPT FLUSH`.
    FlushScripts,
    /// NEM-latency on the server↔Redis link.
    Latency,
    /// NEM-blackhole, both directions.
    Blackhole,
    /// NEM-blackhole of replies only: the command runs, its answer never comes back (HAZ-14).
    BlackholeReplies,
    /// NEM-reset: connections reset.
    Reset,
    /// NEM-pg-down: PostgreSQL unreachable.
    PgDown,
    /// NEM-kill-service: SIGKILL the service under test (one the harness started from a
    /// profile's `[service]`); `duration` later it is started again.
    KillService,
    /// NEM-kill-replica: the last replica of the in-process reference server (`--replicas` of 2
    /// or more) dropped mid-flight; `duration` later it is started again on its port.
    KillReplica,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stop => "stop",
            FaultKind::Pause => "pause",
            FaultKind::Rollback => "rollback",
            FaultKind::FlushScripts => "flush-scripts",
            FaultKind::Latency => "latency",
            FaultKind::Blackhole => "blackhole",
            FaultKind::BlackholeReplies => "blackhole-replies",
            FaultKind::Reset => "reset",
            FaultKind::PgDown => "pg-down",
            FaultKind::KillService => "kill-service",
            FaultKind::KillReplica => "kill-replica",
        }
    }

    pub(super) fn needs_container(self) -> bool {
        matches!(self, FaultKind::Kill | FaultKind::Stop | FaultKind::Pause)
    }

    pub(super) fn needs_redis_proxy(self) -> bool {
        matches!(
            self,
            FaultKind::Latency
                | FaultKind::Blackhole
                | FaultKind::BlackholeReplies
                | FaultKind::Reset
        )
    }

    /// Faults that are an instant, not a window.
    pub(super) fn is_instant(self) -> bool {
        matches!(self, FaultKind::Rollback | FaultKind::FlushScripts)
    }
}

/// One `[[faults]]` entry: what, when, for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// Offset from doors open.
    #[serde(with = "humantime_serde", default)]
    pub at: Option<Duration>,
    /// Or: as soon as the units the harness has seen acknowledged leave fewer than this many.
    #[serde(default)]
    pub when_remaining_below: Option<u64>,
    /// How long until it heals; absent for `kill`/`stop`/`pause` and link faults means never.
    #[serde(with = "humantime_serde", default)]
    pub duration: Option<Duration>,
    /// For `latency`: added to each direction.
    #[serde(with = "humantime_serde", default)]
    pub latency: Option<Duration>,
    /// For `rollback`: how many units to set the counter back.
    #[serde(default)]
    pub rollback_by: Option<u64>,
}

impl FaultSpec {
    /// The fault in words, for the run's records.
    pub fn describe(&self) -> String {
        let mut text = self.kind.as_str().to_owned();
        match (self.at, self.when_remaining_below) {
            (Some(at), _) => text.push_str(&format!(" at {}", humantime::format_duration(at))),
            (None, Some(k)) => text.push_str(&format!(" when fewer than {k} units remain")),
            (None, None) => {}
        }
        if let Some(latency) = self.latency {
            text.push_str(&format!(", +{}", humantime::format_duration(latency)));
        }
        if let Some(by) = self.rollback_by {
            text.push_str(&format!(", back by {by} units"));
        }
        match self.duration {
            Some(d) => text.push_str(&format!(", for {}", humantime::format_duration(d))),
            None if !self.kind.is_instant() => text.push_str(", never healed"),
            None => {}
        }
        text
    }
}
