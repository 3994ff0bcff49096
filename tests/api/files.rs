use serde_json::Value;

use crate::helpers::{assert_error, HttpApi, TestApp};

/// Save, load, list, replace and delete a code file.
#[tokio::test]
async fn save_load_list_delete() {
    let app = TestApp::spawn().await;
    let token = app.token("student1").await;
    let put = |name: &str, body: &'static str| {
        app.http
            .put(app.url(&format!("/api/v1/files/{name}")))
            .bearer_auth(&token)
            .body(body)
            .send()
    };
    let res = put("main.py", "print('hello')\n").await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        put("main.py", "print('again')\n").await.unwrap().status(),
        200
    );
    let res = app.get("/api/v1/files/main.py", Some(&token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "print('again')\n");
    let list: Value = app
        .get("/api/v1/files", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "main.py");
    assert_eq!(list[0]["size"], 15);
    let res = app
        .http
        .delete(app.url("/api/v1/files/main.py"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_error(
        app.get("/api/v1/files/main.py", Some(&token)).await,
        404,
        "not_found",
    )
    .await;
}

/// Another student's files and paths outside the student's directory are
/// unreachable; oversized files are refused.
#[tokio::test]
async fn isolation_traversal_and_limits() {
    let app = TestApp::spawn_with(&[("FILE_MAX_BYTES", "1024")]).await;
    let alice = app.token("student1").await;
    let bob = app.token("student2").await;
    let res = app
        .http
        .put(app.url("/api/v1/files/secret.txt"))
        .bearer_auth(&alice)
        .body("alice's")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_error(
        app.get("/api/v1/files/secret.txt", Some(&bob)).await,
        404,
        "not_found",
    )
    .await;
    for bad in ["..", ".secret", "..%2F1%2Fsecret.txt", "a%2Fb", "%2e%2e"] {
        let res = app.get(&format!("/api/v1/files/{bad}"), Some(&bob)).await;
        let status = res.status().as_u16();
        assert!(status == 400 || status == 404, "{bad}: {status}");
        assert!(res.text().await.unwrap().contains("\"error\""));
    }
    let res = app
        .http
        .put(app.url("/api/v1/files/big.txt"))
        .bearer_auth(&alice)
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_error(res, 413, "payload_too_large").await;
    assert_error(app.get("/api/v1/files", None).await, 401, "unauthorized").await;
}
