//! The statements of `seed`: emptying the tables, COPY, deferring the big
//! tables' foreign keys and indexes during the load, resetting the identity
//! sequences and refreshing the planner's statistics. They run on one
//! connection (mostly inside one transaction), so each takes `&mut
//! PgConnection`.
//!
//! Two kinds of statement here cannot be `query!` macros: COPY (sqlx sends
//! it through its own `copy_in_raw`) and the DDL that drops and re-creates a
//! constraint or an index by name (a name cannot be a bound parameter).
//! Neither is assembled from a value in Rust: [`deferrable`] has PostgreSQL
//! write both statements from its catalog, quoting the names itself
//! (`format('%I')`, `regclass`), with the table bound as a parameter.

use sqlx::{Executor as _, PgConnection};

/// Takes the transaction-level advisory lock `key` (held until the
/// transaction ends).
pub async fn advisory_xact_lock(conn: &mut PgConnection, key: i64) -> sqlx::Result<()> {
    sqlx::query!("select pg_advisory_xact_lock($1)", key)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Empties every table the seed loads and restarts their identities.
pub async fn truncate_all(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!(
        "truncate attempts, progress, questions, quizzes, users, cohorts, organizations,
                  world, fortune
         restart identity cascade"
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// COPY of tab-separated `data` into `target` (`table (col, ...)`, one of
/// the seed's fixed targets).
pub async fn copy_in(conn: &mut PgConnection, target: &str, data: &str) -> sqlx::Result<()> {
    let mut sink = conn
        .copy_in_raw(&format!("copy {target} from stdin"))
        .await?;
    sink.send(data.as_bytes()).await?;
    sink.finish().await?;
    Ok(())
}

/// A foreign key or secondary index of a table: the statement that drops it
/// and the one that re-creates it exactly, both written by PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferrable {
    pub drop: String,
    pub create: String,
}

/// The foreign keys, then the non-primary indexes, of `table`.
pub async fn deferrable(conn: &mut PgConnection, table: &str) -> sqlx::Result<Vec<Deferrable>> {
    sqlx::query_as!(
        Deferrable,
        r#"select "drop!", "create!" from (
             select 0 as kind, c.conname::text as name,
                    format('alter table %s drop constraint %I', c.conrelid::regclass, c.conname)
                      as "drop!",
                    format('alter table %s add constraint %I %s',
                           c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
                      as "create!"
               from pg_constraint c
              where c.conrelid = $1::text::regclass and c.contype = 'f'
             union all
             select 1, x.indexrelid::regclass::text,
                    format('drop index %s', x.indexrelid::regclass),
                    pg_get_indexdef(x.indexrelid)
               from pg_index x
              where x.indrelid = $1::text::regclass and not x.indisprimary
           ) d
           order by kind, name"#,
        table,
    )
    .fetch_all(conn)
    .await
}

/// Runs one statement of a [`Deferrable`] (text from the catalog, no
/// parameters: sent as a simple query, not prepared).
pub async fn run_catalog_ddl(conn: &mut PgConnection, ddl: &str) -> sqlx::Result<()> {
    conn.execute(sqlx::raw_sql(ddl)).await.map(|_| ())
}

/// Points each identity sequence past the highest id COPY loaded.
pub async fn reset_sequences(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!(
        "select
           setval(pg_get_serial_sequence('organizations', 'id'),
                  greatest(1, (select max(id) from organizations))) as organizations,
           setval(pg_get_serial_sequence('cohorts', 'id'),
                  greatest(1, (select max(id) from cohorts))) as cohorts,
           setval(pg_get_serial_sequence('users', 'id'),
                  greatest(1, (select max(id) from users))) as users,
           setval(pg_get_serial_sequence('quizzes', 'id'),
                  greatest(1, (select max(id) from quizzes))) as quizzes,
           setval(pg_get_serial_sequence('questions', 'id'),
                  greatest(1, (select max(id) from questions))) as questions,
           setval(pg_get_serial_sequence('attempts', 'id'),
                  greatest(1, (select max(id) from attempts))) as attempts"
    )
    .fetch_one(conn)
    .await
    .map(|_| ())
}

/// Refreshes the planner's statistics of the loaded tables.
pub async fn analyze(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!("analyze users, attempts, progress, questions, quizzes")
        .execute(conn)
        .await
        .map(|_| ())
}
