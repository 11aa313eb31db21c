"""Impressions whose prompts differ in length by more than a short decode: a batch of them
is padded, and one can be put near the context's end without the others."""

IMPRESSIONS = [
    "No acute cardiopulmonary disease.",
    "Cardiomegaly with mild bibasilar infiltrates versus atelectasis, follow-up recommended.",
    "Clear lungs.",
    "Stable right upper lobe nodule.",
]
