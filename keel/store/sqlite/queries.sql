-- Named queries of the SQLite store. Each starts with "-- name: <name>". The skeleton
-- (keel.store.sqlstore) runs them by name; PostgreSQL's queries.sql has the same names
-- and the same parameters in the same order.

-- name: insert_spec
INSERT OR IGNORE INTO specs (version, name, spec, created_at) VALUES (?, ?, ?, ?);

-- name: select_spec
SELECT spec FROM specs WHERE version = ?;

-- name: insert_run
-- nothing inserted (no row changed): a run with this id exists already
INSERT INTO runs (id, workflow, spec_version, status, input, origin, created_at, updated_at,
                  last_seq, head_hash, parent_run, parent_node, started_by)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING;

-- name: select_origin
SELECT origin FROM runs WHERE id = ?;

-- name: select_head
-- (a pruned run takes no more events: it is not found here)
SELECT last_seq, head_hash FROM runs WHERE id = ? AND pruned_at IS NULL;

-- name: update_head
UPDATE runs SET last_seq = ?, head_hash = ?, updated_at = ? WHERE id = ?;

-- name: advance_head
-- the new head, only where the run still has the head the change was decided on
UPDATE runs SET last_seq = ?, head_hash = ?, updated_at = ?
WHERE id = ? AND last_seq = ? AND head_hash = ? AND pruned_at IS NULL;

-- name: update_status
-- ended_at: the time of the end for a final status, else NULL (a retry by hand reopens);
-- failed_node, error_type: why a failed run failed, else NULL; updated_at: the change
-- feed (runs_changed) sees every change of a run's row, not only appended events
UPDATE runs SET status = ?, output = ?, reason = ?, ended_at = ?, failed_node = ?,
                error_type = ?, updated_at = ?
WHERE id = ?;

-- name: update_late
UPDATE runs SET late = ?, updated_at = ? WHERE id = ?;

-- name: insert_event
INSERT INTO events (run_id, seq, at, kind, node, data, prev_hash) VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: select_history
SELECT run_id, seq, at, data, prev_hash FROM events WHERE run_id = ? AND seq > ? ORDER BY seq;

-- name: select_history_before
-- a page of a run's events: after the first seq, before the second
SELECT run_id, seq, at, data, prev_hash FROM events
WHERE run_id = ? AND seq > ? AND seq < ? ORDER BY seq;

-- name: select_first_event
SELECT run_id, seq, at, data, prev_hash FROM events WHERE run_id = ? ORDER BY seq LIMIT 1;

-- name: select_chain
SELECT seq, at, data, prev_hash, kind, node FROM events WHERE run_id = ? ORDER BY seq;

-- name: insert_blob
-- content-addressed (keel.store.blobs): a blob stored already is the same text
INSERT INTO blobs (name, size, data, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING;

-- name: select_blobs
SELECT name, data FROM blobs WHERE name IN (SELECT value FROM json_each(?));

-- name: select_run
SELECT id, workflow, spec_version, status, input, output, reason, created_at, updated_at,
       last_seq, head_hash, origin, parent_run, parent_node, started_by, late, failed_node,
       error_type, ended_at, pruned_at
FROM runs WHERE id = ?;

-- name: select_versions_from
-- the stored versions from :low (a prefix) to before :high, a few (a runs list's filter
-- by a version's first digits reads the runs of these, by the index of runs by version)
SELECT version FROM specs WHERE version >= :low AND version < :high
ORDER BY version LIMIT :limit;

-- name: select_quiet_runs
-- runs that should move on by themselves (pending, running, failing) whose row has not
-- changed since :before, the quietest first, but those that wait for something by
-- design (an open wait); select_run's columns. Read through runs_by_status and sorted:
-- an index of its own would cost every commit of a running run a write, for a page
-- read every few seconds (44 ms at 100,000 runs, most of them waiting)
SELECT id, workflow, spec_version, status, input, output, reason, created_at, updated_at,
       last_seq, head_hash, origin, parent_run, parent_node, started_by, late, failed_node,
       error_type, ended_at, pruned_at
FROM runs
WHERE updated_at <= :before AND status IN ('pending', 'running', 'failing')
  AND NOT EXISTS (SELECT 1 FROM waits WHERE waits.run_id = runs.id)
ORDER BY updated_at, id LIMIT :limit;

-- name: select_run_prefix
SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2;

-- name: runs_changed
-- the change feed: the runs written after the position (updated_at, id), in that order
-- (the row value is what lets the index runs_by_update seek to the position)
SELECT id, workflow, status, last_seq, updated_at, late, created_at FROM runs
WHERE (updated_at, id) > (:at, :id)
ORDER BY updated_at, id LIMIT :limit;

-- name: runs_changed_newest
-- where the feed is now: the run written last
SELECT id, workflow, status, last_seq, updated_at, late, created_at FROM runs
ORDER BY updated_at DESC, id DESC LIMIT 1;

-- name: insert_ready
INSERT OR REPLACE INTO ready (run_id, node, item, attempt, queue, priority, available_at, circuit,
                              limit_key, limit_max, rate_key, rate_max, rate_per, owner,
                              lease_expires)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: delete_queued
DELETE FROM ready WHERE run_id = ? AND node = ? AND item = ? AND owner IS NULL;

-- name: delete_held
-- (no RETURNING: SQLite wakes nobody, and RETURNING costs the hot path a temporary table)
DELETE FROM ready WHERE run_id = ? AND node = ? AND item = ? AND attempt = ? AND owner = ?;

-- name: count_limit_holders
SELECT count(*) FROM ready WHERE limit_key = ? AND owner IS NOT NULL;

-- name: forget_rate_starts
DELETE FROM rate_starts WHERE key = ? AND at <= ?;

-- name: select_rate_starts
SELECT at FROM rate_starts WHERE key = ? AND at > ? ORDER BY at;

-- name: insert_rate_start
INSERT INTO rate_starts (key, at) VALUES (?, ?);

-- name: delete_run_ready
DELETE FROM ready WHERE run_id = ?;

-- name: select_tripped
-- (one writer at a time: no probe started since the claim looked, so none is out now)
SELECT name, probe_until FROM circuits
WHERE open_until IS NOT NULL AND name IN (SELECT value FROM json_each(?)) ORDER BY name;

-- name: start_probe
UPDATE circuits SET probe_until = ?, updated_at = ? WHERE name = ?;

-- name: circuit_succeeded
DELETE FROM circuits WHERE name = ?;

-- name: circuit_failed
INSERT INTO circuits (name, failures, open_until, probe_until, updated_at)
VALUES (:name, 1, CASE WHEN :threshold <= 1 THEN :at + :cooldown END, NULL, :at)
ON CONFLICT (name) DO UPDATE SET
    failures = failures + 1,
    open_until = CASE WHEN failures + 1 >= :threshold THEN :at + :cooldown ELSE open_until END,
    probe_until = NULL,
    updated_at = :at;

-- name: select_circuits
SELECT name, failures, open_until, probe_until, updated_at FROM circuits ORDER BY name;

-- name: take_lease
UPDATE ready SET owner = ?, lease_expires = ?
WHERE run_id = ? AND node = ? AND item = ? AND owner IS NULL;


-- name: renew_leases
UPDATE ready SET lease_expires = ? WHERE owner = ?;

-- name: renew_probes
UPDATE circuits SET probe_until = :until
WHERE probe_until > :now
  AND name IN (SELECT circuit FROM ready WHERE owner = :owner AND circuit IS NOT NULL);

-- name: select_owners
SELECT DISTINCT owner FROM ready WHERE owner IS NOT NULL;

-- name: select_lost
SELECT run_id, node, item, attempt, owner FROM ready
WHERE owner IS NOT NULL AND lease_expires < ?;

-- name: select_held_by
SELECT run_id, node, item, attempt, owner FROM ready WHERE owner = ?;

-- name: drop_lease
-- an attempt of a paused run goes back on hold, not to the free queue
UPDATE ready SET owner = NULL, lease_expires = NULL,
    held = coalesce((SELECT status = 'paused' FROM runs WHERE id = ready.run_id), 0)
WHERE run_id = :run AND node = :node AND item = :item AND owner = :owner
RETURNING queue;

-- name: hold_ready
UPDATE ready SET held = 1 WHERE run_id = ? AND owner IS NULL;

-- name: release_ready
-- an attempt a keel from before migration 8 held while this one ran is released too
UPDATE ready SET held = 0,
    available_at = CASE WHEN available_at > 1e11 THEN available_at - 1e12 ELSE available_at END
WHERE run_id = ? AND (held OR available_at > 1e11);

-- name: select_leases_of_run
SELECT run_id, node, item, attempt, owner, lease_expires FROM ready
WHERE run_id = ? AND owner IS NOT NULL ORDER BY node, item;

-- name: select_ready_of_run
-- every attempt of a run on the queue, held or not, with what a claim checks (keel why)
SELECT run_id, node, item, attempt, queue, priority, available_at, circuit, limit_key,
       limit_max, rate_key, rate_max, rate_per, held, owner, lease_expires
FROM ready WHERE run_id = ? ORDER BY node, item LIMIT ?;

-- name: select_limit_holders
-- the attempts holding a concurrency key now, of any run (at most its limit)
SELECT run_id, node, item, attempt, owner, lease_expires FROM ready
WHERE limit_key = ? AND owner IS NOT NULL ORDER BY run_id, node, item;

-- name: count_ready_of_run
SELECT count(*) FROM ready WHERE run_id = ?;

-- name: upsert_timer
-- a timer for a run that has ended would never be cleared: it is not written, unless the
-- transition writing it reopens that run (a retry by hand: its status is set after this)
INSERT OR REPLACE INTO timers (run_id, key, due_at, data)
SELECT :run, :key, :due, :data
WHERE :reopens
   OR (SELECT status FROM runs WHERE id = :run) NOT IN ('succeeded', 'failed', 'cancelled');

-- name: delete_timer
DELETE FROM timers WHERE run_id = ? AND key = ?;

-- name: delete_run_timers
DELETE FROM timers WHERE run_id = ?;

-- name: select_next_timer
SELECT min(due_at) FROM timers;

-- name: select_due_timers
SELECT run_id, key, due_at, data FROM timers WHERE due_at <= ? ORDER BY due_at LIMIT ?;

-- name: insert_outbox
INSERT INTO outbox (run_id, notifier, payload, created_at, next_at) VALUES (?, ?, ?, ?, ?);

-- name: peek_outbox
-- read before taking the write lock: usually there is nothing to send
SELECT 1 FROM outbox
WHERE next_at IS NOT NULL AND next_at <= :now AND (lease_until IS NULL OR lease_until < :now)
LIMIT 1;

-- name: take_outbox
UPDATE outbox SET owner = :owner, lease_until = :until, deliveries = deliveries + 1
WHERE id IN (SELECT id FROM outbox
             WHERE next_at IS NOT NULL AND next_at <= :now
               AND (lease_until IS NULL OR lease_until < :now)
             ORDER BY next_at LIMIT :limit)
RETURNING id, run_id, notifier, payload, deliveries, next_at;

-- name: outbox_delivered
UPDATE outbox SET delivered_at = ?, next_at = NULL, owner = NULL, lease_until = NULL, error = NULL
WHERE id = ?;

-- name: outbox_failed
UPDATE outbox SET next_at = ?, owner = NULL, lease_until = NULL, error = ? WHERE id = ?;

-- name: upsert_wait
INSERT OR REPLACE INTO waits (run_id, node, waits_for, since, until, details)
VALUES (?, ?, ?, ?, ?, ?);

-- name: delete_wait
DELETE FROM waits WHERE run_id = ? AND node = ?;

-- name: delete_run_waits
DELETE FROM waits WHERE run_id = ?;

-- name: select_waits
SELECT w.run_id, w.node, w.waits_for, w.since, w.until, w.details, r.workflow, r.status
FROM waits w JOIN runs r ON r.id = w.run_id
WHERE (:kind IS NULL OR w.waits_for = :kind) AND (:run IS NULL OR w.run_id = :run)
ORDER BY w.since, w.run_id, w.node LIMIT :limit;

-- name: select_waits_of_run
-- one run's waits by the table's key: select_waits' OR form reads every open wait (a
-- waiting run's row in the runs list paid 9 ms at 8,000 open waits, 0.01 ms this way)
SELECT w.run_id, w.node, w.waits_for, w.since, w.until, w.details, r.workflow, r.status
FROM waits w JOIN runs r ON r.id = w.run_id
WHERE w.run_id = :run AND (:kind IS NULL OR w.waits_for = :kind)
ORDER BY w.since, w.node LIMIT :limit;

-- name: upsert_worker
-- live workers (keel.store.presence): registered at start, seen with each heartbeat
INSERT OR REPLACE INTO workers (owner, host, pid, queues, started_at, seen_at, runs)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: worker_seen
UPDATE workers SET seen_at = max(seen_at, ?) WHERE owner = ?;

-- name: delete_worker
DELETE FROM workers WHERE owner = ?;

-- name: select_live_workers
SELECT owner, host, pid, queues, started_at, seen_at, runs FROM workers
WHERE seen_at >= ? ORDER BY started_at, owner;

-- name: forget_workers
DELETE FROM workers WHERE seen_at < ?;

-- name: schema_version
SELECT max(version) FROM schema_migrations;

-- Free attempts for a claim (keel.store.limits.FreeQueue.look), best first, filtered here
-- and never after the LIMIT: not held by a worker or a pause, due, on the claim's queues,
-- their circuit closed (or past its cool-down, for the probe), their concurrency and rate
-- keys not full (nor among the keys the claim filled itself, for its second look: NULL
-- when none). One query per run scope, so each keeps its index: every run (ready_free,
-- in queue order), one run (the primary key), some runs.

-- name: free
SELECT run_id, node, item, attempt, queue, circuit, limit_key, limit_max, rate_key, rate_max,
       rate_per, available_at
FROM ready r
WHERE r.owner IS NULL AND NOT r.held AND r.available_at <= :now
  AND (:queues IS NULL OR r.queue IN (SELECT value FROM json_each(:queues)))
  AND (:full_limits IS NULL OR r.limit_key IS NULL
       OR r.limit_key NOT IN (SELECT value FROM json_each(:full_limits)))
  AND (:full_rates IS NULL OR r.rate_key IS NULL
       OR r.rate_key NOT IN (SELECT value FROM json_each(:full_rates)))
  AND (r.circuit IS NULL OR r.circuit NOT IN (SELECT name FROM circuits
       WHERE open_until > :now OR probe_until > :now))
  AND (r.limit_key IS NULL OR (SELECT count(*) FROM ready h WHERE h.limit_key = r.limit_key
       AND h.owner IS NOT NULL) < r.limit_max)
  AND (r.rate_key IS NULL OR (SELECT count(*) FROM rate_starts s WHERE s.key = r.rate_key
       AND s.at > :now - r.rate_per) < r.rate_max)
ORDER BY r.priority DESC, r.available_at LIMIT :limit;

-- name: free_of_run
SELECT run_id, node, item, attempt, queue, circuit, limit_key, limit_max, rate_key, rate_max,
       rate_per, available_at
FROM ready r
WHERE r.run_id = :run AND r.owner IS NULL AND NOT r.held AND r.available_at <= :now
  AND (:queues IS NULL OR r.queue IN (SELECT value FROM json_each(:queues)))
  AND (:full_limits IS NULL OR r.limit_key IS NULL
       OR r.limit_key NOT IN (SELECT value FROM json_each(:full_limits)))
  AND (:full_rates IS NULL OR r.rate_key IS NULL
       OR r.rate_key NOT IN (SELECT value FROM json_each(:full_rates)))
  AND (r.circuit IS NULL OR r.circuit NOT IN (SELECT name FROM circuits
       WHERE open_until > :now OR probe_until > :now))
  AND (r.limit_key IS NULL OR (SELECT count(*) FROM ready h WHERE h.limit_key = r.limit_key
       AND h.owner IS NOT NULL) < r.limit_max)
  AND (r.rate_key IS NULL OR (SELECT count(*) FROM rate_starts s WHERE s.key = r.rate_key
       AND s.at > :now - r.rate_per) < r.rate_max)
ORDER BY r.priority DESC, r.available_at LIMIT :limit;

-- name: free_of_runs
SELECT run_id, node, item, attempt, queue, circuit, limit_key, limit_max, rate_key, rate_max,
       rate_per, available_at
FROM ready r
WHERE r.run_id IN (SELECT value FROM json_each(:runs))
  AND r.owner IS NULL AND NOT r.held AND r.available_at <= :now
  AND (:queues IS NULL OR r.queue IN (SELECT value FROM json_each(:queues)))
  AND (:full_limits IS NULL OR r.limit_key IS NULL
       OR r.limit_key NOT IN (SELECT value FROM json_each(:full_limits)))
  AND (:full_rates IS NULL OR r.rate_key IS NULL
       OR r.rate_key NOT IN (SELECT value FROM json_each(:full_rates)))
  AND (r.circuit IS NULL OR r.circuit NOT IN (SELECT name FROM circuits
       WHERE open_until > :now OR probe_until > :now))
  AND (r.limit_key IS NULL OR (SELECT count(*) FROM ready h WHERE h.limit_key = r.limit_key
       AND h.owner IS NOT NULL) < r.limit_max)
  AND (r.rate_key IS NULL OR (SELECT count(*) FROM rate_starts s WHERE s.key = r.rate_key
       AND s.at > :now - r.rate_per) < r.rate_max)
ORDER BY r.priority DESC, r.available_at LIMIT :limit;

-- (key, max, per) of the rate keys that free attempts in scope wait for, per run scope
-- as above (FreeQueue.waiting_rates)

-- name: waiting_rates
SELECT DISTINCT rate_key, rate_max, rate_per FROM ready r
WHERE r.owner IS NULL AND NOT r.held AND r.rate_key IS NOT NULL AND r.available_at <= :now
  AND (:queues IS NULL OR r.queue IN (SELECT value FROM json_each(:queues)))
ORDER BY rate_key;

-- name: waiting_rates_of_run
SELECT DISTINCT rate_key, rate_max, rate_per FROM ready r
WHERE r.run_id = :run
  AND r.owner IS NULL AND NOT r.held AND r.rate_key IS NOT NULL AND r.available_at <= :now
  AND (:queues IS NULL OR r.queue IN (SELECT value FROM json_each(:queues)))
ORDER BY rate_key;

-- name: waiting_rates_of_runs
SELECT DISTINCT rate_key, rate_max, rate_per FROM ready r
WHERE r.run_id IN (SELECT value FROM json_each(:runs))
  AND r.owner IS NULL AND NOT r.held AND r.rate_key IS NOT NULL AND r.available_at <= :now
  AND (:queues IS NULL OR r.queue IN (SELECT value FROM json_each(:queues)))
ORDER BY rate_key;

-- name: insert_token
-- nothing inserted: a token with this name exists (revoked ones too: names are identities)
INSERT INTO tokens (name, role, groups, secret_hash, created_at, created_by, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING;

-- name: select_token_by_hash
SELECT name, role, groups, created_at, created_by, expires_at, revoked_at, revoked_by
FROM tokens WHERE secret_hash = ?;

-- name: select_tokens
SELECT name, role, groups, created_at, created_by, expires_at, revoked_at, revoked_by
FROM tokens ORDER BY created_at, name;

-- name: revoke_token
UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE name = ? AND revoked_at IS NULL;

-- name: insert_session
-- nothing inserted: a session with this secret exists (a secret is never reused)
INSERT INTO sessions (secret_hash, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (secret_hash) DO NOTHING;

-- name: select_session_token
SELECT token_hash FROM sessions WHERE secret_hash = ? AND expires_at > ?;

-- name: delete_session
DELETE FROM sessions WHERE secret_hash = ?;

-- name: forget_sessions
DELETE FROM sessions WHERE expires_at <= ?;

-- name: insert_deployment
INSERT INTO deployments (workflow, version, deployed_at, deployed_by, source)
VALUES (?, ?, ?, ?, ?);

-- name: select_deployments
SELECT d.id, d.workflow, d.version, d.deployed_at, d.deployed_by, d.source
FROM deployments d ORDER BY d.workflow, d.id;

-- name: select_deployments_of
SELECT d.id, d.workflow, d.version, d.deployed_at, d.deployed_by, d.source
FROM deployments d WHERE d.workflow = ? ORDER BY d.id;

-- name: select_stored_versions
-- the stored definitions (of :workflow when given) whose version is from :low (a
-- prefix) to before :high, each with its runs counted and their first and last start;
-- the runs are read from the index of runs by version alone (it holds created_at)
SELECT s.version, s.name, s.created_at, count(r.spec_version), min(r.created_at),
       max(r.created_at)
FROM specs s LEFT JOIN runs r ON r.spec_version = s.version
WHERE s.version >= :low AND s.version < :high AND (:workflow IS NULL OR s.name = :workflow)
GROUP BY s.version
ORDER BY s.version LIMIT :limit;

-- name: select_schedules
SELECT name, workflow, paused, paused_by, paused_at, last_slot FROM schedules ORDER BY name;

-- name: pause_schedule
INSERT INTO schedules (name, workflow, paused, paused_by, paused_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    paused = excluded.paused, paused_by = excluded.paused_by, paused_at = excluded.paused_at;

-- name: advance_schedule
-- only forward: a slower worker's older slot never moves it back
INSERT INTO schedules (name, workflow, last_slot) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET workflow = excluded.workflow,
    last_slot = MAX(COALESCE(schedules.last_slot, excluded.last_slot), excluded.last_slot);

-- Metrics (keel.store.gauges): what the store holds now, one row per (kind, name) with a
-- count and, for queues, the oldest ready time; each part answered from an index
-- (ready_free, waits_by_kind, outbox_due, workers_by_seen, runs_late); the alerts are a row per rule. The late runs
-- name their partial index: SQLite's planner would take runs_by_status instead and read
-- every unfinished run (125 ms at 300,000 of them, against 0.02 ms). The queues' part
-- reads every free ready row: it costs in proportion to the ready queue.

-- name: store_gauges
SELECT 'queue', queue, count(*), min(available_at) FROM ready
WHERE owner IS NULL AND NOT held AND available_at <= :now GROUP BY queue
UNION ALL
SELECT 'wait', waits_for, count(DISTINCT run_id), NULL FROM waits GROUP BY waits_for
UNION ALL
SELECT 'outbox', NULL, count(*), NULL FROM outbox WHERE next_at IS NOT NULL
UNION ALL
SELECT 'workers', NULL, count(*), NULL FROM workers WHERE seen_at >= :live_since
UNION ALL
SELECT 'late', workflow, count(*), NULL FROM runs INDEXED BY runs_late
WHERE late AND status IN ('pending', 'running', 'failing', 'paused') GROUP BY workflow
UNION ALL
SELECT 'alert', name, state = 'firing', NULL FROM alerts;

-- name: last_task_log
-- the run's last line number (read under the write lock: the next lines follow it)
SELECT max(seq) FROM task_logs WHERE run_id = ?;

-- name: insert_task_log
INSERT INTO task_logs (run_id, seq, node, item, attempt, at, level, message)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: select_task_logs
-- a page of a run's lines after seq :after, of one node and one attempt when given
SELECT run_id, seq, node, item, attempt, at, level, message FROM task_logs
WHERE run_id = :run AND seq > :after AND (:node IS NULL OR node = :node)
  AND (:attempt IS NULL OR attempt = :attempt)
ORDER BY seq LIMIT :limit;

-- Alerts (keel.store.alerts, keel.runtime.alerts). The values rules compare, each one
-- aggregate from an index: runs_ended (the runs that ended in a window), waits_by_kind
-- (approvals past their time); late runs are the store's gauges'.

-- name: ended_runs
SELECT count(*), coalesce(sum(status = 'failed'), 0) FROM runs
WHERE ended_at >= :since AND status IN ('succeeded', 'failed')
  AND (:workflow IS NULL OR workflow = :workflow);

-- name: ended_run_durations
-- the durations at the places in :places (a JSON array of places, 0: the shortest) of
-- the runs ended_runs counts, from one sort of them however many places are asked for
SELECT place, took FROM (
    SELECT ended_at - created_at AS took,
           row_number() OVER (ORDER BY ended_at - created_at) - 1 AS place
    FROM runs
    WHERE ended_at >= :since AND status IN ('succeeded', 'failed')
      AND (:workflow IS NULL OR workflow = :workflow))
WHERE place IN (SELECT value FROM json_each(:places));

-- name: overdue_approvals
SELECT count(*) FROM waits WHERE waits_for = 'approval' AND until <= ?;

-- name: hold_alert_lease
-- taken when free or expired, renewed by its holder; nothing changes otherwise
INSERT INTO alert_lease (id, owner, expires) VALUES (1, :owner, :until)
ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
WHERE alert_lease.owner = excluded.owner OR alert_lease.expires < :now;

-- name: alert_lease_held
-- (a write holds the whole database: nobody takes the lease before this write ends)
SELECT 1 FROM alert_lease WHERE owner = ? AND expires >= ?;

-- name: release_alert_lease
DELETE FROM alert_lease WHERE owner = ?;

-- name: select_alerts
SELECT name, rule, state, since, incident, value, evaluated_at FROM alerts ORDER BY name;

-- name: upsert_alert
INSERT OR REPLACE INTO alerts (name, rule, state, since, incident, value, evaluated_at)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: delete_alert
DELETE FROM alerts WHERE name = ?;

-- name: insert_alert_notice
INSERT INTO alert_notices (alert, notifier, payload, created_at, next_at) VALUES (?, ?, ?, ?, ?);

-- name: take_alert_notices
UPDATE alert_notices SET deliveries = deliveries + 1
WHERE id IN (SELECT id FROM alert_notices WHERE next_at IS NOT NULL AND next_at <= :now
             ORDER BY next_at, id LIMIT :limit)
RETURNING id, notifier, payload, deliveries, next_at;

-- name: alert_notice_delivered
UPDATE alert_notices SET delivered_at = ?, next_at = NULL, error = NULL WHERE id = ?;

-- name: alert_notice_failed
UPDATE alert_notices SET next_at = ?, error = ? WHERE id = ?;

-- Summaries of runs (keel.store.summaries), each one grouped read of an index: the runs
-- created, and ended, in each step of a window (runs_by_created, runs_ended); CAST
-- truncates, and the rows are at or after :since, so it is the floor. (The failed runs
-- by error type and node are grouped over run_lists.runs_where, as count_runs counts.)

-- name: runs_started_per_step
SELECT CAST((created_at - :since) / :step AS INTEGER) AS place, count(*) FROM runs
WHERE created_at >= :since AND created_at < :until
GROUP BY place;

-- name: runs_ended_per_step
SELECT CAST((ended_at - :since) / :step AS INTEGER) AS place, status, count(*) FROM runs
WHERE ended_at >= :since AND ended_at < :until
GROUP BY place, status;

-- The ledger of calls steps make outward (keel.store.model_calls, sqlstore.model_calls).
-- A call counts against a budget at its cost once ended, at its reservation while sent.
-- What a run or a workflow has spent is read under the write lock: no other call is
-- recorded between the sum and the insert.

-- name: run_spent
SELECT coalesce(sum(CASE WHEN state = 'sent' THEN reserved ELSE cost END), 0)
FROM model_calls WHERE run_id = ?;

-- name: workflow_spent
-- every run of the workflow, calls sent at or after the day's start
SELECT coalesce(sum(CASE WHEN state = 'sent' THEN reserved ELSE cost END), 0)
FROM model_calls WHERE workflow = ? AND sent_at >= ?;

-- name: next_model_call_seq
SELECT coalesce(max(seq) + 1, 0) FROM model_calls
WHERE run_id = ? AND node = ? AND item = ?;

-- name: insert_model_call
INSERT INTO model_calls (id, run_id, workflow, node, item, attempt, seq, kind, state,
                         fingerprint, provider, model, request, reserved, sent_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'sent', ?, ?, ?, ?, ?, ?);

-- name: end_model_call
-- only a call still sent: the first end wins, a later one changes nothing
UPDATE model_calls SET state = ?, response = ?, error = ?, finish_reason = ?,
    input_tokens = ?, output_tokens = ?, cached_input_tokens = ?, reasoning_tokens = ?,
    usage_reported = ?, cost = ?, price_source = ?, latency = ?, ended_at = ?
WHERE id = ? AND state = 'sent'
RETURNING workflow, kind, model, reserved;

-- name: add_model_call_sums
-- a call's part of its group's sums (negative: taken back from its 'sent' row)
INSERT INTO model_call_sums (workflow, kind, model, state, calls, input_tokens,
                             output_tokens, cached_input_tokens, reasoning_tokens, cost,
                             estimated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (workflow, kind, model, state) DO UPDATE SET
    calls = model_call_sums.calls + excluded.calls,
    input_tokens = model_call_sums.input_tokens + excluded.input_tokens,
    output_tokens = model_call_sums.output_tokens + excluded.output_tokens,
    cached_input_tokens = model_call_sums.cached_input_tokens + excluded.cached_input_tokens,
    reasoning_tokens = model_call_sums.reasoning_tokens + excluded.reasoning_tokens,
    cost = model_call_sums.cost + excluded.cost,
    estimated = model_call_sums.estimated + excluded.estimated;

-- name: select_model_calls
SELECT id, run_id, workflow, node, item, attempt, seq, kind, state, fingerprint, provider,
       model, request, reserved, sent_at, response, error, finish_reason, input_tokens,
       output_tokens, cached_input_tokens, reasoning_tokens, usage_reported, cost,
       price_source, latency, ended_at
FROM model_calls
WHERE run_id = :run AND (:node IS NULL OR node = :node)
ORDER BY node, item, seq;

-- name: run_spend
SELECT node, count(*), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens),
       sum(reasoning_tokens), sum(CASE WHEN state = 'sent' THEN reserved ELSE cost END),
       sum(state = 'possibly_billed'), sum(NOT usage_reported)
FROM model_calls WHERE run_id = ?
GROUP BY node;

-- name: workflow_spend
SELECT workflow, model, count(*), sum(input_tokens), sum(output_tokens),
       sum(cached_input_tokens), sum(reasoning_tokens),
       sum(CASE WHEN state = 'sent' THEN reserved ELSE cost END),
       sum(state = 'possibly_billed'), sum(NOT usage_reported)
FROM model_calls
WHERE sent_at >= :since AND (:workflow IS NULL OR workflow = :workflow)
GROUP BY workflow, model;

-- name: run_call_sums
-- a run's calls summed per node, item, kind, model and state (keel show, the run's ledger)
SELECT node, item, kind, model, state, count(*), sum(input_tokens), sum(output_tokens),
       sum(cached_input_tokens), sum(reasoning_tokens),
       sum(CASE WHEN state = 'sent' THEN reserved ELSE cost END), sum(NOT usage_reported)
FROM model_calls WHERE run_id = ?
GROUP BY node, item, kind, model, state;

-- name: llm_call_sums
-- every call summed per workflow, kind, model and state (the server's LLM metrics), as
-- the writes keep them (model_call_sums): a row per group, whatever the calls recorded
SELECT workflow, kind, model, state, calls, input_tokens, output_tokens,
       cached_input_tokens, reasoning_tokens, cost, estimated
FROM model_call_sums;

-- Retention (keel.store.tombstones, keel prune). A run's payload bytes are counted as
-- stored (JSON text, as UTF-8 bytes).

-- name: prune_candidates
-- ended runs not pruned yet that ended before :before (of :workflow when given), after
-- the position (:after_at, :after_id), by end time (runs_to_prune: the status is written
-- as no index serves it, or SQLite's planner reads every ended run through runs_by_status
-- and sorts them, for each batch); first whether a
-- parent or child of each is still going, and the bytes of its input and output, then
-- select_run's columns
SELECT (SELECT p.id FROM runs p WHERE p.id = runs.parent_run
        AND p.status NOT IN ('succeeded', 'failed', 'cancelled')) AS going_parent,
       (SELECT c.id FROM runs c WHERE c.parent_run = runs.id
        AND c.status NOT IN ('succeeded', 'failed', 'cancelled') LIMIT 1) AS going_child,
       length(CAST(input AS BLOB)) + coalesce(length(CAST(output AS BLOB)), 0) AS own_bytes,
       id, workflow, spec_version, status, input, output, reason, created_at, updated_at,
       last_seq, head_hash, origin, parent_run, parent_node, started_by, late, failed_node,
       error_type, ended_at, pruned_at
FROM runs
WHERE pruned_at IS NULL AND ended_at IS NOT NULL AND ended_at < :before
  AND (ended_at, id) > (:after_at, :after_id)
  AND status || '' IN ('succeeded', 'failed', 'cancelled')
  AND (:workflow IS NULL OR workflow = :workflow)
ORDER BY ended_at, id LIMIT :limit;

-- name: prune_runs_again
-- prune_candidates' columns for the runs :runs (a JSON array), read again under the lock
SELECT (SELECT p.id FROM runs p WHERE p.id = runs.parent_run
        AND p.status NOT IN ('succeeded', 'failed', 'cancelled')) AS going_parent,
       (SELECT c.id FROM runs c WHERE c.parent_run = runs.id
        AND c.status NOT IN ('succeeded', 'failed', 'cancelled') LIMIT 1) AS going_child,
       length(CAST(input AS BLOB)) + coalesce(length(CAST(output AS BLOB)), 0) AS own_bytes,
       id, workflow, spec_version, status, input, output, reason, created_at, updated_at,
       last_seq, head_hash, origin, parent_run, parent_node, started_by, late, failed_node,
       error_type, ended_at, pruned_at
FROM runs WHERE id IN (SELECT value FROM json_each(:runs));

-- name: prune_count_events
SELECT run_id, count(*), coalesce(sum(length(CAST(data AS BLOB))), 0) FROM events
WHERE run_id IN (SELECT value FROM json_each(:runs)) GROUP BY run_id;

-- name: prune_count_logs
SELECT run_id, count(*), coalesce(sum(length(CAST(message AS BLOB))), 0) FROM task_logs
WHERE run_id IN (SELECT value FROM json_each(:runs)) GROUP BY run_id;

-- name: prune_count_calls
SELECT run_id, count(*),
       coalesce(sum(length(CAST(request AS BLOB)) + coalesce(length(CAST(response AS BLOB)), 0)
                    + coalesce(length(CAST(error AS BLOB)), 0)), 0)
FROM model_calls WHERE run_id IN (SELECT value FROM json_each(:runs)) GROUP BY run_id;

-- name: prune_events
DELETE FROM events WHERE run_id IN (SELECT value FROM json_each(:runs));

-- name: prune_task_logs
DELETE FROM task_logs WHERE run_id IN (SELECT value FROM json_each(:runs));

-- name: prune_model_calls
-- (model_call_sums keeps counting them: it counts every call ever made)
DELETE FROM model_calls WHERE run_id IN (SELECT value FROM json_each(:runs));

-- name: prune_ready
DELETE FROM ready WHERE run_id IN (SELECT value FROM json_each(:runs));

-- name: prune_timers
DELETE FROM timers WHERE run_id IN (SELECT value FROM json_each(:runs));

-- name: prune_waits
DELETE FROM waits WHERE run_id IN (SELECT value FROM json_each(:runs));

-- name: prune_outbox
DELETE FROM outbox WHERE run_id IN (SELECT value FROM json_each(:runs));

-- name: prune_run_rows
-- the runs' payloads cleared, their heads kept; updated_at: the change feed sees it
UPDATE runs SET input = 'null', output = NULL, pruned_at = :at,
                updated_at = max(updated_at, :at)
WHERE id IN (SELECT value FROM json_each(:runs));

-- name: insert_tombstone
INSERT INTO tombstones (run_id, pruned_at, data) VALUES (?, ?, ?);

-- name: select_tombstone
SELECT run_id, pruned_at, data FROM tombstones WHERE run_id = ?;

-- name: select_tombstones
-- after the position (:after_at, :after_id), oldest first
SELECT run_id, pruned_at, data FROM tombstones
WHERE (pruned_at, run_id) > (:after_at, :after_id)
ORDER BY pruned_at, run_id LIMIT :limit;

-- Signed checkpoints of run heads and the keys that signed (keel.store.heads,
-- keel.audit.checkpoints).

-- name: select_run_heads
-- every run's head, by id: what a checkpoint signs (a read of three columns per run)
SELECT id, last_seq, head_hash FROM runs ORDER BY id;

-- name: select_run_heads_of_workflow
SELECT id, last_seq, head_hash FROM runs WHERE workflow = ? ORDER BY id;

-- name: insert_checkpoint
INSERT INTO checkpoints (at, by, workflow, key_id, signature, runs, heads)
VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id;

-- name: select_checkpoints
-- newest first, without their heads (a listing reads no megabytes)
SELECT id, at, by, workflow, key_id, runs FROM checkpoints ORDER BY id DESC LIMIT ?;

-- name: select_checkpoint
SELECT id, at, by, workflow, key_id, runs, signature, heads FROM checkpoints WHERE id = ?;

-- name: insert_audit_key
-- the first use is kept: a key used again is already known
INSERT INTO audit_keys (key_id, public_key, first_used) VALUES (?, ?, ?)
ON CONFLICT (key_id) DO NOTHING;

-- name: select_audit_keys
SELECT key_id, public_key, first_used FROM audit_keys ORDER BY first_used, key_id;

-- name: checkpoint_since
-- a checkpoint of every run made after a time (a periodic one of this period)
SELECT 1 FROM checkpoints WHERE at > ? AND workflow IS NULL LIMIT 1;

-- The sweep of blobs nothing names (keel.store.sqlstore.sweeping; migration 0021): the
-- rows naming blobs, each by its partial index (the WHERE as the index's, word for word).

-- name: blob_naming_events
-- a page of the events that name blobs (events_naming_blobs), after (:after_run, :after_seq)
SELECT run_id, seq, data FROM events
WHERE substr(data, 1, 10) = '{"$blobs":' AND (run_id, seq) > (:after_run, :after_seq)
ORDER BY run_id, seq LIMIT :limit;

-- name: blob_naming_runs
-- the runs whose input or output column holds a blob's name (runs_input_blobs,
-- runs_output_blobs)
SELECT id, input FROM runs WHERE substr(input, 1, 7) = 'sha256:'
UNION ALL
SELECT id, output FROM runs WHERE substr(output, 1, 7) = 'sha256:';

-- name: select_blob_sizes
SELECT name, size FROM blobs;

-- name: delete_blobs
DELETE FROM blobs WHERE name IN (SELECT value FROM json_each(:names));
