-- Issue 13, items 3 and 4: idempotency keys belong to a buyer, and `per_buyer_limit` limits the
-- buyer, not one order.
--
-- Keys. An Idempotency-Key names one buyer's request: the same key sent by two buyers is two
-- requests. Unique per (buyer_id, idempotency_key) instead of across the ledger, so no lookup
-- can ever answer one buyer with another's order, and no buyer can block another's key.
--
-- Limits. For a 'slots' sale with a `per_buyer_limit`, every buyer with units in the sale has one
-- row in `buyer_units` whose `units` is at least the units in that buyer's orders and at most the
-- limit (a CHECK against the sale's own limit, pinned by a foreign key as `sale_cap` is for
-- slots). The row is raised by a statement trigger on `orders`, in the statement that inserts the
-- orders, so an order that would take its buyer past the limit fails with its whole statement;
-- `units` can never go down and rows can never be deleted. Hence, as with slots, a buyer holding
-- more than the limit cannot be represented, whichever claim path (Redis or PostgreSQL) admitted
-- the order. Two concurrent orders of one buyer queue on the buyer's row: the second sees the
-- first's units once it commits, and fails if both together pass the limit.
--
-- Unguarded sales (the deliberately broken test strategies' ledger) keep no buyer rows, as they
-- keep no slots: a mutant must be able to break the rule for the harness to prove it catches it.

ALTER TABLE orders DROP CONSTRAINT orders_idempotency_key_key;
ALTER TABLE orders ADD CONSTRAINT orders_buyer_idempotency_key UNIQUE (buyer_id, idempotency_key);

ALTER TABLE flash_sales ADD CONSTRAINT flash_sales_id_per_buyer_limit_key
    UNIQUE (id, per_buyer_limit);

CREATE TABLE buyer_units (
    sale_id     uuid    NOT NULL,
    buyer_id    text    NOT NULL,
    units       bigint  NOT NULL CHECK (units >= 1),
    buyer_limit integer NOT NULL,
    PRIMARY KEY (sale_id, buyer_id),
    CONSTRAINT buyer_units_within_limit CHECK (units <= buyer_limit),
    FOREIGN KEY (sale_id, buyer_limit) REFERENCES flash_sales (id, per_buyer_limit)
);

-- Existing databases: each buyer's units so far, capped at the limit (a buyer who already holds
-- more, sold before this rule existed, can buy nothing more; the row cannot state the excess).
INSERT INTO buyer_units (sale_id, buyer_id, units, buyer_limit)
SELECT o.sale_id, o.buyer_id, least(sum(o.quantity), s.per_buyer_limit), s.per_buyer_limit
  FROM orders o JOIN flash_sales s ON s.id = o.sale_id
 WHERE s.per_buyer_limit IS NOT NULL AND s.ledger = 'slots'
 GROUP BY o.sale_id, o.buyer_id, s.per_buyer_limit;

-- Adds the units of the orders a statement inserted to their buyers' rows. Rows are taken in
-- (sale, buyer) order, so two statements that touch the same buyers queue instead of deadlocking.
-- Costs one join with `flash_sales` per statement for sales without a limit.
CREATE FUNCTION flashsale_count_buyer_units() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
BEGIN
    INSERT INTO buyer_units (sale_id, buyer_id, units, buyer_limit)
    SELECT o.sale_id, o.buyer_id, sum(o.quantity), s.per_buyer_limit
      FROM new_orders o JOIN flash_sales s ON s.id = o.sale_id
     WHERE s.per_buyer_limit IS NOT NULL AND s.ledger = 'slots'
     GROUP BY o.sale_id, o.buyer_id, s.per_buyer_limit
     ORDER BY o.sale_id, o.buyer_id
    ON CONFLICT (sale_id, buyer_id) DO UPDATE SET units = buyer_units.units + excluded.units;
    RETURN NULL;
END $$;

CREATE TRIGGER orders_count_buyer_units
    AFTER INSERT ON orders REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_count_buyer_units();

-- A buyer's units only ever grow, and a row never goes away: lowering one would let the buyer's
-- orders exceed the limit again.
CREATE FUNCTION flashsale_buyer_units_only_grow() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.units >= OLD.units AND NEW.sale_id = OLD.sale_id
       AND NEW.buyer_id = OLD.buyer_id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'buyer_units only grow (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER buyer_units_only_grow BEFORE UPDATE OR DELETE ON buyer_units
    FOR EACH ROW EXECUTE FUNCTION flashsale_buyer_units_only_grow();
CREATE TRIGGER buyer_units_no_truncate BEFORE TRUNCATE ON buyer_units
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_append_only();

-- The limit is a term of the sale, fixed at creation like the cap.
CREATE OR REPLACE FUNCTION flashsale_sale_terms_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.unit_cap IS DISTINCT FROM OLD.unit_cap OR NEW.ledger <> OLD.ledger
       OR NEW.per_buyer_limit IS DISTINCT FROM OLD.per_buyer_limit THEN
        RAISE EXCEPTION 'a sale''s cap, per-buyer limit and ledger kind cannot change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
