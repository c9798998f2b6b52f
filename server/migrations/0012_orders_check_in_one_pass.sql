-- Issue 18, G3: the orders check of 0011 in two queries for a batch of one-unit orders.
--
-- A Redis-path order batch is one statement, and its cost inside PostgreSQL is mostly fixed per
-- statement: every query the check runs pays executor start-up, whatever its number of rows.
-- 0011's orders check ran seven queries on every batch (the product lookup, a test for own
-- slots, the cap comparison, the lock call and the query inside it, the probe of `order_units`,
-- the count of owned slots, the buyer totals' upsert), most of which find nothing to do for the
-- common batch: one-unit orders of one capped sale without a per-buyer limit.
--
-- This check runs one query over the new orders first. It takes the own slots' locks (same keys
-- as `flashsale_lock_slots`, same ascending (sale, slot) order, driven by a sorted subquery as in
-- 0011) and counts, in the same pass, the rows each later check has to look at: orders of a
-- product their sale does not sell, own slots beyond the cap, own slots at all, orders whose
-- owned slots must be counted, orders of a sale with a per-buyer limit. A later check runs only
-- when its count is not zero, and an error is reported by 0011's own query, so the messages and
-- error codes are unchanged. The probe of `order_units` still runs as its own query after the
-- locks: at READ COMMITTED it then takes a snapshot newer than every lock it waited for (0010's
-- argument, unchanged). For the common batch that is two queries instead of seven.
--
-- What is accepted does not change: rules 1–4 of 0010 and 0011 hold as they were, and
-- `server/tests/api/ledger.rs` proves each refusal again; the lock of an own slot written
-- without the server's statement (which takes it first) is proven held by this check itself.

-- The lock key of a slot, 0010's formula, as a SQL function the planner inlines: the server's
-- statement and the checks below take locks with it in plain queries.
CREATE FUNCTION flashsale_slot_lock_key(sale uuid, slot bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT hashtextextended(sale::text || '/' || slot::text, 0) $$;

-- 0011's lock function, its key from the function above (the same value).
CREATE OR REPLACE FUNCTION flashsale_lock_slots(sales uuid[], slots bigint[]) RETURNS boolean
LANGUAGE plpgsql AS $fn$
BEGIN
    IF coalesce(cardinality(sales), 0) = 0 THEN
        RETURN true;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'slots are written at READ COMMITTED only, not at %',
            upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    PERFORM pg_advisory_xact_lock(flashsale_slot_lock_key(k.sale, k.slot))
       FROM (SELECT DISTINCT t.sale, t.slot FROM unnest(sales, slots) AS t(sale, slot)
              WHERE t.sale IS NOT NULL AND t.slot IS NOT NULL
              ORDER BY 1, 2) k;
    RETURN true;
END $fn$;

CREATE OR REPLACE FUNCTION flashsale_new_orders_checked() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    tally record;
    bad record;
BEGIN
    -- One pass: the own slots' locks and what each check below has to look at. `locked` is
    -- never read: selecting it is what makes the CTE run (once), so every lock is held before
    -- the probe below takes its snapshot.
    WITH locks AS MATERIALIZED (
        SELECT count(pg_advisory_xact_lock(flashsale_slot_lock_key(k.sale_id, k.slot))) AS taken
          FROM (SELECT DISTINCT sale_id, slot FROM new_orders
                 WHERE slot IS NOT NULL ORDER BY 1, 2) k
    )
    SELECT count(*) FILTER (WHERE p.sale_id IS NULL) AS unsold,
           count(*) FILTER (WHERE o.slot IS NOT NULL
                              AND (s.unit_cap IS NULL OR o.slot > s.unit_cap)) AS beyond_cap,
           count(*) FILTER (WHERE o.slot IS NOT NULL) AS own_slots,
           count(*) FILTER (WHERE NOT (o.slot IS NOT NULL AND o.quantity = 1
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
        -- Own slots within the cap (an unlimited sale has no slot to give).
        IF tally.beyond_cap > 0 THEN
            SELECT o.id, o.slot, o.sale_id INTO bad
              FROM new_orders o JOIN flash_sales s ON s.id = o.sale_id
             WHERE o.slot IS NOT NULL AND (s.unit_cap IS NULL OR o.slot > s.unit_cap)
             LIMIT 1;
            RAISE EXCEPTION 'order % names slot %, beyond the cap of sale %', bad.id, bad.slot,
                bad.sale_id
                USING ERRCODE = 'check_violation';
        END IF;
        -- The lock rule holds at READ COMMITTED only (0010's header).
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'slots are written at READ COMMITTED only, not at %',
                upper(current_setting('transaction_isolation'))
                USING ERRCODE = 'invalid_transaction_state';
        END IF;
        -- Not also a slot row: this query's snapshot is newer than the locks taken above.
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
    -- Each order owns exactly its quantity of slots, its own one counted (0011: a one-unit
    -- own-slot order of a guarded sale is left to the slot-row checks).
    IF tally.to_count > 0 THEN
        SELECT o.id, o.quantity, owned.n AS owned,
               (s.ledger = 'slots' AND s.unit_cap IS NOT NULL) AS guarded
          INTO bad
          FROM new_orders o
          JOIN flash_sales s ON s.id = o.sale_id
          CROSS JOIN LATERAL (SELECT count(*) + (o.slot IS NOT NULL)::int AS n
                                FROM order_units u WHERE u.order_id = o.id) owned
         WHERE NOT (o.slot IS NOT NULL AND o.quantity = 1
                    AND s.ledger = 'slots' AND s.unit_cap IS NOT NULL)
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
