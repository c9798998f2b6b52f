#!/usr/bin/env bash
# Benchmark of the figures in docs/performance.md: measures flashsale side by side with the tools a user would pick
# instead, in the same run on the same machine, and reports ratios (machines here are noisy, so
# read the ratios, not the absolute figures). Every pair is run alternately ROUNDS times; the
# four /health and sold-out figures of G1 and G2, cheap to take, are taken as SAMPLES short runs
# of SAMPLE_DURATION seconds each per round, the four in turn (see "How we measure" in
# docs/performance.md).
#
#   G1  requests/s against GET /health: `flashsale blast` (every attempt recorded) vs oha and
#       wrk, same connections and duration                   -> ratios, targets >= 1.0 and >= 1.0
#   G2  sold-out decisions/s (POST buy on a sold-out sale, distinct Idempotency-Keys)
#       vs the same server's GET /health, same wrk settings            -> ratio, target >= 0.8
#   G3  durable orders/s (buys that succeed on a big-cap sale, Redis path)
#       vs pgbench inserting one order row per transaction               -> ratio, target >= 1.0
#   G4  claims/s of a server started with --inventory postgres
#       vs pgbench running the naive hot-row conditional UPDATE + INSERT  -> ratio, target >= 6
#   G9  cart-hold journeys/s (reserve one unit, then check it out; Redis path, and a server
#       started with --inventory postgres) vs pgbench running the seed's design: a pessimistic
#       row lock on the sale, availability = cap - sold - live reservations, then the checkout
#       under the same lock                                               -> ratios, target >= 1
#   G5  `flashsale run scenarios/big-drop.toml`: time to sell out, p99 of the burst (record)
#   G6  checker time for a 1,000,000-attempt synthetic history           -> target < 2 s
#   G7  peak RSS of that process                                          -> target < 300 MB
#
# Output: results/bench/<UTC timestamp>/bench.json (every round's raw figure, the median and the
# spread = (max - min) / median of each, the ratios of the medians, which the targets judge, and
# the same ratios round by round) and bench.md (the same as a table). The wrk/pgbench logs of
# every round are kept next to them. Every measurement also
# records the CPU used meanwhile by processes that are not part of the benchmark
# (scripts/bench-load.py): a round where they used more than DISTURBED cores (default 0.25) is
# marked disturbed in both files, with the processes to blame.
#
# Usage: scripts/bench.sh
#   env: ROUNDS=3 DURATION=10 CLIENTS=32 THREADS=2 SAMPLES=4 SAMPLE_DURATION=3
# Needs PostgreSQL and Redis on 127.0.0.1 (scripts/ensure-services.sh), root or sudo for
# `apt-get install wrk` when wrk is missing; oha is installed with `cargo install` when missing
# and skipped when that fails or takes longer than OHA_INSTALL_TIMEOUT seconds (default 600).
# Every socket is on loopback. Not part of CI's test run.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-32}
THREADS=${THREADS:-2}
SAMPLES=${SAMPLES:-4}
SAMPLE_DURATION=${SAMPLE_DURATION:-3}
OHA_INSTALL_TIMEOUT=${OHA_INSTALL_TIMEOUT:-600}
DISTURBED=${DISTURBED:-0.25}
TOKEN=flashsale-bench-token
PORT_REDIS=${PORT_REDIS:-18080}
PORT_PG=${PORT_PG:-18081}
TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/results/bench/$TS
DB=flashsale_bench_$(echo "$TS" | tr 'A-Z' 'a-z')
DB_URL=postgres://postgres@127.0.0.1:5432/$DB
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d "$DB")
mkdir -p "$OUT/logs"
RAW=$OUT/raw.tsv
LOAD=$OUT/load.tsv
: >"$RAW"
: >"$LOAD"

log() { echo "bench: $*" >&2; }
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RAW"; } # figure round value
# Runs a measuring command (it prints the figure) and records its figure, and the CPU other
# processes used meanwhile (cores, and the biggest of them) in load.tsv.
measure() { # figure round command...
  local fig=$1 round=$2 started value
  shift 2
  python3 scripts/bench-load.py snapshot "$OUT/logs/cpu-before.json"
  started=$(date +%s.%N)
  value=$("$@")
  python3 scripts/bench-load.py snapshot "$OUT/logs/cpu-after.json"
  record "$fig" "$round" "$value"
  printf '%s\t%s\t%s\n' "$fig" "$round" "$(python3 scripts/bench-load.py foreign \
    "$OUT/logs/cpu-before.json" "$OUT/logs/cpu-after.json" \
    "$(python3 -c 'import sys,time; print(time.time() - float(sys.argv[1]))' "$started")")" >>"$LOAD"
}

# --- tools ------------------------------------------------------------------------------------
scripts/ensure-services.sh >&2
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  as_root apt-get install -y wrk >&2
fi
OHA=$(command -v oha || true)
[ -z "$OHA" ] && [ -x "$HOME/.cargo/bin/oha" ] && OHA=$HOME/.cargo/bin/oha
if [ -z "$OHA" ]; then
  log "installing oha (cargo install oha --locked, at most ${OHA_INSTALL_TIMEOUT}s)"
  if timeout "$OHA_INSTALL_TIMEOUT" cargo install oha --locked >&2; then
    OHA=$HOME/.cargo/bin/oha
  else
    log "oha not installed (too slow or failed): G1 has wrk only"
  fi
fi

# The build `cargo build --release --workspace` makes, reused as it is: the same package
# selection, so the same features and no rebuild of the dependency tree (checker-million is a
# binary of the tests crate for that reason: an example would pull in dev-dependencies).
log "building release (cargo build --release --workspace; nothing to do when it is up to date)"
cargo build --release --locked --workspace >&2

# --- servers ----------------------------------------------------------------------------------
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" 2>/dev/null || true
}
trap cleanup EXIT

psql -X -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB"

start_server() { # port inventory
  DATABASE_URL=$DB_URL FLASHSALE_ADMIN_TOKEN=$TOKEN RUST_LOG=warn \
    target/release/flashsale-server --listen "127.0.0.1:$1" --inventory "$2" \
    >"$OUT/logs/server-$2.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0
    sleep 0.1
  done
  log "server on port $1 did not start, see $OUT/logs/server-$2.log"
  exit 2
}
start_server "$PORT_REDIS" redis
start_server "$PORT_PG" postgres

new_sale() { # port cap -> prints the sale id of an active sale
  local now end id
  now=$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)
  end=$(date -u -d '+6 hours' +%Y-%m-%dT%H:%M:%SZ)
  id=$(curl -sf -X POST "http://127.0.0.1:$1/admin/sales" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench\",\"starts_at\":\"$now\",\"ends_at\":\"$end\",\"cap\":$2,\"products\":[{\"product_id\":\"p\",\"sale_price_cents\":100}]}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -sf -X POST "http://127.0.0.1:$1/admin/sales/$id/activate" -H "Authorization: Bearer $TOKEN" >/dev/null
  echo "$id"
}

# wrk's requests/s, after checking the answers were the expected kind: `expect` is `2xx` (no
# non-2xx answer allowed) or `non2xx` (every answer must be non-2xx, e.g. 409 sold_out). Like
# every tool here, it runs RUN_DURATION seconds when that is set (G1's and G2's samples),
# DURATION otherwise.
wrk_rate() { # logname expect wrk-args...
  local name=$1 expect=$2 total non2xx
  shift 2
  wrk -t"$THREADS" -c"$CLIENTS" -d"${RUN_DURATION:-$DURATION}s" "$@" >"$OUT/logs/$name.log" 2>&1
  total=$(awk '/requests in/ {print $1}' "$OUT/logs/$name.log")
  non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' "$OUT/logs/$name.log")
  non2xx=${non2xx:-0}
  if grep -q 'Socket errors' "$OUT/logs/$name.log"; then
    log "$name: $(grep 'Socket errors' "$OUT/logs/$name.log")"
  fi
  # More than 1 % of the wrong kind of answer and the rate is not the figure's: nothing is
  # recorded for the round (a server answering 503 fast once looked 5x faster than it was).
  if [ "$expect" = 2xx ] && [ "$non2xx" != 0 ]; then
    log "$name: $non2xx of $total answers were not 2xx (see $OUT/logs/$name.log)"
    [ $((non2xx * 100)) -gt "$total" ] && { log "$name: round not recorded"; return 0; }
  elif [ "$expect" = non2xx ] && [ "$non2xx" != "$total" ]; then
    log "$name: only $non2xx of $total answers were non-2xx"
    [ $(((total - non2xx) * 100)) -gt "$total" ] && { log "$name: round not recorded"; return 0; }
  fi
  awk '/Requests\/sec/ {print $2}' "$OUT/logs/$name.log"
}

# Half a rate (a hold journey is two requests), empty when the rate is.
half() { [ -n "$1" ] && python3 -c 'import sys; print(float(sys.argv[1]) / 2)' "$1" || true; }
journeys_rate() { half "$(wrk_rate "$@")"; } # wrk_rate's arguments

# The harness's own rate: `flashsale blast`, every attempt recorded, same connections, threads
# and duration as wrk. Reported only if every answer was 2xx (like wrk_rate's check).
blast_rate() { # logname url
  target/release/flashsale blast "$2" -c "$CLIENTS" -t "$THREADS" -d "${RUN_DURATION:-$DURATION}s" --json \
    --out "$OUT/logs/$1" >"$OUT/logs/$1.json" 2>"$OUT/logs/$1.err" || { log "$1: blast failed (see logs)"; return 0; }
  python3 - "$OUT/logs/$1.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
if s["errors"]:
    print(f"bench: {sys.argv[1]}: {s['errors']} of {s['requests']} attempts failed: {s['errors_by_kind']}", file=sys.stderr)
print(s["requests_per_s"])
PY
}

oha_rate() { # logname url
  "$OHA" -z "${RUN_DURATION:-$DURATION}s" -c "$CLIENTS" --no-tui --output-format json "$2" \
    >"$OUT/logs/$1.json" 2>"$OUT/logs/$1.err" || true
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["requestsPerSec"])' \
    "$OUT/logs/$1.json" 2>/dev/null || echo ""
}

# --- pgbench scratch tables (same PostgreSQL, same database as the server) -------------------
"${PSQL[@]}" <<'SQL'
CREATE TABLE bench_orders (LIKE orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_inventory (id int PRIMARY KEY, remaining bigint NOT NULL);
INSERT INTO bench_inventory VALUES (1, 1000000000);
-- The seed's reservations (FlashSaleReservationService): a sale row locked FOR UPDATE while
-- availability is computed from its sold count and the live reservations.
CREATE TABLE bench_sale (id int PRIMARY KEY, cap bigint NOT NULL, sold bigint NOT NULL);
INSERT INTO bench_sale VALUES (1, 1000000000, 0);
CREATE TABLE bench_reservations (id bigserial PRIMARY KEY, sale int NOT NULL, buyer text NOT NULL,
  quantity int NOT NULL, expires_at timestamptz NOT NULL, state text NOT NULL);
CREATE INDEX bench_reservations_live ON bench_reservations (sale) WHERE state = 'live';
SQL
BENCH_SALE=00000000-0000-4000-8000-000000000001
cat >"$OUT/logs/pgbench-insert.sql" <<SQL
INSERT INTO bench_orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents, idempotency_key, decided_by)
VALUES (gen_random_uuid(), '$BENCH_SALE', 'p', 'b-' || :client_id, 1, 100, gen_random_uuid()::text, 'pgbench');
SQL
cat >"$OUT/logs/pgbench-hot-row.sql" <<SQL
BEGIN;
UPDATE bench_inventory SET remaining = remaining - 1 WHERE id = 1 AND remaining >= 1;
INSERT INTO bench_orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents, idempotency_key, decided_by)
VALUES (gen_random_uuid(), '$BENCH_SALE', 'p', 'b-' || :client_id, 1, 100, gen_random_uuid()::text, 'pgbench');
END;
SQL
cat >"$OUT/logs/pgbench-seed-holds.sql" <<SQL
BEGIN;
SELECT cap, sold FROM bench_sale WHERE id = 1 FOR UPDATE;
SELECT coalesce(sum(quantity), 0) FROM bench_reservations
  WHERE sale = 1 AND state = 'live' AND expires_at > now();
INSERT INTO bench_reservations (sale, buyer, quantity, expires_at, state)
  VALUES (1, 'b-' || :client_id, 1, now() + interval '10 minutes', 'live') RETURNING id AS hold \gset
END;
BEGIN;
SELECT cap, sold FROM bench_sale WHERE id = 1 FOR UPDATE;
UPDATE bench_reservations SET state = 'checked_out' WHERE id = :hold AND state = 'live' AND expires_at > now();
UPDATE bench_sale SET sold = sold + 1 WHERE id = 1;
INSERT INTO bench_orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents, idempotency_key, decided_by)
VALUES (gen_random_uuid(), '$BENCH_SALE', 'p', 'b-' || :client_id, 1, 100, gen_random_uuid()::text, 'pgbench');
END;
SQL
pgbench_rate() { # logname script
  pgbench -n -h 127.0.0.1 -U postgres -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M prepared \
    -f "$OUT/logs/$2" "$DB" >"$OUT/logs/$1.log" 2>&1
  awk '/^tps = / {print $3}' "$OUT/logs/$1.log"
}

# A sold-out sale: cap 1, the one unit bought.
SOLD_OUT_SALE=$(new_sale "$PORT_REDIS" 1)
curl -sf -X POST "http://127.0.0.1:$PORT_REDIS/sales/$SOLD_OUT_SALE/orders" -H 'Content-Type: application/json' \
  -H 'Idempotency-Key: bench-first' -d '{"buyer_id":"b-first","quantity":1}' >/dev/null

H="http://127.0.0.1:$PORT_REDIS"
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS"
  # G1 and G2: the trivial route with the three tools, and sold-out decisions with wrk, as
  # SAMPLES short runs each, the four in turn. This machine's speed drifts by tens of percent
  # within a minute; one 10 s run of each per round put the sides of a ratio in different
  # spells, and short runs in turn put every side in all of them. Which run goes first rotates
  # with the sample, so none always gets the quietest slot.
  for sample in $(seq 1 "$SAMPLES"); do
    slot=$(((round - 1) * SAMPLES + sample))
    order=(harness wrk oha soldout)
    shift_by=$(((slot - 1) % 4))
    for tool in "${order[@]:shift_by}" "${order[@]:0:shift_by}"; do
      case $tool in
        wrk) RUN_DURATION=$SAMPLE_DURATION measure health_wrk "$slot" wrk_rate "health-wrk-$slot" 2xx "$H/health" ;;
        oha) [ -n "$OHA" ] && RUN_DURATION=$SAMPLE_DURATION measure health_oha "$slot" oha_rate "health-oha-$slot" "$H/health" ;;
        harness) RUN_DURATION=$SAMPLE_DURATION measure health_harness "$slot" blast_rate "health-harness-$slot" "$H/health" ;;
        soldout) RUN_DURATION=$SAMPLE_DURATION measure soldout_wrk "$slot" wrk_rate "soldout-$slot" non2xx \
          -s scripts/bench.lua "$H/sales/$SOLD_OUT_SALE/orders" -- "so-$TS-$slot" ;;
      esac
    done
  done
  # G3: durable orders (Redis path) vs pgbench plain INSERT.
  sale=$(new_sale "$PORT_REDIS" 1000000000)
  measure orders_wrk "$round" wrk_rate "orders-$round" 2xx -s scripts/bench.lua \
    "$H/sales/$sale/orders" -- "ord-$TS-$round"
  measure insert_pgbench "$round" pgbench_rate "pgbench-insert-$round" pgbench-insert.sql
  # G4: PostgreSQL claim path vs the naive hot-row UPDATE + INSERT.
  sale=$(new_sale "$PORT_PG" 1000000000)
  measure pgclaims_wrk "$round" wrk_rate "pgclaims-$round" 2xx -s scripts/bench.lua \
    "http://127.0.0.1:$PORT_PG/sales/$sale/orders" -- "pg-$TS-$round"
  measure hotrow_pgbench "$round" pgbench_rate "pgbench-hot-row-$round" pgbench-hot-row.sql
  # G9: cart-hold journeys (reserve + checkout) on both paths vs the seed's row-lock design.
  sale=$(new_sale "$PORT_REDIS" 1000000000)
  measure holds_wrk "$round" journeys_rate "holds-$round" 2xx -s scripts/bench-holds.lua \
    "$H/sales/$sale" -- "hold-$TS-$round"
  sale=$(new_sale "$PORT_PG" 1000000000)
  measure pgholds_wrk "$round" journeys_rate "pgholds-$round" 2xx -s scripts/bench-holds.lua \
    "http://127.0.0.1:$PORT_PG/sales/$sale" -- "pghold-$TS-$round"
  measure seedholds_pgbench "$round" pgbench_rate "pgbench-seed-holds-$round" pgbench-seed-holds.sql
done

# --- G5, G6, G7 -------------------------------------------------------------------------------
for round in $(seq 1 "$ROUNDS"); do
  log "big drop $round/$ROUNDS"
  target/release/flashsale run scenarios/big-drop.toml --out "$OUT/big-drop-$round" \
    >"$OUT/logs/big-drop-$round.log" 2>&1 || log "big drop $round: exit $? (see logs)"
  summary=$(find "$OUT/big-drop-$round" -name summary.json | head -n1)
  if [ -n "$summary" ]; then
    record bigdrop_sellout_ms "$round" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sellout"]["time_to_sell_out_ms"] or "")' "$summary")"
    record bigdrop_p99_ms "$round" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["latency"]["from_intended"]["all"]["p99_us"] / 1000)' "$summary")"
  fi
  log "checker on 1,000,000 attempts $round/$ROUNDS"
  target/release/checker-million >"$OUT/logs/checker-$round.json"
  record checker_s "$round" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["check_s"])' "$OUT/logs/checker-$round.json")"
  record checker_peak_rss_mb "$round" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["peak_rss_mb"])' "$OUT/logs/checker-$round.json")"
done

# --- report -----------------------------------------------------------------------------------
python3 - "$OUT" "$TS" "$ROUNDS" "$DURATION" "$CLIENTS" "$THREADS" "$(nproc)" "$DISTURBED" "$SAMPLES" "$SAMPLE_DURATION" <<'PY'
import json, statistics, sys
out, ts, rounds, duration, clients, threads, cores, disturbed_at, samples, sample_duration = sys.argv[1:]
disturbed_at = float(disturbed_at)
raw = {}
for line in open(f"{out}/raw.tsv"):
    fig, rnd, val = line.rstrip("\n").split("\t")
    if val:
        raw.setdefault(fig, []).append((int(rnd), float(val)))
# CPU used by other processes during each measurement (cores), and who used it.
load = {}
for line in open(f"{out}/load.tsv"):
    fig, rnd, cores_used, top = line.rstrip("\n").split("\t")
    load[(fig, int(rnd))] = (float(cores_used), top)
figs = {}
for fig, pairs in raw.items():
    vals = [v for _, v in pairs]
    med = statistics.median(vals)
    foreign = [load.get((fig, r), (None, "-")) for r, _ in pairs]
    figs[fig] = {"rounds": vals, "median": med, "min": min(vals), "max": max(vals),
                 "spread": (max(vals) - min(vals)) / med if med else None,
                 "foreign_cpu_cores": [c for c, _ in foreign],
                 "disturbed": [r for (r, _), (c, _) in zip(pairs, foreign)
                               if c is not None and c > disturbed_at],
                 "disturbed_by": {str(r): top for (r, _), (c, top) in zip(pairs, foreign)
                                  if c is not None and c > disturbed_at}}
def med(f): return figs[f]["median"] if f in figs else None
def ratio(a, b): return med(a) / med(b) if med(a) is not None and med(b) else None
targets = [
    ("G1 oha", "harness (every attempt recorded) vs oha, GET /health", "health_harness", "health_oha", ">= 1.0", 1.0),
    ("G1 wrk", "harness (every attempt recorded) vs wrk, GET /health", "health_harness", "health_wrk", ">= 1.0", 1.0),
    ("G2", "sold-out decisions/s vs GET /health (wrk)", "soldout_wrk", "health_wrk", ">= 0.8", 0.8),
    ("G3", "durable orders/s vs pgbench INSERT", "orders_wrk", "insert_pgbench", ">= 1.0", 1.0),
    ("G4", "claims/s (--inventory postgres) vs pgbench hot-row UPDATE+INSERT", "pgclaims_wrk", "hotrow_pgbench", ">= 6", 6.0),
    ("G9", "hold journeys/s (reserve + checkout, Redis path) vs the seed's row-lock design (pgbench)", "holds_wrk", "seedholds_pgbench", ">= 1", 1.0),
    ("G9 pg", "hold journeys/s (--inventory postgres) vs the seed's row-lock design (pgbench)", "pgholds_wrk", "seedholds_pgbench", ">= 1", 1.0),
]
# The same ratio round by round: both figures of a round were measured minutes apart, so on a
# machine whose speed drifts during a run these show how much of a median's ratio is the drift.
# Informative only: the target is judged on the ratio of medians.
def round_ratios(a, b):
    num, den = dict(raw.get(a, [])), dict(raw.get(b, []))
    return [num[r] / den[r] for r in sorted(num) if r in den and den[r]]
ratios = {}
for gid, what, a, b, target, need in targets:
    r = ratio(a, b) if a else None
    ratios[gid] = {"what": what, "numerator": a, "denominator": b, "ratio": r, "target": target,
                   "met": (r >= need) if (r is not None and need) else None,
                   "round_ratios": round_ratios(a, b)}
absolute = {
    "G5": {"sellout_ms": med("bigdrop_sellout_ms"), "p99_ms": med("bigdrop_p99_ms"), "target": "record"},
    "G6": {"checker_s": med("checker_s"), "target": "< 2 s",
           "met": med("checker_s") < 2 if med("checker_s") is not None else None},
    "G7": {"peak_rss_mb": med("checker_peak_rss_mb"), "target": "< 300 MB",
           "met": med("checker_peak_rss_mb") < 300 if med("checker_peak_rss_mb") is not None else None},
}
doc = {"timestamp": ts, "rounds": int(rounds), "duration_s": int(duration), "clients": int(clients),
       "samples_per_round": int(samples), "sample_duration_s": float(sample_duration),
       "threads": int(threads), "cores": int(cores), "disturbed_above_cores": disturbed_at,
       "figures": figs, "ratios": ratios, "absolute": absolute}
json.dump(doc, open(f"{out}/bench.json", "w"), indent=2)
labels = {
    "health_harness": "GET /health, flashsale blast (req/s, every attempt recorded)",
    "health_wrk": "GET /health, wrk (req/s)", "health_oha": "GET /health, oha (req/s)",
    "soldout_wrk": "sold-out buys, wrk (decisions/s)", "orders_wrk": "successful buys, Redis path (orders/s)",
    "insert_pgbench": "pgbench one-row INSERT (tps)", "pgclaims_wrk": "successful buys, --inventory postgres (claims/s)",
    "hotrow_pgbench": "pgbench hot-row UPDATE + INSERT (tps)",
    "holds_wrk": "hold journeys, Redis path (reserve + checkout/s)",
    "pgholds_wrk": "hold journeys, --inventory postgres (reserve + checkout/s)",
    "seedholds_pgbench": "pgbench seed row-lock reserve + checkout (journeys/s)",
    "bigdrop_sellout_ms": "big-drop time to sell out (ms)",
    "bigdrop_p99_ms": "big-drop p99 from intended send (ms)", "checker_s": "checker, 1,000,000 attempts (s)",
    "checker_peak_rss_mb": "checker process peak RSS (MB)",
}
fmt = lambda v: "—" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}")
lines = [f"# Benchmark {ts}", "",
         f"{rounds} rounds of {duration} s, {clients} clients, {threads} wrk/pgbench threads, {cores} cores, loopback.",
         f"The four /health and sold-out figures (G1, G2): {samples} runs of {sample_duration} s each per round, in turn.",
         "Median of the rounds; spread = (max − min) / median. A round marked † was disturbed: other",
         f"processes used more than {disturbed_at} cores while it ran (listed below the table).", "",
         "| figure | median | min | max | spread | rounds |", "|---|---|---|---|---|---|"]
notes = []
for key, label in labels.items():
    if key in figs:
        f = figs[key]
        shown = [fmt(v) + (" †" if i + 1 in f["disturbed"] else "") for i, v in enumerate(f["rounds"])]
        lines.append(f"| {label} | {fmt(f['median'])} | {fmt(f['min'])} | {fmt(f['max'])} | "
                     f"{f['spread']*100:.0f} % | {', '.join(shown)} |")
        for r in f["disturbed"]:
            notes.append(f"- {label}, round {r}: other processes used "
                         f"{f['foreign_cpu_cores'][r - 1]:.2f} cores ({f['disturbed_by'][str(r)]})")
worst = max((c for f in figs.values() for c in f["foreign_cpu_cores"] if c is not None), default=None)
lines += [""] + (notes or [f"No round was disturbed (the most other processes used in one was "
                           f"{worst:.2f} cores)." if worst is not None else "No load was recorded."])
lines += ["", "Round by round: the same ratio within each round (both figures measured minutes apart; for",
          "G1 and G2, within each sample, seconds apart); informative, the target is judged on the",
          "ratio of medians.", "",
          "| # | ratio of medians | measured | round by round | target | met |",
          "|---|---|---|---|---|---|"]
for gid, r in ratios.items():
    met = "—" if r["met"] is None else ("yes" if r["met"] else "**no**")
    measured = "—" if r["ratio"] is None else f"{r['ratio']:.2f}×"
    by_round = ", ".join(f"{x:.2f}×" for x in r["round_ratios"]) or "—"
    lines.append(f"| {gid} | {r['what']} | {measured} | {by_round} | {r['target']} | {met} |")
a = absolute
lines.append(f"| G5 | big drop: sell-out time / p99 | {fmt(a['G5']['sellout_ms'])} ms / {fmt(a['G5']['p99_ms'])} ms | — | record | — |")
for gid, key, unit in (("G6", "checker_s", "s"), ("G7", "peak_rss_mb", "MB")):
    met = "—" if a[gid]["met"] is None else ("yes" if a[gid]["met"] else "**no**")
    lines.append(f"| {gid} | checker on 1,000,000 attempts | {fmt(a[gid][key])} {unit} | — | {a[gid]['target']} | {met} |")
open(f"{out}/bench.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "results in $OUT"
