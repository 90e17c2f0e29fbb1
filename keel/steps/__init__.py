"""keel's built-in steps (``http``, ``shell``, ``sql``, ``email``): the tasks that run them.

The nodes are defined in ``keel.spec.step_nodes``; each kind's task lives in its own
module here (``STEP_TASKS`` names them), and every worker may run them. They share
``keel.steps.filling``: the step's definition checked again and its templates filled
with the run's values and the secrets they name.
"""
