//! Who speaks when: voiceprints of transcript segments, clustered into speakers, and the two
//! interview roles decided from the speakers' turns.
//!
//! The speech engine gives each segment long enough to carry a voice a [`Voiceprint`] (the
//! speaker encoder's embedding, see `asr::speaker`); the transcribe stage saves them with
//! each window, so a run resumed by a redelivery still has every segment's voice, and once
//! the whole recording is transcribed [`diarize`] clusters them:
//!
//! 1. agglomerative clustering of the voiced segments (centroid linkage on cosine similarity,
//!    centroids weighted by duration): the two closest clusters merge while their similarity
//!    is at least [`DiarizeParams::threshold`], then on until at most
//!    [`DiarizeParams::max_speakers`] remain. A long recording clusters its
//!    [`DiarizeParams::max_items`] longest segments and gives every other segment the
//!    closest of the resulting speakers;
//! 2. a speaker holding less than [`DiarizeParams::min_share`] of the voiced time is merged
//!    into the closest other one: a cough or a laugh is not a third person;
//! 3. a segment too short for a voiceprint takes the speaker of its nearest voiced neighbour
//!    in time;
//! 4. speakers are numbered 0, 1, ... in the order they first speak.
//!
//! [`decide_roles`] then names the interview roles from the turns (consecutive segments of one
//! speaker): the employee is the speaker who asks (share of sentences that are questions or
//! interviewer prompts), with who opens the conversation and who speaks in shorter turns as
//! lesser evidence; every other speaker is a client. One speaker gives no roles.
//!
//! Limits: one segment gets one speaker, so two people speaking inside one Whisper segment
//! (no pause between them) are not separated; overlapping speech is given to one of them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{self, ConfigError};

/// Components of a voiceprint.
pub const VOICE_DIM: usize = 256;

/// A speaker embedding, L2-normalised with every component in `[0, 1]` (the encoder ends in a
/// ReLU), stored as one byte per component (`round(x * 255)`; serialised as hex). The
/// quantisation moves a cosine similarity by less than 0.01.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Voiceprint(Vec<u8>);

impl Voiceprint {
    /// Quantises an embedding; `None` unless it has [`VOICE_DIM`] finite components.
    pub fn from_embedding(values: &[f32]) -> Option<Self> {
        if values.len() != VOICE_DIM || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        Some(Self(
            values
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect(),
        ))
    }

    /// The components, L2-normalised again after the quantisation.
    pub fn to_unit(&self) -> Vec<f32> {
        let v: Vec<f32> = self.0.iter().map(|&b| f32::from(b) / 255.0).collect();
        normalized(v)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Voiceprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Voiceprint({} bytes)", self.0.len())
    }
}

impl Serialize for Voiceprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut hex = String::with_capacity(self.0.len() * 2);
        for b in &self.0 {
            hex.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&hex)
    }
}

impl<'de> Deserialize<'de> for Voiceprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(d)?;
        if hex.len() != VOICE_DIM * 2 || !hex.is_ascii() {
            return Err(serde::de::Error::custom(format!(
                "a voiceprint is {} hex digits, got {} characters",
                VOICE_DIM * 2,
                hex.len()
            )));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map(Self)
            .map_err(|e| serde::de::Error::custom(format!("a voiceprint is hex: {e}")))
    }
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// How [`diarize`] clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct DiarizeParams {
    /// Clusters at least this similar (cosine of their centroids) are one speaker.
    pub threshold: f32,
    /// At most this many speakers.
    pub max_speakers: usize,
    /// A speaker with less of the voiced time than this is merged into the closest other.
    pub min_share: f64,
    /// Segments clustered directly; the rest are assigned to the closest speaker.
    pub max_items: usize,
}

impl Default for DiarizeParams {
    fn default() -> Self {
        Self {
            // The middle of the plateau the speaker benchmark measured: 0.80-0.85 gave the
            // same DER on the evaluation set, 0.75 merged the second voice into the first.
            threshold: 0.82,
            max_speakers: 4,
            min_share: 0.05,
            max_items: 400,
        }
    }
}

impl DiarizeParams {
    /// `VOX_MAX_SPEAKERS` (default 4, 1-8) and `VOX_SPEAKER_THRESHOLD` (default 0.82, the
    /// cosine similarity at which two voices are one speaker).
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = DiarizeParams::default();
        let max_speakers: usize = config::parsed_or("VOX_MAX_SPEAKERS", defaults.max_speakers)?;
        if !(1..=8).contains(&max_speakers) {
            return Err(ConfigError::Invalid {
                var: "VOX_MAX_SPEAKERS",
                reason: format!("{max_speakers} is not between 1 and 8"),
            });
        }
        let threshold: f32 = config::parsed_or("VOX_SPEAKER_THRESHOLD", defaults.threshold)?;
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(ConfigError::Invalid {
                var: "VOX_SPEAKER_THRESHOLD",
                reason: format!("{threshold} is not between 0 and 1 (exclusive)"),
            });
        }
        Ok(DiarizeParams {
            max_speakers,
            threshold,
            ..defaults
        })
    }
}

/// One segment as [`diarize`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Voiced<'a> {
    pub start_ms: i64,
    pub end_ms: i64,
    pub voice: Option<&'a Voiceprint>,
}

/// Speakers of the segments, in order: `Some(0)`, `Some(1)`, ... numbered by first appearance;
/// all `None` when no segment has a voiceprint.
pub fn diarize(segments: &[Voiced<'_>], params: &DiarizeParams) -> Vec<Option<u8>> {
    let voiced: Vec<usize> = (0..segments.len())
        .filter(|&i| segments[i].voice.is_some())
        .collect();
    if voiced.is_empty() {
        return vec![None; segments.len()];
    }
    let units: Vec<Vec<f32>> = voiced
        .iter()
        .map(|&i| {
            segments[i]
                .voice
                .map(Voiceprint::to_unit)
                .unwrap_or_default()
        })
        .collect();
    let weight: Vec<f64> = voiced
        .iter()
        .map(|&i| (segments[i].end_ms - segments[i].start_ms).max(1) as f64)
        .collect();

    // The longest segments are clustered; their voices are the most reliable.
    let mut order: Vec<usize> = (0..voiced.len()).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]).then(a.cmp(&b)));
    order.truncate(params.max_items.max(1));
    order.sort_unstable();
    let mut clusters: Vec<Cluster> = order
        .iter()
        .map(|&k| Cluster::new(&units[k], weight[k]))
        .collect();
    agglomerate(&mut clusters, params);
    drop_minor(&mut clusters, params.min_share);

    // Every voiced segment goes to its closest speaker (the clustered ones almost always to
    // their own cluster; a merged minor cluster's members to where it went).
    let centroids: Vec<Vec<f32>> = clusters.iter().map(|c| normalized(c.sum.clone())).collect();
    let mut label: Vec<Option<usize>> = vec![None; segments.len()];
    for (k, &i) in voiced.iter().enumerate() {
        let best = (0..centroids.len())
            .max_by(|&a, &b| {
                dot(&units[k], &centroids[a]).total_cmp(&dot(&units[k], &centroids[b]))
            })
            .unwrap_or(0);
        label[i] = Some(best);
    }
    // Too short for a voice: the nearest voiced neighbour in time.
    let fixed = label.clone();
    for (i, slot) in label.iter_mut().enumerate() {
        if slot.is_none() {
            let s = &segments[i];
            *slot = voiced
                .iter()
                .min_by_key(|&&j| gap_ms(s, &segments[j]))
                .and_then(|&j| fixed[j]);
        }
    }
    // Numbered by first appearance.
    let mut names: Vec<usize> = Vec::new();
    label
        .into_iter()
        .map(|l| {
            l.map(|c| match names.iter().position(|&n| n == c) {
                Some(p) => p as u8,
                None => {
                    names.push(c);
                    (names.len() - 1) as u8
                }
            })
        })
        .collect()
}

fn gap_ms(a: &Voiced<'_>, b: &Voiced<'_>) -> i64 {
    if b.end_ms <= a.start_ms {
        a.start_ms - b.end_ms
    } else if a.end_ms <= b.start_ms {
        b.start_ms - a.end_ms
    } else {
        0
    }
}

/// Duration-weighted sum of unit voices.
#[derive(Debug, Clone)]
struct Cluster {
    sum: Vec<f32>,
    weight: f64,
}

impl Cluster {
    fn new(unit: &[f32], weight: f64) -> Self {
        let w = weight as f32;
        Self {
            sum: unit.iter().map(|x| x * w).collect(),
            weight,
        }
    }

    fn absorb(&mut self, other: Cluster) {
        self.sum
            .iter_mut()
            .zip(&other.sum)
            .for_each(|(a, b)| *a += b);
        self.weight += other.weight;
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (na, nb) = (dot(a, a).sqrt(), dot(b, b).sqrt());
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot(a, b) / (na * nb)
}

/// Merges the closest pair while it is similar enough or there are too many clusters.
fn agglomerate(clusters: &mut Vec<Cluster>, params: &DiarizeParams) {
    let n = clusters.len();
    // sim[i][j] for i < j; recomputed for a merged cluster's row and column only.
    let mut sim = vec![vec![f32::NEG_INFINITY; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            sim[i][j] = cosine(&clusters[i].sum, &clusters[j].sum);
        }
    }
    let mut alive: Vec<bool> = vec![true; n];
    let mut count = n;
    let mut slots: Vec<Option<Cluster>> = clusters.drain(..).map(Some).collect();
    while count > 1 {
        let mut best = (f32::NEG_INFINITY, 0, 0);
        for i in (0..n).filter(|&i| alive[i]) {
            for j in (i + 1..n).filter(|&j| alive[j]) {
                if sim[i][j] > best.0 {
                    best = (sim[i][j], i, j);
                }
            }
        }
        let (s, i, j) = best;
        if s < params.threshold && count <= params.max_speakers {
            break;
        }
        let other = slots[j].take().unwrap_or_else(|| Cluster::new(&[], 0.0));
        if let Some(c) = slots[i].as_mut() {
            c.absorb(other);
        }
        alive[j] = false;
        count -= 1;
        let merged = slots[i].as_ref().map(|c| c.sum.clone()).unwrap_or_default();
        for k in (0..n).filter(|&k| alive[k] && k != i) {
            let v = slots[k].as_ref().map_or(0.0, |c| cosine(&merged, &c.sum));
            let (a, b) = if k < i { (k, i) } else { (i, k) };
            sim[a][b] = v;
        }
    }
    clusters.extend(slots.into_iter().flatten());
}

/// Merges speakers with less than `min_share` of the voiced time into their closest other.
fn drop_minor(clusters: &mut Vec<Cluster>, min_share: f64) {
    loop {
        let total: f64 = clusters.iter().map(|c| c.weight).sum();
        if clusters.len() < 2 || total <= 0.0 {
            return;
        }
        let Some((small, _)) = clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.weight / total < min_share)
            .min_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
        else {
            return;
        };
        let minor = clusters.remove(small);
        let closest = (0..clusters.len())
            .max_by(|&a, &b| {
                cosine(&minor.sum, &clusters[a].sum)
                    .total_cmp(&cosine(&minor.sum, &clusters[b].sum))
            })
            .unwrap_or(0);
        clusters[closest].absorb(minor);
    }
}

/// An interview role, spelled as stored on segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    #[serde(rename = "Сотрудник")]
    Employee,
    #[serde(rename = "Клиент")]
    Client,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Employee => "Сотрудник",
            Role::Client => "Клиент",
        }
    }
}

/// What the turns say of one speaker, and the role decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakerEvidence {
    pub speaker: u8,
    /// `None` when the recording has one speaker (nothing to tell apart).
    pub role: Option<Role>,
    pub turns: usize,
    pub sentences: usize,
    /// Of `sentences`, questions or interviewer prompts.
    pub questions: usize,
    pub speech_ms: i64,
    /// Characters per turn.
    pub mean_turn_chars: f64,
    pub opens: bool,
}

/// One segment as [`decide_roles`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Spoken<'a> {
    pub speaker: Option<u8>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: &'a str,
}

/// What the turns say of each speaker found by [`diarize`], in speaker order, with the roles:
/// the employee is the speaker with the highest score `question share + 0.2 (opens) + 0.2
/// (shortest mean turn)`; the rest are clients. With one speaker its role stays `None`.
pub fn decide_roles(segments: &[Spoken<'_>]) -> Vec<SpeakerEvidence> {
    let mut evidence: Vec<SpeakerEvidence> = Vec::new();
    let mut previous: Option<u8> = None;
    let mut chars: Vec<(u8, usize)> = Vec::new();
    for s in segments {
        let Some(speaker) = s.speaker else { continue };
        let e = match evidence.iter_mut().position(|e| e.speaker == speaker) {
            Some(p) => &mut evidence[p],
            None => {
                evidence.push(SpeakerEvidence {
                    speaker,
                    role: None,
                    turns: 0,
                    sentences: 0,
                    questions: 0,
                    speech_ms: 0,
                    mean_turn_chars: 0.0,
                    opens: previous.is_none(),
                });
                let last = evidence.len() - 1;
                &mut evidence[last]
            }
        };
        if previous != Some(speaker) {
            e.turns += 1;
        }
        previous = Some(speaker);
        e.speech_ms += (s.end_ms - s.start_ms).max(0);
        for sentence in sentences(s.text) {
            e.sentences += 1;
            e.questions += usize::from(is_question(sentence));
        }
        match chars.iter_mut().find(|(k, _)| *k == speaker) {
            Some((_, n)) => *n += s.text.trim().chars().count(),
            None => chars.push((speaker, s.text.trim().chars().count())),
        }
    }
    for e in &mut evidence {
        let total = chars
            .iter()
            .find(|(k, _)| *k == e.speaker)
            .map_or(0, |(_, n)| *n);
        e.mean_turn_chars = total as f64 / e.turns.max(1) as f64;
    }
    evidence.sort_by_key(|e| e.speaker);
    if evidence.len() < 2 {
        return evidence;
    }
    let shortest = evidence
        .iter()
        .min_by(|a, b| a.mean_turn_chars.total_cmp(&b.mean_turn_chars))
        .map(|e| e.speaker);
    let score = |e: &SpeakerEvidence| {
        e.questions as f64 / e.sentences.max(1) as f64
            + if e.opens { 0.2 } else { 0.0 }
            + if Some(e.speaker) == shortest {
                0.2
            } else {
                0.0
            }
    };
    let employee = evidence
        .iter()
        .max_by(|a, b| {
            score(a)
                .total_cmp(&score(b))
                .then(b.speaker.cmp(&a.speaker))
        })
        .map(|e| e.speaker);
    for e in &mut evidence {
        e.role = Some(if Some(e.speaker) == employee {
            Role::Employee
        } else {
            Role::Client
        });
    }
    evidence
}

/// Finds the speakers of a whole transcript from its segments' voiceprints: sets every
/// segment's `speaker_id`, and with `roles` (interviews) its `speaker` (the role) when two or
/// more speakers were found and the segment has no role yet. The voiceprints are dropped.
/// Returns what the turns say of each speaker (empty when no segment had a voice).
pub fn label_segments(
    segments: &mut [crate::db::transcription::Segment],
    params: &DiarizeParams,
    roles: bool,
) -> Vec<SpeakerEvidence> {
    let voiced: Vec<Voiced<'_>> = segments
        .iter()
        .map(|s| Voiced {
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            voice: s.voice.as_ref(),
        })
        .collect();
    let ids = diarize(&voiced, params);
    for (s, id) in segments.iter_mut().zip(&ids) {
        s.speaker_id = id.map(i16::from);
        s.voice = None;
    }
    assign_roles(segments, &ids, roles)
}

/// Speakers an engine told apart itself (Amazon Transcribe's speaker labels): every
/// segment's `speaker_id` is kept (ids over 255 count as none), and with `roles` its
/// `speaker` (the role) is set as [`label_segments`] sets it. Voiceprints are dropped.
/// Returns what the turns say of each speaker (empty when no segment has one).
pub fn label_known_speakers(
    segments: &mut [crate::db::transcription::Segment],
    roles: bool,
) -> Vec<SpeakerEvidence> {
    let ids: Vec<Option<u8>> = segments
        .iter_mut()
        .map(|s| {
            s.voice = None;
            s.speaker_id.and_then(|id| u8::try_from(id).ok())
        })
        .collect();
    assign_roles(segments, &ids, roles)
}

/// Decides the roles of the speakers `ids` (one per segment) and, with `roles`, writes them
/// into the segments that have none.
fn assign_roles(
    segments: &mut [crate::db::transcription::Segment],
    ids: &[Option<u8>],
    roles: bool,
) -> Vec<SpeakerEvidence> {
    if ids.iter().all(Option::is_none) {
        return Vec::new();
    }
    let spoken: Vec<Spoken<'_>> = segments
        .iter()
        .zip(ids)
        .map(|(s, id)| Spoken {
            speaker: *id,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: &s.text,
        })
        .collect();
    let evidence = decide_roles(&spoken);
    if roles {
        for (s, id) in segments.iter_mut().zip(ids) {
            let role = evidence
                .iter()
                .find(|e| Some(e.speaker) == *id)
                .and_then(|e| e.role);
            if s.speaker.is_none()
                && let Some(role) = role
            {
                s.speaker = Some(role.as_str().to_owned());
            }
        }
    }
    evidence
}

/// Sentences of a segment: split after `.`, `!`, `?` and `…`.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(['.', '!', '?', '…'])
        .map(str::trim)
        .filter(|s| s.chars().any(char::is_alphanumeric))
}

/// Words that open a question or an interviewer's prompt (lower case, `ё` as `е`).
const ASKING: &[&str] = &[
    "как",
    "каким",
    "какой",
    "какая",
    "какое",
    "какие",
    "каких",
    "почему",
    "зачем",
    "что",
    "чем",
    "где",
    "куда",
    "откуда",
    "когда",
    "сколько",
    "кто",
    "насколько",
    "расскажите",
    "скажите",
    "опишите",
    "поделитесь",
    "назовите",
    "объясните",
    "уточните",
    "вспомните",
    "оцените",
    "what",
    "why",
    "how",
    "where",
    "when",
    "which",
    "who",
    "tell",
    "describe",
    "could",
    "would",
    "do",
    "did",
    "are",
    "is",
];

/// Fillers skipped before the first word that decides.
const LEAD: &[&str] = &[
    "а",
    "и",
    "ну",
    "так",
    "хорошо",
    "понятно",
    "ясно",
    "and",
    "so",
    "ok",
    "okay",
    "well",
];

fn is_question(sentence: &str) -> bool {
    if sentence.ends_with('?') {
        return true;
    }
    let lower = sentence.to_lowercase().replace('ё', "е");
    let first = lower
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .find(|w| !LEAD.contains(w));
    first.is_some_and(|w| ASKING.contains(&w)) && !sentence.ends_with('!')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit voice pointing mostly along `axis`, with a little of `noise`.
    fn voice(axis: usize, noise: usize, amount: f32) -> Voiceprint {
        let mut v = vec![0.0f32; VOICE_DIM];
        v[axis] = 1.0;
        v[noise] += amount;
        Voiceprint::from_embedding(&normalized(v)).unwrap()
    }

    fn seg(start: i64, end: i64, v: Option<&Voiceprint>) -> Voiced<'_> {
        Voiced {
            start_ms: start,
            end_ms: end,
            voice: v,
        }
    }

    #[test]
    fn voiceprints_round_trip_through_hex_and_keep_their_direction() {
        let v = voice(3, 7, 0.3);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json.len(), VOICE_DIM * 2 + 2);
        let back: Voiceprint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert!(dot(&back.to_unit(), &v.to_unit()) > 0.999);
        let err = serde_json::from_str::<Voiceprint>("\"abc\"").unwrap_err();
        assert!(err.to_string().contains("hex digits"), "{err}");
        assert!(Voiceprint::from_embedding(&[0.5; 3]).is_none());
        assert!(Voiceprint::from_embedding(&[f32::NAN; VOICE_DIM]).is_none());
    }

    #[test]
    fn two_voices_alternating_become_two_speakers_numbered_by_first_appearance() {
        let a = [voice(0, 5, 0.2), voice(0, 6, 0.25), voice(0, 7, 0.1)];
        let b = [voice(1, 5, 0.2), voice(1, 8, 0.3), voice(1, 9, 0.15)];
        let segments = vec![
            seg(0, 2000, Some(&b[0])),
            seg(2500, 6000, Some(&a[0])),
            seg(6500, 8000, Some(&b[1])),
            seg(8200, 8400, None),
            seg(9000, 14000, Some(&a[1])),
            seg(14500, 16000, Some(&b[2])),
            seg(16500, 20000, Some(&a[2])),
        ];
        let got = diarize(&segments, &DiarizeParams::default());
        assert_eq!(
            got,
            vec![
                Some(0),
                Some(1),
                Some(0),
                Some(0),
                Some(1),
                Some(0),
                Some(1)
            ]
        );
    }

    #[test]
    fn one_voice_stays_one_speaker() {
        let v: Vec<Voiceprint> = (5..12).map(|n| voice(0, n, 0.3)).collect();
        let segments: Vec<Voiced<'_>> = v
            .iter()
            .enumerate()
            .map(|(i, v)| seg(i as i64 * 3000, i as i64 * 3000 + 2500, Some(v)))
            .collect();
        let got = diarize(&segments, &DiarizeParams::default());
        assert!(got.iter().all(|s| *s == Some(0)), "{got:?}");
    }

    #[test]
    fn never_more_than_max_speakers_and_a_brief_voice_is_not_a_person() {
        let v: Vec<Voiceprint> = (0..6).map(|axis| voice(axis, 100, 0.1)).collect();
        let mut segments: Vec<Voiced<'_>> = v
            .iter()
            .enumerate()
            .map(|(i, v)| seg(i as i64 * 10_000, i as i64 * 10_000 + 9_000, Some(v)))
            .collect();
        let got = diarize(&segments, &DiarizeParams::default());
        let distinct: std::collections::BTreeSet<_> = got.iter().flatten().collect();
        assert_eq!(distinct.len(), 4, "{got:?}");

        // A 300 ms cough in a new voice beside a long talk: merged away.
        let cough = voice(9, 100, 0.1);
        segments.truncate(1);
        segments.push(seg(9_500, 9_800, Some(&cough)));
        let got = diarize(&segments, &DiarizeParams::default());
        assert_eq!(got, vec![Some(0), Some(0)]);
    }

    #[test]
    fn no_voices_give_no_speakers_and_many_segments_are_all_labelled() {
        assert_eq!(
            diarize(
                &[seg(0, 100, None), seg(200, 300, None)],
                &DiarizeParams::default()
            ),
            vec![None, None]
        );
        let a = voice(0, 5, 0.2);
        let b = voice(1, 5, 0.2);
        let segments: Vec<Voiced<'_>> = (0..30)
            .map(|i| {
                seg(
                    i * 1000,
                    i * 1000 + 900 + i,
                    Some(if i % 3 == 0 { &b } else { &a }),
                )
            })
            .collect();
        let params = DiarizeParams {
            max_items: 10,
            ..DiarizeParams::default()
        };
        let got = diarize(&segments, &params);
        for (i, s) in got.iter().enumerate() {
            assert_eq!(*s, Some(u8::from(i % 3 != 0)), "segment {i}: {got:?}");
        }
    }

    fn spoken(speaker: u8, text: &str) -> Spoken<'_> {
        Spoken {
            speaker: Some(speaker),
            start_ms: 0,
            end_ms: 1000 + text.len() as i64 * 50,
            text,
        }
    }

    #[test]
    fn the_one_who_asks_is_the_employee() {
        let turns = [
            spoken(0, "Здравствуйте. Расскажите, почему вы выбрали этот отель?"),
            spoken(
                1,
                "Мне было важно жить рядом с центром. Номер был чистый, но шумный.",
            ),
            spoken(0, "А что бы вы изменили на месте управляющего"),
            spoken(
                1,
                "Я бы поставила хорошие окна. И сделала бы парковку побольше.",
            ),
        ];
        let roles = decide_roles(&turns);
        assert_eq!(roles[0].role, Some(Role::Employee));
        assert_eq!(roles[1].role, Some(Role::Client));
        assert_eq!(roles[0].questions, 2);
        assert_eq!(roles[0].turns, 2);
        assert!(roles[0].opens && !roles[1].opens);

        // The guest speaks first, the interviewer still asks: asking wins over opening.
        let turns = [
            spoken(0, "Я приехала сюда в третий раз. Мне здесь всё нравится."),
            spoken(1, "Почему вы возвращаетесь? Что для вас главное?"),
            spoken(0, "Тишина и завтраки. Ещё вид из окна на реку."),
            spoken(1, "Как вы оцениваете персонал?"),
            spoken(0, "Персонал вежливый, всегда улыбаются."),
        ];
        let roles = decide_roles(&turns);
        assert_eq!(roles[0].role, Some(Role::Client));
        assert_eq!(roles[1].role, Some(Role::Employee));
    }

    #[test]
    fn one_speaker_has_no_roles() {
        let one = decide_roles(&[
            spoken(0, "Фасад в хорошем состоянии."),
            spoken(0, "Лобби светлое."),
        ]);
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].role, one[0].turns, one[0].sentences), (None, 1, 2));
        assert!(decide_roles(&[]).is_empty());
    }

    #[test]
    fn questions_without_a_question_mark_are_recognised() {
        assert!(is_question("Ну а как вам завтраки"));
        assert!(is_question("Скажите, вы бы вернулись сюда."));
        assert!(is_question("What did you like most?"));
        assert!(!is_question("Мне понравились завтраки."));
        assert!(!is_question("Как же я устала!"));
    }
}
