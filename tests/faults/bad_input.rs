//! Bad input against the real binary: every case gets its documented 4xx
//! JSON error (or, for malformed HTTP, hyper's refusal and a close), never
//! a 500, and no row changes. Then a handler panic: a JSON 500, and the
//! same process keeps serving.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

/// One bad request and the error it must get.
struct Case {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// Sent with the student's token.
    auth: bool,
    status: u16,
    code: &'static str,
}

const REGISTER: &str = "/api/v1/auth/register";
const LOGIN: &str = "/api/v1/auth/login";
const SUBMIT: &str = "/api/v1/quizzes/1/attempts";

/// The student's own resources (attempts, files) are asked for with its
/// token; everything else without one.
fn needs_auth(path: &str) -> bool {
    path.contains("/attempts") || path.contains("/files/")
}

/// A JSON POST of `body` to `path` that must get `status` and `code`.
fn post(
    path: impl Into<String>,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Case {
    let path = path.into();
    Case {
        method: "POST",
        auth: needs_auth(&path),
        path,
        content_type: Some("application/json"),
        body: body.into(),
        status,
        code,
    }
}

/// A GET of `path` that must get `status` and `code`.
fn get(path: String, status: u16, code: &'static str) -> Case {
    Case {
        method: "GET",
        content_type: None,
        body: Vec::new(),
        ..post(path, Vec::new(), status, code)
    }
}

impl Case {
    /// The same request with another Content-Type (or none).
    fn typed(self, content_type: Option<&'static str>) -> Case {
        Case {
            content_type,
            ..self
        }
    }
}

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
    let (_serial, db, server) = serial_server(&[]).await;
    let token = server.token("student1").await;
    let (quiz1, quiz2) = (server.quiz(1).await, server.quiz(2).await);
    let before = rows(&db.url).await;

    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let creds =
        |user: &str, password: String| json!({"username": user, "password": password}).to_string();
    let mut cases: Vec<Case> = vec![
        // Malformed JSON, wrong content type, wrong types, missing fields.
        post(REGISTER, b"{\"username\":", 400, "malformed_json"),
        post(
            LOGIN,
            b"{\"username\":\"student1\",\"password\":\"quizbench\"} x",
            400,
            "malformed_json",
        ),
        post(LOGIN, Vec::new(), 400, "malformed_json"),
        post(
            LOGIN,
            b"{\"username\":\"student1\",\"password\":\"quizbench\"}",
            415,
            "unsupported_media_type",
        )
        .typed(Some("text/plain")),
        post(
            REGISTER,
            b"{\"username\":\"someone\",\"password\":\"12345678\"}",
            415,
            "unsupported_media_type",
        )
        .typed(None),
        post(
            REGISTER,
            br#"{"username": 1, "password": []}"#,
            422,
            "invalid_body",
        ),
        post(REGISTER, br#"{"username": "someone"}"#, 422, "invalid_body"),
        post(LOGIN, b"null", 422, "invalid_body"),
        post(
            REGISTER,
            br#"{"username":"someone","password":"12345678","cohort_id":9223372036854775808}"#,
            422,
            "invalid_body",
        ),
        post(SUBMIT, br#"{"answers": "all"}"#, 422, "invalid_body"),
        post(SUBMIT, br#"{"answer": []}"#, 422, "invalid_body"),
        post(
            SUBMIT,
            br#"{"answers": [{"question_id": "one", "choice_ids": [1]}]}"#,
            422,
            "invalid_body",
        ),
        post(
            SUBMIT,
            br#"{"answers": [{"question_id": 1e400}]}"#,
            400,
            "malformed_json",
        ),
        // JSON nested thousands deep (within the body limit): a type error
        // where a value is expected, skipped without recursion where it is
        // an unknown field, a syntax error when unterminated.
        post(LOGIN, deep(5000), 422, "invalid_body"),
        post(
            SUBMIT,
            [&b"{\"answers\": "[..], &deep(7000), b"}"].concat(),
            422,
            "invalid_body",
        ),
        post(
            REGISTER,
            [
                &b"{\"username\": \"x\", \"password\": \"12345678\", \"extra\": "[..],
                &deep(7000),
                b"}",
            ]
            .concat(),
            422,
            "invalid_username",
        ),
        post(
            REGISTER,
            [
                &b"{\"username\": \"someone\", \"extra\": "[..],
                "[".repeat(7000).as_bytes(),
            ]
            .concat(),
            400,
            "malformed_json",
        ),
        // NUL bytes, invalid UTF-8 and 10 KB strings in usernames.
        post(
            REGISTER,
            br#"{"username":"nul\u0000name","password":"12345678"}"#,
            422,
            "invalid_username",
        ),
        post(
            LOGIN,
            br#"{"username":"student1\u0000","password":"quizbench"}"#,
            422,
            "invalid_username",
        ),
        post(
            REGISTER,
            b"{\"username\":\"bad\xff\xfeutf8\",\"password\":\"12345678\"}",
            400,
            "malformed_json",
        ),
        post(
            LOGIN,
            b"{\"username\":\"bad\xc3\",\"password\":\"12345678\"}",
            400,
            "malformed_json",
        ),
        post(
            REGISTER,
            br#"{"username":"okname","password":"12345678","display_name":"\u0000"}"#,
            422,
            "invalid_display_name",
        ),
        // Answers to another quiz's questions; NUL in a text answer.
        post(
            SUBMIT,
            answers_for(&quiz2).to_string(),
            422,
            "invalid_answers",
        ),
        post(
            SUBMIT,
            nul_text_answer(&quiz1).to_string(),
            422,
            "invalid_answers",
        ),
        post(SUBMIT, br#"{"answers": []}"#, 422, "empty_answers"),
    ];
    // 10 KB usernames; 1 MB passwords: over the 16 KiB body limit; 10 KB:
    // over the password limit.
    for (path, user) in [(LOGIN, "student1"), (REGISTER, "bigpass")] {
        let long_name = creds(&"u".repeat(10_000), "12345678".into());
        cases.push(post(path, long_name, 422, "invalid_username"));
        let huge = creds(user, "p".repeat(1 << 20));
        cases.push(post(path, huge, 413, "payload_too_large"));
        let long = creds(user, "p".repeat(10_000));
        cases.push(post(path, long, 422, "invalid_password"));
    }
    // Non-numeric, zero, negative, 2^63 and longer ids.
    let answers = answers_for(&quiz1).to_string();
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
        cases.push(get(format!("/api/v1/quizzes/{id}"), 400, "invalid_id"));
        cases.push(get(
            format!("/api/v1/quizzes/{id}/attempts"),
            400,
            "invalid_id",
        ));
        let path = format!("/api/v1/quizzes/{id}/attempts");
        cases.push(post(path, answers.clone(), 400, "invalid_id"));
    }
    let max = "/api/v1/quizzes/9223372036854775807";
    cases.push(get(max.into(), 404, "not_found"));
    cases.push(post(format!("{max}/attempts"), answers, 404, "not_found"));
    // Path traversal in file names.
    // (A bare ".." segment is removed by the client's URL parser; the raw
    // case below sends it.)
    for name in [
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        ".env",
        "a%2fb",
        "..%5c..%5cwin.ini",
    ] {
        cases.push(get(
            format!("/api/v1/files/{name}"),
            400,
            "invalid_file_name",
        ));
    }

    for Case {
        method,
        path,
        content_type,
        body,
        auth,
        status,
        code,
    } in cases
    {
        let mut req = server
            .http
            .request(method.parse().unwrap(), server.url(&path))
            .body(body);
        if let Some(ct) = content_type {
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
        res.expect_error(status, code).await;
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
    let listed = server.get_json("/api/v1/files", Some(&token)).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Malformed HTTP is refused by hyper before the router, with a close:
    // too many headers, too large a header block, too long a URI.
    let many: String = (0..200).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    let big = "a".repeat(256 * 1024);
    let uri = "q".repeat(70_000);
    for (head, status, what) in [
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n"),
            431,
            "too many headers",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
            431,
            "too large headers",
        ),
        (
            format!("GET /api/v1/quizzes?{uri} HTTP/1.1\r\nHost: x\r\n\r\n"),
            414,
            "URI too long",
        ),
    ] {
        let r = raw(server.addr, head.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(r.status(), Some(status), "{what}: {}", r.text());
        assert!(r.closed, "{what}: not closed");
    }

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
    let (_serial, db, mut server) = serial_server(&[]).await;
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
