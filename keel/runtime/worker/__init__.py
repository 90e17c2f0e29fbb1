"""The worker: the claim -> execute -> record loop and the pumps beside it (timers,
outbox delivery, lease keeping), its settings, its lease owner and its presence."""
