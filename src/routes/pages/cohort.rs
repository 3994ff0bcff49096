//! A teacher's cohort dashboard (`/cohort`): every student of the cohort ×
//! every quiz, each cell the student's best score and attempt count (the
//! counterpart of document 003's `/admin/dashboard`: about 50 KB of HTML for
//! a 100-student cohort and 50 quizzes). Students get a 403 page.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::errors::HtmlError;
use super::layout::{document, html_response, Account};
use super::request::SignedIn;
use crate::db;
use crate::db::cohorts::GridCell;
use crate::db::quizzes::QuizSummary;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn dashboard(
    State(state): State<AppState>,
    visitor: SignedIn,
) -> Result<Response, HtmlError> {
    if !visitor.is_teacher() {
        return Err(ApiError::Forbidden("only a teacher can open a cohort's dashboard").into());
    }
    let session = &visitor.session;
    let content = match (session.organization_id, session.cohort_id) {
        (Some(organization), Some(cohort)) => {
            let quizzes = db::quizzes::list(&state.db).await?;
            let name = db::cohorts::name(&state.db, cohort).await?;
            let cells = db::cohorts::progress_grid(&state.db, organization, cohort).await?;
            let name = name.unwrap_or_else(|| format!("Cohort {cohort}"));
            grid(&name, &quizzes, &rows(&quizzes, cells))
        }
        _ => html! {
            h1 { "Cohort" }
            div.card { p { "You teach no cohort yet." } }
        },
    };
    let page = document("Cohort", Account::SignedIn(&visitor), "/cohort", content);
    Ok(html_response(StatusCode::OK, page))
}

/// A student's figures on one quiz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    best: i32,
    max: i32,
    attempts: i32,
}

/// A student's row: a cell per quiz, in the quiz list's order.
#[derive(Debug)]
struct Row {
    name: String,
    cells: Vec<Option<Cell>>,
}

/// The grid's rows from the query's (student, quiz) rows, ordered by
/// student.
fn rows(quizzes: &[QuizSummary], cells: Vec<GridCell>) -> Vec<Row> {
    let column: HashMap<i64, usize> = quizzes.iter().enumerate().map(|(i, q)| (q.id, i)).collect();
    let mut rows: Vec<Row> = Vec::new();
    let mut current = None;
    for c in cells {
        if current != Some(c.user_id) {
            current = Some(c.user_id);
            rows.push(Row {
                name: c.display_name,
                cells: vec![None; quizzes.len()],
            });
        }
        let (Some(quiz), Some(best), Some(max), Some(attempts)) =
            (c.quiz_id, c.best_score, c.max_score, c.attempt_count)
        else {
            continue;
        };
        if let (Some(&i), Some(row)) = (column.get(&quiz), rows.last_mut()) {
            row.cells[i] = Some(Cell {
                best,
                max,
                attempts,
            });
        }
    }
    rows
}

fn grid(name: &str, quizzes: &[QuizSummary], rows: &[Row]) -> Markup {
    html! {
        h1 { "Cohort: " (name) }
        p {
            (rows.len()) " students × " (quizzes.len()) " quizzes. Each cell shows the student's "
            "best score out of the quiz's maximum, then × the number of attempts "
            "(highlighted: half the points or more); an empty cell: not attempted. "
            "Hover a quiz number for its title."
        }
        div.grid role="region" aria-labelledby="cohort-caption" tabindex="0" {
            table.cohort {
                caption #cohort-caption { "Best score and attempts per student and quiz" }
                thead {
                    tr {
                        th scope="col" { "Student" }
                        @for q in quizzes {
                            th scope="col" { abbr title=(q.title) { "Q" (q.id) } }
                        }
                        th scope="col" { "Taken" }
                    }
                }
                tbody {
                    @for row in rows {
                        tr {
                            th scope="row" { (row.name) }
                            @for cell in &row.cells {
                                @if let Some(c) = cell {
                                    // Half the points or more stand out; the
                                    // rest keep the markup short.
                                    td class=[(c.best * 2 >= c.max).then_some("g")] {
                                        (c.best) "/" (c.max) " ×" (c.attempts)
                                    }
                                } @else {
                                    td {}
                                }
                            }
                            td { (row.cells.iter().flatten().count()) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiz(id: i64) -> QuizSummary {
        QuizSummary {
            id,
            title: format!("Quiz {id}"),
            description: String::new(),
            question_count: 10,
        }
    }

    fn cell(user_id: i64, quiz_id: Option<i64>) -> GridCell {
        GridCell {
            user_id,
            display_name: format!("Student {user_id}"),
            quiz_id,
            best_score: quiz_id.map(|_| 7),
            max_score: quiz_id.map(|_| 10),
            attempt_count: quiz_id.map(|_| 2),
        }
    }

    /// One row per student (with or without attempts), each attempt in
    /// its quiz's column, a quiz no longer listed left out.
    #[test]
    fn rows_put_each_figure_in_its_column() {
        let quizzes = [quiz(3), quiz(5)];
        let rows = rows(
            &quizzes,
            vec![
                cell(1, Some(5)),
                cell(1, Some(9)),
                cell(2, None),
                cell(4, Some(3)),
            ],
        );
        let seven = Some(Cell {
            best: 7,
            max: 10,
            attempts: 2,
        });
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].cells, [None, seven]);
        assert_eq!(rows[1].cells, [None, None]);
        assert_eq!(rows[2].name, "Student 4");
        assert_eq!(rows[2].cells, [seven, None]);
    }
}
