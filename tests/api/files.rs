use reqwest::Method;

use crate::helpers::{Expect, HttpApi, TestApp};

/// Save, load, list, replace and delete a code file.
#[tokio::test]
async fn save_load_list_delete() {
    let app = TestApp::spawn().await;
    let me = app.session("student1").await;
    let put = |name: &str, body: &'static str| {
        me.request(Method::PUT, &format!("/api/v1/files/{name}"))
            .body(body)
            .send()
    };
    let res = put("main.py", "print('hello')\n").await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        put("main.py", "print('again')\n").await.unwrap().status(),
        200
    );
    let text = me.get("/api/v1/files/main.py").await.expect_text(200).await;
    assert_eq!(text, "print('again')\n");
    let list = me.get_json("/api/v1/files").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "main.py");
    assert_eq!(list[0]["size"], 15);
    let res = me.request(Method::DELETE, "/api/v1/files/main.py").send();
    assert_eq!(res.await.unwrap().status(), 204);
    let res = me.get("/api/v1/files/main.py").await;
    res.expect_error(404, "not_found").await;
}

/// Another student's files and paths outside the student's directory are
/// unreachable; oversized files are refused.
#[tokio::test]
async fn isolation_traversal_and_limits() {
    let app = TestApp::spawn_with(&[("FILE_MAX_BYTES", "1024")]).await;
    let alice = app.token("student1").await;
    let bob = app.token("student2").await;
    let put = |name: &str, body: Vec<u8>| {
        app.request(Method::PUT, &format!("/api/v1/files/{name}"), Some(&alice))
            .body(body)
            .send()
    };
    let res = put("secret.txt", b"alice's".to_vec()).await.unwrap();
    assert_eq!(res.status(), 201);
    let res = app.get("/api/v1/files/secret.txt", Some(&bob)).await;
    res.expect_error(404, "not_found").await;
    for bad in ["..", ".secret", "..%2F1%2Fsecret.txt", "a%2Fb", "%2e%2e"] {
        let res = app.get(&format!("/api/v1/files/{bad}"), Some(&bob)).await;
        let status = res.status().as_u16();
        assert!(status == 400 || status == 404, "{bad}: {status}");
        assert!(res.text().await.unwrap().contains("\"error\""));
    }
    let res = put("big.txt", vec![b'x'; 2048]).await.unwrap();
    res.expect_error(413, "payload_too_large").await;
    let res = app.get("/api/v1/files", None).await;
    res.expect_error(401, "unauthorized").await;
}
