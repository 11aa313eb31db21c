"""Validated settings of the data pipeline: demo studies, manifest, DICOM ingestion,
de-identification and splits. The root config composes these sections."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from radreport.config_loading import ConfigSection

MANIFEST_FIELDS = ("study_id", "patient_id", "impression", "report", "dicom_dir", "labels")
REQUIRED_MANIFEST_FIELDS = ("study_id", "patient_id", "impression", "report")

GeometryPolicy = Literal["quarantine", "resample"]


class SyntheticSettings(ConfigSection):
    """The bundled demo studies: seeded thorax CT phantoms with findings and reports."""

    out_dir: Path = Path("outputs/demo_studies")
    n_studies: int = Field(200, ge=1)
    min_slices: int = Field(16, ge=2)
    max_slices: int = Field(32, ge=2)
    size: int = Field(128, ge=32, description="rows = columns of every slice")
    seed: int = 0
    workers: int = Field(2, ge=1, description="processes writing studies")

    @model_validator(mode="after")
    def _slice_range_is_ordered(self) -> SyntheticSettings:
        if self.min_slices > self.max_slices:
            raise ValueError("min_slices must not exceed max_slices")
        return self


class ManifestSettings(ConfigSection):
    """Where the bring-your-own-data manifest is and how its columns map onto ours."""

    path: Path | None = None
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="our field -> the manifest's column, e.g. {report: findings}",
    )

    @field_validator("path")
    @classmethod
    def _home_expanded(cls, path: Path | None) -> Path | None:
        # As llm.base_model: `~/data/manifest.csv` is the user's, not a folder named `~`.
        return path.expanduser() if path is not None else None

    @field_validator("columns")
    @classmethod
    def _maps_known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(MANIFEST_FIELDS))
        if unknown:
            raise ValueError(f"unknown manifest fields {unknown}; known: {list(MANIFEST_FIELDS)}")
        return columns


class DicomSettings(ConfigSection):
    """CT ingestion: series selection, geometry checks, size guards, output tensor."""

    depth: int = Field(32, ge=1, description="slices of the stored volume")
    height: int = Field(128, ge=8)
    width: int = Field(128, ge=8)
    storage_dtype: Literal["uint8", "float16"] = "uint8"
    min_slices: int = Field(10, ge=1)
    spacing_rtol: float = Field(0.01, gt=0, description="allowed deviation from median spacing")
    max_tilt_degrees: float = Field(1.0, ge=0)
    irregular_spacing: GeometryPolicy = "quarantine"
    gantry_tilt: GeometryPolicy = "quarantine"
    skip_derived: bool = Field(True, description="skip DERIVED / SECONDARY images")
    check_patient_id: bool = Field(
        True, description="quarantine images whose PatientID differs from the manifest's"
    )
    when_no_usable_series: Literal["text_only", "reject_study"] = Field(
        "text_only", description="keep a study whose images all failed for the text path, or not"
    )
    workers: int = Field(2, ge=1, description="processes; 1 runs in the calling process")
    max_rows_columns: int = Field(4096, ge=1)
    max_frames: int = Field(4096, ge=1)
    max_pixel_bytes: int = Field(2**31, ge=1, description="declared pixel bytes per file")


class DeidSettings(ConfigSection):
    """Keyed pseudonymisation. The key comes from `key_env`, else `key`, else the demo key."""

    key_env: str = Field("RADREPORT_DEID_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    key: SecretStr | None = None
    require_key: bool = Field(False, description="refuse the built-in demo key")
    # At most a century: dates move back by up to this many days, and a shift of millions
    # of days took every DICOM date before the year 1, where Python's dates end.
    max_date_shift_days: int = Field(730, ge=1, le=36_500)


class SplitSettings(ConfigSection):
    """Patient-level split fractions and the salt of the hash that assigns them."""

    train: float = Field(0.8, ge=0, le=1)
    val: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    salt: str = "radreport-splits-v1"

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitSettings:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("train + val + test must sum to 1")
        return self


class DataSettings(ConfigSection):
    """All data sections together, for callers that want one object."""

    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    manifest: ManifestSettings = Field(default_factory=ManifestSettings)
    dicom: DicomSettings = Field(default_factory=DicomSettings)
    deid: DeidSettings = Field(default_factory=DeidSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
