"""Generated reports for the evaluation splits of an Alpaca table."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import pandas as pd

from radreport.llm.generate import PromptTooLong, ReportGenerator
from radreport.llm.retrieval import ImpressionIndex
from radreport.llm.settings import RetrievalMatch

EVALUATION_SPLITS = ("val", "test")
PREDICTION_COLUMNS = ("study_id", "split", "impression", "reference", "generated", "out_of_room")
REJECTED_COLUMNS = ("study_id", "split", "reason")
# Reports a generator already wrote for some studies (the stop bias calibration's sample), as
# one step hands them to the next: predict_splits keeps them rather than decoding them again.
KEPT_REPORT_COLUMNS = ("study_id", "generated", "out_of_room")


def kept_reports_table(
    reports: Iterable[tuple[str, str]] = (), out_of_room: Collection[str] = ()
) -> pd.DataFrame:
    """(study_id, report) pairs as a KEPT_REPORT_COLUMNS table; `out_of_room` names the
    studies whose reports the token budget cut."""
    table = pd.DataFrame(list(reports), columns=list(KEPT_REPORT_COLUMNS[:2]))
    table["out_of_room"] = table["study_id"].isin(list(out_of_room))
    return table


def kept_reports(table: pd.DataFrame) -> tuple[dict[str, str], list[str]]:
    """A kept_reports_table as predict_splits' `decoded` and `decoded_out_of_room`."""
    decoded = dict(zip(table["study_id"], table["generated"], strict=True))
    return decoded, table.loc[table["out_of_room"].astype(bool), "study_id"].tolist()


def predict_splits(
    generator: ReportGenerator,
    alpaca_table: pd.DataFrame,
    splits=EVALUATION_SPLITS,
    decoded: Mapping[str, str] | None = None,
    decoded_out_of_room: Collection[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per study of `splits` whose prompt fits the model's context, prompted exactly
    as in training (same examples), and the record of the studies left out and why
    (REJECTED_COLUMNS). ValueError when no study at all can be written. A row's
    `out_of_room` says the token budget (or the context's end) cut its report: neither the
    model nor a rule ended it.

    `decoded` maps study ids to reports this generator already wrote for those studies'
    prompts at its settings (the stop bias calibration's sample): they are kept, not decoded
    again; `decoded_out_of_room` names those of them that ran out of room. Decoding again
    gives the same report where a study's report does not depend on the others in its
    batch, as both decoders' tests check in fp32; in bf16 a batch can round an occasional
    token differently, and either report is the model's at these settings."""
    rows = alpaca_table[alpaca_table["split"].isin(splits)].reset_index(drop=True)
    decoded = dict(decoded or {})
    stray = sorted(set(decoded_out_of_room) - set(decoded))
    if stray:
        raise ValueError(
            f"{len(stray)} studies are said to have run out of room but have no report given "
            f"as decoded (first: {stray[0]})"
        )
    unknown = sorted(set(decoded) - set(rows["study_id"]))
    if unknown:
        raise ValueError(
            f"{len(unknown)} reports given as decoded are for no {' or '.join(splits)} study "
            f"of this table (first: {unknown[0]}): they were decoded from another table"
        )
    examples = [[tuple(pair) for pair in row] for row in rows["examples"]]
    generated, out_of_room, too_long = _generate_fitting(
        generator,
        rows["impression"].tolist(),
        examples,
        known=[decoded.get(study_id) for study_id in rows["study_id"]],
        known_out_of_room=[study_id in decoded_out_of_room for study_id in rows["study_id"]],
        names=[f"study {study_id}" for study_id in rows["study_id"]],
    )
    rejected = pd.DataFrame(
        {
            "study_id": [rows["study_id"].iloc[error.index] for error in too_long],
            "split": [rows["split"].iloc[error.index] for error in too_long],
            "reason": [str(error) for error in too_long],
        },
        columns=list(REJECTED_COLUMNS),
    )
    if too_long and len(too_long) == len(rows):
        first = rejected.iloc[0]
        raise ValueError(
            f"no {' or '.join(splits)} study can be written: all {len(rows)} prompts fill "
            f"the model's context; study {first['study_id']} ({first['split']}): "
            f"{first['reason']}"
        )
    written = [report is not None for report in generated]
    predictions = rows.loc[written, ["study_id", "split", "impression"]].copy()
    predictions["reference"] = rows.loc[written, "report"]
    predictions["generated"] = [report for report in generated if report is not None]
    predictions["out_of_room"] = [
        flag for flag, kept in zip(out_of_room, written, strict=True) if kept
    ]
    return predictions.reset_index(drop=True)[list(PREDICTION_COLUMNS)], rejected


def rejections_by_split(rejected: pd.DataFrame) -> dict[str, int]:
    """How many studies of each split `predict_splits` left unwritten."""
    return {split: int(count) for split, count in rejected.groupby("split").size().items()}


def predict_impressions(
    generator: ReportGenerator,
    impressions: list[str],
    train: pd.DataFrame | None = None,
    retrieval_k: int = 0,
    retrieval_match: RetrievalMatch = "characters",
) -> list[str]:
    """Reports for new impressions; with retrieval_k > 0 the prompts show the k most similar
    studies of `train` (impression, report), found as the model's were in training
    (`retrieval_match`). PromptTooLong for the first impression whose prompt fills the
    model's context."""
    examples = _retrieved_examples(impressions, train, retrieval_k, retrieval_match)
    return generator.generate(impressions, examples)


def predict_fitting_impressions(
    generator: ReportGenerator,
    impressions: list[str],
    train: pd.DataFrame | None = None,
    retrieval_k: int = 0,
    retrieval_match: RetrievalMatch = "characters",
) -> tuple[list[str | None], list[bool], list[PromptTooLong]]:
    """predict_impressions for every impression whose prompt fits the model's context; the
    others get None in place of a report, and their PromptTooLong (in input order). The
    middle list says whether each report ran out of room (the token budget or the context's
    end cut it); False where there is none."""
    examples = _retrieved_examples(impressions, train, retrieval_k, retrieval_match)
    return _generate_fitting(generator, impressions, examples)


def _generate_fitting(
    generator: ReportGenerator,
    impressions: list[str],
    examples: list[list[tuple[str, str]]] | None,
    known: list[str | None] | None = None,
    known_out_of_room: list[bool] | None = None,
    names: list[str] | None = None,
) -> tuple[list[str | None], list[bool], list[PromptTooLong]]:
    """The reports (None where the prompt does not fit), whether each ran out of room, and
    the prompts too long. `known[i]`, when not None, is impression i's report already
    written by `generator`, `known_out_of_room[i]` whether it ran out of room; `names[i]`
    says which study impression i is, in errors."""
    too_long = generator.prompts_too_long(impressions, examples)
    skipped = {error.index for error in too_long}
    reports: list[str | None] = list(known) if known is not None else [None] * len(impressions)
    for index in sorted(skipped):
        if reports[index] is not None:
            name = names[index] if names is not None else f"prompt {index + 1}"
            raise ValueError(
                f"a report was given for {name}, whose prompt does not fit the model's context"
            )
    out_of_room = list(known_out_of_room or [False] * len(impressions))
    kept = [i for i in range(len(impressions)) if i not in skipped and reports[i] is None]
    if kept:
        written = generator.generate(
            [impressions[index] for index in kept],
            [examples[index] for index in kept] if examples is not None else None,
        )
        cut = generator.last_out_of_room
        for index, report, flag in zip(kept, written, cut, strict=True):
            reports[index] = report
            out_of_room[index] = flag
    return reports, out_of_room, too_long


def _retrieved_examples(
    impressions: list[str],
    train: pd.DataFrame | None,
    retrieval_k: int,
    retrieval_match: RetrievalMatch,
) -> list[list[tuple[str, str]]] | None:
    if retrieval_k > 0 and train is not None and not train.empty:
        index = ImpressionIndex.from_table(train, match=retrieval_match)
        return index.nearest(impressions, retrieval_k)
    return None
