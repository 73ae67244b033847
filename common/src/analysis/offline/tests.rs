//! Engine-level tests with deterministic stand-in embedders, and the cheap checks of
//! `common/prompts/README.md` («Проверки») that concern the offline contract.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::*;
use crate::analysis::quotes;
use crate::db::transcription::{Segment, text_of};

/// Bag of word stems (first five letters) hashed into 512 dimensions, unit length: texts
/// that share stems are close, which is all the pure logic needs.
struct HashEmbedder;

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Embedder for HashEmbedder {
    fn model_id(&self) -> &str {
        "hash-bow@test"
    }

    fn dims(&self) -> usize {
        512
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 512];
                for token in text::tokens(t) {
                    let stem: String = token.chars().take(5).collect();
                    v[(fnv(&stem) % 512) as usize] += 1.0;
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm == 0.0 {
                    v[0] = 1.0;
                } else {
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect())
    }
}

/// Every text the same vector: every passage scores 1 + keyword bonus for every section, so
/// only filters, keywords and the assignment rules decide.
struct ConstEmbedder;

impl Embedder for ConstEmbedder {
    fn model_id(&self) -> &str {
        "const@test"
    }

    fn dims(&self) -> usize {
        2
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(vec![vec![1.0, 0.0]; texts.len()])
    }
}

fn hash_engine() -> &'static OfflineEngine {
    static E: OnceLock<OfflineEngine> = OnceLock::new();
    E.get_or_init(|| OfflineEngine::new(Arc::new(HashEmbedder)).unwrap())
}

fn const_engine() -> &'static OfflineEngine {
    static E: OnceLock<OfflineEngine> = OnceLock::new();
    E.get_or_init(|| OfflineEngine::new(Arc::new(ConstEmbedder)).unwrap())
}

fn seg(i: i64, text: &str) -> Segment {
    Segment {
        start_ms: i * 7_000,
        end_ms: i * 7_000 + 6_500,
        text: text.to_owned(),
        ..Segment::default()
    }
}

fn segments(lines: &[&str]) -> Vec<Segment> {
    lines
        .iter()
        .enumerate()
        .map(|(i, t)| seg(i as i64, t))
        .collect()
}

fn job(engine: &OfflineEngine, report_type: &str, building: &str, segs: Vec<Segment>) -> JobInput {
    let scenario = engine
        .spec
        .pair(report_type, building)
        .map_or("interview", |p| p.scenario.as_str());
    JobInput {
        scenario: scenario.to_owned(),
        report_type: report_type.to_owned(),
        building: building.to_owned(),
        place_building: Some("hotel".to_owned()),
        client: None,
        employee: None,
        place: Some("Гранд Волга".to_owned()),
        city: None,
        zones: Vec::new(),
        date: None,
        segments: segs,
    }
}

const DESIGN: &[&str] = &[
    "Лобби. Освещение слишком холодное и яркое, светильники над стойкой регистрации слепят гостей.",
    "Рекомендую заменить лампы на тёплый свет и поставить торшеры возле диванов.",
    "Мебель в зоне ожидания выглядит уставшей: обивка кресел протёрта, на подлокотниках видны пятна.",
    "Фасад отеля в хорошем состоянии, но вход теряется среди соседних зданий. Вечером вывеску почти не видно, её нужно подсветить.",
    "Номер на четвёртом этаже светлый и просторный. Кровать удобная, но возле неё нет розеток, а кондиционер ночью шумит.",
    "Зона спа находится на минус первом этаже. Навигация слабая, указатели маленькие, и гость идёт от лифта почти две минуты.",
    "В ресторане сорок два посадочных места. Столы стоят слишком плотно, официантам трудно проходить между ними.",
];

const INTERVIEW: &[&str] = &[
    "Здравствуйте, меня зовут Анна, я провожу исследование о том, как люди выбирают отели.",
    "Расскажите, пожалуйста, о вашей последней поездке.",
    "Мы ездили в Казань на три дня, я выбирала отель поближе к центру, чтобы ходить пешком.",
    "А почему вы выбрали именно этот отель?",
    "Я прочитала отзывы, посмотрела фотографии номеров и поняла, что здесь мне будет спокойно.",
    "Мне важно, чтобы в номере было тихо и чисто, а персонал был вежливым.",
    "Понятно. Что для вас значит хороший завтрак?",
    "Завтрак для меня очень важен, в этом отеле шведский стол был разнообразный, и кофе хороший.",
    "За неделю отдыха мы заплатили около ста двадцати тысяч, это дорого, но сервис того стоил.",
];

#[test]
fn the_contract_compiles_into_fifteen_pairs_with_every_query_embedded() {
    let engine = hash_engine();
    assert_eq!(engine.spec.pairs.len(), 15);
    let id = engine.engine_id();
    let hash = id
        .strip_prefix("offline:hash-bow@test+sections@")
        .expect("encoder and contract version");
    assert!(
        hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    for pair in &engine.spec.pairs {
        for pass in &pair.passes {
            if let PassBody::Narrative(report) = &pass.body {
                for s in &report.sections {
                    if let Source::Search(search) = &s.source {
                        assert_eq!(search.query_vectors.len(), search.probes.len());
                        assert!(search.probes.len() >= 2, "{}", s.id);
                        for v in &search.query_vectors {
                            assert_eq!(v.len(), 512, "{}", s.id);
                        }
                    }
                }
            }
        }
    }
}

/// Quotes of a report, each checked to be an exact substring of one segment.
fn assert_verbatim(markdown: &str, segs: &[Segment]) {
    let transcript = text_of(segs);
    for q in quotes::extract(markdown) {
        assert!(
            segs.iter().any(|s| s.text.contains(&q)) && transcript.contains(&q),
            "quote not verbatim: {q:?}\n{markdown}"
        );
    }
}

#[test]
fn every_pair_gives_verbatim_quotes_valid_metrics_and_the_same_bytes_twice() {
    let engine = hash_engine();
    let catalog = Catalog::embedded().unwrap();
    for pair in &engine.spec.pairs {
        let lines = if pair.scenario == "interview" {
            INTERVIEW
        } else {
            DESIGN
        };
        let j = job(engine, &pair.report_type, &pair.building, segments(lines));
        let out = engine.analyze(&j).unwrap();
        let again = engine.analyze(&j).unwrap();
        assert_eq!(out, again, "{}.{}", pair.report_type, pair.building);

        let expected = catalog.passes(&pair.report_type, &pair.building);
        assert_eq!(out.passes.len(), expected.len());
        for (got, want) in out.passes.iter().zip(expected) {
            assert_eq!(got.pass, want.pass);
            assert_eq!(got.prompt_name, want.name);
            assert_eq!(got.title, want.title);
            match got.kind {
                PassKind::Narrative => {
                    assert!(got.metrics.is_none());
                    assert_verbatim(&got.text, &j.segments);
                }
                PassKind::Metrics => {
                    let value = got.metrics.as_ref().unwrap();
                    crate::metrics::validate(&pair.report_type, &pair.building, value).unwrap();
                    let parsed: Value = serde_json::from_str(&got.text).unwrap();
                    assert_eq!(&parsed, value);
                }
            }
        }
    }
}

#[test]
fn an_unknown_pair_or_scenario_is_an_error_naming_it() {
    let engine = hash_engine();
    let err = engine
        .analyze(&job(engine, "links", "hotel", segments(INTERVIEW)))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidPair { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("links") && msg.contains("hotel"), "{msg}");

    let mut j = job(engine, "links", "non-building", segments(INTERVIEW));
    j.scenario = "design".to_owned();
    let err = engine.analyze(&j).unwrap_err();
    assert!(matches!(err, Error::UnknownReportType { .. }), "{err}");
}

#[test]
fn an_empty_transcript_gives_markers_and_zero_metrics() {
    let engine = hash_engine();
    let out = engine
        .analyze(&job(engine, "audit-compliance", "hotel", Vec::new()))
        .unwrap();
    assert!(out.passes[0].text.contains("Нет данных в записи"));
    assert!(!out.passes[0].text.contains('«'));
    let m = out.passes[1].metrics.as_ref().unwrap();
    assert_eq!(m["итоговая_оценка_качества_аудита"], 0);
    assert_eq!(m["общая_оценка_соответствия_методологии"], 0);

    let out = engine
        .analyze(&job(engine, "common-factors", "hotel", Vec::new()))
        .unwrap();
    let m = out.passes[2].metrics.as_ref().unwrap();
    assert_eq!(m["упомянутые_факторы"]["общее_количество"], 0);
    assert_eq!(m["неупомянутые_факторы"]["общее_количество"], 33);
}

#[test]
fn passages_glue_short_sentences_within_a_segment_and_a_role_and_cut_long_ones() {
    let engine = hash_engine();
    let long = "слово ".repeat(100);
    let segs = segments(&[
        "Лобби. Свет холодный и очень яркий везде.",
        "Да. Нет.",
        "Понятно. Что было потом?",
        long.trim(),
    ]);
    let j = job(engine, "links", "non-building", segs);
    let t = engine.cut(&j, true);
    let texts: Vec<&str> = t.passages.iter().map(|p| t.text(&p.span)).collect();
    assert_eq!(texts[0], "Лобби. Свет холодный и очень яркий везде.");
    // A short last sentence stays alone; segments are never crossed.
    assert_eq!(texts[1], "Да. Нет.");
    // «Понятно.» is a lead-in of the interviewer's question: same role, glued.
    assert_eq!(texts[2], "Понятно. Что было потом?");
    assert_eq!(t.passages[2].role, Some(Role::Employee));
    assert_eq!(t.passages[0].role, Some(Role::Client));
    // 599 characters are cut at words into pieces of at most 400.
    assert_eq!(texts.len(), 5);
    assert!(texts[3].chars().count() <= 400 && texts[3].ends_with("слово"));
    assert_eq!(
        texts[3].chars().count() + 1 + texts[4].chars().count(),
        long.trim().chars().count()
    );
    assert_eq!(t.passages[4].sentence_start, 0);
    assert!(t.passages[4].span.start > 0);
    assert!(t.heuristic_roles);
}

#[test]
fn short_sentences_of_different_roles_are_not_glued() {
    let engine = hash_engine();
    let j = job(
        engine,
        "links",
        "non-building",
        segments(&["Почему вы так решили? Дёшево и близко."]),
    );
    let t = engine.cut(&j, true);
    let got: Vec<(&str, Option<Role>)> = t
        .passages
        .iter()
        .map(|p| (t.text(&p.span), p.role))
        .collect();
    assert_eq!(
        got,
        [
            ("Почему вы так решили?", Some(Role::Employee)),
            ("Дёшево и близко.", Some(Role::Client))
        ]
    );
}

#[test]
fn stored_roles_win_and_the_report_says_how_roles_were_decided() {
    let engine = const_engine();
    let mut segs = segments(INTERVIEW);
    let heuristic = engine
        .analyze(&job(engine, "links", "non-building", segs.clone()))
        .unwrap();
    assert!(heuristic.passes[0].text.contains(ROLE_NOTE));

    // Everything labelled as the interviewer: the links sections (speaker Клиент) find nothing.
    for s in &mut segs {
        s.speaker = Some("Сотрудник".to_owned());
    }
    let labelled = engine
        .analyze(&job(engine, "links", "non-building", segs))
        .unwrap();
    assert!(!all_text(&labelled).contains(ROLE_NOTE));
    assert!(!all_text(&labelled).contains(VOICE_ROLE_NOTE));
    assert!(!labelled.passes[0].text.contains('«'));
    assert_eq!(
        labelled.passes[1].metrics.as_ref().unwrap()["количество_выявленных_связок"],
        0
    );

    // Roles that came with speakers told apart by voice: the report says so.
    let mut voiced = segments(INTERVIEW);
    for (i, s) in voiced.iter_mut().enumerate() {
        s.speaker_id = Some((i % 2) as i16);
        s.speaker = Some(
            if i % 2 == 0 {
                "Сотрудник"
            } else {
                "Клиент"
            }
            .to_owned(),
        );
    }
    let by_voice = engine
        .analyze(&job(engine, "links", "non-building", voiced))
        .unwrap();
    assert!(by_voice.passes[0].text.contains(VOICE_ROLE_NOTE));
    assert!(!all_text(&by_voice).contains(ROLE_NOTE));

    // Design reports never carry the note.
    let design = engine
        .analyze(&job(
            engine,
            "audit-methodology",
            "non-building",
            segments(DESIGN),
        ))
        .unwrap();
    assert!(!design.passes[0].text.contains(ROLE_NOTE));
}

fn all_text(out: &ReportOutput) -> String {
    out.passes.iter().map(|p| p.text.as_str()).collect()
}

#[test]
fn the_speaker_filter_keeps_only_that_roles_passages() {
    let engine = const_engine();
    let j = job(
        engine,
        "interview-methodology",
        "non-building",
        segments(INTERVIEW),
    );
    let t = engine.cut(&j, true);
    let employee: BTreeSet<&str> = t
        .passages
        .iter()
        .filter(|p| p.role == Some(Role::Employee))
        .map(|p| t.text(&p.span))
        .collect();
    let out = engine.analyze(&j).unwrap();
    let md = &out.passes[0].text;
    // Section 1 (speaker Сотрудник) quotes the interviewer only.
    let section1 = md
        .split("## 2.")
        .next()
        .unwrap()
        .split("## 1.")
        .nth(1)
        .unwrap();
    let quoted = quotes::extract(section1);
    assert!(!quoted.is_empty(), "{md}");
    for q in quoted {
        assert!(
            employee.contains(q.as_str()),
            "{q} is not the interviewer's"
        );
    }
}

#[test]
fn venue_factors_need_a_venue_word_or_the_place_name_here_or_just_before() {
    let engine = const_engine();
    let segs = segments(&[
        "Мне важно, чтобы завтрак был разнообразный и кофе хороший.",
        "В отеле ГРАНД ВОЛГА завтрак был разнообразный, и кофе отличный.",
        "Что вам понравилось в этом отеле?",
        "Персонал вежливый, номера чистые и просторные.",
        "Вообще я люблю тихие районы и парки рядом с домом.",
    ]);
    let j = job(engine, "venue-factors", "hotel", segs);
    let out = engine.analyze(&j).unwrap();
    let quoted: BTreeSet<String> = quotes::extract(&out.passes[0].text).into_iter().collect();
    // The place name (in any letter case) and a venue word in the previous sentence anchor;
    // general statements do not.
    let expected: BTreeSet<String> = [
        "В отеле ГРАНД ВОЛГА завтрак был разнообразный, и кофе отличный.",
        "Персонал вежливый, номера чистые и просторные.",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(quoted, expected, "{}", out.passes[0].text);
}

#[test]
fn common_factors_list_exactly_the_factors_without_evidence_and_the_counts_add_up() {
    let engine = hash_engine();
    let j = job(engine, "common-factors", "hotel", segments(INTERVIEW));
    let out = engine.analyze(&j).unwrap();
    let pair = engine.spec.pair("common-factors", "hotel").unwrap();
    let PassBody::Narrative(factors) = &pair.passes[0].body else {
        panic!("pass 1 is narrative")
    };
    let pass1 = &out.passes[0].text;
    let pass2 = &out.passes[1].text;
    let metrics = out.passes[2].metrics.as_ref().unwrap();
    let mut mentioned_total = 0;
    for s in &factors.sections {
        let shown = pass1.contains(&format!("### {}\n", s.title));
        let listed = pass2.contains(&format!("- {}\n", s.title));
        assert!(
            shown != listed,
            "{} is shown {shown} and listed {listed}",
            s.title
        );
        mentioned_total += i64::from(shown);
    }
    assert_eq!(
        metrics["упомянутые_факторы"]["общее_количество"],
        mentioned_total
    );
    assert_eq!(
        metrics["неупомянутые_факторы"]["общее_количество"],
        33 - mentioned_total
    );
    assert!(mentioned_total > 0, "{pass1}");
}

// ------------------------------------------------------------------ README «Проверки»

/// Names a prompt gives its headings and classification items: `## x` / `### x` / `- x:` /
/// `- x` → `x`.
fn prompt_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter_map(|l| {
            let name = l
                .strip_prefix("### ")
                .or_else(|| l.strip_prefix("## "))
                .or_else(|| l.strip_prefix("# "))
                .or_else(|| l.strip_prefix("- "))?;
            Some(name.trim_end_matches(':').trim().to_owned())
        })
        .collect()
}

#[test]
fn section_groups_and_titles_are_headings_or_factors_of_their_prompt() {
    let engine = hash_engine();
    let catalog = Catalog::embedded().unwrap();
    for pair in &engine.spec.pairs {
        for pass in &pair.passes {
            let PassBody::Narrative(report) = &pass.body else {
                continue;
            };
            let prompt = catalog.get(&pass.prompt_name).unwrap();
            let names = prompt_names(prompt.text);
            for s in &report.sections {
                assert!(
                    names.contains(&s.title),
                    "{}: {:?} is not in the prompt",
                    pass.prompt_name,
                    s.title
                );
                if let Some(g) = &s.group {
                    assert!(
                        names.contains(g),
                        "{}: group {g:?} is not in the prompt",
                        pass.prompt_name
                    );
                }
            }
        }
    }
}

#[test]
fn keywords_are_10_to_40_lowercase_words_with_distinct_stems() {
    let file: toml::Value = toml::from_str(SECTIONS_TOML).unwrap();
    let reports = file["report"].as_array().unwrap();
    let mut checked = 0;
    let mut repeated = Vec::new();
    for r in reports {
        for s in r["section"].as_array().unwrap() {
            let id = format!("{:?} {:?}", r["prompt"], s["id"]);
            let Some(keywords) = s.get("keywords").and_then(toml::Value::as_array) else {
                assert_eq!(
                    s.get("source").and_then(toml::Value::as_str),
                    Some("complement"),
                    "{id} has no keywords"
                );
                continue;
            };
            let kws: Vec<&str> = keywords.iter().map(|k| k.as_str().unwrap()).collect();
            assert!(
                (10..=40).contains(&kws.len()),
                "{id}: {} keywords",
                kws.len()
            );
            let mut stems = BTreeSet::new();
            for k in &kws {
                assert!(
                    !k.is_empty()
                        && *k == k.to_lowercase()
                        && !k.contains('ё')
                        && !k.chars().any(char::is_whitespace),
                    "{id}: keyword {k:?}"
                );
                // Two spellings of one stem would only repeat a match.
                if !stems.insert(stem(k)) {
                    repeated.push(format!("{id}: {k}"));
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 300, "{checked}");
    assert!(
        repeated.is_empty(),
        "keywords repeating a stem:\n{}",
        repeated.join("\n")
    );
}

#[test]
fn every_schema_requires_all_its_keys_and_forbids_others() {
    fn walk(schema: &Value, at: &str) {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let keys: BTreeSet<&str> = props.keys().map(String::as_str).collect();
        assert_eq!(required, keys, "{at}");
        assert_eq!(schema["additionalProperties"], false, "{at}");
        for (k, sub) in props {
            walk(sub, &format!("{at}.{k}"));
        }
    }
    let engine = hash_engine();
    for pair in &engine.spec.pairs {
        let schema = crate::metrics::schema(&pair.report_type, &pair.building).unwrap();
        walk(schema, &format!("{}.{}", pair.report_type, pair.building));
    }
}

#[test]
fn a_broken_contract_is_rejected_with_the_reason() {
    let catalog = Catalog::embedded().unwrap();
    let bad_metric = SECTIONS_TOML.replacen(
        "metric = \"итоговая_оценка_качества_интервью\"",
        "metric = \"нет_такого_ключа\"",
        1,
    );
    let err = spec::compile(&bad_metric, catalog).unwrap_err().to_string();
    assert!(err.contains("нет_такого_ключа"), "{err}");

    let no_rule = SECTIONS_TOML.replacen(
        "[[metrics_rule.from_sections]]\npass = 1\nrule = \"count_passages\"\ncap = 10\n",
        "",
        1,
    );
    assert_ne!(no_rule, SECTIONS_TOML);
    let err = spec::compile(&no_rule, catalog).unwrap_err().to_string();
    assert!(err.contains("количество_выявленных_связок"), "{err}");

    let typo = SECTIONS_TOML.replacen("render_empty = \"mark\"", "render_empty = \"show\"", 1);
    assert!(spec::compile(&typo, catalog).is_err());
}

#[test]
fn a_sentence_the_transcript_repeats_is_quoted_once_per_section() {
    let engine = const_engine();
    let twice: Vec<&str> = DESIGN.iter().chain(DESIGN).copied().collect();
    let out = engine
        .analyze(&job(engine, "structured-audit", "hotel", segments(&twice)))
        .unwrap();
    for pass in out.passes.iter().filter(|p| p.kind == PassKind::Narrative) {
        for section in pass.text.split("\n### ") {
            let quoted = quotes::extract(section);
            let distinct: BTreeSet<&String> = quoted.iter().collect();
            assert_eq!(distinct.len(), quoted.len(), "{section}");
        }
    }
}

// ------------------------------------------------------------------ guest speech

/// Client segments: what a guest says, with the role stored as the labelling gives it.
fn client_segments(lines: &[&str]) -> Vec<Segment> {
    let mut segs = segments(lines);
    for s in &mut segs {
        s.speaker = Some("Клиент".to_owned());
    }
    segs
}

/// The quotes of one `### title` section of a Markdown pass.
fn section_quotes(markdown: &str, title: &str) -> Vec<String> {
    markdown
        .split("\n### ")
        .find(|s| s.starts_with(&format!("{title}\n")))
        .map(|s| quotes::extract(s.split("\n## ").next().unwrap_or(s)))
        .unwrap_or_default()
}

#[test]
fn an_inflected_guest_word_matches_the_section_written_in_another_form() {
    // Only keywords tell sections apart with this embedder. «шумоизоляция» is in the
    // section's lexicon; the guest says «шумоизоляции», which a prefix would not match.
    let engine = const_engine();
    let said = "Из-за плохой шумоизоляции я бы туда не вернулась.";
    let out = engine
        .analyze(&job(
            engine,
            "common-factors",
            "hotel",
            client_segments(&[said]),
        ))
        .unwrap();
    assert_eq!(
        section_quotes(&out.passes[0].text, "Свет, материалы и шумоизоляция"),
        [said],
        "{}",
        out.passes[0].text
    );
    assert_eq!(stem("шумоизоляции"), stem("шумоизоляция"));
}

#[test]
fn one_statement_supports_every_factor_whose_words_it_uses_and_each_is_counted() {
    let engine = const_engine();
    let said = "Я всегда читаю отзывы про завтраки.";
    let out = engine
        .analyze(&job(
            engine,
            "common-factors",
            "hotel",
            client_segments(&[said]),
        ))
        .unwrap();
    let md = &out.passes[0].text;
    assert_eq!(section_quotes(md, "Отзывы и рейтинги"), [said], "{md}");
    assert_eq!(section_quotes(md, "Питание и завтраки"), [said], "{md}");
    // A factor whose words it does not use does not get it, though it scores as high.
    assert!(
        section_quotes(md, "Охрана и контроль доступа").is_empty(),
        "{md}"
    );
    let m = out.passes[2].metrics.as_ref().unwrap();
    assert_eq!(m["упомянутые_факторы"]["маркетинг_и_коммуникации"], 1);
    assert_eq!(m["упомянутые_факторы"]["сервис"], 1);
    assert_eq!(m["упомянутые_факторы"]["безопасность"], 0);
    assert_eq!(
        m["упомянутые_факторы"]["общее_количество"],
        md.matches("\n### ").count()
    );
    assert_verbatim(md, &client_segments(&[said]));
}

#[test]
fn reports_whose_sections_are_exclusive_still_quote_a_passage_once() {
    // Structured audits count distinct passages; a passage stays in one section of a pass.
    let engine = const_engine();
    let out = engine
        .analyze(&job(engine, "structured-audit", "hotel", segments(DESIGN)))
        .unwrap();
    for pass in out.passes.iter().filter(|p| p.kind == PassKind::Narrative) {
        let quoted = quotes::extract(&pass.text);
        let distinct: BTreeSet<&String> = quoted.iter().collect();
        assert_eq!(distinct.len(), quoted.len(), "{}", pass.text);
    }
}
