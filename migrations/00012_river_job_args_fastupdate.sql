-- +goose Up
-- River indexes every job's args with GIN (river_job_args_index, from
-- River's own migrations, which run first). With fastupdate, Postgres'
-- default, new entries go to a pending list that whichever statement finds
-- it full merges into the index: a stall of tens of milliseconds, every few
-- thousand jobs, for a job insert, fetch or completion that a waiting SSH
-- certificate request depends on. Without it, each change updates the index
-- directly: a little more work per job, no stalls. A River upgrade that
-- recreates the index loses this setting; set it again then.
ALTER INDEX IF EXISTS river_job_args_index SET (fastupdate = off);

-- +goose Down
ALTER INDEX IF EXISTS river_job_args_index RESET (fastupdate);
