-- Issue 18, G3: an order batch's insert fires one check per table instead of four, and each
-- check looks each order up once.
--
-- Until now the statement that stores a batch (orders and their slots, one statement) fired four
-- AFTER STATEMENT triggers, each a plpgsql call with its own queries over the transition tables:
-- on `orders` the product-and-slots check (0008) and the buyer-units count (0004); on
-- `order_units` the slots check (0008) and the hold check (0005, returning at once for orders).
-- The slots check also probed `orders` twice per slot (once to see that the slot's order exists in
-- the slot's sale, once more to count that order's slots). Measured with pgbench, one client, 16
-- one-unit orders per statement (README, Performance): the triggers were about half of the
-- statement's time, and disabling any one of them alone gained 7-24 %.
--
-- What is checked is unchanged, with the same messages and error codes; only how:
--
-- * `orders`, INSERT: `flashsale_new_orders_checked` = 0008's product-and-slots check, with each
--   distinct (sale, product) pair of the statement looked up once instead of once per order, then
--   0004's buyer-units count (it writes only for sales with a per-buyer limit).
-- * `order_units`, INSERT: `flashsale_new_slots_checked` = 0008's slots check, with each distinct
--   (order, sale) pair of the statement looked up once, in one query that finds both faults (an
--   order missing from the slot's sale, and an order whose slots do not match its quantity;
--   the first is reported first, as before), then 0005's hold check, run only when the statement
--   inserted a hold's slots.
--
-- Both functions also switch JIT compilation off: with sequential scans off and a young table's
-- statistics, the planner can put a few-row trigger query above `jit_above_cost`, and compiling
-- it then takes ~10 ms, far more than running it (measured with `auto_explain`: 11 ms of JIT for
-- a 0.3 ms query, every statement).
--
-- The UPDATE and DELETE triggers of `order_units` (0005) are untouched: they are not on the order
-- path. The oversell argument (0001, 0008) does not change: the same facts hold at the end of
-- every statement that inserts orders or slots.

CREATE FUNCTION flashsale_new_orders_checked() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    bad record;
BEGIN
    -- Each order is of a product its sale sells (one lookup per distinct pair).
    SELECT o.sale_id, o.product_id INTO bad
      FROM (SELECT DISTINCT sale_id, product_id FROM new_orders) o
      LEFT JOIN flash_sale_products p ON p.sale_id = o.sale_id AND p.product_id = o.product_id
     WHERE p.sale_id IS NULL
     LIMIT 1;
    IF FOUND THEN
        SELECT o.id, o.sale_id, o.product_id INTO bad
          FROM new_orders o
         WHERE o.sale_id = bad.sale_id AND o.product_id = bad.product_id
         LIMIT 1;
        RAISE EXCEPTION 'order % is of product % that sale % does not sell', bad.id,
            bad.product_id, bad.sale_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- Each order owns exactly its quantity of slots (none for an unguarded sale).
    SELECT o.id, o.quantity, owned.n AS owned,
           (s.ledger = 'slots' AND s.unit_cap IS NOT NULL) AS guarded
      INTO bad
      FROM new_orders o
      JOIN flash_sales s ON s.id = o.sale_id
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM order_units u WHERE u.order_id = o.id) owned
     WHERE owned.n <> CASE WHEN s.ledger = 'slots' AND s.unit_cap IS NOT NULL
                           THEN o.quantity ELSE 0 END
     LIMIT 1;
    IF FOUND THEN
        PERFORM flashsale_slot_mismatch(bad.id, bad.quantity, bad.owned, bad.guarded);
    END IF;
    -- The buyers' running totals, for sales with a per-buyer limit (0004).
    INSERT INTO buyer_units (sale_id, buyer_id, units, buyer_limit)
    SELECT o.sale_id, o.buyer_id, sum(o.quantity), s.per_buyer_limit
      FROM new_orders o JOIN flash_sales s ON s.id = o.sale_id
     WHERE s.per_buyer_limit IS NOT NULL AND s.ledger = 'slots'
     GROUP BY o.sale_id, o.buyer_id, s.per_buyer_limit
     ORDER BY o.sale_id, o.buyer_id
    ON CONFLICT (sale_id, buyer_id) DO UPDATE SET units = buyer_units.units + excluded.units;
    RETURN NULL;
END $$;

CREATE FUNCTION flashsale_new_slots_checked() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    bad record;
    holds_touched uuid[];
BEGIN
    -- Each slot names its sale's real cap.
    SELECT u.sale_id, u.sale_cap INTO bad
      FROM (SELECT DISTINCT sale_id, sale_cap FROM new_units) u
      LEFT JOIN flash_sales s ON s.id = u.sale_id
     WHERE s.unit_cap IS DISTINCT FROM u.sale_cap
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slots of sale % name a cap of %, not the sale''s', bad.sale_id,
            bad.sale_cap
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- Each slot's order exists in the slot's sale, and every order touched owns exactly its
    -- quantity: one lookup of each distinct (order, sale) pair; a missing or foreign order is
    -- reported before a count that does not match.
    SELECT t.order_id, t.sale_id, (o.id IS NULL OR o.sale_id <> t.sale_id) AS foreign_order,
           o.quantity, owned.n AS owned,
           (s.ledger = 'slots' AND s.unit_cap IS NOT NULL) AS guarded
      INTO bad
      FROM (SELECT DISTINCT order_id, sale_id FROM new_units WHERE order_id IS NOT NULL) t
      LEFT JOIN orders o ON o.id = t.order_id
      LEFT JOIN flash_sales s ON s.id = o.sale_id
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM order_units u WHERE u.order_id = t.order_id) owned
     WHERE o.id IS NULL OR o.sale_id <> t.sale_id
        OR owned.n <> CASE WHEN s.ledger = 'slots' AND s.unit_cap IS NOT NULL
                           THEN o.quantity ELSE 0 END
     ORDER BY (o.id IS NULL OR o.sale_id <> t.sale_id) DESC
     LIMIT 1;
    IF FOUND AND bad.foreign_order THEN
        RAISE EXCEPTION 'slots name order %, which is not an order of sale %', bad.order_id,
            bad.sale_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF FOUND THEN
        PERFORM flashsale_slot_mismatch(bad.order_id, bad.quantity, bad.owned, bad.guarded);
    END IF;
    -- A hold's slots (0005): only when the statement inserted some.
    holds_touched := ARRAY(SELECT DISTINCT hold_id FROM new_units WHERE hold_id IS NOT NULL);
    IF cardinality(holds_touched) > 0 THEN
        PERFORM flashsale_check_hold_slots(holds_touched);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER orders_own_their_slots ON orders;
DROP TRIGGER orders_count_buyer_units ON orders;
CREATE TRIGGER orders_checked
    AFTER INSERT ON orders REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_new_orders_checked();

DROP TRIGGER order_units_match_quantity ON order_units;
DROP TRIGGER hold_slots_inserted ON order_units;
CREATE TRIGGER order_units_checked
    AFTER INSERT ON order_units REFERENCING NEW TABLE AS new_units
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_new_slots_checked();

-- No trigger calls these any more (their bodies are in the two functions above).
DROP FUNCTION flashsale_new_orders_own_their_slots();
DROP FUNCTION flashsale_count_buyer_units();
