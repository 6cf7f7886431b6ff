-- Issue 16: the round path. A round's outbox rows include its outcome parts, about 200 KB of
-- JSON each (35 for 7,000 students): lz4 compresses them several times faster than PostgreSQL's
-- default pglz, which the round's transaction waits for. Where the server was built without lz4
-- the column keeps the default.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'outbox.payload keeps the default compression: %', SQLERRM;
END
$$;

-- A round reads every profile and offer of its region. Each is kept a second time as the bytes
-- of the JSON the contract validated when it was consumed: a round reads those (a copy, no jsonb
-- to text conversion) and rebuilds the models without validating them again
-- (shared/trusted.py). The jsonb columns stay for queries (which regions rank a placement).
ALTER TABLE students ADD COLUMN profile_json bytea;
ALTER TABLE placements ADD COLUMN offer_json bytea;
UPDATE students SET profile_json = convert_to(profile::text, 'UTF8') WHERE profile IS NOT NULL;
UPDATE placements SET offer_json = convert_to(offer::text, 'UTF8');
