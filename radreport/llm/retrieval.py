"""The most similar training studies for an impression, for retrieval-augmented prompting.

Impressions are short and formulaic, so TF-IDF with cosine similarity finds the training
studies whose reports best show the model how such an impression is written up. By default
it compares character 2- to 5-grams, which keep what word tokens drop: numbering ("1."),
stray punctuation (" ."), abbreviations and word endings. Those are habits of the
radiologist who wrote the impression, and the same radiologist writes the findings from the
same template: on IU X-Ray val the top study's findings scored BLEU-4 0.330 / 0.321 on the
two halves by characters against 0.286 / 0.288 by words (BENCHMARKS.md, forty-fourth
session). "words" (unigrams and bigrams) is the earlier retriever, kept for the model
versions trained with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from radreport.llm.settings import RetrievalMatch
from radreport.metrics.normalize import normalize_report

Example = tuple[str, str]

# Similarities are computed for this many queries at once, so memory stays bounded for any
# number of queries (a dense block of QUERY_CHUNK x training-set floats).
QUERY_CHUNK = 1024


def _typicality(impressions: Sequence[str], normalized_reports: Sequence[str]) -> np.ndarray:
    """For each pair, how many pairs share its impression and its report (both normalised
    as they are scored): the report written most often for an impression ranks first among
    that impression's pairs, as in the exact-impression lookup baseline."""
    keys = [
        (normalize_report(impression), report)
        for impression, report in zip(impressions, normalized_reports, strict=True)
    ]
    counts = Counter(keys)
    return np.array([counts[key] for key in keys], dtype=np.int64)


def _vectorizer(match: RetrievalMatch) -> TfidfVectorizer:
    if match == "characters":
        return TfidfVectorizer(analyzer="char", ngram_range=(2, 5), sublinear_tf=True)
    if match == "words":
        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    raise ValueError(f"retrieval match must be 'characters' or 'words', not {match!r}")


class ImpressionIndex:
    """Training (impression, report) pairs searchable by impression."""

    def __init__(
        self,
        impressions: Sequence[str],
        reports: Sequence[str],
        study_ids: Sequence[str] | None = None,
        match: RetrievalMatch = "characters",
    ):
        if len(impressions) != len(reports):
            raise ValueError(f"{len(impressions)} impressions but {len(reports)} reports")
        if study_ids is not None and len(study_ids) != len(impressions):
            raise ValueError(f"{len(study_ids)} study ids but {len(impressions)} impressions")
        if len(impressions) == 0:
            raise ValueError("cannot build an index from an empty training table")
        self.impressions = [str(text) for text in impressions]
        self.reports = [str(text) for text in reports]
        self.study_ids = None if study_ids is None else np.asarray(study_ids, dtype=object)
        self.vectorizer = _vectorizer(match)
        self.matrix = self.vectorizer.fit_transform(self.impressions)
        self.normalized_reports = [normalize_report(report) for report in self.reports]
        self.typicality = _typicality(self.impressions, self.normalized_reports)

    @classmethod
    def from_table(
        cls,
        table: pd.DataFrame,
        impression_column: str = "impression",
        report_column: str = "report",
        id_column: str = "study_id",
        match: RetrievalMatch = "characters",
    ) -> ImpressionIndex:
        """Index a training table; study ids are kept when the id column exists."""
        study_ids = table[id_column].tolist() if id_column in table.columns else None
        return cls(
            table[impression_column].tolist(), table[report_column].tolist(), study_ids, match
        )

    def nearest(
        self,
        impressions: Sequence[str],
        k: int,
        study_ids: Sequence[str] | None = None,
        distinct: bool = True,
    ) -> list[list[Example]]:
        """The k most similar (impression, report) pairs for each query, most similar first,
        no two with the same report once normalised unless `distinct` is False (then a
        report written for many similar studies comes as often as it was written, as a
        sample of what radiologists write for such an impression).

        Give `study_ids` when the queries may be indexed studies themselves (prompts for the
        training set): a study is never its own example, or the model would learn to copy
        the answer out of its prompt.
        """
        if k <= 0:
            return [[] for _ in impressions]
        if study_ids is not None and len(study_ids) != len(impressions):
            raise ValueError(f"{len(study_ids)} study ids but {len(impressions)} queries")
        neighbours: list[list[Example]] = []
        for start in range(0, len(impressions), QUERY_CHUNK):
            chunk = slice(start, start + QUERY_CHUNK)
            chunk_ids = None if study_ids is None else study_ids[chunk]
            neighbours.extend(self._nearest_chunk(impressions[chunk], k, chunk_ids, distinct))
        return neighbours

    def _nearest_chunk(
        self,
        impressions: Sequence[str],
        k: int,
        study_ids: Sequence[str] | None,
        distinct: bool,
    ) -> list[list[Example]]:
        # Rows of the TF-IDF matrix are L2-normalised, so the dot product is the cosine.
        similarity = (self.vectorizer.transform(impressions) @ self.matrix.T).toarray()
        if study_ids is not None and self.study_ids is not None:
            own_study = self.study_ids[None, :] == np.asarray(study_ids, dtype=object)[:, None]
            similarity[own_study] = -np.inf
        # Most similar first; among equally similar pairs (the same impression, often
        # hundreds of "no acute disease") the most typical report of its impression first,
        # then table order, so prompts are reproducible.
        typicality = np.broadcast_to(-self.typicality, similarity.shape)
        order = np.lexsort((typicality, -similarity), axis=1)
        return [
            self._examples(ranked, similarity[query], k, distinct)
            for query, ranked in enumerate(order)
        ]

    def _examples(
        self, ranked: np.ndarray, similarity: np.ndarray, k: int, distinct: bool
    ) -> list[Example]:
        """The first k pairs of `ranked`; when `distinct`, only pairs whose reports differ
        once normalised: a common impression's typical report is often written many times,
        and a second copy of it would spend prompt tokens showing the model nothing new."""
        examples: list[Example] = []
        seen: set[str] = set()
        for index in ranked:
            if len(examples) == k or not np.isfinite(similarity[index]):
                break
            if distinct and self.normalized_reports[index] in seen:
                continue
            seen.add(self.normalized_reports[index])
            examples.append((self.impressions[index], self.reports[index]))
        return examples
