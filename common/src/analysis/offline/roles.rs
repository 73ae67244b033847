//! Speaker roles for interviews without a model: a small, explainable heuristic.
//!
//! The offline engine needs to know who speaks only to filter passages by role (`speaker` in
//! `sections.toml`). Roles are assigned per sentence (a turn boundary is assumed at every
//! sentence and segment boundary); a role stored on a segment (`Segment::speaker`, e.g. from
//! the model labelling) always wins over the heuristic. For the rest:
//!
//! 1. **Interviewer phrasing** → `Сотрудник`: the sentence starts (after fillers such as «а»,
//!    «ну», «хорошо») with a prompt or courtesy of the one who leads the conversation
//!    («расскажите», «скажите», «опишите», «давайте», «спасибо», «здравствуйте», …), or speaks
//!    about the interview itself («интервью», «исследование», «опрос»).
//! 2. **Questions** → `Сотрудник`: the sentence ends with `?`, or starts with a question word
//!    («как», «почему», «что», «где», «ли», …) and has no final `.`/`!`/`…` (speech recognition
//!    sometimes drops the question mark). A question that speaks about the speaker (first
//!    person: «я», «мне», «мы», …) and not to the other (no «вы», «вам», «ваш», …) is taken as a
//!    rhetorical question of the client («Почему я выбрала именно этот отель?») → `Клиент`.
//! 3. **Lead-ins** → `Сотрудник`: a short sentence (up to 60 characters) without first-person
//!    words right before an interviewer question in the same segment («Понятно. А почему вы
//!    так решили?»).
//! 4. Everything else → `Клиент`.
//!
//! Limits: a segment in which both speak without a sentence boundary between them gets one
//! role; the interviewer's statements without these markers (summaries, stories about
//! themselves) count as the client's; the client's questions addressed to the interviewer
//! («А вы там были?») count as the interviewer's; short answers («Да.», «Конечно.») are the
//! client's even when the interviewer says them. Reports built on these roles say so.

use serde::Deserialize;

use super::text::tokens;

/// One of the two interview roles, spelled as in the labelled transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub(crate) enum Role {
    #[serde(rename = "Сотрудник")]
    Employee,
    #[serde(rename = "Клиент")]
    Client,
}

impl Role {
    #[cfg(test)]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Employee => "Сотрудник",
            Role::Client => "Клиент",
        }
    }

    /// A segment's stored speaker as a role: `Сотрудник` / `Клиент` in any letter case,
    /// surrounding white space ignored. Any other value (a diarization label such as
    /// `SPEAKER_1`) is not a role, and the heuristic decides.
    pub(crate) fn parse(speaker: &str) -> Option<Role> {
        match speaker.trim().to_lowercase().as_str() {
            "сотрудник" => Some(Role::Employee),
            "клиент" => Some(Role::Client),
            _ => None,
        }
    }
}

const FILLERS: &[&str] = &[
    "а",
    "и",
    "ну",
    "но",
    "так",
    "вот",
    "хорошо",
    "понятно",
    "ясно",
    "ага",
    "угу",
    "окей",
    "ок",
    "да",
];

const QUESTION_WORDS: &[&str] = &[
    "как",
    "какой",
    "какая",
    "какое",
    "какие",
    "каким",
    "какую",
    "каких",
    "какого",
    "каком",
    "почему",
    "зачем",
    "отчего",
    "что",
    "чем",
    "чего",
    "чему",
    "где",
    "куда",
    "откуда",
    "когда",
    "сколько",
    "насколько",
    "кто",
    "кого",
    "кому",
    "ли",
    "разве",
    "неужели",
    "чей",
    "чья",
    "чье",
    "чьи",
];

/// Stems that open an interviewer's prompt or courtesy.
const INTERVIEWER_OPENERS: &[&str] = &[
    "расскажите",
    "скажите",
    "опишите",
    "поделитесь",
    "вспомните",
    "объясните",
    "уточните",
    "представьте",
    "назовите",
    "давайте",
    "продолжим",
    "перейдем",
    "вернемся",
    "спасибо",
    "благодарю",
    "здравствуйте",
];

/// Stems that speak about the interview itself, anywhere in the sentence.
const INTERVIEW_WORDS: &[&str] = &["интервью", "исследовани", "опрос"];

const FIRST_PERSON: &[&str] = &[
    "я",
    "меня",
    "мне",
    "мной",
    "мой",
    "моя",
    "мое",
    "мои",
    "моего",
    "моей",
    "моих",
    "мы",
    "нас",
    "нам",
    "нами",
    "наш",
    "наша",
    "наше",
    "наши",
    "нашего",
    "нашей",
];

const SECOND_PERSON: &[&str] = &[
    "вы",
    "вас",
    "вам",
    "вами",
    "ваш",
    "ваша",
    "ваше",
    "ваши",
    "вашего",
    "вашей",
    "вашем",
    "вашу",
    "вашим",
    "вашими",
    "ваших",
    "ты",
    "тебя",
    "тебе",
    "тобой",
    "твой",
    "твоя",
    "твое",
    "твои",
];

/// Longest lead-in sentence, in characters.
const LEAD_IN_MAX_CHARS: usize = 60;

struct Features {
    interviewer_phrase: bool,
    question: bool,
    first_person: bool,
    second_person: bool,
    chars: usize,
}

fn features(sentence: &str) -> Features {
    let toks = tokens(sentence);
    let mut start = 0;
    while start < toks.len().min(2) && FILLERS.contains(&toks[start].as_str()) {
        start += 1;
    }
    let first = toks.get(start).map(String::as_str).unwrap_or("");
    let interviewer_phrase = INTERVIEWER_OPENERS.iter().any(|s| first.starts_with(s))
        || toks
            .iter()
            .any(|t| INTERVIEW_WORDS.iter().any(|s| t.starts_with(s)));
    let trimmed = sentence.trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, ')' | ']' | '"' | '\'' | '”' | '’' | '“')
    });
    let terminal: String = trimmed
        .chars()
        .rev()
        .take_while(|c| matches!(c, '.' | '!' | '?' | '…'))
        .collect();
    let question = terminal.contains('?')
        || (terminal.is_empty() && QUESTION_WORDS.contains(&first))
        // «…, ли …» without a mark: the particle anywhere after the first word.
        || (terminal.is_empty() && toks.iter().skip(start + 1).any(|t| t == "ли"));
    Features {
        interviewer_phrase,
        question,
        first_person: toks.iter().any(|t| FIRST_PERSON.contains(&t.as_str())),
        second_person: toks.iter().any(|t| SECOND_PERSON.contains(&t.as_str())),
        chars: sentence.chars().count(),
    }
}

/// Roles of consecutive sentences of one transcript: `sentences[i]` is (segment index, text),
/// `given[i]` the role stored on its segment, if any. See the module documentation.
pub(crate) fn label(sentences: &[(usize, &str)], given: &[Option<Role>]) -> Vec<Role> {
    let feats: Vec<Features> = sentences.iter().map(|(_, s)| features(s)).collect();
    let asks = |f: &Features| f.interviewer_phrase || (f.question && !rhetorical(f));
    let mut roles: Vec<Role> = feats
        .iter()
        .zip(given)
        .map(|(f, g)| match g {
            Some(role) => *role,
            None if asks(f) => Role::Employee,
            None => Role::Client,
        })
        .collect();
    for i in 0..sentences.len().saturating_sub(1) {
        let (f, next) = (&feats[i], &feats[i + 1]);
        if given[i].is_none()
            && given[i + 1].is_none()
            && roles[i] == Role::Client
            && sentences[i].0 == sentences[i + 1].0
            && f.chars <= LEAD_IN_MAX_CHARS
            && !f.first_person
            && next.question
            && !rhetorical(next)
        {
            roles[i] = Role::Employee;
        }
    }
    roles
}

fn rhetorical(f: &Features) -> bool {
    f.first_person && !f.second_person
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles_of(lines: &[(usize, &str)]) -> Vec<&'static str> {
        let given = vec![None; lines.len()];
        label(lines, &given).into_iter().map(Role::as_str).collect()
    }

    #[test]
    fn questions_and_prompts_are_the_employees_and_answers_the_clients() {
        let lines = [
            (0, "Здравствуйте, меня зовут Анна, я провожу исследование."),
            (1, "Расскажите, пожалуйста, о вашей последней поездке."),
            (2, "Мы ездили в Казань на три дня."),
            (3, "А почему вы выбрали именно этот отель?"),
            (4, "Он недалеко от центра, и там тихо."),
            (5, "Как вы обычно бронируете"),
            (6, "Через сайт, сравниваю цены."),
            (7, "Был ли у вас момент разочарования"),
        ];
        assert_eq!(
            roles_of(&lines),
            [
                "Сотрудник",
                "Сотрудник",
                "Клиент",
                "Сотрудник",
                "Клиент",
                "Сотрудник",
                "Клиент",
                "Сотрудник"
            ]
        );
    }

    #[test]
    fn a_rhetorical_first_person_question_is_the_clients() {
        let lines = [
            (0, "Почему я выбрала именно этот отель?"),
            (0, "Мне важно, чтобы было тихо."),
            (1, "Что для вас значит тихо?"),
        ];
        assert_eq!(roles_of(&lines), ["Клиент", "Клиент", "Сотрудник"]);
    }

    #[test]
    fn a_short_lead_in_before_a_question_in_the_same_segment_is_the_employees() {
        let lines = [
            (0, "Понятно."),
            (0, "А что было потом?"),
            (1, "Интересно."),
            (2, "Когда я выбираю санаторий, главное для меня чистота."),
            (3, "Я тоже так думаю."),
            (3, "А вы там были?"),
        ];
        // «Интересно.» is followed by a question in another segment: not a lead-in; a statement
        // starting with «Когда» is not a question; «Я тоже…» has a first-person word.
        assert_eq!(
            roles_of(&lines),
            [
                "Сотрудник",
                "Сотрудник",
                "Клиент",
                "Клиент",
                "Клиент",
                "Сотрудник"
            ]
        );
    }

    #[test]
    fn stored_roles_win_over_the_heuristic() {
        let lines = [(0, "Почему вы так решили?"), (1, "Потому что дёшево.")];
        let given = [Some(Role::Client), None];
        assert_eq!(label(&lines, &given), [Role::Client, Role::Client]);
        assert_eq!(Role::parse(" клиент "), Some(Role::Client));
        assert_eq!(Role::parse("СОТРУДНИК"), Some(Role::Employee));
        assert_eq!(Role::parse("SPEAKER_1"), None);
    }
}
