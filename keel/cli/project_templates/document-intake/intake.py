"""Document intake: load, extract fields, check them, have a person review the document
when the check finds problems, index it.

The review is an approval: the run pauses there (no thread or worker waits meanwhile)
until a person approves, with notes, or rejects:

    keel run intake.py --input @input.json          # complete: no review needed
    keel run intake.py --input @incomplete.json     # waits for the review
    keel approvals                                  # from another shell
    keel approve RUN review --data '{"note": "total is on page 2"}' --by ann
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import keel

#: the fields every document must have; a document missing one goes to review
REQUIRED = ["number", "total"]


class Document(BaseModel):
    uri: str
    text: str
    kind: str = "invoice"


class Extracted(BaseModel):
    kind: str
    fields: dict[str, str]


class Check(BaseModel):
    valid: bool
    problems: list[str]


class ReviewNotes(BaseModel):
    """What the reviewer fills in when they approve."""

    note: str = ""
    total: str = Field(
        "", pattern=r"^(\d+\.\d{2})?$", description="the total, if extraction missed it: 118.00"
    )


@keel.task(timeout="1m")
def load(uri: str, text: str) -> str:
    """Fetch the document's text (here it is given inline; object storage in real life)."""
    if not text.strip():
        raise keel.NonRetryable(f"{uri} is empty")
    return text


@keel.task(retries=2, timeout="2m")
def extract_fields(text: str, kind: str) -> Extracted:
    """Read ``key: value`` lines (an OCR or LLM extraction step in real life)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields[key.strip().lower()] = value.strip()
    return Extracted(kind=kind, fields=fields)


@keel.task
def check_fields(extracted: Extracted, required: list[str]) -> Check:
    """Flag missing required fields so a person looks at them."""
    missing = [name for name in required if name not in extracted.fields]
    return Check(valid=not missing, problems=[f"missing {name}" for name in missing])


@keel.task
def index(uri: str, fields: dict[str, str], review: ReviewNotes | None) -> str:
    """Write the document to the search index (your search service in real life);
    returns its index id. ``review`` is None when no review was needed."""
    if review is not None and review.total:
        fields = {**fields, "total": review.total}
    return f"idx:{uri}:{len(fields)}"


@keel.workflow
def intake(document: Document) -> dict[str, object]:
    """Ingest one document; a person reviews it when the check finds problems."""
    text = load(document.uri, document.text)
    extracted = extract_fields(text, document.kind)
    check = check_fields(extracted, REQUIRED)
    review = keel.approval(
        "Review extracted fields",
        id="review",
        description="${{ input.document.uri }}: ${{ nodes.check_fields.output.problems }}",
        assignees=["intake-team"],
        form=ReviewNotes,
        timeout="3d",
        when="!nodes.check_fields.output.valid",  # a CEL expression; or ~check.valid
    )
    indexed = index(document.uri, extracted.fields, review)
    return {"index_id": indexed, "problems": check.problems, "review": review}
