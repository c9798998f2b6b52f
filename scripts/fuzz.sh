#!/usr/bin/env bash
# API fuzzing of the reference server against its contract (issue 13, item 6).
#
# Starts target/debug/flashsale-server on loopback with a database of its own (created by the
# server, dropped at exit) and a random admin token, seeds a few sales the buy routes can reach
# (live and capped, live and scarce with two products and a per-buyer limit, live and unlimited,
# never activated, and one kept for activate/expire), and runs schemathesis on
# server/openapi.json: examples from the schema and outside it, every method on every path, and
# stateful sequences (create, activate, buy, export). Its checks fail the run on any 5xx, any
# status, body or header the contract does not list, a schema-valid request refused or a
# schema-invalid one accepted. Then scripts/fuzz/ledger_check.py proves that no refused request
# changed the ledger, a sale's state or its counters, and prints the number of requests sent and
# of server errors.
#
# Usage: scripts/fuzz.sh [--no-build]
# Environment: FUZZ_MAX_EXAMPLES (per operation and phase, default 200), FUZZ_SEED (default 13,
# so CI sends the same requests every time; "random" draws one and prints it), DATABASE_URL's
# server (default postgres://postgres@127.0.0.1:5432), REDIS_URL, FUZZ_OUT (keep the reports
# there; default a new directory under target/fuzz/, removed unless the run failed).
# Exit status: 0 passed, 1 a failure (printed), 2 set-up error.
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples=${FUZZ_MAX_EXAMPLES:-200}
seed=${FUZZ_SEED:-13}
if [ "$seed" = random ]; then seed=$(( $(od -An -tu4 -N4 /dev/urandom) )); fi
pg_server=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pg_server=${pg_server%/*}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/}

# schemathesis in a venv named after the pinned requirements, so a change of pins installs
# afresh and an unchanged one is reused across runs and clones.
requirements=scripts/fuzz/requirements.txt
venv="${XDG_CACHE_HOME:-$HOME/.cache}/flashsale/schemathesis-$(sha256sum "$requirements" | cut -c1-12)"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    echo "fuzz: installing schemathesis into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" ||
        { echo "fuzz: could not install schemathesis from PyPI" >&2; exit 2; }
fi

if [ "${1:-}" != --no-build ]; then
    cargo build -p flashsale-server --locked --quiet
fi

# Reports under target/ (git-ignored), not /tmp: nothing else cleans them up mid-run.
mkdir -p target/fuzz
out=${FUZZ_OUT:-$(mktemp -d "$PWD/target/fuzz/run.XXXXXX")}
mkdir -p "$out"
db="flashsale_fuzz_$(date +%s)_$$"
token="fuzz-$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')"
server_pid=
failed=1
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    # The sales' Redis counters are keyed by sale id; remove only this run's.
    psql -X -At -d "$pg_server/$db" -c 'SELECT id FROM flash_sales' 2>/dev/null |
        while read -r sale; do
            redis-cli -u "$redis_url" DEL "flash_sale:{$sale}:inventory:sold" >/dev/null || true
        done
    psql -X -q -d "$pg_server/postgres" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" ||
        echo "fuzz: could not drop database $db" >&2
    if [ "$failed" = 0 ] && [ -z "${FUZZ_OUT:-}" ]; then rm -rf "$out"; fi
}
trap cleanup EXIT

# Port 0: the server picks a free port and logs it.
NO_COLOR=1 RUST_LOG=info,sqlx=warn target/debug/flashsale-server --listen 127.0.0.1:0 \
    --database-url "$pg_server/$db" --redis-url "$redis_url" --admin-token "$token" \
    >"$out/server.log" 2>&1 &
server_pid=$!
base=
for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*flashsale-server listening addr=\([0-9.:]*\).*/\1/p' "$out/server.log")
    if [ -n "$addr" ]; then base="http://$addr"; break; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$base" ]; then
    echo "fuzz: the server did not start; its log:" >&2
    cat "$out/server.log" >&2
    exit 2
fi

admin() { # METHOD PATH [BODY]: the answer's body; exits on a non-2xx answer
    curl -sS --fail-with-body -X "$1" "$base$2" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' ${3:+--data "$3"}
}
new_sale() { # NAME CAP PER_BUYER_LIMIT PRODUCTS_JSON: the new sale's id
    local window
    window="\"starts_at\":\"$(date -u -d '-1 hour' +%FT%TZ)\",\"ends_at\":\"$(date -u -d '+1 day' +%FT%TZ)\""
    admin POST /admin/sales "{\"name\":\"$1\",$window,\"cap\":$2,\"per_buyer_limit\":$3,\"products\":$4}" |
        sed -n 's/.*"id":"\([0-9a-f-]*\)".*/\1/p'
}
one='[{"product_id":"tee","sale_price_cents":1500}]'
two='[{"product_id":"tee","sale_price_cents":1500},{"product_id":"cap","sale_price_cents":900}]'
plenty=$(new_sale plenty 1000000 null "$one")
scarce=$(new_sale scarce 5 2 "$two")
unlimited=$(new_sale unlimited null null "$one")
scheduled=$(new_sale scheduled 10 null "$one")
spare=$(new_sale spare 10 null "$one")
for sale in "$plenty" "$scarce" "$unlimited"; do admin POST "/admin/sales/$sale/activate" >/dev/null; done
printf '{"%s":"active","%s":"active","%s":"active","%s":"scheduled","%s":"scheduled"}\n' \
    "$plenty" "$scarce" "$unlimited" "$scheduled" "$spare" >"$out/seeded.json"

# Most generated sale ids are the seeded ones, so requests reach the claim paths instead of
# stopping at 404; the rest stay random. activate/expire get the spare sale only: expiring a
# live sale would end every later buy at sale_not_live.
cat >"$out/schemathesis.toml" <<EOF
base-url = "$base"
seed = $seed
workers = 1
continue-on-failure = true
hooks = "$PWD/scripts/fuzz/hooks.py"
request-timeout = 15
# No state carried between runs: CI sends what the seed alone decides.
[cache]
enabled = false
[generation]
max-examples = $max_examples
[phases.stateful]
max-steps = 8
# A body the schema refuses may also be too large to read at all: 413 body_too_large is as good a
# refusal as 422 (schemathesis's default list omits it).
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5XX"]
[auth.openapi.bearerAuth]
bearer = "$token"
[dictionaries.buyable]
values = ["$plenty", "$scarce", "$unlimited", "$scheduled"]
[dictionaries.any_sale]
values = ["$plenty", "$scarce", "$unlimited", "$scheduled", "$spare"]
[dictionaries.spare]
values = ["$spare"]
[dictionaries.products]
values = ["tee", "cap"]
[[operations]]
include-operation-id = ["buy", "getSale"]
parameters = { "path.sale_id" = { dictionary = "buyable", probability = 0.85 }, "body.product_id" = { dictionary = "products", probability = 0.7 } }
[[operations]]
include-operation-id = ["reserveHold", "checkoutHold", "releaseHold"]
parameters = { "path.sale_id" = { dictionary = "buyable", probability = 0.85 }, "body.product_id" = { dictionary = "products", probability = 0.7 } }
[[operations]]
include-operation-id = ["exportOrders", "inventoryView", "exportHolds", "preflightSale", "exportAlerts"]
parameters = { "path.sale_id" = { dictionary = "any_sale", probability = 0.85 } }
[[operations]]
include-operation-id = ["activateSale", "expireSale"]
parameters = { "path.sale_id" = { dictionary = "spare", probability = 0.85 } }
EOF

echo "fuzz: schemathesis against $base (seed $seed, up to $max_examples examples per operation and phase)"
started=$(date +%s)
status=0
"$venv/bin/schemathesis" --config-file "$out/schemathesis.toml" run server/openapi.json \
    --no-color --report har,junit --report-dir "$out" \
    --report-har-path "$out/requests.har" >"$out/schemathesis.txt" 2>&1 || status=$?
# Its summary: failures (if any), the phases, the count of test cases.
sed -n '/^=* FAILURES =*$/,$p' "$out/schemathesis.txt" | head -150
[ -s "$out/requests.har" ] || { echo "fuzz: schemathesis wrote no requests (exit $status)" >&2; cat "$out/schemathesis.txt" >&2; exit 2; }
check=0
"$venv/bin/python" scripts/fuzz/ledger_check.py "$out/requests.har" "$out/seeded.json" "$base" \
    "$token" "$pg_server/$db" || check=$?
if grep -q ' ERROR \| WARN ' "$out/server.log"; then
    echo "fuzz: the server logged these warnings and errors:"
    grep ' ERROR \| WARN ' "$out/server.log" | head -20
fi
echo "fuzz: took $(( $(date +%s) - started ))s"
if [ "$status" != 0 ] || [ "$check" != 0 ]; then
    echo "fuzz: FAILED (schemathesis exit $status, ledger check exit $check); reports in $out" >&2
    exit 1
fi
failed=0
echo "fuzz: passed"
