-- Progress of a transcription in flight: each finished speech window is saved as it is done,
-- so a redelivery after a timeout or crash resumes after the last saved window instead of
-- starting over. Rows are removed when the transcription is stored.
CREATE TABLE transcription_window (
    recording_id bigint NOT NULL REFERENCES recording (recording_id) ON DELETE CASCADE,
    seq          integer NOT NULL CHECK (seq >= 0),
    start_ms     bigint NOT NULL CHECK (start_ms >= 0),
    end_ms       bigint NOT NULL,
    -- [{start_ms, end_ms, text}] of the window, in order.
    segments     jsonb NOT NULL CHECK (jsonb_typeof(segments) = 'array'),
    language     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recording_id, seq),
    CHECK (end_ms >= start_ms)
);
