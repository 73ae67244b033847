-- What was said, searchable: windows of consecutive transcript segments (about 30-60 s, never
-- cutting a segment) are chunks too, beside the pieces of reports. A chunk belongs to exactly
-- one of a report (audit_id) or a transcript (transcription_id); a transcript chunk also
-- says which segments it holds, where they are in the recording, and who speaks in them.
ALTER TABLE chunk
    ALTER COLUMN audit_id DROP NOT NULL,
    ADD COLUMN transcription_id bigint REFERENCES transcription (transcription_id) ON DELETE CASCADE,
    ADD COLUMN first_segment integer CHECK (first_segment >= 0),
    ADD COLUMN last_segment integer,
    ADD COLUMN start_ms bigint CHECK (start_ms >= 0),
    ADD COLUMN end_ms bigint,
    -- The role speaking in every segment of the window (Сотрудник/Клиент), when it is one.
    ADD COLUMN speaker text,
    ADD CONSTRAINT chunk_of_report_or_transcript
        CHECK ((audit_id IS NULL) <> (transcription_id IS NULL)),
    ADD CONSTRAINT chunk_transcript_span
        CHECK ((transcription_id IS NULL) = (first_segment IS NULL)
               AND (first_segment IS NULL) = (last_segment IS NULL)
               AND (first_segment IS NULL) = (start_ms IS NULL)
               AND (start_ms IS NULL) = (end_ms IS NULL)
               AND last_segment >= first_segment
               AND end_ms >= start_ms);
CREATE UNIQUE INDEX chunk_transcript_seq_idx ON chunk (transcription_id, seq)
    WHERE transcription_id IS NOT NULL;

-- A configuration searches reports (of its report types, as before), transcripts, or both:
-- `all` holds every chunk, so that a search naming no configuration is one search instead of
-- one per report type. The transcripts and `all` configurations belong to no scenario: their
-- filters go through the recordings' reports. (An index published before a configuration
-- existed is rebuilt by its next writer run; readers search the old configurations until
-- then.)
ALTER TABLE index_config
    ADD COLUMN corpus text NOT NULL DEFAULT 'reports'
        CHECK (corpus IN ('reports', 'transcripts', 'both')),
    ALTER COLUMN scenario_id DROP NOT NULL,
    ADD CONSTRAINT index_config_scenario_of_reports
        CHECK ((corpus = 'reports') = (scenario_id IS NOT NULL));

INSERT INTO index_config (index_config_id, name, description, scenario_id, corpus)
SELECT max(index_config_id) + 1, 'transcripts',
       'Что было сказано: фрагменты расшифровок всех записей', NULL, 'transcripts'
FROM index_config;
INSERT INTO index_config (index_config_id, name, description, scenario_id, corpus)
SELECT max(index_config_id) + 1, 'all',
       'Все отчёты и расшифровки всех записей', NULL, 'both'
FROM index_config;

-- Which chunks each configuration holds, written once: a report chunk is in the configurations
-- of its audit's report type (index_config_member), a transcript chunk in the transcripts
-- configuration, every chunk in `all`. The index writer reads membership from here; search
-- filters write the same rule out as a condition the planner can hash.
CREATE VIEW index_config_chunk AS
SELECT c.chunk_id, m.index_config_id
FROM chunk c
JOIN audit a ON a.audit_id = c.audit_id
JOIN index_config_member m ON m.report_type_id = a.report_type_id
UNION ALL
SELECT c.chunk_id, ic.index_config_id
FROM chunk c
JOIN index_config ic ON ic.corpus = 'transcripts'
WHERE c.transcription_id IS NOT NULL
UNION ALL
SELECT c.chunk_id, ic.index_config_id
FROM chunk c
JOIN index_config ic ON ic.corpus = 'both';
