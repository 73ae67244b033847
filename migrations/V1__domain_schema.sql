-- VoxPersona domain schema.
--
-- Table and column names follow the system this replaces (transcription, audit, employee,
-- client, place, zone, place_zone, city, scenario, report_type, buildings,
-- buildings_report_type, user_road, prompts, prompts_buildings) so that existing SQL still
-- reads. What that system lacked is added here: foreign keys everywhere, UNIQUE natural keys
-- (so get-or-create is a race-free INSERT ... ON CONFLICT), NOT NULL where a value is
-- required, timestamptz, and indexes on what queries filter and join by.
--
-- Names typed by people (employee, client, city, zone, place) are unique through an index on
-- md5(name): a B-tree entry cannot hold an arbitrarily long text, and a name is stored exactly
-- as given, however long. Long texts (transcripts, reports, prompts) are TOASTed with lz4,
-- several times faster than the default pglz for a slightly larger result.

-- Reference data ---------------------------------------------------------------------------

CREATE TABLE scenario (
    scenario_id   smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scenario_name text NOT NULL UNIQUE,            -- stored name users know: Дизайн, Интервью
    code          text NOT NULL UNIQUE             -- stable English id: design, interview
        CHECK (code ~ '^[a-z][a-z0-9-]*$')
);

CREATE TABLE buildings (
    building_id   smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    building_type text NOT NULL UNIQUE,            -- Отель, Ресторан, Центр Здоровья, non-building
    code          text NOT NULL UNIQUE
        CHECK (code ~ '^[a-z][a-z0-9-]*$')
);

CREATE TABLE report_type (
    report_type_id   smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_type_desc text NOT NULL,                -- stored name: Общие факторы, ...
    scenario_id      smallint NOT NULL REFERENCES scenario (scenario_id),
    code             text NOT NULL UNIQUE
        CHECK (code ~ '^[a-z][a-z0-9-]*$'),
    UNIQUE (report_type_desc, scenario_id),
    -- Target of user_road's composite key: a road's report type must belong to its scenario.
    UNIQUE (report_type_id, scenario_id)
);
CREATE INDEX report_type_scenario_idx ON report_type (scenario_id);

-- Valid (building, report type) pairs are data, not code.
CREATE TABLE buildings_report_type (
    building_id    smallint NOT NULL REFERENCES buildings (building_id),
    report_type_id smallint NOT NULL REFERENCES report_type (report_type_id),
    PRIMARY KEY (building_id, report_type_id)
);
CREATE INDEX buildings_report_type_report_type_idx ON buildings_report_type (report_type_id);

-- People and places ------------------------------------------------------------------------

CREATE TABLE employee (
    employee_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    employee_name text NOT NULL CHECK (employee_name <> '')
);
CREATE UNIQUE INDEX employee_name_key ON employee (md5(employee_name));

CREATE TABLE client (
    client_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_name text NOT NULL CHECK (client_name <> '')
);
CREATE UNIQUE INDEX client_name_key ON client (md5(client_name));

CREATE TABLE city (
    city_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    city_name text NOT NULL CHECK (city_name <> '')
);
CREATE UNIQUE INDEX city_name_key ON city (md5(city_name));

CREATE TABLE zone (
    zone_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    zone_name text NOT NULL CHECK (zone_name <> '')
);
CREATE UNIQUE INDEX zone_name_key ON zone (md5(zone_name));

-- building_type stays a text column (as before) but now references buildings.
CREATE TABLE place (
    place_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    place_name    text NOT NULL CHECK (place_name <> ''),
    building_type text NOT NULL REFERENCES buildings (building_type) ON UPDATE CASCADE
);
CREATE UNIQUE INDEX place_name_key ON place (md5(place_name), building_type);
CREATE INDEX place_building_type_idx ON place (building_type);

CREATE TABLE place_zone (
    place_id bigint NOT NULL REFERENCES place (place_id) ON DELETE CASCADE,
    zone_id  bigint NOT NULL REFERENCES zone (zone_id),
    PRIMARY KEY (place_id, zone_id)
);
CREATE INDEX place_zone_zone_idx ON place_zone (zone_id);

-- Pipeline: recordings and transcripts -----------------------------------------------------

-- One row per uploaded object version. An upload intent (API) creates the row before the
-- object exists (etag ''); the S3 notification then fills in the ETag.
CREATE TABLE recording (
    recording_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket        text NOT NULL CHECK (bucket <> ''),
    object_key    text NOT NULL CHECK (object_key <> ''),
    etag          text NOT NULL DEFAULT '',
    version_id    text NOT NULL DEFAULT '',
    size_bytes    bigint CHECK (size_bytes >= 0),
    content_type  text,
    -- Recording metadata as captured at upload (number, date, employee, place, building,
    -- zones, city, client, scenario, report types, language); validated by the application.
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    status        text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('awaiting_upload', 'pending', 'transcribing', 'transcribed',
                          'analyzing', 'done', 'failed')),
    stage         text,                              -- human-readable detail of the status
    progress      real CHECK (progress BETWEEN 0 AND 1),
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    lease_owner   text,
    lease_until   timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    UNIQUE (bucket, object_key, etag, version_id)
);
CREATE INDEX recording_status_idx ON recording (status, updated_at);
CREATE INDEX recording_created_idx ON recording (created_at DESC, recording_id DESC);

CREATE TABLE transcription (
    transcription_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transcription_text text COMPRESSION lz4 NOT NULL,
    audio_file_name    text NOT NULL CHECK (audio_file_name <> ''),
    transcription_date timestamptz NOT NULL DEFAULT now(),
    number_audio       integer,
    recording_id       bigint UNIQUE REFERENCES recording (recording_id),
    language           text,
    audio_seconds      double precision CHECK (audio_seconds >= 0),
    model_id           text,
    -- Natural key of a transcript stored without a recording row (e.g. imported text):
    -- the same file with the same text is the same transcription.
    text_sha256        bytea NOT NULL CHECK (length(text_sha256) = 32)
);
CREATE UNIQUE INDEX transcription_file_text_idx ON transcription (md5(audio_file_name), text_sha256)
    WHERE recording_id IS NULL;

CREATE TABLE transcription_segment (
    transcription_id bigint NOT NULL REFERENCES transcription (transcription_id) ON DELETE CASCADE,
    seq              integer NOT NULL CHECK (seq >= 0),
    start_ms         bigint NOT NULL CHECK (start_ms >= 0),
    end_ms           bigint NOT NULL,
    text             text NOT NULL,
    speaker          text CHECK (speaker IN ('Сотрудник', 'Клиент')),
    PRIMARY KEY (transcription_id, seq),
    CHECK (end_ms >= start_ms)
);

-- Prompts ------------------------------------------------------------------------------------

-- Each distinct content of a prompt is one version (its SHA-256); a report records the
-- version that made it. Only one version of a name is active.
CREATE TABLE prompts (
    prompt_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prompt_name    text NOT NULL CHECK (prompt_name <> ''),
    prompt         text COMPRESSION lz4 NOT NULL,
    run_part       smallint NOT NULL CHECK (run_part >= 1),
    is_json_prompt boolean NOT NULL DEFAULT false,
    report_type_id smallint REFERENCES report_type (report_type_id),
    version        text NOT NULL CHECK (version ~ '^[0-9a-f]{64}$'),
    is_active      boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (prompt_name, version)
);
CREATE UNIQUE INDEX prompts_one_active_idx ON prompts (prompt_name) WHERE is_active;
CREATE INDEX prompts_report_type_idx ON prompts (report_type_id);

CREATE TABLE prompts_buildings (
    prompt_id   bigint NOT NULL REFERENCES prompts (prompt_id) ON DELETE CASCADE,
    building_id smallint NOT NULL REFERENCES buildings (building_id),
    PRIMARY KEY (prompt_id, building_id)
);
CREATE INDEX prompts_buildings_building_idx ON prompts_buildings (building_id);

-- Analysis -----------------------------------------------------------------------------------

-- One job per (transcription, report type, building): the natural key makes ids
-- deterministic, so re-sending a job is harmless.
CREATE TABLE analysis_job (
    analysis_job_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recording_id     bigint REFERENCES recording (recording_id),
    transcription_id bigint NOT NULL REFERENCES transcription (transcription_id),
    report_type_id   smallint NOT NULL,
    building_id      smallint NOT NULL,
    status           text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    engine           text,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    lease_owner      text,
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (transcription_id, report_type_id, building_id),
    FOREIGN KEY (building_id, report_type_id)
        REFERENCES buildings_report_type (building_id, report_type_id)
);
CREATE INDEX analysis_job_recording_idx ON analysis_job (recording_id);
CREATE INDEX analysis_job_status_idx ON analysis_job (status, updated_at);

-- One row per stored report (one kept pass). Metric passes keep their JSON both as text in
-- `audit` (as before) and as validated jsonb in `metrics`.
CREATE TABLE audit (
    audit_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    audit             text COMPRESSION lz4 NOT NULL,
    employee_id       bigint REFERENCES employee (employee_id),
    client_id         bigint REFERENCES client (client_id),
    place_id          bigint REFERENCES place (place_id),
    audit_date        date NOT NULL,
    city_id           bigint REFERENCES city (city_id),
    transcription_id  bigint NOT NULL REFERENCES transcription (transcription_id),
    report_type_id    smallint NOT NULL REFERENCES report_type (report_type_id),
    building_id       smallint NOT NULL REFERENCES buildings (building_id),
    pass              smallint NOT NULL CHECK (pass >= 1),
    pass_title        text,
    kind              text NOT NULL CHECK (kind IN ('narrative', 'metrics')),
    metrics           jsonb,
    prompt_id         bigint REFERENCES prompts (prompt_id),
    engine            text,
    analysis_job_id   bigint REFERENCES analysis_job (analysis_job_id),
    -- Quotations found in the report and whether each is a verbatim part of the transcript.
    quotes            jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(quotes) = 'array'),
    unverified_quotes integer NOT NULL DEFAULT 0 CHECK (unverified_quotes >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (transcription_id, report_type_id, building_id, pass),
    FOREIGN KEY (building_id, report_type_id)
        REFERENCES buildings_report_type (building_id, report_type_id),
    CHECK ((kind = 'metrics') = (metrics IS NOT NULL)),
    CHECK (metrics IS NULL OR jsonb_typeof(metrics) = 'object')
);
CREATE INDEX audit_report_type_idx ON audit (report_type_id, audit_id);
CREATE INDEX audit_building_idx ON audit (building_id);
CREATE INDEX audit_date_idx ON audit (audit_date, audit_id);
CREATE INDEX audit_employee_idx ON audit (employee_id);
CREATE INDEX audit_client_idx ON audit (client_id);
CREATE INDEX audit_place_idx ON audit (place_id);
CREATE INDEX audit_city_idx ON audit (city_id);
CREATE INDEX audit_job_idx ON audit (analysis_job_id);

-- The zones an audit covers (the place may have more).
CREATE TABLE audit_zone (
    audit_id bigint NOT NULL REFERENCES audit (audit_id) ON DELETE CASCADE,
    zone_id  bigint NOT NULL REFERENCES zone (zone_id),
    PRIMARY KEY (audit_id, zone_id)
);
CREATE INDEX audit_zone_zone_idx ON audit_zone (zone_id);

-- The path that led to an audit. The composite keys make an invalid road unrepresentable:
-- the report type must belong to the scenario and be valid for the building.
CREATE TABLE user_road (
    user_road_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    audit_id       bigint NOT NULL UNIQUE REFERENCES audit (audit_id) ON DELETE CASCADE,
    scenario_id    smallint NOT NULL REFERENCES scenario (scenario_id),
    report_type_id smallint NOT NULL REFERENCES report_type (report_type_id),
    building_id    smallint NOT NULL REFERENCES buildings (building_id),
    FOREIGN KEY (report_type_id, scenario_id) REFERENCES report_type (report_type_id, scenario_id),
    FOREIGN KEY (building_id, report_type_id)
        REFERENCES buildings_report_type (building_id, report_type_id)
);
CREATE INDEX user_road_scenario_idx ON user_road (scenario_id, report_type_id);

-- Search -------------------------------------------------------------------------------------

-- A search configuration is one arroy index: all interview reports except methodology, all
-- design structured reports, and one per report type.
CREATE TABLE index_config (
    index_config_id smallint PRIMARY KEY CHECK (index_config_id >= 0), -- the arroy index id
    name            text NOT NULL UNIQUE,
    description     text NOT NULL,
    scenario_id     smallint NOT NULL REFERENCES scenario (scenario_id),
    report_type_id  smallint REFERENCES report_type (report_type_id),
    -- For scenario-wide configurations: report types left out.
    excluded_report_type_ids smallint[] NOT NULL DEFAULT '{}'
);

-- A piece of a narrative report, embedded for search. Metadata lives in the audit it belongs
-- to (and is joined in), never inside the text.
CREATE TABLE chunk (
    chunk_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    audit_id        bigint NOT NULL REFERENCES audit (audit_id) ON DELETE CASCADE,
    seq             integer NOT NULL CHECK (seq >= 0),
    text            text NOT NULL CHECK (text <> ''),
    start_char      integer NOT NULL CHECK (start_char >= 0),
    end_char        integer NOT NULL,
    embedding       bytea NOT NULL,           -- little-endian f32 x dims
    embedding_model text NOT NULL,
    dims            smallint NOT NULL CHECK (dims > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (audit_id, seq),
    CHECK (end_char > start_char),
    CHECK (length(embedding) = 4 * dims)
);

-- Published snapshots of the vector index (the manifest on S3 is authoritative for readers;
-- this is the writer's record and the source for index lag).
CREATE TABLE index_generation (
    generation      bigint PRIMARY KEY CHECK (generation >= 1),
    high_water_mark bigint NOT NULL CHECK (high_water_mark >= 0),
    counts          jsonb NOT NULL DEFAULT '{}'::jsonb,
    embedding_model text NOT NULL,
    object_key      text NOT NULL,
    checksum        text NOT NULL,
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);

-- API access -------------------------------------------------------------------------------

CREATE TABLE api_key (
    api_key_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    prefix      text NOT NULL UNIQUE,                  -- shown in listings to recognise a key
    key_sha256  bytea NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    role        text NOT NULL CHECK (role IN ('admin', 'analyst', 'uploader')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at  timestamptz
);

-- Seed rows ----------------------------------------------------------------------------------

INSERT INTO scenario (scenario_name, code) VALUES
    ('Дизайн', 'design'),
    ('Интервью', 'interview');

INSERT INTO buildings (building_type, code) VALUES
    ('Отель', 'hotel'),
    ('Ресторан', 'restaurant'),
    ('Центр Здоровья', 'spa'),
    ('non-building', 'non-building');

INSERT INTO report_type (report_type_desc, scenario_id, code)
SELECT r.name, s.scenario_id, r.code
FROM (VALUES
        (1, 'Оценка методологии интервью', 'interview', 'interview-methodology'),
        (2, 'Отчет о связках', 'interview', 'links'),
        (3, 'Общие факторы', 'interview', 'common-factors'),
        (4, 'Факторы в этом заведении', 'interview', 'venue-factors'),
        (5, 'Оценка методологии аудита', 'design', 'audit-methodology'),
        (6, 'Соответствие программе аудита', 'design', 'audit-compliance'),
        (7, 'Структурированный отчет аудита', 'design', 'structured-audit')
     ) AS r (ord, name, scenario, code)
JOIN scenario s ON s.code = r.scenario
ORDER BY r.ord;

INSERT INTO buildings_report_type (building_id, report_type_id)
SELECT b.building_id, rt.report_type_id
FROM (VALUES
        ('non-building', 'interview-methodology'),
        ('non-building', 'links'),
        ('hotel', 'common-factors'),
        ('restaurant', 'common-factors'),
        ('spa', 'common-factors'),
        ('hotel', 'venue-factors'),
        ('restaurant', 'venue-factors'),
        ('spa', 'venue-factors'),
        ('non-building', 'audit-methodology'),
        ('hotel', 'audit-compliance'),
        ('restaurant', 'audit-compliance'),
        ('spa', 'audit-compliance'),
        ('hotel', 'structured-audit'),
        ('restaurant', 'structured-audit'),
        ('spa', 'structured-audit')
     ) AS p (building, report_type)
JOIN buildings b ON b.code = p.building
JOIN report_type rt ON rt.code = p.report_type;

INSERT INTO index_config (index_config_id, name, description, scenario_id, report_type_id,
                          excluded_report_type_ids)
SELECT 0, 'interview', 'Все отчеты по интервью, кроме оценки методологии',
       s.scenario_id, NULL::smallint,
       ARRAY(SELECT report_type_id FROM report_type WHERE code = 'interview-methodology')
FROM scenario s WHERE s.code = 'interview'
UNION ALL
SELECT 1, 'design', 'Структурированные отчеты дизайн-аудитов',
       s.scenario_id, NULL::smallint,
       ARRAY(SELECT report_type_id FROM report_type
             WHERE scenario_id = s.scenario_id AND code <> 'structured-audit')
FROM scenario s WHERE s.code = 'design';

INSERT INTO index_config (index_config_id, name, description, scenario_id, report_type_id)
SELECT 1 + row_number() OVER (ORDER BY rt.report_type_id), rt.code, rt.report_type_desc,
       rt.scenario_id, rt.report_type_id
FROM report_type rt;
