-- select-options (document 004) as an index-only scan that returns the
-- students of one organization and cohort already in id order: the
-- students-only partial index carries the id and the label's columns, so
-- the query reads no table page and sorts nothing. It replaces the plain
-- (organization_id, cohort_id) index of the first migration, which then
-- served nothing else. Measured in docs/database.md (pgbench +12-18% on
-- that statement).
--
-- Document 004's experiment drops every index that serves select-options;
-- docs/database.md lists them by name (this one, and the first migration's
-- if it is still there).
create index users_select_options_idx on users (organization_id, cohort_id, id)
    include (display_name, username)
    where role = 'student';

drop index users_organization_cohort_idx;
