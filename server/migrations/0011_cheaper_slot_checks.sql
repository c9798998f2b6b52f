-- Issue 18, G3: the same rules as 0010, checked with fewer statements per insert.
--
-- An order batch of the Redis path is one statement whose cost inside PostgreSQL is mostly fixed
-- per statement: the checks run a handful of small queries each, and every query pays executor
-- start-up whatever the number of rows. Measured with pgbench (one client, 16 one-unit orders
-- per statement), the slot locks alone cost ~0.08 ms per call, and a batch takes them twice (its
-- statement, then the orders check). This migration changes how two checks run, not what they
-- accept:
--
-- * `flashsale_lock_slots` takes its locks in one query instead of one query per slot. Same
--   keys, same ascending (sale, slot) order: the lock calls are evaluated row by row in the order
--   the sorted subquery returns them.
-- * The orders check no longer counts the slot rows of a one-unit order that carries its own
--   slot in a guarded sale (capped, slot ledger). Such an order owns exactly one slot unless a
--   slot row names it, and a slot row can only name it in the same statement or a later one:
--   an earlier statement could not have named an order that did not exist yet (the slot-row
--   check refuses a row whose order is missing). The slot-row checks count an order's own slot
--   (0010), at insert and on every update of `order_units`, so they refuse that order then. Any
--   other order is counted as before, including an own slot in an unguarded sale, which the
--   count refuses as owning a slot it should not.
--
-- Rules 1–4 of 0010 hold unchanged; `server/tests/api/ledger.rs` proves each refusal again,
-- including a slot row added to a one-unit order in the same statement.

-- 0010's lock function, one query for all its locks.
CREATE OR REPLACE FUNCTION flashsale_lock_slots(sales uuid[], slots bigint[]) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(cardinality(sales), 0) = 0 THEN
        RETURN true;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'slots are written at READ COMMITTED only, not at %',
            upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(k.sale::text || '/' || k.slot::text, 0))
       FROM (SELECT DISTINCT t.sale, t.slot FROM unnest(sales, slots) AS t(sale, slot)
              WHERE t.sale IS NOT NULL AND t.slot IS NOT NULL
              ORDER BY 1, 2) k;
    RETURN true;
END $$;

-- 0010's orders check; the count of owned slots skips one-unit own-slot orders of guarded sales.
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
        -- Not also a slot row: under the slots' locks (0010's header), after which this
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
    -- or unlimited sale). A one-unit own-slot order of a guarded sale owns its one slot; the
    -- slot-row checks refuse any row that would give it more (see the header). The condition is
    -- on the joined rows only, so such an order is filtered out before the count runs.
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
