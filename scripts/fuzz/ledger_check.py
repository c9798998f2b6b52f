"""After scripts/fuzz.sh's schemathesis run: count what was sent, and prove that no refused
request changed anything.

schemathesis judges each answer on its own (status, schema, headers). What it cannot see is the
server's state afterwards, so this reads every request and answer of the run from its HAR file
and compares them with the server's ground truth:

- every order in a sale's export was acknowledged by a 201 of that sale (a buy's, or a hold's
  checkout), and every order a 201 acknowledged is in the export (a refused buy made no order,
  an acknowledged one is kept); likewise every hold in the holds export was acknowledged by a
  reservation's 201, and every acknowledged hold is exported;
- every sale in the database was answered 201 by `POST /admin/sales` or seeded by the script
  (a refused create made no sale), and the database holds exactly the acknowledged orders;
- each sale's state follows from the activations and expiries that were answered 200 alone
  (a refused transition moved nothing), and from the lifecycle jobs, which the server runs on its
  own: a sale whose `ends_at` has passed may be expired by its expiration job, and one created
  with `activate_on_schedule` may have been made live by its activation job (it then says so in
  the preflight view: no refusal recorded);
- each sale's counters agree once the sync job has run: `quantity_sold` equals the units in its
  orders, and the Redis counter, when it is loaded, the slots taken by its orders and live holds
  (a refused buy or reservation left no unit claimed, an ended hold none held).

Standard library only, so it runs in the fuzzer's venv or any Python 3.9+.
Usage: ledger_check.py HAR SEEDED_JSON BASE_URL ADMIN_TOKEN DATABASE_URL
"""

import json
import re
from datetime import datetime, timezone
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from urllib.parse import urlsplit

SALE_PATH = re.compile(r"^/(?:admin/)?sales/([^/]+)(/[a-z]+)?$")
HOLD_PATH = re.compile(r"^/sales/([^/]+)/holds/[^/]+/checkout$")
# How long the counters may take to agree: the units-sync job runs every second by default.
CONVERGENCE_S = 10.0


def request_body(entry):
    """The JSON a request sent, or None."""
    text = (entry["request"].get("postData") or {}).get("text")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def parse_instant(text):
    """An RFC 3339 instant as an aware datetime, or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00"))
    except ValueError:
        return None


def answer_body(entry):
    try:
        return json.loads(entry["response"]["content"].get("text") or "null")
    except ValueError:
        return None


def main(har_path, seeded_path, base_url, token, database_url):
    with open(har_path, encoding="utf-8") as f:
        entries = json.load(f)["log"]["entries"]
    with open(seeded_path, encoding="utf-8") as f:
        seeded = json.load(f)  # sale id -> state the script left it in

    problems = []
    statuses = Counter()
    server_errors = []
    sales = dict(seeded)  # every sale that exists by an acknowledged request: id -> expected state
    activated, expired = set(), set()
    scheduled_to_activate = {}  # sale id -> created with "activate_on_schedule": true
    acknowledged = defaultdict(set)  # sale id -> order ids answered 201
    held = defaultdict(set)  # sale id -> hold ids answered 201
    for entry in entries:
        request, response = entry["request"], entry["response"]
        status = response.get("status") or 0
        statuses[status] += 1
        method, path = request["method"], urlsplit(request["url"]).path
        if status >= 500 or status == 0:
            server_errors.append(f"{status} {method} {path}")
        body = answer_body(entry)
        if method == "POST" and path == "/admin/sales" and status == 201:
            sales.setdefault(body["id"], "scheduled")
            sent = request_body(entry)
            scheduled_to_activate[body["id"]] = isinstance(sent, dict) and sent.get(
                "activate_on_schedule") is True
        checkout = HOLD_PATH.match(path)
        if method == "POST" and checkout and status == 201 and isinstance(body, dict):
            acknowledged[checkout.group(1)].add(body["order_id"])
            continue
        match = SALE_PATH.match(path)
        if method != "POST" or not match or not isinstance(body, dict):
            continue
        sale, action = match.group(1), match.group(2)
        if path.startswith("/sales/") and action == "/orders" and status == 201:
            if body.get("sale_id") != sale:
                problems.append(f"a 201 for sale {sale} named sale {body.get('sale_id')}")
            acknowledged[sale].add(body["order_id"])
        elif path.startswith("/sales/") and action == "/holds" and status == 201:
            held[sale].add(body["hold_id"])
        elif action == "/activate" and status == 200:
            activated.add(sale)
        elif action == "/expire" and status == 200:
            expired.add(sale)

    print(f"fuzz: {len(entries)} requests sent; answers by status: "
          + ", ".join(f"{s or 'none'} × {n}" for s, n in sorted(statuses.items())))
    print(f"fuzz: {len(server_errors)} server errors (5xx or no answer)")
    for line in server_errors[:20]:
        problems.append(f"server error: {line}")

    def admin(path):
        req = urllib.request.Request(base_url + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as e:
            return {"http_error": e.code}

    for sale, seeded_state in sales.items():
        want = "expired" if sale in expired else "active" if sale in activated else seeded_state
        view = admin(f"/sales/{sale}")
        got = view.get("state")
        # What the lifecycle jobs may have done since (see the module's docstring).
        allowed = {want}
        ends_at = parse_instant(view.get("ends_at"))
        if ends_at is not None and ends_at <= datetime.now(timezone.utc) and want != "expired":
            allowed.add("expired")
        if want == "scheduled" and scheduled_to_activate.get(sale):
            allowed.add("active")
        if got not in allowed:
            problems.append(f"sale {sale} is {got}; the answered transitions make it {want}")
        export = admin(f"/admin/sales/{sale}/orders")
        exported = {o["order_id"] for o in export.get("orders", [])}
        for order in sorted(exported - acknowledged[sale]):
            problems.append(f"sale {sale}: order {order} exists, but no buy was answered 201 for it")
        for order in sorted(acknowledged[sale] - exported):
            problems.append(f"sale {sale}: order {order} was acknowledged but is not exported")
        holds = {h["hold_id"] for h in admin(f"/admin/sales/{sale}/holds").get("holds", [])}
        for hold in sorted(holds - held[sale]):
            problems.append(f"sale {sale}: hold {hold} exists, but no reservation was answered 201 for it")
        for hold in sorted(held[sale] - holds):
            problems.append(f"sale {sale}: hold {hold} was acknowledged but is not exported")
        units = sum(o["quantity"] for o in export.get("orders", []))
        deadline = time.monotonic() + CONVERGENCE_S
        while True:
            view = admin(f"/admin/sales/{sale}/inventory")
            # (figure, what it should equal, what that is)
            counters = [("units_in_orders", view.get("units_in_orders"), units, "its exported orders hold"),
                        ("quantity_sold", view.get("quantity_sold"), units, "its exported orders hold")]
            if view.get("redis_counter") is not None:
                counters.append(("redis_counter", view["redis_counter"], view.get("slots_taken"),
                                 "its orders and live holds take"))
            if all(v == want for _, v, want, _ in counters) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for name, value, want, what in counters:
            if value != want:
                problems.append(f"sale {sale}: {name} is {value}, {what} {want} units")

    def count(table):
        out = subprocess.run(["psql", "-X", "-At", "-d", database_url, "-c",
                              f"SELECT count(*) FROM {table}"],
                             check=True, capture_output=True, text=True)
        return int(out.stdout.strip())

    orders = sum(len(ids) for ids in acknowledged.values())
    hold_count = sum(len(ids) for ids in held.values())
    for table, want in [("flash_sales", len(sales)), ("orders", orders), ("holds", hold_count)]:
        got = count(table)
        if got != want:
            problems.append(f"the database holds {got} rows in {table}; {want} were acknowledged")
    print(f"fuzz: ledger after the run: {len(sales)} sales ({len(seeded)} seeded), "
          f"{orders} orders and {hold_count} holds, each acknowledged by a 201; "
          f"{sum(1 for s in sales if s in activated or s in expired)} sales moved by 200 answers")

    for problem in problems:
        print(f"fuzz: FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__.rsplit("Usage: ", 1)[1])
    sys.exit(main(*sys.argv[1:]))
