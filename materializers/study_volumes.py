"""Store the image tensors of a dataset as one npz of plain arrays (never pickled)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from zenml.enums import ArtifactType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from radreport.data.study_volumes import StudyVolumes

FILE_NAME = "volumes.npz"


class StudyVolumesMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (StudyVolumes,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: StudyVolumes) -> None:
        with tempfile.TemporaryDirectory() as local:
            data.save(Path(local) / FILE_NAME)
            fileio.copy(os.path.join(local, FILE_NAME), os.path.join(self.uri, FILE_NAME))

    def load(self, data_type: type[Any]) -> StudyVolumes:
        with tempfile.TemporaryDirectory() as local:
            fileio.copy(os.path.join(self.uri, FILE_NAME), os.path.join(local, FILE_NAME))
            return StudyVolumes.load(Path(local) / FILE_NAME)

    def extract_metadata(self, data: StudyVolumes) -> dict[str, Any]:
        return {
            "studies": len(data),
            "shape": list(data.array.shape),
            "dtype": str(data.array.dtype),
            "channels": list(data.channels),
        }
