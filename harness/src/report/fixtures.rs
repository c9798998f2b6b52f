//! Test fixtures shared by the report's tests: a small synthetic run (cap 2, six buyers), its
//! faulty and measured variants, and the run directory written from them.

use super::*;
use crate::checker::{self, CheckInput, TargetRules};
use crate::ground_truth::{InventoryView, LedgerOrder};
use crate::history::Outcome;
use crate::history::SOLD_OUT;
use time::macros::datetime;

pub fn scenario(cap: u64) -> Scenario {
    let text = format!(
        "name = \"last-units\"\nseed = 7\n[sale]\ncap = {cap}\n[[sale.products]]\nid = \"tee\"\n\
         price_cents = 1500\n[buyers]\ncount = 6\nquantity = 1\n"
    );
    Scenario::from_toml_str(&text, "unused").unwrap()
}

pub fn attempt(seq: u64, outcome: Outcome, code: Option<&str>, order_id: Option<&str>) -> Attempt {
    Attempt {
        seq,
        buyer: format!("b{seq}"),
        idempotency_key: format!("k{seq}"),
        quantity: 1,
        try_number: 0,
        intended_us: 200_000,
        sent_us: 200_000 + seq * 100,
        completed_us: 200_000 + seq * 100 + 1_500 * (seq + 1),
        outcome,
        status: None,
        code: code.map(Into::into),
        order_id: order_id.map(str::to_owned),
    }
}

pub fn order(seq: u64) -> LedgerOrder {
    LedgerOrder {
        order_id: format!("o{seq}"),
        buyer_id: format!("b{seq}"),
        quantity: 1,
        idempotency_key: format!("k{seq}"),
        decided_by: "redis".into(),
        created_at: format!("2026-11-26T10:15:0{seq}Z"),
    }
}

pub struct Run {
    pub info: RunInfo,
    pub history: Vec<Attempt>,
    pub ledger: Ledger,
    pub faults: Vec<FaultRecord>,
    pub samples: Vec<InventorySample>,
    pub settled: Option<SettledInventory>,
    pub generator: GeneratorStats,
    pub check: CheckReport,
    /// Resident memory samples; none unless a test adds them.
    pub memory: Vec<crate::memory::MemorySample>,
}

impl Run {
    /// Runs the checker on what the run holds now, with the scenario's per-buyer limit as
    /// `flashsale run` passes it.
    pub fn checked(mut self) -> Self {
        self.check = checker::check(&CheckInput {
            faults: &self.faults,
            samples: &self.samples,
            settled: self.settled.as_ref(),
            rules: TargetRules {
                per_buyer_units: self.info.scenario.sale.per_buyer_limit.map(u64::from),
                ..TargetRules::default()
            },
            ..CheckInput::new(&self.history, &self.ledger, Some(2))
        });
        self
    }
}

/// Cap 2, two ok buyers, three sold out, one timeout; `extra_order` adds a phantom.
pub fn run(extra_order: bool) -> Run {
    let history = vec![
        attempt(0, Outcome::Ok, None, Some("o0")),
        attempt(1, Outcome::Ok, None, Some("o1")),
        attempt(2, Outcome::Rejected, Some(SOLD_OUT), None),
        attempt(3, Outcome::Rejected, Some(SOLD_OUT), None),
        attempt(4, Outcome::Rejected, Some(SOLD_OUT), None),
        attempt(5, Outcome::Unknown, Some("timeout"), None),
    ];
    let mut orders = vec![order(0), order(1)];
    if extra_order {
        let mut phantom = order(9);
        phantom.idempotency_key = "never-sent".into();
        orders.push(phantom);
    }
    let ledger = Ledger {
        orders,
        inventory: InventoryView {
            cap: Some(2),
            redis_counter: Some(2),
            quantity_sold: Some(2),
            units_in_orders: 2,
            units_in_live_holds: None,
        },
    };
    let info = RunInfo {
        scenario: scenario(2),
        seed: 7,
        target: "in-process".into(),
        strategy: Some("naive".into()),
        started_at: datetime!(2026-11-26 11:15:00 +01:00),
        clock_origin_at: datetime!(2026-11-26 11:15:01 +01:00),
        wall_time: Duration::from_millis(3_250),
        sale_id: "sale-123".into(),
        replicas: Vec::new(),
        shards: None,
    };
    Run {
        info,
        history,
        ledger,
        faults: Vec::new(),
        samples: Vec::new(),
        settled: None,
        generator: GeneratorStats::default(),
        check: CheckReport {
            invariants: Default::default(),
        },
        memory: Vec::new(),
    }
    .checked()
}

/// The run of [`run`] on a sale with a per-buyer limit of one unit; with `over`, buyer `b0` made
/// the second ok purchase too (attempt 1 and order o1 are theirs), which breaks it.
pub fn limited_run(over: bool) -> Run {
    let mut r = run(false);
    r.info.scenario.sale.per_buyer_limit = Some(1);
    if over {
        r.history[1].buyer = "b0".into();
        r.ledger.orders[1].buyer_id = "b0".into();
    }
    r.checked()
}

/// The run of [`run`] under faults: a Redis kill that healed, added latency overlapping it,
/// and a PostgreSQL outage that never healed; one order went through the fallback path.
/// The last answer of the run arrives at 209.5 ms.
pub fn faulty_run() -> Run {
    let mut r = run(false);
    r.ledger.orders[1].decided_by = "postgres-fallback".into();
    let fault = |kind: &str, started_us, ended_us, detail: &str| FaultRecord {
        kind: kind.into(),
        planned: format!("{kind} as scheduled"),
        started_us,
        ended_us,
        detail: detail.into(),
    };
    r.faults = vec![
        fault("pg-down", 205_000, None, "postgres unreachable"),
        fault(
            "kill",
            200_100,
            Some(200_350),
            "SIGKILL container 3f2a, restarted empty",
        ),
        fault(
            "latency",
            200_200,
            Some(201_000),
            "+50 ms on the Redis link",
        ),
    ];
    let sample = |at_us, units: Option<i64>| InventorySample {
        at_us,
        units_in_orders: units,
        units_in_live_holds: None,
        quantity_sold: units,
        redis_counter: units,
        error: units.is_none().then(|| "connection refused".into()),
    };
    r.samples = vec![
        sample(200_400, Some(1)),
        sample(205_500, None),
        sample(209_600, Some(2)),
    ];
    r.settled = Some(SettledInventory {
        view: r.ledger.inventory.clone(),
        waited_ms: 250,
    });
    r.checked()
}

pub fn write(run: &Run, dir: &Path) -> Summary {
    write_all(
        dir,
        &RunOutputs {
            memory: &run.memory,
            server_metrics: None,
            info: &run.info,
            history: &run.history,
            ledger: &run.ledger,
            check: &run.check,
            faults: &run.faults,
            samples: &run.samples,
            settled: run.settled.as_ref(),
            generator: &run.generator,
        },
    )
    .unwrap()
}

/// Every error the committed schema finds in `json`, with where.
pub fn schema_errors(json: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(include_str!("../../summary.schema.json"))
        .expect("the committed schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the committed schema is valid");
    validator
        .iter_errors(json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

pub fn written_json(run: &Run, dir: &Path) -> serde_json::Value {
    write(run, dir);
    serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// [`faulty_run`] with buyer journeys in its scenario and live holds in its inventory readings.
pub fn holds_run() -> Run {
    let mut r = faulty_run();
    let journeys = Scenario::from_toml_str(
        "[sale]\ncap = 2\n[[sale.products]]\nid = \"tee\"\nprice_cents = 1\n\
         [buyers]\ncount = 6\nquantity = 1\n\
         [journeys]\nreserve_first = 0.5\nreserve_within = \"1s\"\nhold_ttl = \"2s\"\n\
         think = { min = \"10ms\", max = \"1s\" }\nthen = { checkout = 0.7, abandon = 0.3 }\n",
        "holds",
    )
    .unwrap()
    .journeys;
    r.info.scenario.journeys = journeys;
    for sample in &mut r.samples {
        sample.units_in_live_holds = Some(1);
    }
    r.ledger.inventory.units_in_live_holds = Some(0);
    if let Some(settled) = r.settled.as_mut() {
        settled.view.units_in_live_holds = Some(0);
    }
    r
}

/// The synthetic run with thresholds, a constant rate and the generator's samples.
pub fn measured_run() -> Run {
    let mut r = faulty_run();
    r.info.scenario = Scenario::from_toml_str(
        "name = \"steady\"\n[sale]\ncap = 2\n[[sale.products]]\nid = \"tee\"\nprice_cents = 1\n\
         [buyers]\ncount = 6\nquantity = 1\n[arrival]\nmodel = \"constant-rate\"\nrate = 100\n\
         [thresholds]\n\"ok.p99\" = \"< 1ms\"\n\"unknown.rate\" = \"< 0.5\"\n",
        "unused",
    )
    .unwrap();
    r.generator = GeneratorStats {
        schedule: r
            .history
            .iter()
            .map(|a| crate::load::health::ScheduleSample {
                intended_us: a.intended_us,
                woke_us: a.intended_us + 50,
                sent_us: a.sent_us,
            })
            .collect(),
        cpu: crate::load::health::CpuClock::now().map(|c| c.usage_until(&c)),
    };
    r
}
