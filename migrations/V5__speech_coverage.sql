-- Speech coverage: how much of the speech the voice-activity detector heard the transcribed
-- text covers, and where the rest is. A window whose speech no decode could turn into text
-- records it, so a transcript that lost speech says so instead of losing it in silence.
-- NULL speech_ms: the engine does not measure it (a hosted speech API).
ALTER TABLE transcription_window
    ADD COLUMN speech_ms bigint CHECK (speech_ms >= 0),
    -- [{start_ms, end_ms}] in the recording, in order.
    ADD COLUMN uncovered jsonb NOT NULL DEFAULT '[]'::jsonb
        CHECK (jsonb_typeof(uncovered) = 'array');

ALTER TABLE transcription
    ADD COLUMN speech_ms bigint CHECK (speech_ms >= 0),
    ADD COLUMN uncovered_ms bigint CHECK (uncovered_ms >= 0),
    ADD COLUMN uncovered jsonb CHECK (jsonb_typeof(uncovered) = 'array'),
    ADD CONSTRAINT transcription_coverage_complete
        CHECK ((speech_ms IS NULL) = (uncovered_ms IS NULL) AND (speech_ms IS NULL) = (uncovered IS NULL)),
    ADD CONSTRAINT transcription_uncovered_within_speech CHECK (uncovered_ms <= speech_ms);
