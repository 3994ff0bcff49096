//! Server-side grading of a quiz attempt.
//!
//! A single-choice question scores its points when the one chosen id is the
//! key; a multiple-choice question when the chosen set equals the key set;
//! a short-text question when the normalized text (trimmed, lower-case,
//! inner whitespace collapsed) is one of the accepted answers. Unanswered
//! questions score zero. Answers to questions of another quiz, duplicate
//! answers and answers of the wrong shape are rejected, not scored.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Single,
    Multiple,
    Text,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "single" => Some(Kind::Single),
            "multiple" => Some(Kind::Multiple),
            "text" => Some(Kind::Text),
            _ => None,
        }
    }
}

/// What grading needs to know about one question.
#[derive(Debug, Clone)]
pub struct QuestionKey {
    pub id: i64,
    pub kind: Kind,
    pub points: i32,
    /// Ids of the question's choices (empty for text questions).
    pub choice_ids: Vec<i64>,
    /// Correct choice ids (choice questions).
    pub correct: Vec<i64>,
    /// Accepted answers, normalized (text questions).
    pub accepted: Vec<String>,
}

/// One submitted answer: `{question_id, choice_ids}` or `{question_id, text}`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub question_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_ids: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GradeError {
    #[error("answers must not be empty")]
    Empty,
    #[error("question {0} is not part of this quiz")]
    UnknownQuestion(i64),
    #[error("question {0} is answered more than once")]
    Duplicate(i64),
    #[error("question {0} needs {1}")]
    WrongShape(i64, &'static str),
    #[error("choice {1} is not a choice of question {0}")]
    UnknownChoice(i64, i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    pub score: i32,
    pub max_score: i32,
}

/// Normalizes a short-text answer for comparison.
pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Grades `answers` against the quiz's `questions`.
pub fn grade(questions: &[QuestionKey], answers: &[Answer]) -> Result<Score, GradeError> {
    grade_each(questions, answers, |_, _| {})
}

/// [`grade`], also telling `outcome(question_id, correct)` for each answer,
/// in the order of `answers` (a result page shows them; the API needs only
/// the score).
pub fn grade_each(
    questions: &[QuestionKey],
    answers: &[Answer],
    mut outcome: impl FnMut(i64, bool),
) -> Result<Score, GradeError> {
    if answers.is_empty() {
        return Err(GradeError::Empty);
    }
    let max_score = questions.iter().map(|q| q.points).sum();
    let mut seen: Vec<i64> = Vec::with_capacity(answers.len());
    let mut score = 0;
    for answer in answers {
        let q = questions
            .iter()
            .find(|q| q.id == answer.question_id)
            .ok_or(GradeError::UnknownQuestion(answer.question_id))?;
        if seen.contains(&q.id) {
            return Err(GradeError::Duplicate(q.id));
        }
        seen.push(q.id);
        let correct = match (q.kind, &answer.choice_ids, &answer.text) {
            (Kind::Single, Some(ids), None) => {
                if ids.len() != 1 {
                    return Err(GradeError::WrongShape(q.id, "exactly one choice id"));
                }
                check_choices(q, ids)?;
                ids[0] == q.correct[0]
            }
            (Kind::Multiple, Some(ids), None) => {
                check_choices(q, ids)?;
                let mut chosen = ids.clone();
                chosen.sort_unstable();
                if chosen.windows(2).any(|w| w[0] == w[1]) {
                    return Err(GradeError::WrongShape(q.id, "distinct choice ids"));
                }
                let mut key = q.correct.clone();
                key.sort_unstable();
                chosen == key
            }
            (Kind::Text, None, Some(text)) => q.accepted.contains(&normalize(text)),
            (Kind::Text, _, _) => return Err(GradeError::WrongShape(q.id, "a text answer")),
            _ => return Err(GradeError::WrongShape(q.id, "choice_ids")),
        };
        if correct {
            score += q.points;
        }
        outcome(q.id, correct);
    }
    Ok(Score { score, max_score })
}

fn check_choices(q: &QuestionKey, ids: &[i64]) -> Result<(), GradeError> {
    match ids.iter().find(|id| !q.choice_ids.contains(id)) {
        Some(bad) => Err(GradeError::UnknownChoice(q.id, *bad)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiz() -> Vec<QuestionKey> {
        vec![
            QuestionKey {
                id: 1,
                kind: Kind::Single,
                points: 1,
                choice_ids: vec![1, 2, 3, 4],
                correct: vec![3],
                accepted: vec![],
            },
            QuestionKey {
                id: 2,
                kind: Kind::Multiple,
                points: 2,
                choice_ids: vec![1, 2, 3, 4],
                correct: vec![1, 4],
                accepted: vec![],
            },
            QuestionKey {
                id: 3,
                kind: Kind::Text,
                points: 1,
                choice_ids: vec![],
                correct: vec![],
                accepted: vec!["select".into(), "select statement".into()],
            },
        ]
    }

    fn choice(q: i64, ids: &[i64]) -> Answer {
        Answer {
            question_id: q,
            choice_ids: Some(ids.to_vec()),
            text: None,
        }
    }

    fn text(q: i64, t: &str) -> Answer {
        Answer {
            question_id: q,
            choice_ids: None,
            text: Some(t.into()),
        }
    }

    #[test]
    fn all_correct_scores_max() {
        let s = grade(
            &quiz(),
            &[
                choice(1, &[3]),
                choice(2, &[4, 1]),
                text(3, "  SELECT   Statement "),
            ],
        )
        .unwrap();
        assert_eq!(
            s,
            Score {
                score: 4,
                max_score: 4
            }
        );
    }

    #[test]
    fn partial_and_unanswered() {
        let s = grade(&quiz(), &[choice(1, &[2]), choice(2, &[1, 4])]).unwrap();
        assert_eq!(
            s,
            Score {
                score: 2,
                max_score: 4
            }
        );
        let s = grade(&quiz(), &[choice(2, &[1])]).unwrap();
        assert_eq!(s.score, 0);
    }

    #[test]
    fn each_answer_has_its_outcome_in_order() {
        let mut seen = Vec::new();
        let s = grade_each(
            &quiz(),
            &[text(3, "select"), choice(1, &[2]), choice(2, &[1, 4])],
            |id, correct| seen.push((id, correct)),
        )
        .unwrap();
        assert_eq!(seen, [(3, true), (1, false), (2, true)]);
        assert_eq!(s.score, 3);
    }

    #[test]
    fn rejects_bad_answers() {
        let q = quiz();
        assert_eq!(grade(&q, &[]), Err(GradeError::Empty));
        assert_eq!(
            grade(&q, &[choice(99, &[1])]),
            Err(GradeError::UnknownQuestion(99))
        );
        assert_eq!(
            grade(&q, &[choice(1, &[3]), choice(1, &[3])]),
            Err(GradeError::Duplicate(1))
        );
        assert!(matches!(
            grade(&q, &[choice(1, &[1, 2])]),
            Err(GradeError::WrongShape(1, _))
        ));
        assert!(matches!(
            grade(&q, &[text(1, "x")]),
            Err(GradeError::WrongShape(1, _))
        ));
        assert!(matches!(
            grade(&q, &[choice(3, &[1])]),
            Err(GradeError::WrongShape(3, _))
        ));
        assert_eq!(
            grade(&q, &[choice(1, &[9])]),
            Err(GradeError::UnknownChoice(1, 9))
        );
        assert!(matches!(
            grade(&q, &[choice(2, &[1, 1])]),
            Err(GradeError::WrongShape(2, _))
        ));
    }

    #[test]
    fn normalize_collapses_space_and_case() {
        assert_eq!(normalize("  Hello\t WORLD \n"), "hello world");
    }
}
