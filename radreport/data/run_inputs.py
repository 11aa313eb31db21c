"""What a data run reads, resolved before the pipeline starts: the manifest path and a
content fingerprint of everything it points at.

The fingerprint is a pipeline parameter, so ZenML's cache sees the bytes of the input
(an unchanged folder is a cache hit, one changed file a new dataset version); a path
alone would hit the cache after the files under it changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from radreport.data.manifest import load_manifest
from radreport.data.settings import SyntheticSettings
from radreport.data.synthetic import generate_demo_studies
from radreport.dicom.study import study_files
from radreport.folder_lock import FolderLock

logger = logging.getLogger(__name__)

GENERATOR_MARKER = "generator.json"
MANIFEST_NAME = "manifest.csv"


@dataclass(frozen=True)
class RunInputs:
    manifest_path: Path
    fingerprint: str


def demo_studies_dir(settings: SyntheticSettings) -> Path:
    """The folder of the demo studies these settings make: one per settings digest under
    `out_dir`, so that a run with other settings never rewrites files that a running one
    fingerprinted and is still reading."""
    digest = hashlib.blake2b(_wanted_marker(settings).encode(), digest_size=6).hexdigest()
    return settings.out_dir.resolve() / digest


def ensure_demo_studies(settings: SyntheticSettings) -> Path:
    """The demo manifest, generated only when missing. Two runs starting at once on a fresh
    machine generate it once: the second waits for the first instead of reading files being
    written."""
    out_dir = demo_studies_dir(settings)
    if _up_to_date(settings, out_dir):  # read-only use: no lock, so no write access needed
        return out_dir / MANIFEST_NAME
    lock = FolderLock(
        out_dir, on_wait=lambda: logger.info("Waiting for the demo studies in %s", out_dir)
    )
    try:
        if _up_to_date(settings, out_dir):  # another run generated them while this waited
            return out_dir / MANIFEST_NAME
        return _generate(settings, out_dir)
    finally:
        lock.release()


def _wanted_marker(settings: SyntheticSettings) -> str:
    # Worker count changes no byte of the output, so it neither names a folder nor forces
    # a rewrite.
    return settings.model_dump_json(exclude={"out_dir", "workers"})


def _up_to_date(settings: SyntheticSettings, out_dir: Path) -> bool:
    marker = out_dir / GENERATOR_MARKER
    return (
        (out_dir / MANIFEST_NAME).is_file()
        and marker.is_file()
        and marker.read_text() == _wanted_marker(settings)
    )


def _generate(settings: SyntheticSettings, out_dir: Path) -> Path:
    # Written last: a folder whose generation was cut off is generated again, never read.
    (out_dir / GENERATOR_MARKER).unlink(missing_ok=True)
    manifest = generate_demo_studies(
        out_dir,
        n_studies=settings.n_studies,
        slices=(settings.min_slices, settings.max_slices),
        size=settings.size,
        seed=settings.seed,
        workers=settings.workers,
    )
    (out_dir / GENERATOR_MARKER).write_text(_wanted_marker(settings))
    return manifest


def fingerprint_inputs(manifest_path: Path, columns: Mapping[str, str]) -> str:
    """BLAKE2b over the manifest and every file in the DICOM folders it names."""
    # Loaded first: a manifest that cannot be read fails with its one-line ManifestError.
    manifest = load_manifest(manifest_path, columns)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(dict(sorted(columns.items()))).encode())
    digest.update(manifest_path.read_bytes())
    for folder in sorted({d for d in manifest.studies["dicom_dir"] if d}):
        # Ingestion's own walk (linked folders followed), so that a changed file in a linked
        # series is a new input; an entry it cannot read counts by name, as ingestion
        # quarantines it.
        files, not_files = study_files(Path(folder))
        for file in files:
            digest.update(os.fsencode(file.relative_to(folder)))  # names need not be UTF-8
            digest.update(_content_digest(file))
        for entry in not_files:
            digest.update(os.fsencode(Path(entry.path).relative_to(folder)))
    return digest.hexdigest()


def _content_digest(file: Path) -> bytes:
    try:
        with file.open("rb") as stream:
            return hashlib.file_digest(stream, "blake2b").digest()
    except OSError as error:
        return f"unreadable: {error.errno}".encode()


def resolve_run_inputs(
    source: str, synthetic: SyntheticSettings, manifest_path: Path | None, columns: Mapping
) -> RunInputs:
    if source == "synthetic":
        manifest_path = ensure_demo_studies(synthetic)
    elif manifest_path is None:
        raise ValueError("data.source is 'manifest' but data.manifest.path is not set")
    return RunInputs(Path(manifest_path), fingerprint_inputs(Path(manifest_path), columns))
