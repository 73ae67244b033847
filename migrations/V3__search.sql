-- Search: Russian full-text search over chunks (fused with vector search by reciprocal rank
-- fusion when asked), and deep questions, which run as jobs with progress.

CREATE INDEX chunk_text_fts_idx ON chunk USING gin (to_tsvector('russian', text));

CREATE TABLE question_job (
    question_job_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question        text NOT NULL CHECK (question <> ''),
    -- {config, filters}: what the question covers.
    scope           jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(scope) = 'object'),
    status          text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'done', 'failed')),
    -- Recordings in scope and how many have been read.
    total_items     integer CHECK (total_items >= 0),
    done_items      integer NOT NULL DEFAULT 0 CHECK (done_items >= 0),
    result          jsonb,
    last_error      text,
    lease_owner     text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CHECK ((status = 'done') = (result IS NOT NULL))
);
CREATE INDEX question_job_status_idx ON question_job (status, updated_at);

-- Retention: when a recording's audio was deleted (its transcript and reports are kept).
ALTER TABLE recording ADD COLUMN audio_deleted_at timestamptz;

-- This database's identity, written into every index manifest: an index built from another
-- database (a dropped and recreated one, another deployment's) is never served or extended
-- as if it were this one's (chunk ids would name other chunks). A restored backup keeps it.
CREATE TABLE deployment (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    database_id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO deployment DEFAULT VALUES;
