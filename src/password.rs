//! Password hashing with argon2id (RustCrypto `argon2`).
//!
//! Hashes are PHC strings that carry their own parameters, so a hash made
//! with cheaper experiment parameters still verifies after a change. An
//! unknown username is verified against a dummy hash made with the same
//! parameters, so it costs the same time as a wrong password.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

use crate::config::Argon2Params;

#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
    dummy: Arc<OnceLock<String>>,
}

impl Passwords {
    pub fn new(p: Argon2Params) -> anyhow::Result<Self> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        Ok(Passwords {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            dummy: Arc::new(OnceLock::new()),
        })
    }

    /// A new PHC hash with a random salt. CPU-heavy: call on the CPU pool.
    pub fn hash(&self, password: &str) -> String {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2
            .hash_password(password.as_bytes(), &salt)
            .expect("argon2 hashing with validated parameters")
            .to_string()
    }

    /// Checks a password against a stored PHC hash; a malformed hash never
    /// matches. CPU-heavy: call on the CPU pool.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => self
                .argon2
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Verifies against the dummy hash (always false), for unknown users.
    pub fn verify_dummy(&self, password: &str) {
        let dummy = self
            .dummy
            .get_or_init(|| self.hash("quizbench dummy password"));
        let _ = self.verify(password, dummy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Passwords {
        Passwords::new(Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn hash_then_verify() {
        let p = fast();
        let h = p.hash("correct horse");
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(p.verify("correct horse", &h));
        assert!(!p.verify("wrong horse", &h));
        assert!(!p.verify("correct horse", "not a phc string"));
    }

    #[test]
    fn hashes_carry_their_parameters() {
        let h = fast().hash("pw");
        let stronger = Passwords::new(Argon2Params::OWASP).unwrap();
        assert!(stronger.verify("pw", &h));
    }
}
