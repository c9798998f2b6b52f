-- Issue 18, item 1: an order whose slots are consecutive is one row, whatever its quantity.
--
-- Since 0010 a one-unit order carries its slot in `orders.slot`; every other order owned one row
-- of `order_units` per unit. The Redis path hands a claim of q units the consecutive slots
-- `sold - q + 1 .. sold`, so a multi-unit order nearly always has consecutive slots. This
-- migration lets such an order own them as a range: an order with `slot` = s owns the slots
-- `s .. s + quantity - 1` (for one unit, s alone: 0010's own slot is the case q = 1), and no
-- row of `order_units`. An order whose slots are not consecutive (the PostgreSQL path filling
-- holes) keeps one row per unit, and so do holds: a hold's slots become its order's at checkout
-- by an `UPDATE` of those rows (0005), which this keeps.
--
-- The contract, what every committed state satisfies (0010's, over the new `sale_slots`):
--
-- 1. A slot number of a sale belongs to at most one owner, be it an order's own range or a row
--    of `order_units`.
-- 2. Every slot is within `1..cap` (order_units: its CHECK and `sale_cap`; an own range: its
--    last slot, `slot + quantity - 1`, is compared with the sale's cap by the orders check).
-- 3. An order of a capped slot-ledger sale owns exactly its quantity of slots: its own range, or
--    that many rows; an order of any other sale owns none.
--
-- Why 1 holds. Two owners of one slot number k are refused in three pairs:
--
-- * Row and row: the primary key `(sale_id, slot)` of `order_units`, as since 0001.
-- * Own range and row: both writers take the lock of every slot they write (0010's lock rule,
--   now over every slot of a range), so the second to get the lock of k sees the first's
--   committed owner of k in its probe: a range's check looks for rows anywhere in its range
--   (index scans of the primary key), a row's check looks for the own range that covers it:
--   one starting at its slot, or the nearest multi-unit range below (see the next point).
-- * Own range and own range. Equal first slots are refused by `orders_sale_slot`. Otherwise two
--   ranges A and B with A.slot < B.slot overlap exactly when B.slot <= A's last slot: the later
--   range starts inside the earlier one, which therefore has more than one unit. The checks
--   refuse a new range that starts inside a multi-unit range (the nearest multi-unit range
--   starting below it must end below it) and a new multi-unit range inside which another range
--   starts. Why the nearest is enough: in the state a check sees, committed ranges do not
--   overlap (by induction over commits: two overlapping writers share a slot, hence a lock, so
--   the second sees the first). Take, among the overlapping pairs (A, B) with A.slot < B.slot,
--   the one whose starts are closest. No multi-unit range R starts strictly between them (R
--   would overlap A, since A's last slot >= B.slot > R.slot, a closer pair), so A is the
--   nearest multi-unit range below B. One of A and B is new in the checked statement (committed
--   ranges do not overlap): if B, its nearest-range probe finds A; if A, its inner probe finds
--   B.slot.
--
-- The probe "which multi-unit range covers slot k" is: the multi-unit range with the greatest
-- first slot below k, and does it reach k. The partial index `orders_sale_ranges` holds the
-- multi-unit ranges only, so the probe that every own slot and every slot row now needs is one
-- descent of an index that is empty for a sale without multi-unit orders (the common case adds
-- no entry to it). `flashsale_highest_slot` reads the greatest own first slot and adds its
-- quantity: by 1, the range that starts last also ends last.
--
-- Locks: a range of q units takes q slot locks. The server's statement takes every lock of its
-- batch before its first row, in ascending (sale, slot) order, as 0010 and 0012 do, so the
-- orders check finds them held (held locks are granted at once). The check takes them again
-- itself for a writer that did not: the first slots with 0012's one pass, then the other slots
-- of ranges in a second query run only when the statement has a range. Two such writers (plain
-- `INSERT`s of ranges, not the server) may then wait for each other in a cycle; PostgreSQL
-- detects it and refuses one of them, which writes nothing. The order of locking is about
-- waiting, not about what is seen: rule 1's argument needs only that each writer holds the lock
-- of every slot it writes before its probes.
--
-- Cost: for a batch of one-unit orders the orders check does what 0012's did, plus one descent
-- of `orders_sale_ranges` per order in the same probe query; the queries for ranges run only
-- when the batch has one. Measured with EXPLAIN ANALYZE (five alternations of 300 statements of
-- 16 one-unit orders, commits not waited for): the check took 0.111-0.124 ms per statement
-- with 0012's function and 0.135-0.145 ms with this one, of a statement of ~0.7 ms (taking
-- every range slot's lock in the first pass instead cost 0.146-0.177 ms). That ~3 % is the price
-- of multi-unit orders being one row; a batch of 16 two-unit orders saves 32 rows.

-- Existing databases migrate forward unchanged: every existing own slot is of a one-unit order,
-- which owns the same single slot under the new reading, and every existing slot row stays.
-- `server/tests/api/ledger.rs` proves each refusal of the three pairs, in one statement and
-- across concurrent transactions.

-- `quantity` and `id` ride in the index, so the nearest-range probe reads no table row.
CREATE INDEX orders_sale_ranges ON orders (sale_id, slot) INCLUDE (quantity, id)
    WHERE slot IS NOT NULL AND quantity > 1;

-- Every slot of every sale, whoever owns it: an own range expands to its slots.
CREATE OR REPLACE VIEW sale_slots AS
    SELECT sale_id, slot, order_id, hold_id FROM order_units
    UNION ALL
    SELECT o.sale_id, s.slot, o.id, NULL::uuid
      FROM orders o CROSS JOIN LATERAL generate_series(o.slot, o.slot + o.quantity - 1) AS s(slot)
     WHERE o.slot IS NOT NULL;

-- 0012's orders check, for own ranges: the locks of every slot of a range, the cap against the
-- range's last slot, the probes of the header, and a range counted as its quantity.
CREATE OR REPLACE FUNCTION flashsale_new_orders_checked() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    tally record;
    bad record;
BEGIN
    -- One pass: the locks of the own ranges' first slots and what each check below has to look
    -- at (0012). `locked` is never read: selecting it is what makes the CTE run (once), so every
    -- lock is held before the probes below take their snapshots.
    WITH locks AS MATERIALIZED (
        SELECT count(pg_advisory_xact_lock(flashsale_slot_lock_key(k.sale_id, k.slot))) AS taken
          FROM (SELECT DISTINCT sale_id, slot FROM new_orders
                 WHERE slot IS NOT NULL ORDER BY 1, 2) k
    )
    SELECT count(*) FILTER (WHERE p.sale_id IS NULL) AS unsold,
           count(*) FILTER (WHERE o.slot IS NOT NULL
                              AND (s.unit_cap IS NULL
                                   OR o.slot + o.quantity - 1 > s.unit_cap)) AS beyond_cap,
           count(*) FILTER (WHERE o.slot IS NOT NULL) AS own_slots,
           count(*) FILTER (WHERE o.slot IS NOT NULL AND o.quantity > 1) AS ranges,
           count(*) FILTER (WHERE NOT (o.slot IS NOT NULL
                                      AND s.ledger = 'slots' AND s.unit_cap IS NOT NULL)
                               OR s.id IS NULL) AS to_count,
           count(*) FILTER (WHERE s.per_buyer_limit IS NOT NULL AND s.ledger = 'slots') AS limited,
           (SELECT taken FROM locks) AS locked
      INTO tally
      FROM new_orders o
      LEFT JOIN flash_sales s ON s.id = o.sale_id
      LEFT JOIN flash_sale_products p ON p.sale_id = o.sale_id AND p.product_id = o.product_id;
    -- Each order is of a product its sale sells.
    IF tally.unsold > 0 THEN
        SELECT o.id, o.sale_id, o.product_id INTO bad
          FROM new_orders o
          LEFT JOIN flash_sale_products p ON p.sale_id = o.sale_id AND p.product_id = o.product_id
         WHERE p.sale_id IS NULL
         LIMIT 1;
        RAISE EXCEPTION 'order % is of product % that sale % does not sell', bad.id,
            bad.product_id, bad.sale_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF tally.own_slots > 0 THEN
        -- Own ranges within the cap (an unlimited sale has no slot to give).
        IF tally.beyond_cap > 0 THEN
            SELECT o.id, o.slot + o.quantity - 1 AS last_slot, o.sale_id INTO bad
              FROM new_orders o JOIN flash_sales s ON s.id = o.sale_id
             WHERE o.slot IS NOT NULL
               AND (s.unit_cap IS NULL OR o.slot + o.quantity - 1 > s.unit_cap)
             LIMIT 1;
            RAISE EXCEPTION 'order % names slot %, beyond the cap of sale %', bad.id,
                bad.last_slot, bad.sale_id
                USING ERRCODE = 'check_violation';
        END IF;
        -- The other slots of multi-unit ranges, when the statement has any (see the header).
        IF tally.ranges > 0 THEN
            PERFORM count(pg_advisory_xact_lock(flashsale_slot_lock_key(k.sale_id, k.slot)))
               FROM (SELECT DISTINCT o.sale_id, r.slot FROM new_orders o
                      CROSS JOIN LATERAL generate_series(o.slot + 1, o.slot + o.quantity - 1)
                            AS r(slot)
                     WHERE o.slot IS NOT NULL AND o.quantity > 1
                     ORDER BY 1, 2) k;
        END IF;
        -- The lock rule holds at READ COMMITTED only (0010's header).
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'slots are written at READ COMMITTED only, not at %',
                upper(current_setting('transaction_isolation'))
                USING ERRCODE = 'invalid_transaction_state';
        END IF;
        -- No other owner of any slot of a new range: these queries' snapshots are newer than
        -- the locks taken above. First, for every own slot: a slot row on its first slot, or a
        -- multi-unit range it starts inside (the nearest one below it; the header says why that
        -- is enough). One pass, two index probes per order where 0012 made one; for a sale
        -- without multi-unit ranges the second is a descent of an index empty for that sale.
        SELECT o.id, o.sale_id, coalesce(u.slot, o.slot) AS slot,
               u.slot IS NOT NULL AS on_a_row
          INTO bad
          FROM new_orders o
          LEFT JOIN order_units u ON u.sale_id = o.sale_id AND u.slot = o.slot
          LEFT JOIN LATERAL (
              SELECT r.slot, r.quantity FROM orders r
               WHERE r.sale_id = o.sale_id AND r.slot < o.slot
                 AND r.slot IS NOT NULL AND r.quantity > 1
               ORDER BY r.slot DESC LIMIT 1) r ON true
         WHERE o.slot IS NOT NULL
           AND (u.slot IS NOT NULL OR r.slot + r.quantity > o.slot)
         LIMIT 1;
        -- Then, for multi-unit ranges only: a slot row on any later slot of the range, or
        -- another own slot starting inside it.
        IF NOT FOUND AND tally.ranges > 0 THEN
            SELECT c.id, c.sale_id, c.slot, c.on_a_row INTO bad FROM (
                (SELECT o.id, o.sale_id, u.slot, true AS on_a_row
                   FROM new_orders o
                   CROSS JOIN LATERAL (
                       SELECT u.slot FROM order_units u
                        WHERE u.sale_id = o.sale_id
                          AND u.slot > o.slot AND u.slot < o.slot + o.quantity
                        LIMIT 1) u
                  WHERE o.slot IS NOT NULL AND o.quantity > 1
                  LIMIT 1)
                UNION ALL
                -- `n.slot IS NOT NULL` lets the planner use the partial index of own slots
                -- for each order (a join clause alone does not prove its predicate).
                (SELECT o.id, o.sale_id, n.slot, false
                   FROM new_orders o
                   CROSS JOIN LATERAL (
                       SELECT n.slot FROM orders n
                        WHERE n.sale_id = o.sale_id AND n.slot IS NOT NULL
                          AND n.slot > o.slot AND n.slot < o.slot + o.quantity
                        LIMIT 1) n
                  WHERE o.slot IS NOT NULL AND o.quantity > 1
                  LIMIT 1)
            ) c
            LIMIT 1;
        END IF;
        IF FOUND AND bad.on_a_row THEN
            RAISE EXCEPTION 'slot % of sale % is already taken (order %)', bad.slot, bad.sale_id,
                bad.id
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'order_units_pkey';
        END IF;
        IF FOUND THEN
            RAISE EXCEPTION 'slot % of sale % is already taken (order %)', bad.slot, bad.sale_id,
                bad.id
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'orders_sale_slot';
        END IF;
    END IF;
    -- Each order owns exactly its quantity of slots, its own range counted. An own-range order
    -- of a guarded sale owns its range; the slot-row checks, which count the range, refuse any
    -- row that would give it more, in this statement or a later one (0011's argument).
    IF tally.to_count > 0 THEN
        SELECT o.id, o.quantity, owned.n AS owned,
               (s.ledger = 'slots' AND s.unit_cap IS NOT NULL) AS guarded
          INTO bad
          FROM new_orders o
          JOIN flash_sales s ON s.id = o.sale_id
          CROSS JOIN LATERAL (SELECT count(*) + CASE WHEN o.slot IS NULL THEN 0
                                                    ELSE o.quantity END AS n
                                FROM order_units u WHERE u.order_id = o.id) owned
         WHERE NOT (o.slot IS NOT NULL AND s.ledger = 'slots' AND s.unit_cap IS NOT NULL)
           AND owned.n <> CASE WHEN s.ledger = 'slots' AND s.unit_cap IS NOT NULL
                               THEN o.quantity ELSE 0 END
         LIMIT 1;
        IF FOUND THEN
            PERFORM flashsale_slot_mismatch(bad.id, bad.quantity, bad.owned, bad.guarded);
        END IF;
    END IF;
    -- The buyers' running totals, for sales with a per-buyer limit (0004).
    IF tally.limited > 0 THEN
        INSERT INTO buyer_units (sale_id, buyer_id, units, buyer_limit)
        SELECT o.sale_id, o.buyer_id, sum(o.quantity), s.per_buyer_limit
          FROM new_orders o JOIN flash_sales s ON s.id = o.sale_id
         WHERE s.per_buyer_limit IS NOT NULL AND s.ledger = 'slots'
         GROUP BY o.sale_id, o.buyer_id, s.per_buyer_limit
         ORDER BY o.sale_id, o.buyer_id
        ON CONFLICT (sale_id, buyer_id) DO UPDATE SET units = buyer_units.units + excluded.units;
    END IF;
    RETURN NULL;
END $$;

-- 0010's slots check: the probe finds an own range covering the slot, not only one starting at
-- it; an order's own range counted as its quantity.
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
    -- Not also in an order's own range: under the slots' locks (0010's header), after which
    -- this query's snapshot holds every own range committed before.
    PERFORM flashsale_lock_slots(array_agg(u.sale_id), array_agg(u.slot)) FROM new_units u;
    SELECT u.slot, u.sale_id, coalesce(o.id, r.id) AS order_id INTO bad
      FROM new_units u
      LEFT JOIN orders o ON o.sale_id = u.sale_id AND o.slot IS NOT NULL AND o.slot = u.slot
      LEFT JOIN LATERAL (
          SELECT r.id, r.slot, r.quantity FROM orders r
           WHERE r.sale_id = u.sale_id AND r.slot < u.slot
             AND r.slot IS NOT NULL AND r.quantity > 1
           ORDER BY r.slot DESC LIMIT 1) r ON true
     WHERE o.id IS NOT NULL OR r.slot + r.quantity > u.slot
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slot % of sale % is already taken (order %)', bad.slot, bad.sale_id,
            bad.order_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'orders_sale_slot';
    END IF;
    -- Each slot's order exists in the slot's sale, and every order touched owns exactly its
    -- quantity (its own range counted); a missing or foreign order is reported first.
    SELECT t.order_id, t.sale_id, (o.id IS NULL OR o.sale_id <> t.sale_id) AS foreign_order,
           o.quantity, owned.n AS owned,
           (s.ledger = 'slots' AND s.unit_cap IS NOT NULL) AS guarded
      INTO bad
      FROM (SELECT DISTINCT order_id, sale_id FROM new_units WHERE order_id IS NOT NULL) t
      LEFT JOIN orders o ON o.id = t.order_id
      LEFT JOIN flash_sales s ON s.id = o.sale_id
      CROSS JOIN LATERAL (SELECT count(*) + CASE WHEN o.slot IS NULL THEN 0
                                                ELSE o.quantity END AS n
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

-- 0010's check after a hold's slots become an order's: an order's own range counted as its
-- quantity. A checkout changes no slot number (0005), so it needs no lock and no probe.
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
      CROSS JOIN LATERAL (SELECT count(*) + CASE WHEN o.slot IS NULL THEN 0
                                                ELSE o.quantity END AS n
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

-- The highest slot of a sale in either table; 0 when it has none. The own range starting last
-- ends last (rule 1), so each side is one index probe.
CREATE OR REPLACE FUNCTION flashsale_highest_slot(p_sale uuid) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    in_rows   bigint;
    in_orders bigint;
BEGIN
    SELECT max(u.slot) INTO in_rows FROM order_units u WHERE u.sale_id = p_sale;
    SELECT o.slot + o.quantity - 1 INTO in_orders FROM orders o
     WHERE o.sale_id = p_sale AND o.slot IS NOT NULL
     ORDER BY o.slot DESC LIMIT 1;
    RETURN greatest(coalesce(in_rows, 0), coalesce(in_orders, 0));
END $$;

-- 0010's reservation: a slot inside an own range is not free (the nearest multi-unit range
-- below a candidate is the only one that can cover it, as in the checks).
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
                     WHERE o.sale_id = p_sale AND o.slot IS NOT NULL AND o.slot = candidate)
                  AND NOT EXISTS (
                    SELECT 1 FROM (SELECT r.slot, r.quantity FROM orders r
                                    WHERE r.sale_id = p_sale AND r.slot < candidate
                                      AND r.slot IS NOT NULL AND r.quantity > 1
                                    ORDER BY r.slot DESC LIMIT 1) r
                     WHERE r.slot + r.quantity > candidate)
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
