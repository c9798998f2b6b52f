-- Sale lifecycle jobs, the product catalog the preflight checks against, wishlists, and the
-- per-recipient record of wishlist alerts (issue 16).
--
-- Contract:
--
-- 1. `lifecycle_jobs` is a durable job queue: a job is a row, due at `run_at`, done when
--    `done_at` is set. A worker takes one with FOR UPDATE SKIP LOCKED and runs it *in the same
--    transaction* that marks it done, so a worker that dies mid-job leaves the row untouched and
--    unlocked (PostgreSQL rolls the transaction back when the connection goes) and the next worker
--    runs it again. Jobs only change the database, so re-running one is exactly the same as
--    running it once: a job's effect and its `done_at` commit together. (kind, sale_id) is
--    unique, so enqueueing twice is one job.
-- 2. `notification_deliveries` has one row per (sale, user, channel), planned in the activation's
--    own transaction: a sale that went live has its recipients fixed at that instant, and a row
--    can never be planned twice (the primary key). The row moves
--        pending → sending → sent | refused | pending (a temporary failure, retried later)
--    and a row found `sending` by a later worker whose claim has lapsed becomes `in_doubt`, never
--    `pending`: it may have been sent, and an alert is sent at most once (INV-8). A graceful
--    shutdown finishes and records every send it started, so only a crash leaves `in_doubt` rows.
-- 3. `products.list_price_cents` is the price a sale's discount is measured against.

CREATE TABLE products (
    product_id       text   PRIMARY KEY CHECK (length(product_id) BETWEEN 1 AND 100),
    name             text   NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    list_price_cents bigint NOT NULL CHECK (list_price_cents > 0)
);

-- Set when the sale was created with "activate_on_schedule": the activation job makes it live at
-- starts_at after the preflight. `preflight_problems` is what stopped an activation (NULL when
-- none did).
ALTER TABLE flash_sales
    ADD COLUMN activate_on_schedule boolean     NOT NULL DEFAULT false,
    ADD COLUMN preflight_problems   jsonb,
    ADD COLUMN activated_at         timestamptz;

CREATE TABLE lifecycle_jobs (
    id         bigserial   PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('activate', 'expire')),
    sale_id    uuid        NOT NULL REFERENCES flash_sales (id),
    run_at     timestamptz NOT NULL,
    attempts   integer     NOT NULL DEFAULT 0,
    last_error text,
    done_at    timestamptz,
    UNIQUE (kind, sale_id)
);
CREATE INDEX lifecycle_jobs_due ON lifecycle_jobs (run_at) WHERE done_at IS NULL;

-- How a user wants to hear about a sale: an email address, a Web Push subscription (the
-- browser's PushSubscription: endpoint and the keys p256dh and auth, base64url), or both.
CREATE TABLE notification_contacts (
    user_id      text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 200),
    email        text CHECK (length(email) <= 254),
    push_endpoint text CHECK (length(push_endpoint) <= 2000),
    push_p256dh  text,
    push_auth    text,
    CHECK ((push_endpoint IS NULL) = (push_p256dh IS NULL)
           AND (push_endpoint IS NULL) = (push_auth IS NULL))
);

CREATE TABLE wishlist_entries (
    user_id    text        NOT NULL REFERENCES notification_contacts (user_id),
    product_id text        NOT NULL CHECK (length(product_id) BETWEEN 1 AND 100),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, product_id)
);
CREATE INDEX wishlist_entries_product ON wishlist_entries (product_id);

CREATE TABLE notification_deliveries (
    sale_id         uuid        NOT NULL REFERENCES flash_sales (id),
    user_id         text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'push')),
    -- The address or endpoint at planning time (the push keys are read at send time, so a
    -- subscription renewed in between is used).
    address         text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sending', 'sent', 'refused', 'in_doubt')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      uuid,
    claimed_at      timestamptz,
    sent_at         timestamptz,
    -- Why the last attempt failed, or why the channel refused for good.
    detail          text,
    PRIMARY KEY (sale_id, user_id, channel),
    CHECK ((state = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX notification_deliveries_sending ON notification_deliveries (claimed_at)
    WHERE state = 'sending';
