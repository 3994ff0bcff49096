-- The plans of the server's hot statements and of the foreign keys'
-- actions, on a seeded database (docs/database.md shows the summaries):
--   psql -X "$DATABASE_URL" -f scripts/sql/explain.sql
-- The statements are prepared and planned generically, as sqlx runs them
-- (a prepared statement switches to its generic plan after five runs).
-- Writes and deletes run in transactions that are rolled back.
\pset pager off
set plan_cache_mode = force_generic_plan;
prepare by_username(text) as select id, username, password_hash, display_name, role, organization_id, cohort_id from users where username = $1;
prepare by_id(bigint) as select id, username, password_hash, display_name, role, organization_id, cohort_id from users where id = $1;
prepare select_options(bigint, bigint) as select id, display_name || ' (' || username || ')' as "label!" from users where organization_id = $1 and cohort_id = $2 and role = 'student' order by id limit 1000;
prepare quiz_list as select z.id, z.title, z.description, (select count(*) from questions q where q.quiz_id = z.id) as "question_count!" from quizzes z order by z.id;
prepare quiz_header(bigint) as select id, title, description from quizzes where id = $1;
prepare quiz_questions(bigint) as select id, position, kind, prompt, points, choices from questions where quiz_id = $1 order by position;
prepare quiz_keys(bigint) as select id, kind, points, choices, answer_key from questions where quiz_id = $1;
prepare quiz_exists(bigint) as select exists (select 1 from quizzes where id = $1);
prepare by_idem(bigint, text) as select id, quiz_id, score, max_score, submitted_at, request_hash from attempts where user_id = $1 and idempotency_key = $2;
prepare attempts_for(bigint, bigint, bigint) as select id, quiz_id, score, max_score, submitted_at from attempts where user_id = $1 and quiz_id = $2 order by id desc limit $3;
prepare progress_for(bigint) as select p.quiz_id, z.title as quiz_title, p.best_score, p.max_score, p.attempt_count, p.last_attempt_at from progress p join quizzes z on z.id = p.quiz_id where p.user_id = $1 order by p.quiz_id;
prepare world_one(int) as select id, randomnumber from world where id = $1;
prepare set_numbers(int[], int[]) as update world set randomnumber = v.r from (select unnest($1::int[]) as id, unnest($2::int[]) as r) v where world.id = v.id;
prepare fortunes as select id, message from fortune;
\echo == login: by_username
explain (analyze, buffers, costs off, timing off, summary off) execute by_username('student42');
\echo == /user: by_id
explain (analyze, buffers, costs off, timing off, summary off) execute by_id(42);
\echo == select-options
explain (analyze, buffers, costs off, timing off, summary off) execute select_options(1, 1);
\echo == quiz list
explain (analyze, buffers, costs off, timing off, summary off) execute quiz_list;
\echo == quiz header
explain (analyze, buffers, costs off, timing off, summary off) execute quiz_header(7);
\echo == quiz questions
explain (analyze, buffers, costs off, timing off, summary off) execute quiz_questions(7);
\echo == submit: keys
explain (analyze, buffers, costs off, timing off, summary off) execute quiz_keys(7);
\echo == submit: exists
explain (analyze, buffers, costs off, timing off, summary off) execute quiz_exists(7);
\echo == submit: by idempotency key
explain (analyze, buffers, costs off, timing off, summary off) execute by_idem(42, 'k-1');
\echo == attempts list
explain (analyze, buffers, costs off, timing off, summary off) execute attempts_for(42, 7, 50);
\echo == progress
explain (analyze, buffers, costs off, timing off, summary off) execute progress_for(42);
\echo == /db
explain (analyze, buffers, costs off, timing off, summary off) execute world_one(42);
\echo == /updates (20 ids)
begin;
explain (analyze, buffers, costs off, timing off, summary off) execute set_numbers(array[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20], array[20,19,18,17,16,15,14,13,12,11,10,9,8,7,6,5,4,3,2,1]);
rollback;
\echo == fortunes
explain (analyze, buffers, costs off, timing off, summary off) execute fortunes;
begin;
\echo == submit: insert attempt
explain (analyze, buffers, costs off, timing off, summary off) insert into attempts (user_id, quiz_id, answers, score, max_score, idempotency_key, request_hash) values (42, 7, '[]', 1, 10, 'k-1', null) on conflict (user_id, idempotency_key) where idempotency_key is not null do nothing returning id, quiz_id, score, max_score, submitted_at;
\echo == submit: progress upsert
explain (analyze, buffers, costs off, timing off, summary off) insert into progress (user_id, quiz_id, best_score, max_score, attempt_count, last_attempt_at) values (42, 7, 1, 10, 1, now()) on conflict (user_id, quiz_id) do update set best_score = greatest(progress.best_score, excluded.best_score), max_score = excluded.max_score, attempt_count = progress.attempt_count + 1, last_attempt_at = excluded.last_attempt_at;
rollback;
\echo == delete a quiz (cascades to questions, attempts, progress)
begin;
explain (analyze, buffers, costs off, summary on) delete from quizzes where id = 7;
rollback;
\echo == delete a cohort (sets users.cohort_id to null)
begin;
explain (analyze, buffers, costs off, summary on) delete from cohorts where id = 7;
rollback;
\echo == delete a user (cascades to attempts, progress)
begin;
explain (analyze, buffers, costs off, summary on) delete from users where id = 42;
rollback;
-- What an index on users.cohort_id would do (docs/database.md: why there
-- is none). DDL in a transaction that is rolled back; it locks users until
-- then, so run this file on a database of its own, not a served one.
\echo == select-options without users_select_options_idx
begin;
drop index users_select_options_idx;
explain (analyze, costs off, summary on) execute select_options(1, 1);
\echo == ... and with an index on users.cohort_id
create index users_cohort_id_idx on users (cohort_id);
analyze users;
explain (analyze, costs off, summary on) select id, display_name || ' (' || username || ')' from users where organization_id = 1 and cohort_id = 1 and role = 'student' order by id limit 1000;
\echo == delete a cohort with an index on users.cohort_id
explain (analyze, costs off, summary on) delete from cohorts where id = 7;
rollback;
