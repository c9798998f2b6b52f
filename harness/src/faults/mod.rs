//! Fault injection: the Redis container, the TCP fault proxy, and the scenario's fault timeline.
//!
//! Every fault is applied by its own task: it waits for its trigger (a time after doors open, or
//! the units remaining falling below a threshold), applies the fault, records when it took effect,
//! waits its duration and heals it. Only faults that actually took effect are recorded, with the
//! times the harness observed, so a run whose faults never happened cannot pass for one that
//! survived them; faults whose trigger never came are reported separately.

pub mod proxy;
pub mod redis_container;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use self::proxy::{FaultProxy, LinkFault};
use self::redis_container::RedisContainer;
use crate::history::{FaultRecord, micros_since};
use crate::load::buyers::LoadProbe;
use crate::scenario::{FaultKind, FaultSpec};

/// What the faults act on. Built by the run before the server starts.
#[derive(Debug, Default)]
pub struct FaultEnvironment {
    /// The server's Redis when it runs in a container.
    pub redis_container: Option<RedisContainer>,
    /// Between the server and Redis.
    pub redis_proxy: Option<FaultProxy>,
    /// Between the server and PostgreSQL.
    pub pg_proxy: Option<FaultProxy>,
    /// Redis as the harness reaches it directly (never through the proxy), for rollbacks and
    /// script flushes.
    pub redis_url: String,
    /// The service under test when the harness started it from a profile, for NEM-kill-service.
    pub service: Option<Arc<crate::target::service::StartedService>>,
    /// The in-process reference server's replicas, for NEM-kill-replica.
    pub replicas: Option<Arc<crate::target::Replicas>>,
    /// The sale's counter in that Redis, for NEM-rollback; `None` uses the reference server's
    /// key (`flash_sale:{<sale>}:inventory:sold`, counting units sold).
    pub counter: Option<CounterKey>,
}

/// Where a service keeps its counter of a sale in Redis, and which way it counts.
#[derive(Debug, Clone)]
pub struct CounterKey {
    /// The key, with `{sale_id}` and `{run_id}` filled per run.
    pub key: crate::profile::Template,
    /// The run's `run_id` (and anything else fixed for the run).
    pub fixed: crate::profile::Values,
    /// The counter holds units remaining (counts down), not units sold: a rollback then adds.
    pub counts_remaining: bool,
}

/// What the timeline did.
#[derive(Debug, Default)]
pub struct TimelineOutcome {
    pub applied: Vec<FaultRecord>,
    /// Faults that were planned but never took effect (trigger never reached, or applying failed),
    /// with the reason.
    pub not_applied: Vec<String>,
}

/// Clocks and shared state a fault task needs.
#[derive(Debug, Clone)]
pub struct TimelineContext {
    pub origin: Instant,
    pub doors_open: Instant,
    pub cap: Option<u64>,
    pub sale_id: String,
    pub probe: Arc<LoadProbe>,
}

/// Runs every fault of the scenario until each is healed, or until `end` turns true: then
/// faults that have a duration are healed at once (so the end state can be checked) and faults
/// meant to last forever stay in place.
pub async fn run_timeline(
    faults: Vec<FaultSpec>,
    env: Arc<FaultEnvironment>,
    ctx: TimelineContext,
    end: watch::Receiver<bool>,
) -> TimelineOutcome {
    let tasks: Vec<_> = faults
        .into_iter()
        .map(|fault| {
            let env = env.clone();
            let ctx = ctx.clone();
            let end = end.clone();
            tokio::spawn(async move { run_one(fault, &env, &ctx, end).await })
        })
        .collect();
    let mut outcome = TimelineOutcome::default();
    for task in tasks {
        match task.await {
            Ok(Ok(record)) => outcome.applied.push(record),
            Ok(Err(reason)) => outcome.not_applied.push(reason),
            Err(join) => outcome
                .not_applied
                .push(format!("fault task failed: {join}")),
        }
    }
    outcome.applied.sort_by_key(|r| r.started_us);
    outcome
}

async fn ended(end: &mut watch::Receiver<bool>) {
    while !*end.borrow() {
        if end.changed().await.is_err() {
            return;
        }
    }
}

async fn run_one(
    fault: FaultSpec,
    env: &FaultEnvironment,
    ctx: &TimelineContext,
    mut end: watch::Receiver<bool>,
) -> Result<FaultRecord, String> {
    let planned = fault.describe();
    let triggered = async {
        if let Some(at) = fault.at {
            tokio::time::sleep_until(ctx.doors_open + at).await;
        } else if let (Some(below), Some(cap)) = (fault.when_remaining_below, ctx.cap) {
            tokio::time::sleep_until(ctx.doors_open).await;
            while cap.saturating_sub(ctx.probe.acked_units.load(Ordering::Relaxed)) >= below {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = triggered => {}
        _ = ended(&mut end) => return Err(format!("{planned}: the run ended before its trigger")),
    }
    let detail = apply(&fault, env, &ctx.sale_id)
        .await
        .map_err(|e| format!("{planned}: could not apply: {e}"))?;
    let started_us = micros_since(ctx.origin, Instant::now());
    let mut record = FaultRecord {
        kind: fault.kind.as_str().to_owned(),
        planned,
        started_us,
        ended_us: Some(started_us),
        detail,
    };
    if matches!(fault.kind, FaultKind::Rollback | FaultKind::FlushScripts) {
        return Ok(record);
    }
    match fault.duration {
        Some(duration) => {
            tokio::select! {
                _ = tokio::time::sleep(duration) => {}
                _ = ended(&mut end) => {}
            }
            let healed = heal(&fault, env)
                .await
                .map_err(|e| format!("{}: could not heal: {e}", record.planned))?;
            record.ended_us = Some(micros_since(ctx.origin, Instant::now()));
            record.detail.push_str("; ");
            record.detail.push_str(&healed);
        }
        None => record.ended_us = None,
    }
    Ok(record)
}

fn proxy<'a>(proxy: &'a Option<FaultProxy>, what: &str) -> Result<&'a FaultProxy, String> {
    proxy
        .as_ref()
        .ok_or_else(|| format!("no fault proxy in front of {what}"))
}

fn container(env: &FaultEnvironment) -> Result<&RedisContainer, String> {
    env.redis_container
        .as_ref()
        .ok_or_else(|| "Redis does not run in a container".to_owned())
}

async fn apply(fault: &FaultSpec, env: &FaultEnvironment, sale_id: &str) -> Result<String, String> {
    match fault.kind {
        FaultKind::Kill => {
            let c = container(env)?;
            c.kill().await.map_err(|e| e.to_string())?;
            Ok(format!("SIGKILL container {}", short(c.id())))
        }
        FaultKind::Stop => {
            let c = container(env)?;
            c.stop().await.map_err(|e| e.to_string())?;
            Ok(format!("stopped container {}", short(c.id())))
        }
        FaultKind::Pause => {
            let c = container(env)?;
            c.pause().await.map_err(|e| e.to_string())?;
            Ok(format!("paused container {}", short(c.id())))
        }
        FaultKind::Rollback => {
            let by = fault.rollback_by.unwrap_or(0) as i64;
            let (key, counts_remaining) = match &env.counter {
                Some(counter) => {
                    let mut values = counter.fixed.clone();
                    values.insert("sale_id", serde_json::Value::from(sale_id));
                    (counter.key.render(&values), counter.counts_remaining)
                }
                None => (format!("flash_sale:{{{sale_id}}}:inventory:sold"), false),
            };
            let (from, to) = rollback(&env.redis_url, &key, by, counts_remaining)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("counter set back from {from} to {to}"))
        }
        FaultKind::FlushScripts => {
            redis_command(&env.redis_url, redis::cmd("SCRIPT").arg("FLUSH"))
                .await
                .map_err(|e| e.to_string())?;
            Ok("SCRIPT FLUSH".to_owned())
        }
        FaultKind::Latency => {
            let latency = fault.latency.unwrap_or_default();
            proxy(&env.redis_proxy, "Redis")?.set_fault(LinkFault::Latency(latency));
            Ok(format!(
                "+{} on the Redis link",
                humantime::format_duration(latency)
            ))
        }
        FaultKind::Blackhole => {
            proxy(&env.redis_proxy, "Redis")?.set_fault(LinkFault::Blackhole);
            Ok("Redis link blackholed both ways".to_owned())
        }
        FaultKind::BlackholeReplies => {
            proxy(&env.redis_proxy, "Redis")?.set_fault(LinkFault::BlackholeReplies);
            Ok("Redis replies dropped".to_owned())
        }
        FaultKind::Reset => {
            proxy(&env.redis_proxy, "Redis")?.set_fault(LinkFault::Reset);
            Ok("Redis connections reset".to_owned())
        }
        FaultKind::PgDown => {
            proxy(&env.pg_proxy, "PostgreSQL")?.set_fault(LinkFault::Reset);
            Ok("PostgreSQL connections reset and refused".to_owned())
        }
        FaultKind::KillService => {
            service(env)?.kill().await.map_err(|e| e.to_string())?;
            Ok("SIGKILL the service".to_owned())
        }
        FaultKind::KillReplica => {
            let replicas = replicas(env)?;
            let last = replicas.count().await - 1;
            replicas.kill(last).await?;
            Ok(format!("replica {last} killed"))
        }
    }
}

fn replicas(env: &FaultEnvironment) -> Result<&crate::target::Replicas, String> {
    env.replicas
        .as_deref()
        .ok_or_else(|| "the in-process reference server is not running replicas".to_owned())
}

fn service(env: &FaultEnvironment) -> Result<&crate::target::service::StartedService, String> {
    env.service
        .as_deref()
        .ok_or_else(|| "the harness did not start the service (no profile [service])".to_owned())
}

async fn heal(fault: &FaultSpec, env: &FaultEnvironment) -> Result<String, String> {
    match fault.kind {
        FaultKind::Kill | FaultKind::Stop => {
            container(env)?.restart().await.map_err(|e| e.to_string())?;
            Ok("restarted, empty".to_owned())
        }
        FaultKind::Pause => {
            container(env)?.unpause().await.map_err(|e| e.to_string())?;
            Ok("unpaused".to_owned())
        }
        FaultKind::Latency
        | FaultKind::Blackhole
        | FaultKind::BlackholeReplies
        | FaultKind::Reset => {
            proxy(&env.redis_proxy, "Redis")?.set_fault(LinkFault::None);
            Ok("link restored".to_owned())
        }
        FaultKind::PgDown => {
            proxy(&env.pg_proxy, "PostgreSQL")?.set_fault(LinkFault::None);
            Ok("PostgreSQL reachable again".to_owned())
        }
        FaultKind::KillService => {
            service(env)?.restart().await.map_err(|e| e.to_string())?;
            Ok("service started again and ready".to_owned())
        }
        FaultKind::KillReplica => {
            let replicas = replicas(env)?;
            let last = replicas.count().await - 1;
            replicas.restart(last).await?;
            Ok(format!("replica {last} started again"))
        }
        FaultKind::Rollback | FaultKind::FlushScripts => Ok(String::new()),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

async fn redis_command(url: &str, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    cmd.query_async(&mut conn).await
}

/// Sets the sale's counter back by `by` units of sales (never below zero sold), standing in for a
/// failover to a replica that had not seen the latest claims (HAZ-3). A counter of units
/// remaining is set back by adding.
async fn rollback(
    url: &str,
    key: &str,
    by: i64,
    counts_remaining: bool,
) -> redis::RedisResult<(i64, i64)> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let current: Option<i64> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
    let from = current.unwrap_or(0);
    let to = if counts_remaining {
        from + by
    } else {
        (from - by).max(0)
    };
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(to)
        .query_async(&mut conn)
        .await?;
    Ok((from, to))
}
