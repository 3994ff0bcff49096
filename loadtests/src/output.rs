//! What quizload hands to people: results as JSON files ([`write_json`]),
//! and the masking of secrets in anything it prints or writes
//! ([`mask_secrets`]): session cookies, bearer tokens and the token and
//! password fields of a JSON body. It decides nothing about what is
//! written.

use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context;
use regex::{Captures, Regex};
use serde::Serialize;

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// Writes any serialisable result as pretty JSON, secrets masked.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, mask_secrets(&text).into_owned() + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The patterns [`mask_secrets`] replaces, each keeping its group 1 and
/// masking what follows it.
fn patterns() -> &'static [Regex; 4] {
    static P: OnceLock<[Regex; 4]> = OnceLock::new();
    P.get_or_init(|| {
        [
            // A cookie header's value, every `name=value` pair of it (as
            // sent, in a command line, or a log line): the value goes.
            Regex::new(r#"(?i)(\b(?:set-)?cookie\s*[:=]\s*)([^\r\n'"\\]*)"#),
            // An `Authorization` header's credential, its scheme kept.
            Regex::new(
                r#"(?i)(\bauthorization\s*[:=]\s*(?:(?:bearer|basic|token|digest)\s+)?)[^\s'"\\]+"#,
            ),
            // A bearer token anywhere else (long enough not to be prose).
            Regex::new(r#"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}"#),
            // A JSON field that holds a secret: `"token": "..."`.
            Regex::new(
                r#"(?i)("(?:token|password|session|secret|access_token|refresh_token)"\s*:\s*")(?:[^"\\]|\\.)*"#,
            ),
        ]
        .map(|r| r.expect("static pattern"))
    })
}

/// `text` with every secret it holds masked: the value of each cookie in a
/// `Cookie:`/`Set-Cookie:` header (`qb_session=***`), a bearer or basic
/// credential (`Bearer ***`) and the value of a JSON `token`, `password`,
/// `session` or `secret` field. The one masking function: every command
/// line, log line, error and report that quizload prints or writes goes
/// through it.
pub fn mask_secrets(text: &str) -> Cow<'_, str> {
    let [cookie, rest @ ..] = patterns();
    let mut out = Cow::Borrowed(text);
    if let Cow::Owned(s) = cookie.replace_all(&out, |c: &Captures| {
        format!("{}{}", &c[1], mask_cookie_pairs(&c[2]))
    }) {
        out = Cow::Owned(s);
    }
    for p in rest {
        if let Cow::Owned(s) = p.replace_all(&out, |c: &Captures| format!("{}{MASK}", &c[1])) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// `a=1; b=2` as `a=***; b=***` (cookie attributes after a `Set-Cookie`
/// value, such as `Path=/`, are masked too: nothing there is needed).
fn mask_cookie_pairs(pairs: &str) -> String {
    pairs
        .split(';')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}={MASK}"),
            None if pair.trim().is_empty() => pair.to_string(),
            None => format!(" {MASK}"),
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "Zm9vYmFyYmF6cXV4X3NlY3JldF90b2tlbl92YWx1ZTE";

    #[test]
    fn masks_cookies_tokens_and_secret_fields() {
        let cases = [
            (
                format!("wrk -t2 -c4 -H 'Cookie: qb_session={TOKEN}' http://h/x"),
                "wrk -t2 -c4 -H 'Cookie: qb_session=***' http://h/x",
            ),
            (
                format!("hey -H \"cookie: a=1; qb_session={TOKEN}\" -n 5"),
                "hey -H \"cookie: a=***; qb_session=***\" -n 5",
            ),
            (
                format!("Set-Cookie: qb_session={TOKEN}; Path=/; HttpOnly\r\nX: y"),
                "Set-Cookie: qb_session=***; Path=***; ***\r\nX: y",
            ),
            (
                format!("-H 'Authorization: Bearer {TOKEN}' http://h/"),
                "-H 'Authorization: Bearer ***' http://h/",
            ),
            (
                format!("authorization: basic dXNlcjpwYXNz and Bearer {TOKEN} now"),
                "authorization: basic *** and Bearer *** now",
            ),
            (
                format!(r#"login failed: {{"token":"{TOKEN}","user":{{"id":1}}}}"#),
                r#"login failed: {"token":"***","user":{"id":1}}"#,
            ),
            (
                r#"{"username": "student1", "password": "quiz\"bench"}"#.to_string(),
                r#"{"username": "student1", "password": "***"}"#,
            ),
            (
                format!(r#""source": "wrk -H 'Cookie: qb_session={TOKEN}' http://h/""#),
                r#""source": "wrk -H 'Cookie: qb_session=***' http://h/""#,
            ),
        ];
        for (input, want) in cases {
            let got = mask_secrets(&input);
            assert_eq!(got, want, "{input}");
            assert!(!got.contains(TOKEN));
        }
    }

    #[test]
    fn leaves_other_text_alone() {
        for text in [
            "GET /api/v1/quizzes/{id}: 200 OK, 1234 requests",
            "Requests/sec:  74270.49",
            "X-Test: yes",
            "the cookie jar",
            "auth: bearer token",
            r#""auth": "bearer""#,
        ] {
            assert!(matches!(mask_secrets(text), Cow::Borrowed(_)), "{text}");
        }
    }
}
