"""The commented transfer config that ``transfer-init`` writes.

Every field appears with its default and a line on what it does, and each filter level has
a commented example, so the file documents itself. Read back, it gives exactly the defaults
(with the two project labels filled in); a test holds it to that.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from planner.safewrite import NotARegularFile, replace_file, write_target

__all__ = ["TemplateExists", "render_template", "write_template"]


class TemplateExists(FileExistsError):
    """The target file exists and overwriting it was not asked for."""


_TEMPLATE = """\
# xnatctl transfer config: copies one XNAT project to another.
# Every field below shows its default. Delete what you do not change, or keep it as a note.

# Project label on the source server, and on the destination server.
source_project: {source}
dest_project: {dest}

# Skip subjects that an earlier run completed (the state DB remembers them).
# false: look at every subject again on every run.
sync_new_only: true

# Stop the run after this many consecutive subjects failed (at least 1).
max_failures: 5

# Extra attempts for a scan after a transient failure (0 = no retry), and the seconds
# before the first retry (doubled for each further one).
scan_retry_count: 3
scan_retry_delay: 5.0

# After the transfer, read both sides again and compare scans, file counts, sizes and
# checksums.
verify_after_transfer: true

# Scans transferred in parallel (at least 1). --workers on the command line overrides it.
scan_workers: 4

# Subjects and experiments shared into the source project from another project belong to
# that project: false reports them in the plan and leaves them out; true copies them as
# ordinary members of the destination project. --copy-shared on the command line sets it.
copy_shared: false

# Imported DICOM goes through the destination's site anonymization script (XNAT runs it by
# default). true sends prevent_anon=true so the files arrive byte for byte as on the source.
# WARNING: that script may be the destination's privacy policy (it may remove names, dates
# or IDs). Set true only when the destination's administrators agree.
prevent_anon: false

# XNAT builds a session from each import's files alone and, by default
# (preventCrossModalityMerge), refuses to merge it into a session of another type: an RT
# structure set, a secondary capture or a CT series of an MR session is refused. false fails
# such a scan with what to do; true uploads its DICOM into the scan as plain files instead.
# WARNING: the destination's site anonymization script does not run on those files.
cross_modality_as_files: false

# What to transfer. Each filter has a sync_type:
#   all      keep everything (the default)
#   none     keep nothing
#   include  keep only what matches an entry
#   exclude  keep everything except what matches an entry
# Entries match exactly or as shell-style patterns: T1*, *_QC, fMRI_[0-9].
# items are only used with include and exclude (and are then required).
filtering:
  # Project-level resources, by label.
  project_resources:
    sync_type: all
    # sync_type: exclude
    # items: [SCRATCH, "*_tmp"]

  # Subject-level resources, by label. Subjects themselves are always transferred.
  subject_resources:
    sync_type: all

  # Experiments that are not imaging sessions (questionnaires, clinical assessments),
  # by xsiType. A kept one is transferred whole.
  subject_assessors:
    sync_type: all
    # sync_type: include
    # xsi_types:
    #   - xsi_type: xnat:qcManualAssessorData

  # Imaging sessions, by xsiType. A listed type can carry nested filters for its content;
  # a kept type without an entry keeps all its content. Under exclude the listed types are
  # left out entirely.
  imaging_sessions:
    sync_type: all
    # sync_type: include
    # xsi_types:
    #   - xsi_type: xnat:mrSessionData
    #     scan_types:            # scans, by scan type
    #       sync_type: include
    #       items: ["T1*", FLAIR]
    #     scan_resources:        # resources of those scans, by label
    #       sync_type: exclude
    #       items: [SNAPSHOTS]
    #     resources:             # session-level resources, by label
    #       sync_type: all
    #     session_assessors:     # session assessors, by xsiType
    #       sync_type: exclude
    #       items: ["icr:*"]
    #   - xsi_type: xnat:petSessionData

  # Scan resources of every session, by label. A scan resource is kept only when this and
  # its session type's own scan_resources both allow it. Leaving out DICOM leaves the
  # scans' DICOM behind while their other resources still go.
  scan_resources:
    sync_type: all
    # sync_type: exclude
    # items: [SNAPSHOTS]
"""


def _quote(label: str) -> str:
    """A double-quoted YAML scalar: labels such as 001 or yes must stay text."""
    return json.dumps(label, ensure_ascii=False)


def render_template(source_project: str, dest_project: str) -> str:
    return _TEMPLATE.format(source=_quote(source_project), dest=_quote(dest_project))


def write_template(
    path: Path, source_project: str, dest_project: str, *, force: bool = False
) -> Path:
    """Write the template; an existing file is kept unless ``force`` is given."""
    given = Path(path)
    text = render_template(source_project, dest_project)
    if given.is_dir():
        raise TemplateExists(f"{given} is a directory; give a file name such as transfer.yaml")
    try:
        path = write_target(given)  # a symlink is written through, a FIFO or device refused
    except NotARegularFile as exc:
        raise TemplateExists(str(exc)) from None
    if path.exists() and not force:
        raise TemplateExists(
            f"{given} already exists; not overwriting it (use --force to replace it)"
        )
    if force:
        replace_file(path, text, mode=0o644)
        return given
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    exists = f"{given} already exists; not overwriting it (use --force to replace it)"
    try:
        tmp.write_text(text, encoding="utf-8")
        # link() fails if someone created the file meanwhile: no silent overwrite
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise TemplateExists(exists) from None
        except OSError:
            if path.exists() or path.is_symlink():
                raise TemplateExists(exists) from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return given
