"""Nearest training pairs by impression for retrieval-augmented prompts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from radreport.llm import retrieval
from radreport.llm.retrieval import ImpressionIndex

TRAINING = pd.DataFrame(
    {
        "study_id": ["s1", "s2", "s3", "s4"],
        "impression": [
            "No acute cardiopulmonary disease.",
            "Cardiomegaly with small bilateral pleural effusions.",
            "Right lower lobe pneumonia.",
            "No acute cardiopulmonary abnormality.",
        ],
        "report": [
            "The lungs are clear. Heart size normal.",
            "The heart is enlarged. Small bilateral effusions.",
            "Consolidation in the right lower lobe.",
            "Normal heart and lungs.",
        ],
    }
)


@pytest.fixture(scope="module")
def index() -> ImpressionIndex:
    return ImpressionIndex.from_table(TRAINING)


def test_exact_impression_comes_first(index):
    [neighbours] = index.nearest(["Right lower lobe pneumonia."], k=2)
    assert neighbours[0] == (
        "Right lower lobe pneumonia.",
        "Consolidation in the right lower lobe.",
    )
    assert len(neighbours) == 2


def test_similar_impressions_rank_above_unrelated_ones(index):
    [neighbours] = index.nearest(["No acute cardiopulmonary process."], k=2)
    assert {impression for impression, _ in neighbours} == {
        "No acute cardiopulmonary disease.",
        "No acute cardiopulmonary abnormality.",
    }


def test_a_study_is_never_its_own_example(index):
    neighbours = index.nearest(
        TRAINING["impression"].tolist(), k=3, study_ids=["s1", "s2", "s3", "s4"]
    )
    for own_impression, examples in zip(TRAINING["impression"], neighbours, strict=True):
        assert own_impression not in [impression for impression, _ in examples]
        assert len(examples) == 3
    # s1's nearest other study is s4, the other "no acute cardiopulmonary" impression.
    assert neighbours[0][0][0] == "No acute cardiopulmonary abnormality."


def test_k_larger_than_the_index_returns_every_other_study(index):
    [neighbours] = index.nearest(["Clear lungs."], k=10, study_ids=["s1"])
    assert len(neighbours) == 3


def test_k_zero_gives_no_examples(index):
    assert index.nearest(["Clear lungs.", "Effusion."], k=0) == [[], []]


def test_mismatched_lengths_are_rejected(index):
    with pytest.raises(ValueError, match="study ids"):
        index.nearest(["Clear lungs."], k=1, study_ids=["s1", "s2"])
    with pytest.raises(ValueError, match="reports"):
        ImpressionIndex(["a"], [])


def test_among_identical_impressions_the_most_typical_report_comes_first():
    training = pd.DataFrame(
        {
            "study_id": ["a", "b", "c", "d"],
            "impression": ["No acute disease."] * 3 + ["Left effusion."],
            "report": [
                "Small calcified granuloma. Lungs otherwise clear.",
                "The lungs are clear.",
                "The lungs are  clear .",  # the same report once normalised
                "Left pleural effusion.",
            ],
        }
    )
    index = ImpressionIndex.from_table(training)
    [[first, second]] = index.nearest(["No acute disease."], k=2)
    assert first == ("No acute disease.", "The lungs are clear.")
    # c's report is b's once normalised: the second example is the next distinct report.
    assert second == ("No acute disease.", "Small calcified granuloma. Lungs otherwise clear.")
    # A study is still never its own example: b's best is c, the other typical report.
    examples = index.nearest(["No acute disease."], k=1, study_ids=["b"])
    assert examples == [[("No acute disease.", "The lungs are  clear .")]]
    # Similarity still decides first: an exact impression beats a typical other one.
    [[nearest]] = index.nearest(["Left effusion."], k=1)
    assert nearest == ("Left effusion.", "Left pleural effusion.")
    # Without `distinct`, a report comes as often as it was written, in the same order.
    [repeats] = index.nearest(["No acute disease."], k=3, distinct=False)
    assert [report for _, report in repeats] == [
        "The lungs are clear.",
        "The lungs are  clear .",
        "Small calcified granuloma. Lungs otherwise clear.",
    ]


# Two radiologists write the same impression, one numbered and one not, each above the
# findings of their own template; the unnumbered writer's report is the more common one.
WRITERS = pd.DataFrame(
    {
        "study_id": ["a", "b", "c", "d", "e"],
        "impression": ["No acute pulmonary disease."] * 3 + ["1. No acute pulmonary disease."] * 2,
        "report": ["The lungs are clear."] * 3
        + ["PA and lateral chest examination was obtained. The lungs are clear."] * 2,
    }
)


def test_characters_find_the_same_writers_numbered_impression_and_words_do_not():
    query = ["1. No acute pulmonary disease."]
    [[by_characters]] = ImpressionIndex.from_table(WRITERS).nearest(query, k=1)
    assert by_characters == (
        "1. No acute pulmonary disease.",
        "PA and lateral chest examination was obtained. The lungs are clear.",
    )
    # Word tokens drop the "1." (and the full stop), so every row ties and the most typical
    # report of the impression comes first.
    [[by_words]] = ImpressionIndex.from_table(WRITERS, match="words").nearest(query, k=1)
    assert by_words == ("No acute pulmonary disease.", "The lungs are clear.")
    # Unnumbered, the query is the first writer's again under either rule.
    for match in ("characters", "words"):
        index = ImpressionIndex.from_table(WRITERS, match=match)
        [[nearest]] = index.nearest(["No acute pulmonary disease."], k=1)
        assert nearest == ("No acute pulmonary disease.", "The lungs are clear.")


def test_characters_find_a_misspelt_impression_words_miss(index):
    # "Cardiomegally" shares no word with any training impression, so by words every study
    # is as far as any other; its character n-grams are mostly "cardiomegaly"'s.
    [[nearest]] = index.nearest(["Cardiomegally"], k=1)
    assert nearest[0] == "Cardiomegaly with small bilateral pleural effusions."
    by_words = ImpressionIndex.from_table(TRAINING, match="words")
    [[unrelated]] = by_words.nearest(["Cardiomegally"], k=1)
    assert unrelated[0] != "Cardiomegaly with small bilateral pleural effusions."


def test_an_unknown_match_is_refused():
    with pytest.raises(ValueError, match="'characters' or 'words', not 'letters'"):
        ImpressionIndex(["a"], ["b"], match="letters")


@pytest.mark.parametrize(
    ("match", "definition"),
    [
        ("characters", TfidfVectorizer(analyzer="char", ngram_range=(2, 5), sublinear_tf=True)),
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
    ],
)
def test_term_weights_are_tfidf_fitted_on_every_pair(match, definition):
    """Each distinct impression is counted once, but the IDF must be the one every pair
    gives: a repeated impression weighs as often as it was written."""
    impressions = ["No acute disease."] * 5 + ["no acute disease.", "Left effusion.",
                   "1. Left effusion.", "Clear lungs, no effusion."] * 2  # fmt: skip
    index = ImpressionIndex(impressions, [f"r{i}" for i in range(len(impressions))], match=match)
    full = definition.fit_transform(impressions)
    np.testing.assert_array_equal(index.vectorizer.weights.idf_, definition.idf_)
    groups = index.pairs_by_text
    for text, pairs in enumerate(np.split(groups.members, groups.start[1:-1])):
        for pair in pairs:  # every pair of a distinct impression has its row
            np.testing.assert_allclose(
                index.text_matrix[text].toarray(), full[pair].toarray(), rtol=1e-12, atol=0
            )
    queries = ["Small left effusion.", "No acute cardiopulmonary disease.", "zzz"]
    np.testing.assert_allclose(
        index.vectorizer.transform(queries).toarray(),
        definition.transform(queries).toarray(),
        rtol=1e-12,
        atol=0,
    )


def test_equally_similar_impressions_are_ordered_by_the_table_not_by_rounding():
    """'12 mm' and '13 mm' are equally similar to '8 mm' (their digits weigh the same), but
    the cosines computed for them differed in the last bits, by the order of the terms in
    the sparse rows, which follows the order of the table: the tie must go to the earlier
    row, as the ranking promises, whichever of the two it is."""
    nodule = "{} mm right lower lobe pulmonary nodule; follow-up CT is recommended."
    # A table (drawn from the demo's report templates) where the last bits put 13 first.
    others = [
        "Right lower lobe consolidation, compatible with pneumonia.",
        "1. 8 mm left upper lobe pulmonary nodule; follow-up CT is recommended. 2. Mild "
        "cardiomegaly.",
        "1. 14 mm right upper lobe pulmonary nodule; follow-up CT is recommended. 2. Right "
        "upper lobe consolidation, compatible with pneumonia. 3. Small left pneumothorax. 4. "
        "Mild cardiomegaly.",
        "1. Moderate right pleural effusion. 2. Mild cardiomegaly.",
        "1. Small bilateral pleural effusions. 2. Left upper lobe consolidation, compatible "
        "with pneumonia.",
    ]
    for first, second in ((12, 13), (13, 12)):
        table = [nodule.format(first), nodule.format(second), *others]
        index = ImpressionIndex(table, [f"report {i}" for i in range(len(table))])
        [examples] = index.nearest([nodule.format(8)], k=2)
        assert [impression for impression, _ in examples] == table[:2]


def ranked_by_every_pair(index, impression, k, own_study=None, distinct=True):
    """The ranking the index promises, by its definition: every training pair sorted by
    similarity, then typicality, then table order, the query's own study left out."""
    similarity = np.round(
        (
            index.vectorizer.transform([impression])
            @ index.vectorizer.transform(index.impressions).T
        ).toarray()[0],
        retrieval.SIMILARITY_DECIMALS,
    )
    order = sorted(
        range(len(index.impressions)),
        key=lambda pair: (-similarity[pair], -index.typicality[pair], pair),
    )
    examples, seen = [], set()
    for pair in order:
        if len(examples) == k:
            break
        if own_study is not None and index.study_ids[pair] == own_study:
            continue
        if distinct and index.normalized_reports[pair] in seen:
            continue
        seen.add(index.normalized_reports[pair])
        examples.append((index.impressions[pair], index.reports[pair]))
    return examples


@pytest.mark.parametrize("candidates", [1, 2, 32])
@pytest.mark.parametrize("distinct", [True, False])
def test_ranking_among_the_most_similar_impressions_is_the_full_ranking(
    monkeypatch, candidates, distinct
):
    """Each query is ranked among the pairs of its most similar impressions only; with
    repeated impressions, repeated reports, tied similarities and queries that are
    training studies themselves, the examples must be those of ranking every pair."""
    monkeypatch.setattr(retrieval, "CANDIDATE_IMPRESSIONS", candidates)
    monkeypatch.setattr(retrieval, "SIMILARITY_BLOCK", 7)  # several query blocks
    rng = np.random.default_rng(candidates)
    phrases = ["No acute disease.", "no acute disease.", "Left effusion.", "Clear lungs.",
               "1. No acute disease.", "Cardiomegaly.", "Right effusion.", "Zzz"]  # fmt: skip
    reports = ["Lungs clear.", "lungs  clear .", "Effusion on the left.", "Heart enlarged.",
               "Normal chest.", "Granuloma."]  # fmt: skip
    n = 60
    training = pd.DataFrame(
        {
            "study_id": [f"s{i}" for i in range(n)],
            "impression": rng.choice(phrases, n),
            "report": rng.choice(reports, n),
        }
    )
    index = ImpressionIndex.from_table(training)
    queries = [*training["impression"], "Effusion.", "No acute cardiopulmonary disease.", "q"]
    ids = [*training["study_id"], None, None, None]
    for k in (1, 3, 5):
        got = index.nearest(queries, k, study_ids=ids, distinct=distinct)
        expected = [
            ranked_by_every_pair(index, query, k, own, distinct)
            for query, own in zip(queries, ids, strict=True)
        ]
        assert got == expected
