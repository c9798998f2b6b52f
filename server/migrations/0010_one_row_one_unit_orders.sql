-- Issue 18, G3: a one-unit order is one row. Its slot is a column of the order
-- (`orders.slot`), not a second row in `order_units`.
--
-- Before this migration every unit of every order was a row of `order_units`, and the slot
-- primary key `(sale_id, slot)` was the whole oversell argument (0001). Storing a one-unit order
-- cost two rows, five index entries and the checks of both tables. Most flash-sale orders are of
-- one unit, so this migration lets such an order carry its slot itself:
--
-- * `orders.slot` (NULL for every other order) under the partial unique index
--   `orders_sale_slot (sale_id, slot) WHERE slot IS NOT NULL`.
-- * Multi-unit orders and cart holds keep their slots in `order_units`, as before.
-- * The slots of a sale are then the union of the two: the view `sale_slots`.
--
-- The contract, what every committed state satisfies (the old one, over `sale_slots`):
--
-- 1. A slot number of a sale belongs to at most one owner: unique within each table by its
--    index, and across the two tables by the lock rule below.
-- 2. Every slot is within `1..cap` (order_units: its CHECK and `sale_cap`; orders: the insert
--    check compares `slot` with the sale's cap).
-- 3. An order of a capped slot-ledger sale owns exactly its quantity of slots, counting its own
--    slot; an order of any other sale owns none.
--
-- Why 1 holds across the tables. No index spans two tables, so the check is a probe under a
-- lock: every slot number is written under a lock of its own, the transaction advisory lock
-- `hashtextextended(sale_id::text || '/' || slot::text, 0)` (`flashsale_lock_slots`), taken
-- exclusively and held until commit or rollback.
--
-- * The insert check of `orders` locks the own slots of its new rows, then looks for those
--   numbers in `order_units`.
-- * The insert check of `order_units` locks the slots of its new rows, then looks for those
--   numbers in `orders.slot`.
--
-- Take a writer O of own slot k and a writer U of slot row k, in different transactions. Both
-- lock (sale, k), so one of them, say the second, gets the lock only after the first committed
-- or rolled back. At READ COMMITTED every statement of a plpgsql function takes a new snapshot,
-- so the second's probe, which runs after its lock call, sees the first's committed row and
-- raises. If both are in one transaction, the later statement's probe sees the earlier
-- statement's row. A transaction at REPEATABLE READ or SERIALIZABLE keeps its first snapshot and
-- would not see the row, so the lock function refuses to run in one: slots are written only at
-- READ COMMITTED, where the argument holds.
--
-- Writers of different slot numbers never wait for each other (two numbers whose keys collide
-- only wait, which is harmless). So order batches, Redis-path holds and PostgreSQL-path claims of
-- one sale still run side by side; the per-sale lock of 0003 and 0006 keeps ordering the
-- PostgreSQL path's reads of the highest slot, as before. Locks are taken in ascending (sale,
-- slot) order within a call.
--
-- The server takes its batch's slot locks at the start of its order statement, before any row is
-- inserted (the check's own call then finds them held). So a PostgreSQL-path writer that hands
-- out a slot an order batch under way already holds waits for that batch in its check, then sees
-- the slot and fails, and retries, as the slot primary key made it do before. Taken only in the
-- check, after the rows, the lock would be just as safe, but the PostgreSQL path could then win
-- such a race, and the batch would fail instead.
--
-- Existing databases migrate forward unchanged: every existing slot stays in `order_units`, and
-- every existing order keeps `slot` NULL.

ALTER TABLE orders ADD COLUMN slot bigint CHECK (slot >= 1);
CREATE UNIQUE INDEX orders_sale_slot ON orders (sale_id, slot) WHERE slot IS NOT NULL;

-- Every slot of every sale, whoever owns it.
CREATE VIEW sale_slots AS
    SELECT sale_id, slot, order_id, hold_id FROM order_units
    UNION ALL
    SELECT sale_id, slot, id, NULL::uuid FROM orders WHERE slot IS NOT NULL;

-- Takes the slot lock of each distinct (sale, slot) pair of `sales` and `slots` (same length,
-- pair by pair), in ascending order so that two writers cannot wait for each other in a cycle.
-- Refused outside READ COMMITTED when there is any slot to lock (see above). Returns true, so
-- that a statement can take its locks before its first row (`WHERE (SELECT …)`).
CREATE FUNCTION flashsale_lock_slots(sales uuid[], slots bigint[]) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    IF coalesce(cardinality(sales), 0) = 0 THEN
        RETURN true;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'slots are written at READ COMMITTED only, not at %',
            upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    FOR s IN
        SELECT DISTINCT t.sale, t.slot FROM unnest(sales, slots) AS t(sale, slot)
         WHERE t.sale IS NOT NULL AND t.slot IS NOT NULL
         ORDER BY 1, 2
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(s.sale::text || '/' || s.slot::text, 0));
    END LOOP;
    RETURN true;
END $$;

-- 0009's orders check, with own slots: within the cap, not also a slot row, counted as owned.
CREATE OR REPLACE FUNCTION flashsale_new_orders_checked() RETURNS trigger
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
    IF EXISTS (SELECT 1 FROM new_orders WHERE slot IS NOT NULL) THEN
        -- Own slots within the cap (an unlimited sale has no slot to give).
        SELECT o.id, o.slot, o.sale_id INTO bad
          FROM new_orders o JOIN flash_sales s ON s.id = o.sale_id
         WHERE o.slot IS NOT NULL AND (s.unit_cap IS NULL OR o.slot > s.unit_cap)
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'order % names slot %, beyond the cap of sale %', bad.id, bad.slot,
                bad.sale_id
                USING ERRCODE = 'check_violation';
        END IF;
        -- Not also a slot row: under the slots' locks (see the header), after which this
        -- statement's snapshot holds every slot row committed before.
        PERFORM flashsale_lock_slots(array_agg(o.sale_id), array_agg(o.slot))
           FROM new_orders o WHERE o.slot IS NOT NULL;
        SELECT o.id, o.slot, o.sale_id INTO bad
          FROM new_orders o
          JOIN order_units u ON u.sale_id = o.sale_id AND u.slot = o.slot
         WHERE o.slot IS NOT NULL
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'slot % of sale % is already taken (order %)', bad.slot, bad.sale_id,
                bad.id
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'order_units_pkey';
        END IF;
    END IF;
    -- Each order owns exactly its quantity of slots, its own one counted (none for an unguarded
    -- or unlimited sale).
    SELECT o.id, o.quantity, owned.n AS owned,
           (s.ledger = 'slots' AND s.unit_cap IS NOT NULL) AS guarded
      INTO bad
      FROM new_orders o
      JOIN flash_sales s ON s.id = o.sale_id
      CROSS JOIN LATERAL (SELECT count(*) + (o.slot IS NOT NULL)::int AS n
                            FROM order_units u WHERE u.order_id = o.id) owned
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

-- 0009's slots check: the exclusive lock and the probe of `orders.slot` added; an order's own
-- slot counted.
CREATE OR REPLACE FUNCTION flashsale_new_slots_checked() RETURNS trigger
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
    -- Not also an order's own slot: under the slots' locks (see the header).
    PERFORM flashsale_lock_slots(array_agg(u.sale_id), array_agg(u.slot)) FROM new_units u;
    SELECT u.slot, u.sale_id, o.id AS order_id INTO bad
      FROM new_units u
      JOIN orders o ON o.sale_id = u.sale_id AND o.slot = u.slot
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slot % of sale % is already taken (order %)', bad.slot, bad.sale_id,
            bad.order_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'orders_sale_slot';
    END IF;
    -- Each slot's order exists in the slot's sale, and every order touched owns exactly its
    -- quantity (its own slot counted); a missing or foreign order is reported first.
    SELECT t.order_id, t.sale_id, (o.id IS NULL OR o.sale_id <> t.sale_id) AS foreign_order,
           o.quantity, owned.n AS owned,
           (s.ledger = 'slots' AND s.unit_cap IS NOT NULL) AS guarded
      INTO bad
      FROM (SELECT DISTINCT order_id, sale_id FROM new_units WHERE order_id IS NOT NULL) t
      LEFT JOIN orders o ON o.id = t.order_id
      LEFT JOIN flash_sales s ON s.id = o.sale_id
      CROSS JOIN LATERAL (SELECT count(*) + (o.slot IS NOT NULL)::int AS n
                            FROM order_units u WHERE u.order_id = t.order_id) owned
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

-- The check after a hold's slots become an order's (0005, 0008): an order's own slot counted.
-- A checkout changes no slot number, so it needs no lock.
CREATE OR REPLACE FUNCTION flashsale_new_slots_match_quantity() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    touched uuid[] := ARRAY(SELECT DISTINCT order_id FROM new_units WHERE order_id IS NOT NULL);
    bad record;
BEGIN
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
    SELECT u.order_id, u.sale_id INTO bad
      FROM new_units u LEFT JOIN orders o ON o.id = u.order_id
     WHERE u.order_id IS NOT NULL AND (o.id IS NULL OR o.sale_id <> u.sale_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slots name order %, which is not an order of sale %', bad.order_id,
            bad.sale_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT o.id, o.quantity, owned.n AS owned,
           (s.ledger = 'slots' AND s.unit_cap IS NOT NULL) AS guarded
      INTO bad
      FROM orders o
      JOIN flash_sales s ON s.id = o.sale_id
      CROSS JOIN LATERAL (SELECT count(*) + (o.slot IS NOT NULL)::int AS n
                            FROM order_units u WHERE u.order_id = o.id) owned
     WHERE o.id = ANY (touched)
       AND owned.n <> CASE WHEN s.ledger = 'slots' AND s.unit_cap IS NOT NULL
                           THEN o.quantity ELSE 0 END
     LIMIT 1;
    IF FOUND THEN
        PERFORM flashsale_slot_mismatch(bad.id, bad.quantity, bad.owned, bad.guarded);
    END IF;
    RETURN NULL;
END $$;

-- The highest slot of a sale in either table; 0 when it has none. Each `max` is one index probe
-- (the partial index holds only own slots). Volatile, so each of its statements reads a snapshot
-- taken after the caller's lock call.
CREATE FUNCTION flashsale_highest_slot(p_sale uuid) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    in_rows   bigint;
    in_orders bigint;
BEGIN
    SELECT max(u.slot) INTO in_rows FROM order_units u WHERE u.sale_id = p_sale;
    SELECT max(o.slot) INTO in_orders FROM orders o
     WHERE o.sale_id = p_sale AND o.slot IS NOT NULL;
    RETURN greatest(coalesce(in_rows, 0), coalesce(in_orders, 0));
END $$;

-- 0003, with the highest slot read from both tables (each `max` one index probe).
CREATE OR REPLACE FUNCTION flashsale_append_claims(
    p_sale        uuid,
    p_cap         bigint,
    p_ids         uuid[],
    p_products    text[],
    p_buyers      text[],
    p_quantities  integer[],
    p_prices      bigint[],
    p_keys        text[],
    p_decided_by  text[],
    p_unit_orders uuid[]
) RETURNS TABLE (stored_id uuid, stored_at timestamptz)
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    highest bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_sale::text, 7));
    highest := flashsale_highest_slot(p_sale);
    IF highest + cardinality(p_unit_orders) > p_cap THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH new_orders AS (
        INSERT INTO orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                            idempotency_key, decided_by)
        SELECT o.id, p_sale, o.product_id, o.buyer_id, o.quantity, o.unit_price_cents,
               o.idempotency_key, o.decided_by
        FROM unnest(p_ids, p_products, p_buyers, p_quantities, p_prices, p_keys, p_decided_by)
             AS o(id, product_id, buyer_id, quantity, unit_price_cents, idempotency_key,
                  decided_by)
        RETURNING orders.id, orders.created_at
    ), new_units AS (
        INSERT INTO order_units (sale_id, slot, sale_cap, order_id)
        SELECT p_sale, highest + n.offset_in_batch, p_cap, n.order_id
        FROM unnest(p_unit_orders) WITH ORDINALITY AS n(order_id, offset_in_batch)
    )
    SELECT new_orders.id, new_orders.created_at FROM new_orders;
END $$;

-- 0006, with the free slots read from both tables.
CREATE OR REPLACE FUNCTION flashsale_reserve_hold(
    p_hold       uuid,
    p_sale       uuid,
    p_cap        bigint,
    p_product    text,
    p_buyer      text,
    p_quantity   integer,
    p_price      bigint,
    p_key        text,
    p_ttl_us     bigint,
    p_decided_by text
) RETURNS TABLE (hold_id uuid, freed bigint)
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    highest bigint;
    slots   bigint[];
    given_back bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_sale::text, 7));
    FOR attempt IN 1..2 LOOP
        highest := flashsale_highest_slot(p_sale);
        IF highest + p_quantity <= p_cap THEN
            slots := ARRAY(SELECT generate_series(highest + 1, highest + p_quantity));
        ELSE
            slots := ARRAY(
                SELECT candidate FROM generate_series(1::bigint, p_cap) AS candidate
                WHERE NOT EXISTS (
                    SELECT 1 FROM order_units u WHERE u.sale_id = p_sale AND u.slot = candidate)
                  AND NOT EXISTS (
                    SELECT 1 FROM orders o
                     WHERE o.sale_id = p_sale AND o.slot = candidate AND o.slot IS NOT NULL)
                ORDER BY candidate LIMIT p_quantity);
        END IF;
        EXIT WHEN cardinality(slots) >= p_quantity OR attempt = 2;
        WITH due AS (
            UPDATE holds SET state = 'expired', ended_at = clock_timestamp()
            WHERE sale_id = p_sale AND state = 'live' AND expires_at <= clock_timestamp()
            RETURNING id
        ), gone AS (
            DELETE FROM order_units u USING due WHERE u.hold_id = due.id RETURNING 1
        )
        SELECT count(*) INTO given_back FROM gone;
        EXIT WHEN given_back = 0;
    END LOOP;
    IF cardinality(slots) < p_quantity THEN
        RETURN QUERY SELECT NULL::uuid, given_back;
        RETURN;
    END IF;
    WITH new_hold AS (
        INSERT INTO holds (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                           idempotency_key, expires_at, decided_by)
        VALUES (p_hold, p_sale, p_product, p_buyer, p_quantity, p_price, p_key,
                clock_timestamp() + make_interval(secs => p_ttl_us::double precision / 1e6),
                p_decided_by)
        RETURNING id
    )
    INSERT INTO order_units (sale_id, slot, sale_cap, hold_id)
    SELECT p_sale, s, p_cap, new_hold.id FROM new_hold, unnest(slots) AS s;
    RETURN QUERY SELECT p_hold, given_back;
END $$;
