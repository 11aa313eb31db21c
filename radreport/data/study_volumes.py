"""The image tensors of a dataset: one (channels, depth, height, width) volume per study
with images, stacked, with the pseudonymous study ids that index them. Stored as npz
(arrays only, never pickled objects)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radreport.dicom.windows import CHANNELS


@dataclass(frozen=True)
class StudyVolumes:
    study_ids: tuple[str, ...]
    array: np.ndarray  # (studies, channels, depth, height, width), uint8 or float16
    channels: tuple[str, ...] = CHANNELS

    def __len__(self) -> int:
        return len(self.study_ids)

    def volume(self, study_id: str) -> np.ndarray:
        return self.array[self.study_ids.index(study_id)]

    def save(self, path: Path) -> Path:
        np.savez(
            path,
            study_ids=np.array(self.study_ids, dtype=str),
            array=self.array,
            channels=np.array(self.channels, dtype=str),
        )
        return path

    @classmethod
    def load(cls, path: Path) -> StudyVolumes:
        with np.load(path, allow_pickle=False) as stored:
            return cls(
                study_ids=tuple(str(s) for s in stored["study_ids"]),
                array=stored["array"],
                channels=tuple(str(c) for c in stored["channels"]),
            )

    @classmethod
    def stack(cls, volumes: dict[str, np.ndarray], shape: tuple[int, ...], dtype: str):
        """`shape` and `dtype` of one volume, so an empty set still has the right layout."""
        array = np.stack(list(volumes.values())) if volumes else np.zeros((0, *shape), dtype)
        return cls(study_ids=tuple(volumes), array=array)
