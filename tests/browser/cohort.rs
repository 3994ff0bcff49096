//! The teacher's cohort dashboard on a reference-sized cohort: its size
//! (document 003's `/admin/dashboard` was about 50 KB), its content, and a
//! student's 403.

use crate::site::{HttpApi, Site, COHORT};

/// 100 students × 50 quizzes make 40 to 80 KB of HTML, every student a
/// row and every progress row a filled cell; a student gets the 403 page.
#[tokio::test]
async fn a_teachers_cohort_dashboard_is_about_50_kb_and_students_are_refused() {
    let site = Site::start().await;
    let html = site.page_as("teacher1", "/cohort", 200).await;
    eprintln!(
        "cohort dashboard: {} bytes for {} students x {} quizzes",
        html.len(),
        COHORT.students_per_cohort,
        COHORT.quizzes
    );
    assert!(
        (40_000..=80_000).contains(&html.len()),
        "the dashboard is {} bytes",
        html.len()
    );
    let body = html.split("<tbody>").nth(1).unwrap();
    assert_eq!(
        body.matches("<th scope=\"row\">").count(),
        COHORT.students_per_cohort as usize
    );
    let progress_rows = site.count("select count(*) from progress").await;
    assert_eq!(body.matches(" ×").count() as i64, progress_rows);
    assert_eq!(
        html.matches("<th scope=\"col\"><abbr").count(),
        COHORT.quizzes as usize
    );

    let page = site.page_as("student1", "/cohort", 403).await;
    assert!(page.contains("You cannot open this page") && !page.contains("<table"));
}
