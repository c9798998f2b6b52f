-- The PostgreSQL claim path's common case in one round trip (issue 6, G4): take the sale's
-- advisory lock, read the highest slot, and if the batch fits above it within the cap, store its
-- orders with the next slots — one call, in the caller's implicit transaction, so the lock is
-- held until that commits. Inside a volatile function each statement takes a fresh snapshot, so
-- the read after the lock sees every slot committed by whoever held the lock before (a single
-- plain statement could not: its snapshot would predate the lock).
--
-- Returns the stored orders' ids and creation times; no rows, and nothing written, when the batch
-- does not fit above the highest slot (the caller then looks for holes in a transaction of its
-- own). The lock key is the one `inventory/postgres.rs` uses.
CREATE FUNCTION flashsale_append_claims(
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
-- The max(slot) and the checks it fires are index lookups; a generic plan made while the table
-- was small must not turn them into scans (see 0002).
SET enable_seqscan = off
AS $$
DECLARE
    highest bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_sale::text, 7));
    SELECT coalesce(max(u.slot), 0) INTO highest FROM order_units u WHERE u.sale_id = p_sale;
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
