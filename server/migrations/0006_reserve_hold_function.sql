-- A PostgreSQL-path reservation in one call (issue 15, benchmark G9): take the sale's advisory
-- lock, find the free slots, give back the sale's due holds when too few are free, and store the
-- hold with its slots.
--
-- Why a function: the sale's lock orders reservations and PostgreSQL-path claims of one sale, so
-- whatever runs while it is held runs one reservation at a time. Sent statement by statement
-- (lock, highest slot, insert, commit), every round trip under the lock also waited for the
-- server process to be scheduled; on 2 cores that made reserve + checkout 0.5x the seed's
-- row-lock design (361 journeys/s against 698). Here the lock is held for one call and the
-- commit, as `flashsale_append_claims` (0003) does for claims.
--
-- Contract: called as a statement of its own (its implicit transaction, READ COMMITTED, so each
-- statement inside sees what the lock's previous holders committed). Returns one row:
-- `hold_id` — p_hold when the hold was stored, NULL when too few slots are free (sold out) —
-- and `freed`, the units the sale's due holds gave back (for the Redis counter; their expiry is
-- kept even when the reservation does not fit). It writes only rows the rules of 0005 accept: a
-- slot taken meanwhile by a Redis-path claim (which does not take the lock) fails the whole call
-- on `order_units_pkey`, nothing is written, and the caller decides again. The lock key is the
-- one 0003 uses.
CREATE FUNCTION flashsale_reserve_hold(
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
-- As in 0003: the lookups are index lookups, whatever generic plan a small table suggested.
SET enable_seqscan = off
AS $$
DECLARE
    highest bigint;
    slots   bigint[];
    given_back bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_sale::text, 7));
    FOR attempt IN 1..2 LOOP
        -- Above the highest slot when they fit there (every slot above it is free), else the
        -- lowest holes.
        SELECT coalesce(max(u.slot), 0) INTO highest FROM order_units u WHERE u.sale_id = p_sale;
        IF highest + p_quantity <= p_cap THEN
            slots := ARRAY(SELECT generate_series(highest + 1, highest + p_quantity));
        ELSE
            slots := ARRAY(
                SELECT candidate FROM generate_series(1::bigint, p_cap) AS candidate
                WHERE NOT EXISTS (
                    SELECT 1 FROM order_units u WHERE u.sale_id = p_sale AND u.slot = candidate)
                ORDER BY candidate LIMIT p_quantity);
        END IF;
        EXIT WHEN cardinality(slots) >= p_quantity OR attempt = 2;
        -- Too few free: the sale's holds past their expiry give their slots back, then look again.
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
    -- One statement: 0005's rule 1 (a live hold owns exactly its quantity of slots) is checked at
    -- the end of each statement.
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
