"""Whose is an experiment label on the destination, read just before writing into it.

XNAT resolves ``/data/projects/{P}/subjects/{S}/experiments/{E}`` by the label ``E`` within
the project alone: when ``E`` belongs to another subject of ``P``, a ``PUT`` there (of a date,
a resource, an assessor, a document) lands in that other subject's experiment. A plan is made
from a snapshot, so apply asks again, once per experiment and before its first write, whether
the label is still absent or still the planned subject's.

The question costs one small request: the project's experiment listing filtered by label
(``QueryOrganizerResource.populateQuery`` turns a query parameter named like a column, here
``label``, into a criterion), with only the columns the answer needs. Rows are filtered here
as well, so a server that ignores the filter only costs a longer listing.
"""

from __future__ import annotations

from planner import restpaths as rest
from planner.backend import XnatBackend
from planner.errors import NotFound
from planner.rows import get_listing

COLUMNS = "ID,label,subject_ID,subject_label"


def experiment_home(backend: XnatBackend, project: str, label: str) -> str | None:
    """The label of the subject that holds experiment ``label`` in ``project``, or None."""
    path = rest.project_experiments(project)
    try:
        rows = get_listing(backend, path, {"columns": COLUMNS, "label": label})
    except NotFound:
        return None
    for row in rows:
        if str(row.get("label", "")) == label:
            return str(row.get("subject_label", "")) or _subject_label(
                backend, project, str(row.get("subject_ID", ""))
            )
    return None


def _subject_label(backend: XnatBackend, project: str, subject_id: str) -> str:
    """A subject's label from its accession ID, for a listing that left ``subject_label``
    out: comparing an ID with a label would call every experiment someone else's."""
    path = rest.project_subjects(project)
    for row in get_listing(backend, path, {"columns": "ID,label"}):
        if str(row.get("ID", "")) == subject_id:
            return str(row.get("label", ""))
    return subject_id


def home_conflict(backend: XnatBackend, project: str, subject: str, label: str) -> str:
    """Why writing into ``subject``'s experiment ``label`` would touch another subject's data,
    or ``""`` when the label is free or already the subject's."""
    home = experiment_home(backend, project, label)
    if home is None or home == subject:
        return ""
    return (
        f"conflict: experiment {label} now belongs to subject {home} on the destination, "
        f"not to {subject}; nothing was written into it"
    )
