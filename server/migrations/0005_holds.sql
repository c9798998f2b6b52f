-- Cart holds (issue 15): time-bounded reservations that share the slot ledger with orders.
--
-- A hold of a capped 'slots' sale owns `quantity` rows of `order_units`, exactly as an order
-- does: the row's owner is either an order (`order_id`) or a hold (`hold_id`), never both, and
-- the primary key (sale_id, slot) with CHECK (slot BETWEEN 1 AND sale_cap) is unchanged. So, at
-- every instant and whatever sequence of statements ran:
--
--     units in orders + units in live holds = slots owned ≤ cap.
--
-- The rules that keep the owners honest:
--
-- 1. A hold owns exactly the slots its state says: `quantity` while `live` (capped 'slots' sale),
--    none otherwise (checked out, released, expired; unlimited or unguarded sales, whose holds
--    are advisory). Checked at the end of every statement that touches holds or their slots.
-- 2. A hold changes state once: live → checked_out | released | expired. `checked_out` only
--    before `expires_at` (clock_timestamp(), at the statement), `expired` only after. Nothing
--    else about a hold changes, and holds are never deleted.
-- 3. Checking out turns the hold's slots into the order's in the statement that stores the order
--    (an UPDATE of `order_units` from hold to order, the only UPDATE allowed there); the order
--    rule of 0002 (an order owns exactly `quantity` slots, now also checked after that UPDATE)
--    and rule 1 (a checked-out hold owns none, and names an order of its own sale, buyer,
--    product and quantity) hold at the end of it. A hold expired by then cannot be checked out
--    (rule 2), and one whose slots expiry took back is no longer live.
-- 4. Only a hold's slots can be deleted (release, expiry), and only once the hold is not live
--    (rule 1 at the end of the statement). Order slots stay append-only.
--
-- A hold that has passed `expires_at` but is still `live` keeps its slots until something expires
-- it (the claim paths when they would otherwise answer sold out, and the expiry job): it is
-- counted as taken until then, never as free while it could still be checked out.

CREATE TABLE holds (
    id               uuid        PRIMARY KEY,
    sale_id          uuid        NOT NULL,
    product_id       text        NOT NULL,
    buyer_id         text        NOT NULL,
    quantity         integer     NOT NULL CHECK (quantity >= 1),
    unit_price_cents bigint      NOT NULL,
    idempotency_key  text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at       timestamptz NOT NULL,
    state            text        NOT NULL DEFAULT 'live'
                                 CHECK (state IN ('live', 'checked_out', 'released', 'expired')),
    -- The order a checked-out hold became.
    order_id         uuid,
    ended_at         timestamptz,
    decided_by       text        NOT NULL,
    FOREIGN KEY (sale_id, product_id) REFERENCES flash_sale_products (sale_id, product_id),
    CONSTRAINT holds_buyer_idempotency_key UNIQUE (buyer_id, idempotency_key),
    CHECK ((state = 'checked_out') = (order_id IS NOT NULL)),
    CHECK ((state = 'live') = (ended_at IS NULL)),
    CHECK (expires_at > created_at),
    UNIQUE (id, sale_id)
);
CREATE INDEX holds_live_by_expiry ON holds (sale_id, expires_at) WHERE state = 'live';

ALTER TABLE order_units ALTER COLUMN order_id DROP NOT NULL;
ALTER TABLE order_units ADD COLUMN hold_id uuid;
ALTER TABLE order_units ADD CONSTRAINT order_units_hold_fkey
    FOREIGN KEY (hold_id, sale_id) REFERENCES holds (id, sale_id);
ALTER TABLE order_units ADD CONSTRAINT order_units_one_owner
    CHECK ((order_id IS NULL) <> (hold_id IS NULL));
CREATE INDEX order_units_by_hold ON order_units (hold_id) WHERE hold_id IS NOT NULL;

-- Rule 1, over the holds a statement touched.
CREATE FUNCTION flashsale_check_hold_slots(touched uuid[]) RETURNS void
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    bad record;
BEGIN
    SELECT h.id, h.state, h.quantity, owned.n AS owned
      INTO bad
      FROM holds h
      JOIN flash_sales s ON s.id = h.sale_id
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM order_units u WHERE u.hold_id = h.id) owned
     WHERE h.id = ANY (touched)
       AND owned.n <> CASE WHEN h.state = 'live' AND s.ledger = 'slots' AND s.unit_cap IS NOT NULL
                           THEN h.quantity ELSE 0 END
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'hold % (%) has quantity % but owns % slots', bad.id, bad.state,
            bad.quantity, bad.owned
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    -- A checked-out hold names an order of the same sale, buyer, product and quantity.
    SELECT h.id INTO bad
      FROM holds h LEFT JOIN orders o ON o.id = h.order_id
     WHERE h.id = ANY (touched) AND h.state = 'checked_out'
       AND (o.id IS NULL OR o.sale_id <> h.sale_id OR o.buyer_id <> h.buyer_id
            OR o.product_id <> h.product_id OR o.quantity <> h.quantity)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'hold % was checked out into an order that is not its own', bad.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
END $$;

CREATE FUNCTION flashsale_new_holds_own_their_slots() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM flashsale_check_hold_slots(ARRAY(SELECT id FROM new_holds));
    RETURN NULL;
END $$;

CREATE FUNCTION flashsale_changed_holds_own_their_slots() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM flashsale_check_hold_slots(ARRAY(SELECT id FROM changed_holds));
    RETURN NULL;
END $$;

CREATE FUNCTION flashsale_hold_slots_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM flashsale_check_hold_slots(
            ARRAY(SELECT DISTINCT hold_id FROM new_units WHERE hold_id IS NOT NULL));
    ELSE
        PERFORM flashsale_check_hold_slots(
            ARRAY(SELECT DISTINCT hold_id FROM old_units WHERE hold_id IS NOT NULL));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER holds_own_their_slots
    AFTER INSERT ON holds REFERENCING NEW TABLE AS new_holds
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_new_holds_own_their_slots();
CREATE TRIGGER changed_holds_own_their_slots
    AFTER UPDATE ON holds REFERENCING NEW TABLE AS changed_holds
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_changed_holds_own_their_slots();
CREATE TRIGGER hold_slots_inserted
    AFTER INSERT ON order_units REFERENCING NEW TABLE AS new_units
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_hold_slots_changed();
CREATE TRIGGER hold_slots_updated
    AFTER UPDATE ON order_units REFERENCING OLD TABLE AS old_units
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_hold_slots_changed();
CREATE TRIGGER hold_slots_deleted
    AFTER DELETE ON order_units REFERENCING OLD TABLE AS old_units
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_hold_slots_changed();

-- Rule 2.
CREATE FUNCTION flashsale_hold_changes_state_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'holds are never deleted'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.state <> 'live' THEN
        RAISE EXCEPTION 'hold % is % already', OLD.id, OLD.state
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (NEW.id, NEW.sale_id, NEW.product_id, NEW.buyer_id, NEW.quantity, NEW.unit_price_cents,
        NEW.idempotency_key, NEW.created_at, NEW.expires_at, NEW.decided_by)
       IS DISTINCT FROM
       (OLD.id, OLD.sale_id, OLD.product_id, OLD.buyer_id, OLD.quantity, OLD.unit_price_cents,
        OLD.idempotency_key, OLD.created_at, OLD.expires_at, OLD.decided_by) THEN
        RAISE EXCEPTION 'only a hold''s state changes'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.state = 'checked_out' AND clock_timestamp() >= OLD.expires_at THEN
        RAISE EXCEPTION 'hold % expired at %', OLD.id, OLD.expires_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'holds_checkout_before_expiry';
    END IF;
    IF NEW.state = 'expired' AND clock_timestamp() < OLD.expires_at THEN
        RAISE EXCEPTION 'hold % does not expire before %', OLD.id, OLD.expires_at
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER holds_change_state_once BEFORE UPDATE OR DELETE ON holds
    FOR EACH ROW EXECUTE FUNCTION flashsale_hold_changes_state_once();
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_append_only();

-- Rules 3 and 4: order slots stay append-only; a hold's slot may become its order's (the same
-- sale, slot and cap) or be deleted.
DROP TRIGGER order_units_append_only ON order_units;
CREATE FUNCTION flashsale_order_units_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.hold_id IS NULL THEN
        RAISE EXCEPTION 'an order''s slots are append-only'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF NEW.hold_id IS NOT NULL OR NEW.order_id IS NULL OR NEW.sale_id <> OLD.sale_id
       OR NEW.slot <> OLD.slot OR NEW.sale_cap <> OLD.sale_cap THEN
        RAISE EXCEPTION 'a hold''s slot can only become an order''s'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER order_units_change BEFORE UPDATE OR DELETE ON order_units
    FOR EACH ROW EXECUTE FUNCTION flashsale_order_units_change();

-- The order rule of 0002 after a hold's slots become an order's: an existing order cannot gain
-- slots that way.
CREATE TRIGGER order_units_updated_match_quantity
    AFTER UPDATE ON order_units REFERENCING NEW TABLE AS new_units
    FOR EACH STATEMENT EXECUTE FUNCTION flashsale_new_slots_match_quantity();
