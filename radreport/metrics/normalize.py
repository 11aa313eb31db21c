"""Report text normalisation before scoring: the R2Gen protocol for IU X-Ray.

R2Gen (Chen et al., EMNLP 2020) scores reports after lowercasing, dropping list numbering,
stripping punctuation, quotes and slashes, and writing each sentence followed by " ." — so
sentence boundaries become tokens that BLEU and ROUGE-L count, as in every published IU X-Ray
number. Scores are only comparable with the reference table in evaluation.md when both sides
go through this function.

Text from outside English ASCII is first brought to one form, so that text that reads the
same scores the same: Unicode compatibility composition (NFKC: decomposed accents, full-width
letters and "…" as "..."), invisible characters (zero-width spaces, soft hyphens) dropped,
typographic quotes stripped like straight ones, the ideographic full stop "。" ending a
sentence, and each Chinese or Japanese character a token of its own, as sacrebleu's Chinese
tokenizer splits them (those languages write no spaces between words). English ASCII text
normalises exactly as before.
"""

from __future__ import annotations

import re
import unicodedata

from radreport.visible_text import visible

# "1. " or "2. " opening a list item: at the start of the report or after whitespace, where
# a missing full stop before it ("... effusion 2. Cardiomegaly") still marks a new sentence.
_LIST_NUMBER = re.compile(r"(?:^|(?<=\s))\d{1,2}\.\s+")
# A sentence ends at a full stop followed by whitespace or the end of the text; a full stop
# inside a token ("3.5 cm", "normal.The") does not split, as in R2Gen.
_SENTENCE_END = re.compile(r"\.+(?:\s+|$)|。+\s*")
_STRIPPED_CHARACTERS = re.compile(r"""[.,?;*!%^&_+():\-\[\]{}"'`/\\‘’‚‛“”„‟«»‹›、，]""")
_WHITESPACE = re.compile(r"\s+")
# Han ideographs, hiragana and katakana: one token each (the TF-IDF baseline's too).
CJK_CHARACTER = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_CJK_CHARACTER = re.compile(f"({CJK_CHARACTER})")


def _one_form(text: str) -> str:
    if text.isascii():
        return text
    return _CJK_CHARACTER.sub(r" \1 ", visible(unicodedata.normalize("NFKC", text)))


def normalize_sentence(sentence: str) -> str:
    """One sentence lowercased, without the protocol's punctuation, single-spaced."""
    stripped = _STRIPPED_CHARACTERS.sub("", sentence.lower())
    return _WHITESPACE.sub(" ", stripped).strip()


def normalize_report(text: str) -> str:
    """A report as R2Gen scores it: "the heart is normal . the lungs are clear ."

    Sentences left empty by the stripping are dropped, so a stray "." is not scored as a
    sentence; an empty report normalises to "" (no tokens, not a lone ".").
    """
    unnumbered = _LIST_NUMBER.sub(". ", _one_form(text).strip())
    sentences = (normalize_sentence(part) for part in _SENTENCE_END.split(unnumbered))
    kept = [sentence for sentence in sentences if sentence]
    return " . ".join(kept) + " ." if kept else ""
