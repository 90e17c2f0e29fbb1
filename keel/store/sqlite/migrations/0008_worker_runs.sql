-- The runs a live worker executes, and only those (keel run, keel resume: a JSON array);
-- NULL for a worker that takes any run from its queues (keel worker).

ALTER TABLE workers ADD COLUMN runs TEXT;
