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

import os
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

from radreport.llm.settings import RetrievalMatch
from radreport.metrics.normalize import normalize_report

Example = tuple[str, str]

# Similarities are computed for blocks of distinct query texts of at most this many floats
# (queries x distinct training impressions), so memory stays bounded for any data size.
SIMILARITY_BLOCK = 1 << 23
# Each query's pairs are ranked among those of its this-many most similar distinct training
# impressions (all pairs tied with the last of them included), not among every pair: the
# examples come from the first few, and a full sort of every pair per query made building a
# large training set's prompts quadratic in sorting, not only in similarities. Where these
# pairs hold fewer than k examples the query is ranked against every pair, so the result is
# always the full ranking's.
CANDIDATE_IMPRESSIONS = 32
# Cosines are compared to this many decimals. Impressions equally similar to a query ("12
# mm nodule" and "13 mm nodule" to "8 mm nodule") would otherwise be ordered by rounding
# in the last bits, which follows the order of the terms in the sparse rows and so the
# order of the training table, not by their typical report and table position as the
# ranking promises.
SIMILARITY_DECIMALS = 12


def _normalized(texts: Sequence[str]) -> list[str]:
    """normalize_report of each text, computed once per distinct text (a common impression
    or a template report recurs hundreds of times in an archive)."""
    done = {text: normalize_report(text) for text in dict.fromkeys(texts)}
    return [done[text] for text in texts]


def _typicality(impressions: Sequence[str], normalized_reports: Sequence[str]) -> np.ndarray:
    """For each pair, how many pairs share its impression and its report (both normalised
    as they are scored): the report written most often for an impression ranks first among
    that impression's pairs, as in the exact-impression lookup baseline."""
    keys = list(zip(_normalized(impressions), normalized_reports, strict=True))
    counts = Counter(keys)
    return np.array([counts[key] for key in keys], dtype=np.int64)


def usable_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class _TextGroups:
    """Items grouped by equal text: `texts` the distinct ones (sorted), `group[i]` item i's
    text, and the items of text t are `members[start[t]:start[t + 1]]`, in input order."""

    texts: np.ndarray
    group: np.ndarray
    members: np.ndarray
    start: np.ndarray

    @classmethod
    def of(cls, texts: Sequence[str]) -> _TextGroups:
        distinct, group = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        members = np.argsort(group, kind="stable")
        start = np.searchsorted(group[members], np.arange(len(distinct) + 1))
        return cls(distinct, group, members, start)

    def items_of(self, text: int) -> np.ndarray:
        return self.members[self.start[text] : self.start[text + 1]]


@dataclass(frozen=True)
class _RankedPairs:
    pairs: np.ndarray  # pair positions, best first
    complete: bool  # every pair of the index, not only the most similar impressions'


def _counter(match: RetrievalMatch) -> CountVectorizer:
    """The terms an impression is compared by; TF-IDF weighted by _TermWeights."""
    if match == "characters":
        return CountVectorizer(analyzer="char", ngram_range=(2, 5), dtype=np.float64)
    if match == "words":
        return CountVectorizer(ngram_range=(1, 2), dtype=np.float64)
    raise ValueError(f"retrieval match must be 'characters' or 'words', not {match!r}")


@dataclass(frozen=True)
class _TermWeights:
    """sklearn's TfidfVectorizer (sublinear TF, smoothed IDF, L2-normalised rows) fitted on
    every pair's impression, with each distinct impression counted once instead of once per
    pair: the counting, most of the fit, is done on the distinct texts (IU X-Ray train: 911
    for 2,069 studies), and the IDF is fitted on their rows repeated as often as each was
    written, so it is the one every pair gives. The rows equal TfidfVectorizer's but for the
    last bits, which SIMILARITY_DECIMALS leaves out of the ranking."""

    counter: CountVectorizer
    weights: TfidfTransformer

    @classmethod
    def fit(cls, match: RetrievalMatch, texts: _TextGroups):
        """The weights, and the distinct texts' rows (in `texts.texts` order)."""
        counter = _counter(match)
        counts = counter.fit_transform(texts.texts)
        weights = TfidfTransformer(sublinear_tf=True).fit(counts[texts.group])
        return cls(counter, weights), weights.transform(counts)

    def transform(self, texts: Sequence[str]):
        return self.weights.transform(self.counter.transform(texts))


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
        # Similarities are computed once per distinct impression (IU X-Ray train: 911 for
        # 2,069 pairs), each standing for all the pairs that share it; a repeated impression
        # still weighs in the IDF as often as it was written.
        self.pairs_by_text = _TextGroups.of(self.impressions)
        self.vectorizer, self.text_matrix = _TermWeights.fit(match, self.pairs_by_text)
        self.normalized_reports = _normalized(self.reports)
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
        if len(impressions) == 0:
            return []
        # Queries with the same text share their similarities and ranking; only the study
        # each one must not be given differs.
        queries = _TextGroups.of([str(text) for text in impressions])
        own_ids = None if study_ids is None or self.study_ids is None else list(study_ids)
        neighbours: list[list[Example]] = [[] for _ in impressions]
        for start, similarity in self._similarity_blocks(queries.texts):
            for row, text_similarity in enumerate(similarity):
                ranked = self._ranked_pairs(text_similarity, CANDIDATE_IMPRESSIONS)
                everything = None  # every pair ranked, made once for the text when needed
                for query in queries.items_of(start + row):
                    own = None if own_ids is None else own_ids[query]
                    examples = self._examples(ranked.pairs, k, own, distinct)
                    if len(examples) < k and not ranked.complete:
                        if everything is None:
                            everything = self._ranked_pairs(text_similarity, len(text_similarity))
                        examples = self._examples(everything.pairs, k, own, distinct)
                    neighbours[query] = examples
        return neighbours

    def _similarity_blocks(self, query_texts: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(first query's position, its block's cosines with every distinct training
        impression), block by block in order. Blocks are computed ahead on the machine's
        cores (scipy's sparse product releases the GIL: ×2 on 2 cores), at most one a core
        held at a time, so memory stays bounded."""
        block = max(1, SIMILARITY_BLOCK // self.text_matrix.shape[0])
        index_t = self.text_matrix.T.tocsr()

        def cosines(start: int) -> np.ndarray:
            # Rows of the TF-IDF matrix are L2-normalised, so the dot product is the cosine.
            queries = self.vectorizer.transform(query_texts[start : start + block])
            similarity = (queries @ index_t).toarray()
            return np.round(similarity, SIMILARITY_DECIMALS, out=similarity)  # no 2nd block

        starts = range(0, len(query_texts), block)
        workers = min(usable_cores(), len(starts))
        if workers == 1:
            yield from ((start, cosines(start)) for start in starts)
            return
        with ThreadPoolExecutor(workers) as pool:
            pending: deque = deque()
            for start in starts:
                pending.append((start, pool.submit(cosines, start)))
                if len(pending) == workers:
                    first, future = pending.popleft()
                    yield first, future.result()
            while pending:
                first, future = pending.popleft()
                yield first, future.result()

    def _ranked_pairs(self, text_similarity: np.ndarray, candidates: int) -> _RankedPairs:
        """The pairs of the `candidates` distinct impressions most similar to one query (and
        of any tied with the last), in the full ranking's order: most similar first; among
        equally similar pairs (the same impression, often hundreds of "no acute disease")
        the most typical report of its impression first, then table order, so prompts are
        reproducible. `complete` when they are every pair."""
        n_texts = len(text_similarity)
        if candidates < n_texts:
            threshold = np.partition(text_similarity, n_texts - candidates)[n_texts - candidates]
            texts = np.flatnonzero(text_similarity >= threshold)
        else:
            texts = np.arange(n_texts)
        groups = self.pairs_by_text
        starts, ends = groups.start[texts], groups.start[texts + 1]
        lengths = ends - starts
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        pairs = groups.members[offsets + np.arange(lengths.sum())]
        pair_similarity = text_similarity[groups.group[pairs]]
        order = np.lexsort((pairs, -self.typicality[pairs], -pair_similarity))
        return _RankedPairs(pairs[order], complete=len(texts) == n_texts)

    def _examples(
        self, ranked: np.ndarray, k: int, own_study: object | None, distinct: bool
    ) -> list[Example]:
        """The first k pairs of `ranked`, never the study `own_study` itself (its id); when
        `distinct`, only pairs whose reports differ once normalised: a common impression's
        typical report is often written many times, and a second copy of it would spend
        prompt tokens showing the model nothing new."""
        examples: list[Example] = []
        seen: set[str] = set()
        for index in ranked:
            if len(examples) == k:
                break
            if own_study is not None and self.study_ids[index] == own_study:
                continue
            if distinct and self.normalized_reports[index] in seen:
                continue
            seen.add(self.normalized_reports[index])
            examples.append((self.impressions[index], self.reports[index]))
        return examples
