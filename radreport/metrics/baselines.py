"""Four reports a model must beat, built from the training pairs and each study's impression.

The model is given the impression, and IU X-Ray impressions repeat ("No acute
cardiopulmonary abnormality."), so retrieving a training report by impression is a strong
baseline: a fine-tuned model that does not beat it has learned nothing useful.

- most_frequent_report: the most frequent training report (compared after normalisation;
  ties go to the one seen first), for every study.
- copy_impression: the impression itself.
- tfidf_nearest_impression: the report of the training study whose impression is nearest by
  TF-IDF cosine (scikit-learn's TfidfVectorizer defaults on normalised impressions; ties go
  to the first training row).
- exact_impression_lookup: if training studies have the same normalised impression, the most
  frequent of their reports (ties to the first seen); otherwise the TF-IDF neighbour.

Choices that reproduce the reference table of evaluation.md (see
benchmarks/results/evaluation.md for the figures): the TF-IDF vocabulary and IDF are fitted
on the training impressions together with the impressions being scored — impressions are the
model's input, known at inference; no reference report is used. Fitted on the training
impressions alone, the TF-IDF baseline scores BLEU-4 0.271 instead of the reference 0.265,
through the choice among near-equal neighbours. A consequence: a study's TF-IDF neighbour
can depend on which other studies are scored with it. Training rows without an impression
(6 in IU X-Ray train) cannot be retrieved but count for the most frequent report. An
impression sharing no word with any training impression gets the most frequent report.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from radreport.metrics.normalize import CJK_CHARACTER, normalize_report

BASELINE_LABELS = {
    "most_frequent_report": "constant most frequent findings",
    "copy_impression": "copy the impression",
    "tfidf_nearest_impression": "TF-IDF nearest training impression -> its findings",
    "exact_impression_lookup": "exact-impression lookup (else TF-IDF)",
}
# Similarities are computed for this many queries at a time, so memory stays bounded.
_QUERY_CHUNK = 1024


def _most_frequent_row(normalized_reports: Sequence[str], rows: Sequence[int]) -> int:
    """The row among `rows` whose normalised report is most frequent there; first on ties."""
    # Counter keeps first-seen order and most_common sorts stably, so ties go to the first.
    winner = Counter(normalized_reports[row] for row in rows).most_common(1)[0][0]
    return next(row for row in rows if normalized_reports[row] == winner)


# scikit-learn's default tokens (two or more word characters), and each Chinese or Japanese
# character, which normalize_report makes a token of its own.
_TOKEN_PATTERN = rf"(?u)\b\w\w+\b|{CJK_CHARACTER}"


def _nearest_rows(index_impressions: list[str], query_impressions: list[str]) -> np.ndarray:
    """Row of the nearest indexed impression per query; -1 where no word is shared."""
    vectorizer = TfidfVectorizer(token_pattern=_TOKEN_PATTERN)
    try:
        vectorizer.fit(index_impressions + query_impressions)
    except ValueError as error:
        if "empty vocabulary" not in str(error):
            raise
        return np.full(len(query_impressions), -1)  # no impression holds a word: "x", "-"
    index_matrix = vectorizer.transform(index_impressions)
    nearest = []
    for start in range(0, len(query_impressions), _QUERY_CHUNK):
        queries = vectorizer.transform(query_impressions[start : start + _QUERY_CHUNK])
        # Rows are L2-normalised, so the dot product is the cosine; argmax takes the first tie.
        similarity = (queries @ index_matrix.T).toarray()
        best = similarity.argmax(axis=1)
        nearest.append(np.where(similarity.max(axis=1) > 0, best, -1))
    return np.concatenate(nearest) if nearest else np.empty(0, dtype=int)


def _tfidf_reports(
    train_impressions: list[str], train_reports: list[str], queries: list[str], fallback: str
) -> list[str]:
    indexed = [row for row, text in enumerate(train_impressions) if text]
    if not indexed:
        return [fallback] * len(queries)
    nearest = _nearest_rows([train_impressions[row] for row in indexed], queries)
    return [train_reports[indexed[position]] if position >= 0 else fallback for position in nearest]


def exact_lookup_reports(
    train_impressions: list[str],
    train_reports: list[str],
    normalized_reports: list[str],
    queries: list[str],
    fallbacks: list[str],
) -> list[str]:
    """For each query, the most frequent report (by `normalized_reports`, the first such row
    on ties) of the training rows whose impression equals it, else its fallback. The
    baseline compares normalised impressions; given them as written, it is a lookup that
    tells writers apart (benchmarks/iu_xray_retrieval_match.py)."""
    rows_by_impression: dict[str, list[int]] = defaultdict(list)
    for row, impression in enumerate(train_impressions):
        if impression:
            rows_by_impression[impression].append(row)
    lookup = {
        impression: train_reports[_most_frequent_row(normalized_reports, rows)]
        for impression, rows in rows_by_impression.items()
    }
    return [lookup.get(query, fallback) for query, fallback in zip(queries, fallbacks, strict=True)]


def baseline_reports(train: pd.DataFrame, impressions: Sequence[str]) -> dict[str, list[str]]:
    """Each baseline's report for each impression, keyed like BASELINE_LABELS.

    `train` has `impression` and `reference` columns (see `report_tables`).
    """
    train_reports = train["reference"].astype(str).tolist()
    if not train_reports:
        raise ValueError("baselines need a non-empty training table")
    normalized_reports = [normalize_report(report) for report in train_reports]
    most_frequent = train_reports[_most_frequent_row(normalized_reports, range(len(train_reports)))]
    train_impressions = [normalize_report(text) for text in train["impression"].astype(str)]
    queries = [normalize_report(str(text)) for text in impressions]
    tfidf = _tfidf_reports(train_impressions, train_reports, queries, most_frequent)
    exact = exact_lookup_reports(
        train_impressions, train_reports, normalized_reports, queries, tfidf
    )
    return {
        "most_frequent_report": [most_frequent] * len(queries),
        "copy_impression": [str(text) for text in impressions],
        "tfidf_nearest_impression": tfidf,
        "exact_impression_lookup": exact,
    }
