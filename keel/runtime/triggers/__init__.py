"""What fires a workflow's triggers (``keel.spec.triggers``): schedules, webhooks,
events, files, other workflows ending. Each firing goes through ``firing.fire``."""
