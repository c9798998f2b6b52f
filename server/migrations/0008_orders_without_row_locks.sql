-- Issue 18, G3: an order's insert takes no lock on any shared row, so order batches commit
-- side by side.
--
-- Until now three foreign keys were checked for every row an order writes: orders -> its sale's
-- product, order_units -> its order, order_units -> the sale's (id, unit_cap). A foreign-key
-- check is one query per row that also takes a KEY SHARE lock on the referenced row, and every
-- order of a sale references the same sale and product rows: concurrent batches of one sale
-- shared those locks through multixacts, so only one batch could usefully run at a time
-- (measured in issue 6), and the checks alone were a third of a batch's time in PostgreSQL
-- (pgbench, 32 one-unit orders per statement: 289 batches/s with them, 430 without).
--
-- The same facts are now checked once per statement, over the rows it inserted, by the statement
-- triggers that already count slots (0002, 0005), with plain reads. A plain read is as good as
-- the foreign key's locked one only because what it reads can no longer change or disappear:
--
-- * a sale and its products are permanent: never deleted (new triggers below), their keys never
--   change, and a sale's cap is fixed at creation (0001's `flashsale_sale_terms_fixed`);
-- * an order is permanent (0001: append-only).
--
-- So a fact true when the statement ends (the order's product exists; each slot's `sale_cap` is
-- its sale's `unit_cap`; each slot's order exists in the slot's sale) stays true for ever, and a
-- row the statement cannot see yet (another transaction's, uncommitted) makes the check fail,
-- never pass. The oversell argument of 0001 is unchanged: slots are distinct per sale (the
-- primary key), within 1..sale_cap (CHECK), sale_cap is the sale's cap (now this trigger instead
-- of a foreign key), and every order or live hold owns exactly its quantity of slots.
--
-- Holds keep their foreign keys: they are not on the order path's hot loop.

ALTER TABLE orders DROP CONSTRAINT orders_sale_id_product_id_fkey;
ALTER TABLE order_units DROP CONSTRAINT order_units_sale_id_sale_cap_fkey;
ALTER TABLE order_units DROP CONSTRAINT order_units_order_id_sale_id_fkey;
-- Only that foreign key used it: one index entry less per order.
ALTER TABLE orders DROP CONSTRAINT orders_id_sale_id_key;

-- Sales and products are permanent (what the foreign keys guaranteed for any sale with orders).
CREATE FUNCTION flashsale_permanent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are permanent: %s refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER flash_sales_permanent BEFORE DELETE ON flash_sales
    FOR EACH ROW EXECUTE FUNCTION flashsale_permanent();
CREATE TRIGGER flash_sales_no_truncate BEFORE TRUNCATE ON flash_sales
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_permanent();
CREATE TRIGGER flash_sale_products_permanent BEFORE DELETE ON flash_sale_products
    FOR EACH ROW EXECUTE FUNCTION flashsale_permanent();
CREATE TRIGGER flash_sale_products_no_truncate BEFORE TRUNCATE ON flash_sale_products
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_permanent();

CREATE FUNCTION flashsale_product_key_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.sale_id, NEW.product_id) IS DISTINCT FROM (OLD.sale_id, OLD.product_id) THEN
        RAISE EXCEPTION 'a sale''s product cannot change its key'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER flash_sale_products_key_fixed BEFORE UPDATE ON flash_sale_products
    FOR EACH ROW EXECUTE FUNCTION flashsale_product_key_fixed();

-- New orders: each is of an existing product of its sale (was the foreign key) and owns exactly
-- its quantity of slots (0002), in one pass over the statement's rows.
CREATE OR REPLACE FUNCTION flashsale_new_orders_own_their_slots() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    bad record;
BEGIN
    SELECT o.id, o.quantity, owned.n AS owned, o.sale_id, o.product_id,
           p.sale_id IS NULL AS no_product,
           (s.ledger = 'slots' AND s.unit_cap IS NOT NULL) AS guarded
      INTO bad
      FROM new_orders o
      LEFT JOIN flash_sale_products p ON p.sale_id = o.sale_id AND p.product_id = o.product_id
      LEFT JOIN flash_sales s ON s.id = o.sale_id
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM order_units u WHERE u.order_id = o.id) owned
     WHERE p.sale_id IS NULL
        OR owned.n <> CASE WHEN s.ledger = 'slots' AND s.unit_cap IS NOT NULL
                           THEN o.quantity ELSE 0 END
     LIMIT 1;
    IF FOUND AND bad.no_product THEN
        RAISE EXCEPTION 'order % is of product % that sale % does not sell', bad.id,
            bad.product_id, bad.sale_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF FOUND THEN
        PERFORM flashsale_slot_mismatch(bad.id, bad.quantity, bad.owned, bad.guarded);
    END IF;
    RETURN NULL;
END $$;

-- Slots inserted or handed from a hold to an order: each names its sale's real cap (was the
-- foreign key to flash_sales), an order that exists in the slot's sale (was the foreign key to
-- orders; a hold's slots keep theirs), and every order touched still owns exactly its quantity
-- (0002).
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
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM order_units u WHERE u.order_id = o.id) owned
     WHERE o.id = ANY (touched)
       AND owned.n <> CASE WHEN s.ledger = 'slots' AND s.unit_cap IS NOT NULL
                           THEN o.quantity ELSE 0 END
     LIMIT 1;
    IF FOUND THEN
        PERFORM flashsale_slot_mismatch(bad.id, bad.quantity, bad.owned, bad.guarded);
    END IF;
    RETURN NULL;
END $$;

-- 0005's hold check ran for every order statement too, over no holds; it now returns at once
-- when the statement touched no hold's slots (a fifth of an order batch's time).
CREATE OR REPLACE FUNCTION flashsale_hold_slots_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    touched uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        touched := ARRAY(SELECT DISTINCT hold_id FROM new_units WHERE hold_id IS NOT NULL);
    ELSE
        touched := ARRAY(SELECT DISTINCT hold_id FROM old_units WHERE hold_id IS NOT NULL);
    END IF;
    IF cardinality(touched) > 0 THEN
        PERFORM flashsale_check_hold_slots(touched);
    END IF;
    RETURN NULL;
END $$;
