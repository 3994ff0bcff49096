//! A running site for one test: its own database, seeded like one cohort
//! of the reference set, and the real binary serving it; and where the
//! tools the tests drive are installed.

use std::path::{Path, PathBuf};

use quizbench::password::Passwords;
use quizbench::seed::{self, SeedSize};

use crate::common::{cheap_argon2, redis_url, ServeOptions, Served, TestDb};
pub use crate::common::{scalar, HttpApi};

/// One cohort of the reference set: its 100 students and their teacher
/// (`teacher1`), its 50 quizzes, and the reference set's 10 attempts per
/// student.
pub const COHORT: SeedSize = SeedSize {
    organizations: 1,
    cohorts_per_org: 1,
    students_per_cohort: SeedSize::REFERENCE.students_per_cohort,
    quizzes: SeedSize::REFERENCE.quizzes,
    questions_per_quiz: SeedSize::REFERENCE.questions_per_quiz,
    attempts: SeedSize::REFERENCE.attempts
        / (SeedSize::REFERENCE.organizations
            * SeedSize::REFERENCE.cohorts_per_org
            * SeedSize::REFERENCE.students_per_cohort)
        * SeedSize::REFERENCE.students_per_cohort,
};

/// The real binary serving a freshly seeded database. The process is
/// killed, and its database, Redis keys and files removed, when dropped.
pub struct Site {
    // Declared first: the server stops before its database is dropped.
    served: Served,
    pub db: TestDb,
}

impl std::ops::Deref for Site {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.served
    }
}

impl Site {
    /// Seeds a database of [`COHORT`] and serves it (one process, one
    /// thread, throttling of failed sign-ins as configured by default).
    pub async fn start() -> Site {
        let db = TestDb::empty().await;
        seed::migrate(&db.url).await.expect("migrate");
        let passwords = Passwords::new(cheap_argon2()).unwrap();
        seed::seed(&db.url, &passwords, COHORT, false)
            .await
            .expect("seed");
        let options = ServeOptions {
            defaults: &[
                ("PROCESSES", "1"),
                ("THREADS", "1"),
                ("CPU_POOL_THREADS", "1"),
            ],
            vars: &[],
            log_cap: 5_000,
            timeout: None,
        };
        Site {
            served: Served::start(&db.url, &redis_url(), options),
            db,
        }
    }

    /// One number from the site's database.
    pub async fn count(&self, sql: &str) -> i64 {
        scalar(&self.db.url, sql).await
    }
}

/// Where the tests' outside tools are, as `scripts/test.sh` installs them.
pub mod tools {
    use super::*;

    /// `~/.cache/quizbench` (or `$XDG_CACHE_HOME/quizbench`).
    fn cache() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
            });
        base.join("quizbench")
    }

    /// The folder holding playwright-core, axe-core and vnu-jar
    /// (`QB_BROWSER_MODULES`, else the cache's `browser/node_modules`).
    pub fn node_modules() -> Option<PathBuf> {
        let dir = std::env::var_os("QB_BROWSER_MODULES")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache().join("browser/node_modules"));
        dir.join("playwright-core").is_dir().then_some(dir)
    }

    /// Debian's Chromium (`QB_CHROMIUM`, else `/usr/bin/chromium`).
    pub fn chromium() -> Option<PathBuf> {
        let path = std::env::var_os("QB_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        path.exists().then_some(path)
    }

    /// Locust: `$LOCUST`, else the cache's venv, else PATH.
    pub fn locust() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("LOCUST") {
            return Some(PathBuf::from(p));
        }
        let venv = cache().join("venv/bin/locust");
        if venv.exists() {
            return Some(venv);
        }
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("locust"))
            .find(|p| p.exists())
    }

    /// A tool that is missing fails its test, unless `skip` (a variable
    /// set to 1) says to skip it: then None.
    pub fn required<T>(found: Option<T>, what: &str, skip: &str) -> Option<T> {
        if found.is_some() {
            return found;
        }
        if std::env::var(skip).as_deref() == Ok("1") {
            eprintln!("{what} not found; skipped ({skip}=1)");
            return None;
        }
        panic!("{what} not found: scripts/test.sh installs it ({skip}=1 skips this test)");
    }

    /// `target/browser-artifacts/<name>`, emptied.
    pub fn artifacts(name: &str) -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let dir = target.join("browser-artifacts").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
