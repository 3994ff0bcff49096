-- Indexes for the foreign keys whose parent rows can be deleted with many
-- children: deleting a quiz cascades to its attempts and progress rows,
-- which without these is a sequential scan of both tables (attempts grows
-- with every submission). Measured in docs/database.md: a quiz's delete
-- in about a third of the time on the reference set, submissions
-- unchanged within noise.
--
-- users.cohort_id and users.organization_id get none on purpose: a cohort
-- or organization delete scans users (about 2 ms on the reference set),
-- and an index on either column would serve select-options, which document
-- 004's experiment must be able to run without an index (docs/database.md
-- lists the indexes that serve it).
create index attempts_quiz_id_idx on attempts (quiz_id);
create index progress_quiz_id_idx on progress (quiz_id);
