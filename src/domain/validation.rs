//! Input rules shared by the routes: usernames, passwords, display names,
//! file names, ids. Each returns a message fit for a 422 body.

/// Usernames: 3-32 characters of `A-Z a-z 0-9 . _ -`.
pub fn username(s: &str) -> Result<(), &'static str> {
    if !(3..=32).contains(&s.len()) {
        return Err("username must be 3 to 32 characters");
    }
    if !plain_chars(s) {
        return Err("username may only contain letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Only `A-Z a-z 0-9 . _ -` (the characters of usernames and file names).
fn plain_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Passwords: 8-128 bytes, no NUL.
pub fn password(s: &str) -> Result<(), &'static str> {
    if s.len() < 8 {
        return Err("password must be at least 8 characters");
    }
    if s.len() > 128 {
        return Err("password must be at most 128 bytes");
    }
    if s.contains('\0') {
        return Err("password must not contain NUL characters");
    }
    Ok(())
}

/// Display names: 1-64 characters, no control characters.
pub fn display_name(s: &str) -> Result<(), &'static str> {
    let n = s.chars().count();
    if n == 0 || n > 64 || s.trim().is_empty() {
        return Err("display_name must be 1 to 64 characters");
    }
    if s.chars().any(char::is_control) {
        return Err("display_name must not contain control characters");
    }
    Ok(())
}

/// Code file names: 1-64 characters of `A-Z a-z 0-9 . _ -`, not starting
/// with a dot (so no `.`/`..`, no hidden files, no path separators).
pub fn file_name(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 64 {
        return Err("file name must be 1 to 64 characters");
    }
    if s.starts_with('.') {
        return Err("file name must not start with '.'");
    }
    if !plain_chars(s) {
        return Err("file name may only contain letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// A positive 63-bit database id from a path segment.
pub fn id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username("student1").is_ok());
        assert!(username("a.b-c_d").is_ok());
        assert!(username("ab").is_err());
        assert!(username(&"x".repeat(33)).is_err());
        assert!(username("bad name").is_err());
        assert!(username("nul\0byte").is_err());
        assert!(username("émile").is_err());
    }

    #[test]
    fn passwords() {
        assert!(password("quizbench").is_ok());
        assert!(password("short").is_err());
        assert!(password(&"p".repeat(129)).is_err());
        assert!(password("has\0nul!").is_err());
    }

    #[test]
    fn file_names_block_traversal() {
        assert!(file_name("main.py").is_ok());
        for bad in [
            "",
            "..",
            ".env",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "a b",
            "x\0",
        ] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(id("42"), Some(42));
        assert_eq!(id("0"), None);
        assert_eq!(id("-1"), None);
        assert_eq!(id("abc"), None);
        assert_eq!(id("9223372036854775807"), Some(i64::MAX));
        assert_eq!(id("9223372036854775808"), None);
        assert_eq!(id("+5"), None);
        assert_eq!(id(""), None);
    }

    #[test]
    fn display_names() {
        assert!(display_name("Ada Lovelace").is_ok());
        assert!(display_name("   ").is_err());
        assert!(display_name("tab\there").is_err());
    }
}
