//! The start-up warning of a server reachable beyond this machine
//! ([`Config::exposed`]: `PUBLISH_IP`, else `BIND`, is not a loopback
//! address) while the seeded accounts still exist with their shared,
//! published password. Worker 0 of the first generation runs it once, next
//! to the connection budget; it reads, never changes, the users table.

use crate::config::Config;
use crate::state::AppState;

/// Logs a warning when the server is exposed and `student1` or `teacher1`
/// still has the seed password; logs that it could not check when the
/// database does not answer. Never fails the start-up.
pub async fn warn_if_seeded_accounts_exposed(state: &AppState) {
    let cfg: &Config = &state.cfg;
    if !cfg.exposed() {
        return;
    }
    let published = cfg.publish_ip.unwrap_or(cfg.bind.ip());
    match seeded_accounts(state).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            published = %published,
            accounts = n,
            "the server is reachable beyond this machine (PUBLISH_IP/BIND {published}) and \
             {n} seeded accounts still share the published password {:?}: reseed with your \
             own data, change their passwords, or publish on 127.0.0.1",
            crate::seed::SEED_PASSWORD
        ),
        Err(e) => tracing::warn!(
            published = %published,
            error = %e,
            "the server is reachable beyond this machine; could not check for seeded accounts"
        ),
    }
}

/// How many users share the seed password's hash (0 when neither
/// `student1` nor `teacher1` has the seed password any more).
async fn seeded_accounts(state: &AppState) -> anyhow::Result<i64> {
    for username in ["student1", "teacher1"] {
        let Some(user) = crate::db::users::by_username(&state.db, username).await? else {
            continue;
        };
        let passwords = state.passwords.clone();
        let hash = user.password_hash.clone();
        let seeded = state
            .cpu
            .run(move || passwords.verify(crate::seed::SEED_PASSWORD, &hash))
            .await?;
        if seeded {
            return Ok(crate::db::users::count_with_hash(&state.db, &user.password_hash).await?);
        }
    }
    Ok(0)
}
