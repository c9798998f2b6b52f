-- The flash-sale ledger. PostgreSQL is the durable truth; Redis only admits and hints.
--
-- Oversell cannot be represented here (for sales whose ledger is 'slots', the only kind the
-- correct strategies create): every unit of every order occupies one row of `order_units`, whose
-- primary key (sale_id, slot) makes slots distinct, whose CHECK keeps each slot within 1..cap, and
-- whose foreign key pins `sale_cap` to the sale's real cap. A deferred constraint trigger makes an
-- order's quantity equal to the number of slots it owns, and the ledger is append-only. So the
-- units in a sale's orders are at most `cap`, whatever Redis said. See server/README.md.

CREATE TABLE flash_sales (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    state           text        NOT NULL DEFAULT 'scheduled'
                                CHECK (state IN ('scheduled', 'active', 'expired')),
    -- NULL means unlimited.
    unit_cap        bigint      CHECK (unit_cap IS NULL OR unit_cap >= 0),
    per_buyer_limit integer     CHECK (per_buyer_limit IS NULL OR per_buyer_limit >= 1),
    -- Kept in sync asynchronously by the units-sync job; never used to decide a claim.
    quantity_sold   bigint      NOT NULL DEFAULT 0,
    -- 'unguarded' exists only for the deliberately broken test strategies (the seed's data model,
    -- orders without slots); the correct strategies always create 'slots' sales.
    ledger          text        NOT NULL DEFAULT 'slots' CHECK (ledger IN ('slots', 'unguarded')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    UNIQUE (id, unit_cap)
);

CREATE TABLE flash_sale_products (
    sale_id          uuid   NOT NULL REFERENCES flash_sales (id),
    product_id       text   NOT NULL CHECK (length(product_id) BETWEEN 1 AND 100),
    sale_price_cents bigint NOT NULL CHECK (sale_price_cents >= 0),
    PRIMARY KEY (sale_id, product_id)
);

CREATE TABLE orders (
    id               uuid        PRIMARY KEY,
    sale_id          uuid        NOT NULL REFERENCES flash_sales (id),
    product_id       text        NOT NULL,
    buyer_id         text        NOT NULL,
    quantity         integer     NOT NULL CHECK (quantity >= 1),
    unit_price_cents bigint      NOT NULL,
    idempotency_key  text        NOT NULL UNIQUE,
    -- Which claim path decided the order: 'redis', 'postgres', 'broken-naive', 'broken-seed-…'.
    decided_by       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (sale_id, product_id) REFERENCES flash_sale_products (sale_id, product_id),
    UNIQUE (id, sale_id)
);
CREATE INDEX orders_sale_created ON orders (sale_id, created_at);

CREATE TABLE order_units (
    sale_id  uuid   NOT NULL,
    slot     bigint NOT NULL,
    sale_cap bigint NOT NULL,
    order_id uuid   NOT NULL,
    PRIMARY KEY (sale_id, slot),
    CHECK (slot BETWEEN 1 AND sale_cap),
    FOREIGN KEY (sale_id, sale_cap) REFERENCES flash_sales (id, unit_cap),
    FOREIGN KEY (order_id, sale_id) REFERENCES orders (id, sale_id)
);
CREATE INDEX order_units_order ON order_units (order_id);

-- An order of a 'slots' sale with a cap owns exactly `quantity` slots, checked at commit so the
-- order and its slots can be inserted in either order within one transaction.
CREATE FUNCTION flashsale_check_order_slots(checked_order uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    wanted integer;
    owned  bigint;
    guarded boolean;
BEGIN
    SELECT o.quantity, (s.ledger = 'slots' AND s.unit_cap IS NOT NULL)
      INTO wanted, guarded
      FROM orders o JOIN flash_sales s ON s.id = o.sale_id
     WHERE o.id = checked_order;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'order_units reference a missing order %', checked_order
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT count(*) INTO owned FROM order_units WHERE order_id = checked_order;
    IF guarded AND owned <> wanted THEN
        RAISE EXCEPTION 'order % has quantity % but owns % slots', checked_order, wanted, owned
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NOT guarded AND owned <> 0 THEN
        RAISE EXCEPTION 'order % of an unlimited or unguarded sale owns slots', checked_order
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
END $$;

CREATE FUNCTION flashsale_order_slots_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        PERFORM flashsale_check_order_slots(NEW.id);
    ELSE
        PERFORM flashsale_check_order_slots(NEW.order_id);
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER orders_own_their_slots
    AFTER INSERT ON orders DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION flashsale_order_slots_trigger();
CREATE CONSTRAINT TRIGGER order_units_match_quantity
    AFTER INSERT ON order_units DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION flashsale_order_slots_trigger();

-- The ledger is append-only: an order, once acknowledged, never changes or disappears, and a
-- sale's cap and ledger kind never change after creation.
CREATE FUNCTION flashsale_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER orders_append_only BEFORE UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION flashsale_append_only();
CREATE TRIGGER orders_no_truncate BEFORE TRUNCATE ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_append_only();
CREATE TRIGGER order_units_append_only BEFORE UPDATE OR DELETE ON order_units
    FOR EACH ROW EXECUTE FUNCTION flashsale_append_only();
CREATE TRIGGER order_units_no_truncate BEFORE TRUNCATE ON order_units
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_append_only();

CREATE FUNCTION flashsale_sale_terms_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.unit_cap IS DISTINCT FROM OLD.unit_cap OR NEW.ledger <> OLD.ledger THEN
        RAISE EXCEPTION 'a sale''s cap and ledger kind cannot change'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER flash_sales_terms_fixed BEFORE UPDATE ON flash_sales
    FOR EACH ROW EXECUTE FUNCTION flashsale_sale_terms_fixed();
