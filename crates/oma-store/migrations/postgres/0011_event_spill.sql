-- Large events spill to the blob store: `blob_key` names the blob holding the full event
-- object, and `body` then keeps only a small stub. NULL for events stored inline.
ALTER TABLE events ADD COLUMN blob_key TEXT;
