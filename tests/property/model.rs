//! Model-based test of the inventory service: a reference model — a counter with a cap and an
//! idempotency map — driven side by side with the real server (real Redis behind a fault proxy,
//! real PostgreSQL) through generated sequences of claims, retries, Redis restarting empty,
//! rolling back, losing its scripts, losing replies after the script ran, and being unreachable
//! (the PostgreSQL fallback). After every step the answer must be the model's answer and the
//! ledger must hold exactly the model's units.

use std::collections::BTreeMap;
use std::time::Duration;

use flashsale_harness::faults::proxy::{FaultProxy, LinkFault};
use flashsale_harness::target::{AdminClient, Dependencies, InProcessServer, ServerOverrides};
use flashsale_mutants::InventoryStrategy;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use serde_json::{Value, json};

/// The reference: what a correct flash sale answers, sequentially.
#[derive(Debug, Clone)]
pub struct Model {
    cap: u32,
    sold: u32,
    /// Idempotency key id → quantity of its order.
    orders: BTreeMap<u8, u32>,
}

#[derive(Debug, Clone)]
pub enum Step {
    Buy {
        key: u8,
        quantity: u32,
    },
    /// The claim script runs, its reply never comes back: the fallback must not sell twice.
    BuyWhileRepliesLost {
        key: u8,
        quantity: u32,
    },
    /// Redis unreachable: the PostgreSQL path decides.
    BuyWhileRedisDown {
        key: u8,
        quantity: u32,
    },
    /// Redis restarted empty: the counter key is gone.
    RestartEmpty,
    /// Failover to a lagging replica: the counter goes back.
    Rollback(u32),
    FlushScripts,
}

impl Step {
    fn buy(&self) -> Option<(u8, u32)> {
        match *self {
            Step::Buy { key, quantity }
            | Step::BuyWhileRepliesLost { key, quantity }
            | Step::BuyWhileRedisDown { key, quantity } => Some((key, quantity)),
            _ => None,
        }
    }
}

pub struct InventoryModel;

impl ReferenceStateMachine for InventoryModel {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        (0..=8u32)
            .prop_map(|cap| Model {
                cap,
                sold: 0,
                orders: BTreeMap::new(),
            })
            .boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Step> {
        // Few keys, so retries (same key, same body) and reuse (same key, other quantity) happen.
        let key = 0..6u8;
        let quantity = 1..=3u32;
        prop_oneof![
            6 => (key.clone(), quantity.clone()).prop_map(|(key, quantity)| Step::Buy { key, quantity }),
            1 => (key.clone(), quantity.clone()).prop_map(|(key, quantity)| Step::BuyWhileRepliesLost { key, quantity }),
            1 => (key, quantity).prop_map(|(key, quantity)| Step::BuyWhileRedisDown { key, quantity }),
            1 => Just(Step::RestartEmpty),
            1 => (1..=4u32).prop_map(Step::Rollback),
            1 => Just(Step::FlushScripts),
        ]
        .boxed()
    }

    fn apply(mut model: Model, step: &Step) -> Model {
        if let Some((key, quantity)) = step.buy() {
            if !model.orders.contains_key(&key) && model.sold + quantity <= model.cap {
                model.sold += quantity;
                model.orders.insert(key, quantity);
            }
        }
        model
    }
}

/// The real server, its Redis link and what it answered so far.
pub struct Real {
    server: Option<InProcessServer>,
    proxy: FaultProxy,
    admin: AdminClient,
    http: reqwest::Client,
    base_url: String,
    sale_id: String,
    redis: redis::aio::MultiplexedConnection,
    key_prefix: String,
    /// Key id → the order id the server gave it first.
    order_ids: BTreeMap<u8, String>,
    /// Last, so it is dropped after everything that runs on it.
    rt: tokio::runtime::Runtime,
}

impl Real {
    fn counter_key(&self) -> String {
        format!("flash_sale:{{{}}}:inventory:sold", self.sale_id)
    }

    fn buy(&mut self, key: u8, quantity: u32) -> (u16, Value) {
        let url = format!("{}/sales/{}/orders", self.base_url, self.sale_id);
        let request = self
            .http
            .post(url)
            .header("idempotency-key", format!("{}-{key}", self.key_prefix))
            .json(&json!({"buyer_id": "model-buyer", "quantity": quantity}))
            .timeout(Duration::from_secs(10));
        self.rt.block_on(async {
            let response = request.send().await.expect("the server answers");
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        })
    }

    fn redis_cmd(&mut self, cmd: &redis::Cmd) {
        let conn = &mut self.redis;
        let _: redis::Value = self
            .rt
            .block_on(cmd.query_async(conn))
            .expect("redis answers");
    }
}

pub struct InventoryAgainstModel;

impl StateMachineTest for InventoryAgainstModel {
    type SystemUnderTest = Real;
    type Reference = InventoryModel;

    fn init_test(model: &Model) -> Real {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("flashsale_server=debug,flashsale_harness=debug")
            .with_test_writer()
            .try_init();
        let rt = crate::runtime();
        let deps = Dependencies::from_env();
        let (server, proxy, sale_id, redis) = rt.block_on(async {
            let redis_addr = deps
                .redis_url
                .trim_start_matches("redis://")
                .trim_end_matches('/')
                .parse()
                .expect("REDIS_URL is host:port");
            let proxy = FaultProxy::start(redis_addr).await.expect("proxy");
            let overrides = ServerOverrides {
                redis_url: Some(format!("redis://{}/", proxy.local_addr())),
                redis_timeout: Some(Duration::from_millis(100)),
                ..ServerOverrides::default()
            };
            let server = InProcessServer::start(&deps, InventoryStrategy::Redis, &overrides, false)
                .await
                .expect("server");
            let admin = AdminClient::new(&server.base_url, &server.admin_token);
            let mut scenario = flashsale_harness::scenario::Scenario::from_toml_str(
                &format!(
                    "[sale]\ncap = {}\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n\
                     [buyers]\ncount = 0\nquantity = 1\n",
                    model.cap
                ),
                "model",
            )
            .expect("scenario");
            scenario.name = "model".into();
            let sale_id = admin.create_live_sale(&scenario).await.expect("sale");
            let redis = redis::Client::open(deps.redis_url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .expect("redis");
            (server, proxy, sale_id, redis)
        });
        Real {
            admin: AdminClient::new(&server.base_url, &server.admin_token),
            base_url: server.base_url.clone(),
            server: Some(server),
            rt,
            proxy,
            http: reqwest::Client::new(),
            sale_id,
            redis,
            key_prefix: uuid::Uuid::new_v4().simple().to_string(),
            order_ids: BTreeMap::new(),
        }
    }

    fn apply(mut real: Real, model: &Model, step: Step) -> Real {
        match step {
            Step::RestartEmpty => {
                let key = real.counter_key();
                real.redis_cmd(redis::cmd("DEL").arg(key));
            }
            Step::Rollback(by) => {
                let key = real.counter_key();
                let conn = &mut real.redis;
                let current: Option<i64> = real
                    .rt
                    .block_on(redis::cmd("GET").arg(&key).query_async(conn))
                    .unwrap();
                if let Some(current) = current {
                    let back = (current - i64::from(by)).max(0);
                    real.redis_cmd(redis::cmd("SET").arg(key).arg(back));
                }
            }
            Step::FlushScripts => real.redis_cmd(redis::cmd("SCRIPT").arg("FLUSH")),
            Step::Buy { key, quantity }
            | Step::BuyWhileRepliesLost { key, quantity }
            | Step::BuyWhileRedisDown { key, quantity } => {
                let fault = match step {
                    Step::BuyWhileRepliesLost { .. } => LinkFault::BlackholeReplies,
                    Step::BuyWhileRedisDown { .. } => LinkFault::Blackhole,
                    _ => LinkFault::None,
                };
                real.proxy.set_fault(fault);
                let (status, body) = real.buy(key, quantity);
                real.proxy.set_fault(LinkFault::None);
                match model.orders.get(&key) {
                    Some(&ordered) if ordered == quantity => {
                        assert_eq!(status, 201, "{step:?}: the model sold it: {body}");
                        let id = body["order_id"].as_str().expect("an order id").to_owned();
                        let first = real.order_ids.entry(key).or_insert_with(|| id.clone());
                        assert_eq!(*first, id, "{step:?}: a retry returns the first order");
                    }
                    Some(_) => {
                        assert_eq!(status, 422, "{step:?}: same key, other body: {body}");
                        assert_eq!(body["error"]["code"], "idempotency_key_reused");
                    }
                    None => {
                        assert_eq!(status, 409, "{step:?}: the model is sold out: {body}");
                        assert_eq!(body["error"]["code"], "sold_out");
                    }
                }
            }
        }
        real
    }

    fn check_invariants(real: &Real, model: &Model) {
        let view = real
            .rt
            .block_on(real.admin.inventory(&real.sale_id))
            .expect("inventory view");
        assert_eq!(
            view.units_in_orders,
            i64::from(model.sold),
            "the ledger holds exactly the model's units"
        );
    }

    fn teardown(mut real: Real, _: Model) {
        if let Some(server) = real.server.take() {
            real.rt.block_on(server.shutdown());
        }
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: crate::cases(8),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/oversell_property_model.txt",
        ))),
        max_shrink_iters: 256,
        ..Config::default()
    })]

    #[test]
    fn oversell_property_model_inventory_service_matches_the_reference(
        sequential 1..30 => InventoryAgainstModel
    );
}
