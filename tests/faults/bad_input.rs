//! Bad input against the real binary: every case gets its documented 4xx
//! JSON error (or, for malformed HTTP, hyper's refusal and a close), never
//! a 500, and no row changes. Then a handler panic: a JSON 500, and the
//! same process keeps serving.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

/// users, attempts, sum of progress.attempt_count
async fn rows(url: &str) -> (i64, i64, i64) {
    (
        scalar(url, "select count(*) from users").await,
        scalar(url, "select count(*) from attempts").await,
        scalar(
            url,
            "select coalesce(sum(attempt_count), 0)::bigint from progress",
        )
        .await,
    )
}

#[tokio::test]
async fn bad_input_gets_its_4xx_and_changes_nothing() {
    let _serial = serial().await;
    let db = TestDb::new().await;
    let server = Server::start(&db.url, &redis_url(), &[]);
    let token = server.token("student1").await;
    let quiz1: Value = server
        .get("/api/v1/quizzes/1", None)
        .await
        .json()
        .await
        .unwrap();
    let quiz2: Value = server
        .get("/api/v1/quizzes/2", None)
        .await
        .json()
        .await
        .unwrap();
    let before = rows(&db.url).await;

    // (method, path, content type, body, authenticated, status, code)
    type Case = (
        &'static str,
        String,
        Option<&'static str>,
        Vec<u8>,
        bool,
        u16,
        &'static str,
    );
    let j = Some("application/json");
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let mut cases: Vec<Case> = vec![
        // Malformed JSON, wrong content type, wrong types, missing fields.
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            b"{\"username\":".to_vec(),
            false,
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/api/v1/auth/login".into(),
            j,
            b"{\"username\":\"student1\",\"password\":\"quizbench\"} x".to_vec(),
            false,
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/api/v1/auth/login".into(),
            j,
            Vec::new(),
            false,
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/api/v1/auth/login".into(),
            Some("text/plain"),
            b"{\"username\":\"student1\",\"password\":\"quizbench\"}".to_vec(),
            false,
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            None,
            b"{\"username\":\"someone\",\"password\":\"12345678\"}".to_vec(),
            false,
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            br#"{"username": 1, "password": []}"#.to_vec(),
            false,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            br#"{"username": "someone"}"#.to_vec(),
            false,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/auth/login".into(),
            j,
            b"null".to_vec(),
            false,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            br#"{"username":"someone","password":"12345678","cohort_id":9223372036854775808}"#
                .to_vec(),
            false,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/quizzes/1/attempts".into(),
            j,
            br#"{"answers": "all"}"#.to_vec(),
            true,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/quizzes/1/attempts".into(),
            j,
            br#"{"answer": []}"#.to_vec(),
            true,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/quizzes/1/attempts".into(),
            j,
            br#"{"answers": [{"question_id": "one", "choice_ids": [1]}]}"#.to_vec(),
            true,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/quizzes/1/attempts".into(),
            j,
            br#"{"answers": [{"question_id": 1e400}]}"#.to_vec(),
            true,
            400,
            "malformed_json",
        ),
        // JSON nested thousands deep (within the body limit): a type error
        // where a value is expected, skipped without recursion where it is
        // an unknown field, a syntax error when unterminated.
        (
            "POST",
            "/api/v1/auth/login".into(),
            j,
            deep(5000),
            false,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/quizzes/1/attempts".into(),
            j,
            [&b"{\"answers\": "[..], &deep(7000), b"}"].concat(),
            true,
            422,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            [
                &b"{\"username\": \"x\", \"password\": \"12345678\", \"extra\": "[..],
                &deep(7000),
                b"}",
            ]
            .concat(),
            false,
            422,
            "invalid_username",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            [
                &b"{\"username\": \"someone\", \"extra\": "[..],
                "[".repeat(7000).as_bytes(),
            ]
            .concat(),
            false,
            400,
            "malformed_json",
        ),
        // NUL bytes, invalid UTF-8 and 10 KB strings in usernames.
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            br#"{"username":"nul\u0000name","password":"12345678"}"#.to_vec(),
            false,
            422,
            "invalid_username",
        ),
        (
            "POST",
            "/api/v1/auth/login".into(),
            j,
            br#"{"username":"student1\u0000","password":"quizbench"}"#.to_vec(),
            false,
            422,
            "invalid_username",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            b"{\"username\":\"bad\xff\xfeutf8\",\"password\":\"12345678\"}".to_vec(),
            false,
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/api/v1/auth/login".into(),
            j,
            b"{\"username\":\"bad\xc3\",\"password\":\"12345678\"}".to_vec(),
            false,
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            json!({"username": "u".repeat(10_000), "password": "12345678"})
                .to_string()
                .into_bytes(),
            false,
            422,
            "invalid_username",
        ),
        (
            "POST",
            "/api/v1/auth/login".into(),
            j,
            json!({"username": "u".repeat(10_000), "password": "12345678"})
                .to_string()
                .into_bytes(),
            false,
            422,
            "invalid_username",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            br#"{"username":"okname","password":"12345678","display_name":"\u0000"}"#.to_vec(),
            false,
            422,
            "invalid_display_name",
        ),
        // 1 MB passwords: over the 16 KiB body limit; 10 KB: over the
        // password limit.
        (
            "POST",
            "/api/v1/auth/login".into(),
            j,
            json!({"username": "student1", "password": "p".repeat(1 << 20)})
                .to_string()
                .into_bytes(),
            false,
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            json!({"username": "bigpass", "password": "p".repeat(1 << 20)})
                .to_string()
                .into_bytes(),
            false,
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/auth/login".into(),
            j,
            json!({"username": "student1", "password": "p".repeat(10_000)})
                .to_string()
                .into_bytes(),
            false,
            422,
            "invalid_password",
        ),
        (
            "POST",
            "/api/v1/auth/register".into(),
            j,
            json!({"username": "bigpass", "password": "p".repeat(10_000)})
                .to_string()
                .into_bytes(),
            false,
            422,
            "invalid_password",
        ),
        // Answers to another quiz's questions; NUL in a text answer.
        (
            "POST",
            "/api/v1/quizzes/1/attempts".into(),
            j,
            answers_for(&quiz2).to_string().into_bytes(),
            true,
            422,
            "invalid_answers",
        ),
        (
            "POST",
            "/api/v1/quizzes/1/attempts".into(),
            j,
            nul_text_answer(&quiz1).to_string().into_bytes(),
            true,
            422,
            "invalid_answers",
        ),
        (
            "POST",
            "/api/v1/quizzes/1/attempts".into(),
            j,
            br#"{"answers": []}"#.to_vec(),
            true,
            422,
            "empty_answers",
        ),
    ];
    // Non-numeric, zero, negative, 2^63 and longer ids.
    for id in [
        "abc",
        "0",
        "-1",
        "9223372036854775808",
        "99999999999999999999",
        "1.5",
        "%00",
        "%ff",
        "1%2f2",
    ] {
        cases.push((
            "GET",
            format!("/api/v1/quizzes/{id}"),
            None,
            Vec::new(),
            false,
            400,
            "invalid_id",
        ));
        cases.push((
            "GET",
            format!("/api/v1/quizzes/{id}/attempts"),
            None,
            Vec::new(),
            true,
            400,
            "invalid_id",
        ));
        cases.push((
            "POST",
            format!("/api/v1/quizzes/{id}/attempts"),
            j,
            answers_for(&quiz1).to_string().into_bytes(),
            true,
            400,
            "invalid_id",
        ));
    }
    cases.push((
        "GET",
        "/api/v1/quizzes/9223372036854775807".into(),
        None,
        Vec::new(),
        false,
        404,
        "not_found",
    ));
    cases.push((
        "POST",
        "/api/v1/quizzes/9223372036854775807/attempts".into(),
        j,
        answers_for(&quiz1).to_string().into_bytes(),
        true,
        404,
        "not_found",
    ));
    // Path traversal in file names.
    // (A bare ".." segment is removed by the client's URL parser; the raw
    // case below sends it.)
    for name in [
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        ".env",
        "a%2fb",
        "..%5c..%5cwin.ini",
    ] {
        cases.push((
            "GET",
            format!("/api/v1/files/{name}"),
            None,
            Vec::new(),
            true,
            400,
            "invalid_file_name",
        ));
    }

    for (method, path, ct, body, auth, status, code) in cases {
        let mut req = server
            .http
            .request(method.parse().unwrap(), server.url(&path))
            .body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if auth {
            req = req.bearer_auth(&token);
        }
        let res = req.send().await.unwrap();
        let got = res.status().as_u16();
        if got != status {
            panic!(
                "{method} {path}: {got} instead of {status}: {}",
                res.text().await.unwrap()
            );
        }
        assert_error(res, status, code).await;
    }

    let r = raw(
        server.addr,
        format!("GET /api/v1/files/.. HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status(), Some(400), "{}", r.text());
    assert!(r.text().contains("invalid_file_name"), "{}", r.text());

    // Garbage credentials are a 401, whatever their bytes.
    for (name, value) in [
        ("authorization", b"Bearer \xff\xfe\x80".to_vec()),
        (
            "authorization",
            format!("Bearer {}", "A".repeat(10_000)).into_bytes(),
        ),
        ("authorization", b"Bearer ".to_vec()),
        ("authorization", b"Basic c3R1ZGVudDE6cXVpemJlbmNo".to_vec()),
        ("cookie", b"qb_session=\xff\xfe".to_vec()),
        ("cookie", b"qb_session=../../etc/passwd".to_vec()),
    ] {
        let res = server
            .http
            .get(server.url("/api/v1/progress"))
            .header(
                name,
                reqwest::header::HeaderValue::from_bytes(&value).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_error(res, 401, "unauthorized").await;
    }

    // A bad Idempotency-Key is refused before anything is stored.
    let res = server
        .http
        .post(server.url("/api/v1/quizzes/1/attempts"))
        .bearer_auth(&token)
        .header("idempotency-key", "k".repeat(300))
        .json(&answers_for(&quiz1))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_idempotency_key").await;

    // A declared body over the limit is refused at once, before the body
    // arrives (the client below never sends it).
    let head = format!(
        "POST /api/v1/quizzes/1/attempts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{{\"answers\":"
    );
    let r = raw(server.addr, head.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(r.status(), Some(413), "declared too large: {}", r.text());
    assert!(r.text().contains("payload_too_large"), "{}", r.text());
    assert!(r.closed, "the connection is closed after a refused body");
    assert!(
        r.text().to_ascii_lowercase().contains("connection: close"),
        "a refusal before the body is read must say it closes: {}",
        r.text()
    );
    // Over the limit in chunks (no length declared).
    let mut chunked = b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("3e8\r\n{}\r\n", "y".repeat(1000)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw(server.addr, &chunked, Duration::from_secs(5)).await;
    assert_eq!(r.status(), Some(413), "chunked too large: {}", r.text());
    assert!(r.text().contains("payload_too_large"));

    // Body limits are per route: a 20 KiB code file (over the JSON limit)
    // is stored, one over FILE_MAX_BYTES is refused, declared or not.
    let put_file = |name: &str, body: Vec<u8>| {
        server
            .http
            .put(server.url(&format!("/api/v1/files/{name}")))
            .bearer_auth(&token)
            .body(body)
            .send()
    };
    assert_eq!(
        put_file("ok.py", vec![b'#'; 20 * 1024])
            .await
            .unwrap()
            .status(),
        201
    );
    let res = put_file("big.py", vec![b'#'; 262_144 + 1]).await.unwrap();
    assert_error(res, 413, "payload_too_large").await;
    let mut chunked = format!(
        "PUT /api/v1/files/big.py HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("2000\r\n{}\r\n", "#".repeat(8192)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw(server.addr, &chunked, Duration::from_secs(5)).await;
    assert_eq!(
        r.status(),
        Some(413),
        "chunked file too large: {}",
        r.text()
    );
    let listed: Value = server
        .get("/api/v1/files", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Malformed HTTP is refused by hyper before the router, with a close:
    // too many headers, too large a header block, too long a URI.
    let many: String = (0..200).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    let r = raw(
        server.addr,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status(), Some(431), "too many headers: {}", r.text());
    assert!(r.closed);
    let r = raw(
        server.addr,
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(256 * 1024)
        )
        .as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status(), Some(431), "too large headers: {}", r.text());
    assert!(r.closed);
    let r = raw(
        server.addr,
        format!(
            "GET /api/v1/quizzes?{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "q".repeat(70_000)
        )
        .as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r.status(), Some(414), "URI too long: {}", r.text());
    assert!(r.closed);

    assert_eq!(rows(&db.url).await, before, "bad input changed stored rows");

    // Content-Length and Transfer-Encoding together: read by its chunked
    // framing, run exactly once, connection closed (what follows the
    // declared length is never parsed as a second request).
    let body = answers_for(&quiz1).to_string();
    let req = format!(
        "POST /api/v1/quizzes/1/attempts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let r = raw(server.addr, req.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(r.status(), Some(201), "CL+TE: {}", r.text());
    assert_eq!(r.responses(), 1, "exactly one response: {}", r.text());
    assert!(r.closed, "closed after a CL+TE request");
    let after = rows(&db.url).await;
    assert_eq!(after.1, before.1 + 1, "the CL+TE request ran exactly once");
    assert_eq!(after.2, before.2 + 1);

    // Nothing above was a server error.
    let m = server.metrics().await;
    assert_eq!(
        m.status(500),
        0,
        "500s: log {}",
        server.error_lines().join("\n")
    );
    assert!(
        server.error_lines().is_empty(),
        "{}",
        server.error_lines().join("\n")
    );
}

/// A body with every question answered, the text one with a NUL byte.
fn nul_text_answer(quiz: &Value) -> Value {
    let mut body = answers_for(quiz);
    for a in body["answers"].as_array_mut().unwrap() {
        if a.get("text").is_some() {
            a["text"] = json!("sel\u{0}ect");
        }
    }
    assert!(
        body.to_string().contains("\\u0000"),
        "quiz 1 has a text question"
    );
    body
}

/// A handler panic is a JSON 500 without detail; the process serves on.
#[tokio::test]
async fn handler_panic_is_a_json_500_and_the_process_serves_on() {
    let _serial = serial().await;
    let db = TestDb::new().await;
    let mut server = Server::start(&db.url, &redis_url(), &[]);
    for _ in 0..3 {
        let res = server.get("/__test/panic", None).await;
        let body = assert_error(res, 500, "internal").await;
        assert_eq!(body["error"]["message"], "internal error");
    }
    assert!(server.alive(), "the process died");
    let res = server.get("/healthz", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-worker-pid"].to_str().unwrap(),
        server.pid().to_string()
    );
    assert_eq!(server.get("/api/v1/quizzes", None).await.status(), 200);
    assert_eq!(server.metrics().await.status(500), 3);

    // Without QUIZBENCH_TEST_HOOKS=1 the hook does not exist.
    let plain = Server::start(&db.url, &redis_url(), &[("QUIZBENCH_TEST_HOOKS", "0")]);
    assert_error(plain.get("/__test/panic", None).await, 404, "not_found").await;
}
