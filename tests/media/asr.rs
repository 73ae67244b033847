//! Speech recognition on real models and festival-synthesized clips.
//!
//! Needs the prepared models (`infra/local/models/prepare.sh`; `$VOX_MODELS_DIR`, default
//! `~/.cache/voxpersona/models`) and the test speech (`$VOX_SPEECH_DIR`, default
//! `~/.cache/voxpersona/speech`, 16 kHz mono WAV clips with their reference texts). One
//! transcriber is shared by all tests: sessions are built once, as in a Lambda.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use common::asr::{
    AsrConfig, AsrError, Lang, Segment, TranscribeOptions, Transcriber, Transcript, WindowResult,
};
use vox_tests::wer::{edit_distance, recall_by_part, words};

fn cache_dir(var: &str, sub: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
            .join(".cache/voxpersona")
            .join(sub)
    })
}

fn models_dir() -> PathBuf {
    cache_dir("VOX_MODELS_DIR", "models")
}

fn speech(name: &str) -> PathBuf {
    cache_dir("VOX_SPEECH_DIR", "speech").join(name)
}

fn transcriber() -> MutexGuard<'static, Transcriber> {
    static T: OnceLock<Mutex<Transcriber>> = OnceLock::new();
    T.get_or_init(|| Mutex::new(Transcriber::new(models_dir(), 2).expect("models are prepared")))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn read_wav(name: &str) -> Vec<f32> {
    let mut reader = hound::WavReader::open(speech(name)).expect("test speech is prepared");
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels),
        (16_000, 1),
        "{name} is not 16 kHz mono"
    );
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("valid PCM")) / 32768.0)
        .collect()
}

fn reference(name: &str) -> String {
    std::fs::read_to_string(speech(name)).expect("reference text exists")
}

fn run(samples: &[f32], language: Option<Lang>) -> (Transcript, Vec<WindowResult>) {
    let mut windows = Vec::new();
    let t = transcriber()
        .transcribe(samples, language, |w| {
            windows.push(w.clone());
            ControlFlow::Continue(())
        })
        .expect("transcription runs");
    (t, windows)
}

fn assert_segments_sane(segments: &[Segment], audio_ms: u64) {
    let mut prev_end = 0;
    for s in segments {
        assert!(s.start_ms <= s.end_ms, "{s:?} ends before it starts");
        assert!(
            s.start_ms >= prev_end,
            "{s:?} starts before the previous segment ends"
        );
        assert!(
            s.end_ms <= audio_ms,
            "{s:?} ends after the audio ({audio_ms} ms)"
        );
        assert!(!s.text.trim().is_empty(), "{s:?} is empty");
        prev_end = s.end_ms;
    }
}

/// Transcribes clips `{prefix}_01.wav`, `{prefix}_02.wav`... and returns the total word error rate.
fn corpus_wer(prefix: &str, language: Lang) -> f64 {
    let (mut errors, mut total) = (0, 0);
    for i in 1.. {
        let name = format!("{prefix}_{i:02}");
        if !speech(&format!("{name}.wav")).is_file() {
            assert!(i > 1, "no clips {name}.wav");
            break;
        }
        let audio = read_wav(&format!("{name}.wav"));
        let (t, _) = run(&audio, Some(language));
        assert_segments_sane(&t.segments, t.audio_ms);
        let reference = words(&reference(&format!("{name}.txt")));
        let e = edit_distance(&reference, &words(&t.text()));
        eprintln!(
            "{name}: WER {:.1}% | {}",
            100.0 * e as f64 / reference.len() as f64,
            t.text()
        );
        errors += e;
        total += reference.len();
    }
    let wer = errors as f64 / total as f64;
    eprintln!("{prefix}: WER {:.1}% over {total} words", 100.0 * wer);
    wer
}

/// The festival Russian voice mispronounces much of this design-audit vocabulary, and the
/// clips say numbers as words where Whisper writes digits: Whisper base gets 28-30 % here (the
/// Python reference decoder, `check_whisper.py`, 28.0 %). These twelve clips are one short
/// window each, where the engine's choices move a handful of words: it scored 27.7 % with
/// audio-padded windows and 200 ms of VAD padding, 30.1 % with faster-whisper's feature
/// padding and 400 ms, which are better over the whole evaluation set (README, speech
/// benchmark). So this bound guards against regressions, not quality: the benchmark does that.
#[test]
fn russian_clips_are_transcribed_as_well_as_by_the_reference_decoder() {
    let wer = corpus_wer("ru", Lang::Ru);
    assert!(wer <= 0.32, "Russian WER {:.1}%", wer * 100.0);
}

#[test]
fn english_clips_are_transcribed_within_10_percent_word_error() {
    let wer = corpus_wer("en", Lang::En);
    assert!(wer <= 0.10, "English WER {:.1}%", wer * 100.0);
}

#[test]
fn thirty_seconds_of_silence_yield_no_words() {
    let (t, _) = run(&read_wav("silence_30s.wav"), Some(Lang::Ru));
    assert!(t.segments.is_empty(), "{:?}", t.segments);
    assert!(t.complete);
    assert_eq!(t.audio_ms, 30_000);
}

#[test]
fn twenty_seconds_of_low_noise_yield_no_words() {
    for language in [Some(Lang::Ru), None] {
        let (t, _) = run(&read_wav("noise_20s.wav"), language);
        assert!(t.segments.is_empty(), "{:?}", t.segments);
    }
}

#[test]
fn silence_and_noise_that_slip_past_vad_still_yield_no_words() {
    // VAD switched off (every frame counts as speech): Whisper itself sees the silence, writes
    // its subtitle credits, and the guards must drop them.
    let mut config = AsrConfig::new(models_dir());
    config.vad.threshold = 0.0;
    config.vad.neg_threshold = -1.0;
    let mut unguarded = Transcriber::from_config(config).expect("models are prepared");
    for (name, language) in [
        ("silence_30s.wav", Some(Lang::Ru)),
        ("noise_20s.wav", Some(Lang::Ru)),
        ("noise_20s.wav", None),
    ] {
        let mut rejected = Vec::new();
        let t = unguarded
            .transcribe(&read_wav(name), language, |w| {
                rejected.push(w.rejected);
                ControlFlow::Continue(())
            })
            .expect("transcription runs");
        assert!(!rejected.is_empty(), "{name}: no window was decoded");
        assert!(t.segments.is_empty(), "{name}: {:?}", t.segments);
    }
}

#[test]
fn the_language_is_detected_when_not_given() {
    let (ru, _) = run(&read_wav("ru_04.wav"), None);
    assert_eq!(ru.language, Some(Lang::Ru));
    let (en, _) = run(&read_wav("en_04.wav"), None);
    assert_eq!(en.language, Some(Lang::En));
}

/// A turn of a synthesized dialogue (`infra/local/speech/make_dialogues.py`): where it is
/// in the clip and what was said.
struct Turn {
    start_ms: u64,
    end_ms: u64,
    /// `S1` or `S2`.
    speaker: String,
    text: String,
}

fn dialogue(id: &str) -> (Vec<f32>, Vec<Turn>) {
    let tsv = std::fs::read_to_string(speech(&format!("dialogues/{id}.turns.tsv")))
        .expect("dialogues are made by infra/local/speech/make_dialogues.py");
    let turns = tsv
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.splitn(5, '\t').collect();
            Turn {
                start_ms: f[0].parse().expect("start_ms"),
                end_ms: f[1].parse().expect("end_ms"),
                speaker: f[2].to_owned(),
                text: f[4].to_owned(),
            }
        })
        .collect();
    (read_wav(&format!("dialogues/{id}.wav")), turns)
}

/// How much of `[start, end)` the segments' spans cover, 0..=1.
fn time_covered(segments: &[Segment], start: u64, end: u64) -> f64 {
    let covered: u64 = segments
        .iter()
        .map(|s| s.end_ms.min(end).saturating_sub(s.start_ms.max(start)))
        .sum();
    covered as f64 / (end - start).max(1) as f64
}

/// Every turn has text: most of its time under segments and at least a third of its words
/// recognised (Whisper base misreads many festival words; a lost turn scores 0).
fn assert_every_turn_kept(id: &str, t: &Transcript, turns: &[Turn]) {
    let texts: Vec<&str> = turns.iter().map(|t| t.text.as_str()).collect();
    let recall = recall_by_part(&texts, &t.text());
    for (turn, r) in turns.iter().zip(&recall) {
        let covered = time_covered(&t.segments, turn.start_ms, turn.end_ms);
        eprintln!(
            "{id} {}-{} ms: {:.0} % of words, {:.0} % of time | {}",
            turn.start_ms,
            turn.end_ms,
            r * 100.0,
            covered * 100.0,
            turn.text
        );
        assert!(
            *r >= 1.0 / 3.0 && covered >= 0.8,
            "{id}: the turn at {}-{} ms is lost ({:.0} % of words, {:.0} % of its time): {}\n{:?}",
            turn.start_ms,
            turn.end_ms,
            r * 100.0,
            covered * 100.0,
            turn.text,
            t.segments
        );
    }
}

#[test]
fn a_two_voice_interview_with_a_short_turn_gap_keeps_every_turn() {
    // Two voices (the second pitch-shifted), 0.3 s between turns: VAD hears one region, and
    // Whisper base likes to stop at the first change of speaker.
    let (audio, turns) = dialogue("ru_int_gap03");
    let (t, _) = run(&audio, Some(Lang::Ru));
    assert_segments_sane(&t.segments, t.audio_ms);
    assert_every_turn_kept("ru_int_gap03", &t, &turns);
    assert!(t.uncovered.is_empty(), "{:?}", t.uncovered);
    assert!(t.speech_ms > 35_000, "VAD speech {} ms", t.speech_ms);
}

#[test]
fn a_window_whose_text_ends_early_is_decoded_to_the_end_of_its_speech() {
    // In this interview Whisper base ends both 30 s windows early (a closing and an opening
    // timestamp, then end of text, several seconds before the window's speech ends); the
    // engine used to drop the rest: the end of turn 4 and all of turn 8.
    let (audio, turns) = dialogue("en_int_hotel_london");
    let (t, windows) = run(&audio, Some(Lang::En));
    assert_segments_sane(&t.segments, t.audio_ms);
    assert!(
        windows.iter().any(|w| w.passes > 1),
        "no window needed a second pass: {:?}",
        windows.iter().map(|w| w.passes).collect::<Vec<_>>()
    );
    assert_every_turn_kept("en_int_hotel_london", &t, &turns);
    let last = turns.last().expect("turns");
    let end = t.segments.last().map_or(0, |s| s.end_ms);
    assert!(
        end + 1_000 >= last.end_ms,
        "text ends at {end} ms, speech at {} ms",
        last.end_ms
    );
}

#[test]
fn speech_that_no_decode_can_transcribe_is_reported_as_uncovered() {
    // A guard no text can pass (every average log-probability is below 0): all the speech
    // is heard, decoded, decoded again on its own, and reported; none of it is lost silently.
    let mut config = AsrConfig::new(models_dir());
    config.guard.min_avg_logprob = 0.0;
    config.decode.temperatures = vec![0.0];
    let mut strict = Transcriber::from_config(config).expect("models are prepared");
    let (audio, turns) = dialogue("ru_int_hotel_kazan_short");
    let mut windows = Vec::new();
    let t = strict
        .transcribe(&audio, Some(Lang::Ru), |w| {
            windows.push(w.clone());
            ControlFlow::Continue(())
        })
        .expect("transcription runs");

    assert!(t.segments.is_empty(), "{:?}", t.segments);
    assert!(t.speech_ms > 20_000, "VAD speech {} ms", t.speech_ms);
    assert!(t.coverage() < 0.1, "coverage {}", t.coverage());
    assert!(
        windows
            .iter()
            .all(|w| w.rejected.is_some() && w.redecoded > 0)
    );
    for turn in &turns {
        let reported: u64 = t
            .uncovered
            .iter()
            .map(|u| {
                u.end_ms
                    .min(turn.end_ms)
                    .saturating_sub(u.start_ms.max(turn.start_ms))
            })
            .sum();
        assert!(
            reported as f64 >= 0.8 * (turn.end_ms - turn.start_ms) as f64,
            "turn {}-{} ms: only {reported} ms reported uncovered: {:?}",
            turn.start_ms,
            turn.end_ms,
            t.uncovered
        );
    }
}

/// First and last sample louder than -34 dBFS: where the clip's speech really is.
fn speech_bounds(samples: &[f32]) -> (usize, usize) {
    let loud = |x: &f32| x.abs() > 0.02;
    let first = samples.iter().position(loud).unwrap_or(0);
    let last = samples.iter().rposition(loud).unwrap_or(samples.len());
    (first, last)
}

#[test]
fn segment_times_follow_the_speech_within_half_a_second() {
    // 2 s silence, a clip, 1.5 s silence, a clip, 2 s silence: one VAD window with a pause.
    let a = read_wav("ru_05.wav");
    let b = read_wav("ru_11.wav");
    let mut audio = vec![0.0; 32_000];
    let a_at = audio.len();
    audio.extend(&a);
    audio.extend(vec![0.0; 24_000]);
    let b_at = audio.len();
    audio.extend(&b);
    audio.extend(vec![0.0; 32_000]);
    let ms = |samples: usize| (samples / 16) as i64;
    let (a0, a1) = speech_bounds(&a);
    let (b0, b1) = speech_bounds(&b);
    let (speech_start, pause_start, pause_end, speech_end) =
        (ms(a_at + a0), ms(a_at + a1), ms(b_at + b0), ms(b_at + b1));

    let (t, windows) = run(&audio, Some(Lang::Ru));
    assert_segments_sane(&t.segments, t.audio_ms);
    assert!(t.segments.len() >= 2, "{:?}", t.segments);
    let first = t.segments.first().map(|s| s.start_ms as i64).unwrap_or(-1);
    let last = t.segments.last().map(|s| s.end_ms as i64).unwrap_or(-1);
    assert!(
        (first - speech_start).abs() <= 500,
        "first segment at {first} ms, speech at {speech_start} ms"
    );
    assert!(
        (last - speech_end).abs() <= 500,
        "last segment ends at {last} ms, speech at {speech_end} ms"
    );
    // Some segment boundary falls in the pause between the clips.
    assert!(
        t.segments.windows(2).any(|p| {
            let (end, start) = (p[0].end_ms as i64, p[1].start_ms as i64);
            end >= pause_start - 500 && start <= pause_end + 500
        }) || windows.len() >= 2,
        "no boundary in the pause {pause_start}..{pause_end}: {:?}",
        t.segments
    );
}

#[test]
fn a_stopped_run_resumes_from_the_last_saved_window() {
    // Four clips with pauses: more than 30 s, so at least two windows.
    let mut audio = Vec::new();
    for name in ["ru_06.wav", "ru_07.wav", "ru_08.wav", "ru_09.wav"] {
        audio.extend(read_wav(name));
        audio.extend(vec![0.0; 16_000]);
    }
    let (uninterrupted, windows) = run(&audio, Some(Lang::Ru));
    assert!(windows.len() >= 2, "{windows:?}");

    // The caller saves each window and stops after the first (a deadline, say).
    let mut saved: Vec<Segment> = Vec::new();
    let mut saved_until = 0;
    let first = transcriber()
        .transcribe(&audio, Some(Lang::Ru), |w| {
            saved.extend(w.segments.iter().cloned());
            saved_until = w.end_ms;
            ControlFlow::Break(())
        })
        .expect("first run");
    assert!(!first.complete);
    assert_eq!(first.processed_ms, saved_until);
    assert_eq!(saved_until, windows[0].end_ms);

    // The redelivery skips what was saved and transcribes the rest, times offset.
    let rest = &audio[saved_until as usize * 16..];
    let options = TranscribeOptions {
        language: Some(Lang::Ru),
        offset_ms: saved_until,
    };
    let mut guard = transcriber();
    let mut stream = guard.stream(options, |_| ControlFlow::Continue(()));
    for chunk in rest.chunks(4_000) {
        assert!(stream.push(chunk).expect("push").is_continue());
    }
    let second = stream.finish().expect("second run");
    drop(guard);
    assert!(second.complete);
    assert_eq!(second.audio_ms, (audio.len() / 16) as u64);
    assert!(second.segments.iter().all(|s| s.start_ms >= saved_until));
    saved.extend(second.segments);
    assert_segments_sane(&saved, second.audio_ms);

    // Resuming loses nothing: the pieces read like the uninterrupted run.
    let whole = words(&uninterrupted.text());
    let pieces: Vec<String> = saved.iter().flat_map(|s| words(&s.text)).collect();
    let difference = edit_distance(&whole, &pieces) as f64 / whole.len() as f64;
    assert!(
        difference <= 0.1,
        "resumed transcript differs by {:.1}%",
        difference * 100.0
    );
}

#[test]
fn streaming_in_small_chunks_gives_the_same_transcript() {
    let audio = read_wav("en_05.wav");
    let (whole, _) = run(&audio, Some(Lang::En));
    let mut guard = transcriber();
    let options = TranscribeOptions {
        language: Some(Lang::En),
        offset_ms: 0,
    };
    let mut stream = guard.stream(options, |_| ControlFlow::Continue(()));
    for chunk in audio.chunks(1_234) {
        assert!(stream.push(chunk).expect("push").is_continue());
    }
    let streamed = stream.finish().expect("finish");
    assert_eq!(streamed.segments, whole.segments);
}

#[test]
fn a_missing_models_directory_names_the_file_and_the_script() {
    let dir = std::env::temp_dir().join("vox-asr-no-models");
    let mut config = AsrConfig::new(&dir);
    // The runtime is already loaded by other tests or not: either way a model file is missing.
    config.ort_library = Some(models_dir().join("onnxruntime").join("libonnxruntime.so"));
    let err = Transcriber::from_config(config).expect_err("no models there");
    let message = err.to_string();
    assert!(matches!(err, AsrError::ModelFileMissing { .. }), "{err:?}");
    assert!(
        message.contains("vox-asr-no-models") && message.contains("prepare.sh"),
        "{message}"
    );
}

/// The tools venv `prepare.sh` makes (numpy, onnx, onnxruntime) under `$VOX_CACHE`.
fn models_python() -> PathBuf {
    std::env::var_os("VOX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir("VOX_CACHE", ""))
        .join("venv-models/bin/python")
}

#[test]
fn a_model_of_other_dimensions_is_converted_and_read_from_its_own_description() {
    // No registry package ships a Whisper larger than base, so a random CTranslate2 model
    // with large-v3's 128 mel bins, another width, head count and depth stands in for one:
    // the converter must read every dimension from model.bin and the engine from model.json.
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/local/models");
    let dir = tempfile::tempdir().expect("temp dir");
    let base = models_dir().join("whisper-base");
    let ct2 = dir.path().join("ct2");
    let python = models_python();
    let run_py = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(&python)
            .args(args)
            .output()
            .expect("the models venv made by prepare.sh");
        assert!(
            out.status.success(),
            "{:?} failed: {}",
            args.first(),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_py(&[
        scripts.join("make_synthetic_ct2.py").as_os_str(),
        "--out".as_ref(),
        ct2.as_os_str(),
        "--tokenizer".as_ref(),
        base.join("tokenizer.json").as_os_str(),
        "--config".as_ref(),
        base.join("config.json").as_os_str(),
        "--n-mels".as_ref(),
        "128".as_ref(),
        "--d-model".as_ref(),
        "192".as_ref(),
        "--heads".as_ref(),
        "3".as_ref(),
        "--encoder-layers".as_ref(),
        "2".as_ref(),
        "--decoder-layers".as_ref(),
        "3".as_ref(),
    ]);
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).expect("models dir");
    std::os::unix::fs::symlink(models_dir().join("vad"), models.join("vad")).expect("vad link");
    std::os::unix::fs::symlink(models_dir().join("speaker"), models.join("speaker"))
        .expect("speaker encoder link");
    run_py(&[
        scripts.join("ct2_whisper_to_onnx.py").as_os_str(),
        "--model-bin".as_ref(),
        ct2.join("model.bin").as_os_str(),
        "--config".as_ref(),
        ct2.join("config.json").as_os_str(),
        "--tokenizer".as_ref(),
        ct2.join("tokenizer.json").as_os_str(),
        "--out".as_ref(),
        models.join("whisper-synthetic").as_os_str(),
        "--name".as_ref(),
        "synthetic".as_ref(),
        "--no-mel".as_ref(),
    ]);

    let mut config = AsrConfig::new(&models);
    config.whisper_model = "whisper-synthetic".into();
    config.ort_library = Some(models_dir().join("onnxruntime").join("libonnxruntime.so"));
    config.decode.temperatures = vec![0.0];
    config.decode.max_new_tokens = 16;
    let mut t = Transcriber::from_config(config).expect("the converted model loads");
    let info = t.model_info().clone();
    let (audio, _) = dialogue("ru_int_hotel_kazan_short");
    let result = t
        .transcribe(&audio[..8 * 16_000], Some(Lang::Ru), |_| {
            ControlFlow::Continue(())
        })
        .expect("a model of other dimensions decodes");

    assert_eq!(info.dims.n_mels, 128);
    assert_eq!((info.dims.n_heads, info.dims.head_dim), (3, 64));
    assert_eq!(info.dims.n_decoder_layers, 3);
    assert_eq!(info.name, "synthetic");
    assert!(t.model_id().contains("synthetic"), "{}", t.model_id());
    // Random weights say nothing meaningful, but the run ends, in order, inside the audio.
    assert!(result.complete);
    assert_segments_sane(&result.segments, result.audio_ms);
}

#[test]
fn a_vocabulary_teaches_whisper_the_names_it_lists() {
    // The auditor names the street; Whisper base writes «Белумана» until it is told the name.
    let (audio, _) = dialogue("ru_audit_restaurant_kazan");
    let first = &audio[..20 * 16_000];
    let (plain, _) = run(first, Some(Lang::Ru));
    let mut config = AsrConfig::new(models_dir());
    config.vocabulary = vec!["улица Баумана".into(), "арочные окна".into()];
    let mut taught = Transcriber::from_config(config).expect("models are prepared");
    let told = taught
        .transcribe(first, Some(Lang::Ru), |_| ControlFlow::Continue(()))
        .expect("transcription runs");

    assert!(taught.prompt_len() > 5, "{}", taught.prompt_len());
    let has = |t: &Transcript, w: &str| words(&t.text()).iter().any(|x| x == w);
    assert!(!has(&plain, "баумана"), "{}", plain.text());
    assert!(has(&told, "баумана"), "{}", told.text());
    assert_segments_sane(&told.segments, told.audio_ms);
}

/// The engine's segments as the transcribe stage stores them, speakers told apart.
fn labelled(t: &Transcript) -> Vec<common::db::transcription::Segment> {
    let mut segments: Vec<common::db::transcription::Segment> = t
        .segments
        .iter()
        .map(|s| common::db::transcription::Segment {
            start_ms: s.start_ms as i64,
            end_ms: s.end_ms as i64,
            text: s.text.clone(),
            voice: s.voice.clone(),
            ..Default::default()
        })
        .collect();
    common::speakers::label_segments(
        &mut segments,
        &common::speakers::DiarizeParams::default(),
        false,
    );
    segments
}

#[test]
fn two_voices_are_told_apart_and_one_voice_stays_one_speaker() {
    // S1 asks, S2 answers at length, S1 asks again; S2 is S1's voice pitch-shifted.
    let (audio, turns) = dialogue("ru_int_hotel_kazan_short");
    let (t, _) = run(&audio, Some(Lang::Ru));
    assert!(
        t.segments.iter().filter(|s| s.voice.is_some()).count() >= 3,
        "segments of a second or more carry a voice: {:?}",
        t.segments
    );
    let segments = labelled(&t);
    // Each true speaker's time goes mostly to one id, and the two ids differ.
    let mut time: std::collections::BTreeMap<(&str, i16), i64> = Default::default();
    for s in &segments {
        for turn in &turns {
            let o = s.end_ms.min(turn.end_ms as i64) - s.start_ms.max(turn.start_ms as i64);
            if o > 0 {
                *time
                    .entry((turn.speaker.as_str(), s.speaker_id.expect("labelled")))
                    .or_default() += o;
            }
        }
    }
    let main_id = |who: &str| {
        let total: i64 = time
            .iter()
            .filter(|((w, _), _)| *w == who)
            .map(|(_, v)| v)
            .sum();
        let (id, best) = time
            .iter()
            .filter(|((w, _), _)| *w == who)
            .max_by_key(|(_, v)| **v)
            .map(|((_, id), v)| (*id, *v))
            .expect("the speaker was heard");
        assert!(best * 10 >= total * 8, "{who}: {time:?}");
        id
    };
    assert_ne!(main_id("S1"), main_id("S2"), "{time:?}");
    assert_eq!(segments[0].speaker_id, Some(0), "the first to speak is 0");

    // A design audit read by one voice.
    let (audio, _) = dialogue("ru_audit_restaurant_kazan");
    let (t, _) = run(&audio, Some(Lang::Ru));
    let segments = labelled(&t);
    assert!(
        segments.iter().all(|s| s.speaker_id == Some(0)),
        "{:?}",
        segments.iter().map(|s| s.speaker_id).collect::<Vec<_>>()
    );
}
