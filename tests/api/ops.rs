use crate::helpers::{HttpApi, TestApp};

/// Liveness, readiness, metrics and the runtime view.
#[tokio::test]
async fn probes_metrics_runtime() {
    let app = TestApp::spawn().await;
    let res = app.get("/healthz", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-worker-pid"));
    let ready = app.get_json("/readyz", None).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["postgres"], "ok");
    assert_eq!(ready["redis"], "ok");

    app.get("/api/v1/quizzes", None).await;
    let metrics = app.get_text("/metrics", None).await;
    assert!(metrics.contains("quizbench_http_requests_total{worker=\"0\",route=\"/api/v1/quizzes\",status=\"200\"} 1"), "{metrics}");
    assert!(metrics.contains("quizbench_db_pool_size{worker=\"0\"}"));
    assert!(metrics.contains("quizbench_http_request_duration_seconds_bucket"));

    let rt = app.get_json("/runtime", None).await;
    assert_eq!(rt["pid"], std::process::id());
    assert_eq!(rt["worker"], 0);
    assert!(rt["requests_served"].as_u64().unwrap() >= 4);
    assert!(rt["thread"].is_string());
}

/// Readiness fails while draining and draining answers with Connection: close.
#[tokio::test]
async fn draining_is_not_ready() {
    let app = TestApp::spawn().await;
    // Hold a keep-alive connection open so the drain waits for it.
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.worker.lifecycle.drain();
    let res = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["connection"], "close");
}

/// The OpenAPI document is served and describes the API routes.
#[tokio::test]
async fn openapi_document() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/openapi.json", None).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/quizzes/{id}/attempts",
        "/api/v1/students/select-options",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}
