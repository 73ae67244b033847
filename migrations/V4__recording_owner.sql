-- Who created a recording's upload intent through the API: `key:<api_key_id>` or
-- `token:<sub>` (a JWT authorizer's subject). Uploaders see only their own recordings;
-- recordings put into the bucket directly (or made before this migration) have none and are
-- seen by analysts and admins only.
ALTER TABLE recording ADD COLUMN created_by text;

CREATE INDEX recording_created_by_idx ON recording (created_by, recording_id)
    WHERE created_by IS NOT NULL;
