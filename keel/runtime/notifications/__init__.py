"""Notifications: which events call for one, the outbox, and the notifiers that deliver."""
