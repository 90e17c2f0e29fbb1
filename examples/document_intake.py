"""Document intake: load, extract, validate, human review, index.

When validation finds problems, the run pauses at an approval for the intake team (no
thread or worker waits meanwhile); a person approves, with notes, or rejects:

    keel run examples/document_intake.py --input @examples/document.json
    keel approvals
    keel approve RUN review --data '{"note": "total is on page 2"}' --by ann
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import keel


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


@keel.task(timeout="1m")
def load(uri: str, text: str) -> str:
    """Fetch the document's text (here it is given inline)."""
    if not text.strip():
        raise ValueError(f"{uri} is empty")
    return text


@keel.task(retries=2, timeout="2m")
def extract_fields(text: str, kind: str) -> Extracted:
    """Read ``key: value`` lines (an LLM extraction step in real life)."""
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


class ReviewNotes(BaseModel):
    """What the reviewer fills in when they approve."""

    note: str = ""
    total: str = Field(
        "", pattern=r"^(\d+\.\d{2})?$", description="the total, if extraction missed it: 118.00"
    )


@keel.task
def index(uri: str, fields: dict[str, str]) -> str:
    """Write the document to the search index; returns its index id."""
    return f"idx:{uri}:{len(fields)}"


@keel.workflow
def document_intake(document: Document) -> dict[str, object]:
    """Ingest one document; a person reviews it when validation finds problems."""
    text = load(document.uri, document.text)
    extracted = extract_fields(text, document.kind)
    check = check_fields(extracted, ["number", "total"])
    reviewed = keel.approval(
        "Review extracted fields",
        id="review",
        description="${{ input.document.uri }}: ${{ nodes.check_fields.output.problems }}",
        assignees=["intake-team"],
        form=ReviewNotes,
        timeout="3d",
        when=~check.valid,
    )
    indexed = index(document.uri, extracted.fields, after=[reviewed])
    return {"index_id": indexed, "problems": check.problems, "review": reviewed}
