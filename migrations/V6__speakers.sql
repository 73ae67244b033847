-- Speakers: who speaks when, from the segments' voiceprints (the transcribe stage clusters
-- them once the whole recording is transcribed), and what each speaker's turns say of them.
-- speaker (the role, Сотрудник/Клиент) stays as it was: for interviews it is now filled from
-- these speakers' turns.
ALTER TABLE transcription_segment
    ADD COLUMN speaker_id smallint CHECK (speaker_id >= 0);

-- [{speaker, role, turns, sentences, questions, speech_ms, mean_turn_chars, opens}] in speaker
-- order; NULL when speakers were not told apart (a hosted engine, or no voice long enough).
ALTER TABLE transcription
    ADD COLUMN speakers jsonb CHECK (jsonb_typeof(speakers) = 'array');
