"""Book a trip as a saga: flight, then hotel, then car. If a later booking fails, the
ones already made are cancelled, newest first, and the travel desk is told.

Each booking declares its compensation (``compensate=``); keel runs them only when the
run fails, in reverse order of completion, each with its own retry policy, and records
them in the run's history. Cars are sold out in Reykjavik, so this fails and undoes:

    keel run examples/trip.py -i traveller=Ada -i city=Reykjavik
    keel history <run id>          # ... run_failing, compensate:hotel, compensate:flight
    keel run examples/trip.py -i traveller=Ada -i city=Lisbon      # all three booked

The bookings are simulated (no network): each returns a reference the cancellation
needs, as a real supplier's API would.
"""

from __future__ import annotations

import hashlib
from typing import Any

import keel


class SoldOut(keel.NonRetryable):
    """Nothing to book: asking again will not help, so it is not retried."""


def _reference(kind: str, traveller: str, city: str) -> str:
    digest = hashlib.sha256(f"{kind}:{traveller}:{city}".encode()).hexdigest()[:6].upper()
    return f"{kind[0].upper()}-{digest}"


@keel.task(retries=5, retry=keel.RetryPolicy(initial_backoff=0.5))
def cancel_booking(output: dict[str, Any]) -> str:
    """Undo one booking; given what the booking step returned (its ``output``)."""
    keel.context().logger.info("cancelling %s", output["reference"])
    return f"cancelled {output['reference']}"


@keel.task(compensate=cancel_booking)
def book_flight(traveller: str, city: str) -> dict[str, Any]:
    return {"kind": "flight", "reference": _reference("flight", traveller, city)}


@keel.task(compensate=cancel_booking)
def book_hotel(traveller: str, city: str, flight: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "hotel", "reference": _reference("hotel", traveller, city),
            "check_in": f"after {flight['reference']} lands"}  # fmt: skip


@keel.task(compensate=cancel_booking)
def book_car(traveller: str, city: str, hotel: dict[str, Any]) -> dict[str, Any]:
    if city == "Reykjavik":
        raise SoldOut(f"no cars left in {city}")
    return {"kind": "car", "reference": _reference("car", traveller, city),
            "deliver_to": hotel["reference"]}  # fmt: skip


@keel.task
def tell_travel_desk(failure: dict[str, Any]) -> str:
    """The run's failure handler: gets what failed and what was undone."""
    undone = ", ".join(f"{c['node']} {c['status']}" for c in failure["compensations"])
    return f"trip failed at {failure['node']} ({failure['reason']}); compensations: {undone}"


@keel.workflow(on_failure=tell_travel_desk)
def trip(traveller: str, city: str) -> dict[str, Any]:
    """Flight, hotel and car for one traveller, all or nothing."""
    flight = book_flight(traveller, city)
    hotel = book_hotel(traveller, city, flight)
    car = book_car(traveller, city, hotel)
    return {"flight": flight, "hotel": hotel, "car": car}
