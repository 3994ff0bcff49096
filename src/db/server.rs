//! Facts about the PostgreSQL server itself, not about quizbench's tables:
//! whether it answers (readiness) and how many connections it accepts (the
//! connection budget), and the listings of PgBouncer's admin console when
//! one stands in front of it.

use sqlx::PgExecutor;

/// One round trip: true when PostgreSQL answered.
pub async fn ping(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    let one = sqlx::query_scalar!(r#"select 1 as "one!""#)
        .fetch_one(db)
        .await?;
    Ok(one == 1)
}

/// The server's connection settings and the clients other than us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: i64,
    pub superuser_reserved: i64,
    /// `reserved_connections` (PostgreSQL 16+; 0 before).
    pub reserved: i64,
    /// Client backends that are neither the asking session nor quizbench
    /// pools on this database (`application_name = quizbench`).
    pub other_clients: i64,
}

pub async fn connection_limits(db: impl PgExecutor<'_>) -> sqlx::Result<ConnectionLimits> {
    sqlx::query_as!(
        ConnectionLimits,
        r#"select current_setting('max_connections')::bigint as "max_connections!",
                  current_setting('superuser_reserved_connections')::bigint as "superuser_reserved!",
                  coalesce(current_setting('reserved_connections', true), '0')::bigint as "reserved!",
                  (select count(*) from pg_stat_activity
                    where backend_type = 'client backend'
                      and pid <> pg_backend_pid()
                      and not (application_name = 'quizbench' and datname = current_database()))
                    as "other_clients!""#,
    )
    .fetch_one(db)
    .await
}

/// A listing of PgBouncer's admin console.
#[derive(Debug, Clone, Copy)]
pub enum PgBouncerShow {
    Databases,
    Config,
    Clients,
}

/// Runs `SHOW ...` on a connection to PgBouncer's admin console (database
/// `pgbouncer`). The console is not PostgreSQL: it speaks only the simple
/// query protocol, so this cannot be a checked `query!` (a bare string with
/// no arguments is sent as a simple query).
pub async fn pgbouncer_show(
    conn: &mut sqlx::PgConnection,
    command: PgBouncerShow,
) -> sqlx::Result<Vec<sqlx::postgres::PgRow>> {
    use sqlx::Executor as _;
    let sql = match command {
        PgBouncerShow::Databases => "SHOW DATABASES",
        PgBouncerShow::Config => "SHOW CONFIG",
        PgBouncerShow::Clients => "SHOW CLIENTS",
    };
    conn.fetch_all(sql).await
}
