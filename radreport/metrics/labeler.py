"""A rule-based labeler of the 14 CheXpert observations in a free-text report.

This is an offline approximation of the labels CheXbert (Smit et al., 2020) would give, so
that a clinical metric runs without downloading model weights. It follows the CheXpert
labeler's scheme (Irvin et al., 2019): find mentions of each observation, then classify each
mention as negated, uncertain or positive from cue phrases in its clause, then aggregate.

Labels per observation: 1 positive, 0 negative, -1 uncertain, NaN not mentioned.
- A mention is negated by a cue before it in the same clause ("no", "without",
  "negative for", "free of", "resolution of" ...) or after it ("is not seen",
  "has resolved"); the scope of a cue runs to the end of the clause, so
  "No pleural effusion or pneumothorax." negates both.
- A mention answered by one word after a colon, comma or question mark ("Pneumothorax:
  none.", "Effusion, resolved.", "Pleural effusion? No.") is negated, and "rather than"
  negates what follows it.
- A mention is uncertain by a cue such as "may", "possible", "suspicious for",
  "cannot be excluded", "versus". The cue nearest before the mention wins, so
  "no evidence to suggest pneumonia" is negative and "may represent atelectasis" uncertain.
- Over a report, positive beats uncertain beats negative, as in CheXpert.
- "No Finding" is 1 when no observation other than Support Devices is positive or uncertain,
  otherwise not mentioned, as in CheXpert.

Known weaknesses (see benchmarks/results/evaluation.md for agreement with IU X-Ray MeSH
labels): no syntax, so a cue's scope is the clause, not the phrase it governs ("No
pneumothorax, mild atelectasis." negates both); no anatomy beyond the patterns below; findings
outside the 14 observations (granulomas, degenerative spine) are ignored. It also covers the
synthetic CT demo's findings: pulmonary nodule (Lung Lesion), pleural effusion,
consolidation, pneumothorax and cardiomegaly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
NOT_MENTIONED = float("nan")

NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"


def _near(subject: str, finding: str, max_words_between: int = 3) -> str:
    """`subject` and `finding` in either order with up to `max_words_between` words between,
    in one run of words ("heart is mildly enlarged", "enlarged cardiac silhouette")."""
    gap = rf"(?:\s+[\w'-]+){{0,{max_words_between}}}?\s+"
    return rf"(?:{subject}){gap}(?:{finding})|(?:{finding}){gap}(?:{subject})"


# One pattern per observation, CheXpert's 13 plus the demo's wording; order is CheXpert's.
_MENTIONS = {
    "Enlarged Cardiomediastinum": _near(
        r"(?:cardio)?mediastin\w*", r"widen\w*|enlarge\w*|prominen\w*"
    ),
    "Cardiomegaly": "|".join(
        (
            r"cardiomegaly",
            r"cardiac enlargement",
            r"enlargement of the (?:heart|cardiac \w+)",
            _near(r"heart|cardiac (?:silhouette|shadow|size|contours?)", r"enlarged|large", 4),
            r"borderline (?:\w+ )?(?:heart|cardiac) size",
        )
    ),
    "Lung Lesion": "|".join(
        (
            r"nodules?",
            r"nodular (?:densit(?:y|ies)|opacit(?:y|ies)|opacification)",
            r"mass(?:es)?",
            r"(?:lung|pulmonary|cavitary|spiculated) lesions?",
            r"neoplasms?|tumou?rs?|carcinoma|malignan\w*|metasta\w*",
        )
    ),
    "Lung Opacity": "|".join(
        (
            r"(?<!nodular )opaci\w*|opaque",
            r"(?<!nodular )(?<!bone )densit(?:y|ies)",
            r"infiltrat\w*",
            r"(?:air[- ]?space|alveolar) (?:disease|process|filling)",
            r"interstitial (?:markings?|opacit\w*|pattern|prominence|(?:lung )?disease)",
            r"reticula\w*",
            r"peribronchial (?:thickening|cuffing)",
            r"parenchymal scarring",
        )
    ),
    "Edema": "|".join(
        (
            r"edema",
            r"(?:vascular|venous|pulmonary|interstitial) congestion",
            r"(?:congestive )?heart failure|chf",
            _near(r"vascula\w*", r"prominen\w*|engorge\w*|accentuat\w*|indistinct\w*"),
            r"cephalization|kerley|fluid overload",
        )
    ),
    "Consolidation": r"consolidat\w*",
    # "prior granulomatous infection" is a healed state, not pneumonia
    "Pneumonia": "|".join(
        (
            r"(?:broncho)?pneumoni(?:a|as|c|tis)",
            r"(?<!granulomatous )(?<!histoplasmosis )infect(?:ion|ions|ious)",
        )
    ),
    "Atelectasis": "|".join(
        (
            r"atelecta\w*",
            r"(?:lung|lobar|lobe|segmental|subsegmental) collapse",
            r"collapsed? (?:of )?(?:the )?(?:\w+ )?(?:lung|lobe)",
        )
    ),
    "Pneumothorax": r"(?:hydro)?pneumothora(?:x|ces)",
    "Pleural Effusion": "|".join(
        (r"(?<!pericardial )(?<!joint )effusions?", r"pleural fluid|hydro(?:pneumo)?thorax")
    ),
    "Pleural Other": "|".join(
        (
            r"pleural(?:[- ]parenchymal)? (?:thickening|plaques?|scar\w*|calcifications?)",
            r"(?:thickening|calcification|scarring) of the pleura",
            r"fibrothorax|apical (?:pleural )?cap(?:ping)?",
        )
    ),
    "Fracture": r"fractur\w*|fx",
    SUPPORT_DEVICES: "|".join(
        (
            r"pacemakers?|pacer|defibrillators?|aicd|icd|loop recorder",
            r"picc|catheters?|port[- ]?a[- ]?cath|(?:chest|power) port",
            r"(?:central|venous|dialysis|jugular|subclavian|swan[- ]ganz) (?:catheter|line)s?",
            r"(?:endotracheal|tracheostomy|nasogastric|orogastric|feeding|chest|enteric|gastric"
            r"|et|ng|og|dobhoff) tubes?",
            r"tracheostomy|(?:sternotomy|sternal|surgical|cerclage) (?:wires?|sutures?)",
            r"(?:surgical |vascular )?clips|staples|stents?|hardware|drains?|prosthes[ie]s",
            r"(?:prosthetic|mechanical|replacement) (?:\w+ )?valves?",
            r"valve (?:replacement|prosthesis)",
            r"devices?|(?:pacer|pacing|transvenous|monitor|monitoring|ecg|ekg) leads?",
            r"(?:embolization )?coils|tip (?:in|at|projects|projecting|overlies|overlying)",
        )
    ),
}
OBSERVATIONS: tuple[str, ...] = (NO_FINDING, *_MENTIONS)
_MENTION_PATTERNS = {name: re.compile(rf"\b(?:{pattern})\b") for name, pattern in _MENTIONS.items()}

# "no change in the cardiomegaly" reports a finding, it does not deny one.
_NOT_ABOUT_CHANGE = r"(?!\s+(?:\w+\s+)?changed?\b)"
_NEGATION_BEFORE = re.compile(
    rf"\b(?:no{_NOT_ABOUT_CHANGE}|not{_NOT_ABOUT_CHANGE}|without{_NOT_ABOUT_CHANGE}"
    r"|negative for|(?:free|clear) of|absence of|absent|neither|nor"
    r"|resolution of|resolved|removal of|removed|rather than)\b"
)
# "cannot exclude" contains "not"-like words; uncertainty cues are matched first and any
# negation cue inside one is ignored.
_UNCERTAINTY_BEFORE = re.compile(
    r"\b(?:may|might|could|possibl[ey]|probabl[ey]|(?:un)?likely|presum\w*|suspect\w*"
    r"|suspicio(?:us|n) (?:for|of)|concern(?:ing)? for|worrisome for|question(?:able)?(?: of)?"
    r"|equivocal|indeterminate|borderline|versus|vs|differential|consider(?:ed|ation)?|suggest(?:s|ive|ing)"
    r"|(?:can ?not|can't|not) (?:be )?(?:exclude[sd]?|rule[sd]? out)|rule out|to exclude)\b"
)
_NEGATION_AFTER = re.compile(
    r"^\W*(?:(?:is|are|was|were|has|have)\s+)?(?:been\s+)?(?:not|no longer)\s+"
    r"(?:\w+ly\s+)?(?:seen|identified|visuali[sz]ed|present|appreciated|evident|demonstrated"
    r"|noted|detected|visible|apparent)\b"
    r"|^\W*(?:(?:is|are|was|were|has|have)\s+)?(?:been\s+)?(?:resolved|removed|absent|cleared)\b"
    r"|^\W*(?:(?:is|are|appears?|remains?)\s+)?(?:within (?:the )?(?:normal limits|limits of"
    r" normal)|normal)\b"
)
_UNCERTAINTY_AFTER = re.compile(
    r"^\W*(?:(?:is|are|was|were)\s+)?(?:(?:can ?not|not)\s+(?:be\s+)?"
    r"(?:excluded|ruled out)|possible|suspected|questioned|questionable|(?:un)?likely|probable)\b"
    r"|^\W*(?:versus|vs)\b"
)
# A cue does not reach past these: clause ends and contrasting conjunctions.
_CLAUSE_BREAK = re.compile(
    r"[,:]?\s*\b(?:but|however|although|though|except|aside from|apart from|otherwise"
    r"|which|whereas|there (?:is|are))\b|:"
)
# A question mark answered at once ("Pleural effusion? No.") does not end the sentence, and
# line ends are any of Unicode's: a lone carriage return, U+2028, U+0085.
_SENTENCE_BREAK = re.compile(
    r"(?:[.;!]|\?(?!\s*(?:no|none|negative|yes)\b))(?:\s+|$)|[\n\r\u0085\u2028\u2029]+"
)
# A mention answered by a one-word value after a colon, comma or question mark, as
# structured reports write them: "Pneumothorax: none.", "Effusion, resolved.".
_ANSWERED_NEGATIVE = re.compile(
    r"\s*[:?,]\s*(?:none|negative|absent|resolved|no)(?=\s*(?:[.;,!]|$))"
)
# Words after a mention that can carry its post-cue, up to the next comma or clause break.
_AFTER_WINDOW = re.compile(r"[^,]{0,60}")


def _last_cue(text: str) -> float | None:
    """The status set by the cue nearest to the end of `text`, if any."""
    uncertain = [match.span() for match in _UNCERTAINTY_BEFORE.finditer(text)]
    negated = [
        match.start()
        for match in _NEGATION_BEFORE.finditer(text)
        if not any(start <= match.start() < end for start, end in uncertain)
    ]
    cues = [(start, UNCERTAIN) for start, _ in uncertain] + [(at, NEGATIVE) for at in negated]
    return max(cues)[1] if cues else None


def _status_after(text: str) -> float | None:
    if _UNCERTAINTY_AFTER.match(text):
        return UNCERTAIN
    if _NEGATION_AFTER.match(text):
        return NEGATIVE
    return None


def _mention_status(sentence: str, start: int, end: int) -> float:
    """Negated, uncertain or positive, from the cues in the mention's clause."""
    if _ANSWERED_NEGATIVE.match(sentence, end):
        return NEGATIVE
    clause_start = max((m.end() for m in _CLAUSE_BREAK.finditer(sentence, 0, start)), default=0)
    # The mention itself is searched too: "heart is not enlarged" carries its own "not".
    before = _last_cue(sentence[clause_start:end])
    if before is not None:
        return before
    following_break = _CLAUSE_BREAK.search(sentence, end)
    clause_end = following_break.start() if following_break else len(sentence)
    window = _AFTER_WINDOW.match(sentence, end, clause_end)
    after = _status_after(window.group()) if window else None
    return POSITIVE if after is None else after


def _combine(current: float, new: float) -> float:
    """Positive beats uncertain beats negative beats not mentioned."""
    ranking = {POSITIVE: 3, UNCERTAIN: 2, NEGATIVE: 1}
    if np.isnan(current) or ranking[new] > ranking[current]:
        return new
    return current


def label_report(text: str) -> dict[str, float]:
    """CheXpert-style labels of one report: {observation: 1, 0, -1 or NaN}."""
    labels = dict.fromkeys(_MENTIONS, NOT_MENTIONED)
    for sentence in _SENTENCE_BREAK.split(text.lower()):
        for name, pattern in _MENTION_PATTERNS.items():
            for mention in pattern.finditer(sentence):
                status = _mention_status(sentence, mention.start(), mention.end())
                labels[name] = _combine(labels[name], status)
    findings = [value for name, value in labels.items() if name != SUPPORT_DEVICES]
    any_finding = any(value in (POSITIVE, UNCERTAIN) for value in findings)
    return {NO_FINDING: NOT_MENTIONED if any_finding else POSITIVE, **labels}


def mentions_any_finding(texts: Iterable[str]) -> bool:
    """Whether any text mentions any observation, present, absent or uncertain."""
    patterns = _MENTION_PATTERNS.values()
    return any(pattern.search(text.lower()) for text in texts for pattern in patterns)


def label_reports(texts: Iterable[str]) -> pd.DataFrame:
    """One row of labels per report, columns in CheXpert order; repeated texts labelled once."""
    texts = list(texts)
    unique = {text: label_report(text) for text in dict.fromkeys(texts)}
    return pd.DataFrame([unique[text] for text in texts], columns=list(OBSERVATIONS))


def binarize_labels(labels: pd.DataFrame, uncertain_as: int) -> np.ndarray:
    """Labels as presence (n_reports, 14) booleans: positive -> True, uncertain ->
    `uncertain_as`, negative or not mentioned -> False."""
    values = labels[list(OBSERVATIONS)].to_numpy(dtype=np.float64)
    return (values == POSITIVE) | ((values == UNCERTAIN) & bool(uncertain_as))
