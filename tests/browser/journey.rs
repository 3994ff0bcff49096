//! The browser journey (`journey.cjs`) in headless Chromium against a live
//! server, then what only the database can tell: each form made exactly
//! one attempt, however often it was sent.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::site::{tools, Site};

/// Sign in → a quiz → answers → a double-clicked submit → the score → the
/// dashboard → sign out → signed-out pages ask to sign in, with and without
/// JavaScript; the same form resubmitted four times over HTTP; a teacher's
/// cohort dashboard and a student's 403; every page free of serious axe
/// violations and Nu Html Checker errors (the 500 page included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_takes_a_quiz_in_chromium_with_and_without_javascript() {
    let npm = "playwright-core, axe-core and vnu-jar (npm)";
    let Some(modules) = tools::required(tools::node_modules(), npm, "QB_SKIP_BROWSER") else {
        return;
    };
    let Some(chromium) = tools::required(tools::chromium(), "Chromium", "QB_SKIP_BROWSER") else {
        return;
    };
    let site = Site::start().await;
    let out = tools::artifacts("journey");
    let rendered = out.join("rendered");
    std::fs::create_dir_all(&rendered).unwrap();
    std::fs::write(
        rendered.join("server-error.html"),
        server_error_page().await,
    )
    .unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let output = Command::new("node")
        .arg(root.join("tests/browser/journey.cjs"))
        .env("NODE_PATH", &modules)
        .env("QB_BASE_URL", &site.base)
        .env("QB_ARTIFACTS", &out)
        .env("QB_STATIC_DIR", root.join("static"))
        .env("QB_EXTRA_HTML", &rendered)
        .env("QB_CHROMIUM", &chromium)
        .env("QB_USERS", "student1,student2,student3,teacher1")
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "{stdout}{}browser journey: {:.1} s; screenshots, HTML and summary.json in {}",
        String::from_utf8_lossy(&output.stderr),
        started.elapsed().as_secs_f64(),
        out.display()
    );
    assert!(
        output.status.success(),
        "the browser journey failed (see above); server log:\n{}",
        site.log_text()
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();

    let serious: Vec<&Value> = summary["axe"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(serious.is_empty(), "axe: {serious:#?}");
    assert_eq!(summary["vnu"]["errors"], serde_json::json!([]), "{stdout}");
    assert!(summary["pages"].as_array().unwrap().len() >= 20);

    for run in ["js", "nojs"] {
        let j = &summary["journeys"][run];
        let user = j["username"].as_str().unwrap();
        let made = keyed_attempts(&site, user, j["quizId"].as_i64().unwrap()).await;
        assert_eq!(made, 1, "{run}: the double-clicked form made one attempt");
        let id = site
            .count(&format!(
                "select a.id from attempts a join users u on u.id = a.user_id
                  where u.username = '{user}' and a.idempotency_key is not null"
            ))
            .await;
        assert_eq!(serde_json::json!(id), j["attemptId"], "{run}");
    }
    assert_eq!(summary["resubmit"]["posts"], 4);
    assert_eq!(
        keyed_attempts(&site, "student3", 1).await,
        1,
        "four sends, one attempt"
    );
}

/// Attempts `username` made at `quiz_id` through a form (seeded attempts
/// carry no idempotency key).
async fn keyed_attempts(site: &Site, username: &str, quiz_id: i64) -> i64 {
    site.count(&format!(
        "select count(*) from attempts a join users u on u.id = a.user_id
          where u.username = '{username}' and a.quiz_id = {quiz_id}
            and a.idempotency_key is not null"
    ))
    .await
}

/// The site's 500 page, which no healthy server shows, for the checker.
async fn server_error_page() -> Vec<u8> {
    let res = quizbench::routes::pages::error_page(quizbench::error::ApiError::Internal(
        anyhow::anyhow!("rendered for the HTML checker"),
    ));
    assert_eq!(res.status(), 500);
    axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}
