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

/// Verifications per second on `threads` threads for `duration`: what a
/// login costs, and so the ceiling of login throughput on this machine.
pub fn hashrate(passwords: &Passwords, threads: usize, duration: std::time::Duration) -> f64 {
    let phc = passwords.hash("hashrate probe");
    let started = std::time::Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let phc = &phc;
                scope.spawn(move || {
                    let mut n = 0u64;
                    while started.elapsed() < duration {
                        passwords.verify("hashrate probe", phc);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
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
