"""Prompt texts for simulated requests, built from the vocabularies.

A ticket mentions its true label's words two to four times (and at most one
other label's word once), its category's words several times, and varies with
its channel (email, chat, phone) and customer tier. A report request names its
type, audience, topic and length. All randomness comes from the `rng` passed in.
"""

from __future__ import annotations

import random

from .vocabulary import (
    CATEGORY_TEMPLATES,
    CLOSINGS,
    FILLER_SENTENCES,
    LABEL_TEMPLATES,
    OPENINGS,
    REPORT_OPENINGS,
    REPORT_TOPICS,
    TIER_SENTENCES,
    category_words,
    label_words,
)

TICKET_MAX_CHARS = 600

_AUDIENCE_SENTENCES: dict[str, tuple[str, ...]] = {
    "internal": ("Plain internal language is fine.", "Include the numbers the team tracks."),
    "executive": ("Lead with the decision we need.", "Keep it to what matters for leadership."),
    "customer": ("Keep the language friendly and non-technical.", "Avoid internal jargon."),
}


def ticket_text(
    rng: random.Random,
    category: str,
    label: str,
    labels: list[str],
    fields: dict[str, object],
) -> str:
    """A support ticket of about 100 to 600 characters whose true label is `label`."""
    channel = str(fields.get("channel", "email"))
    cw, lw = category_words(category), label_words(label)
    core = [
        rng.choice(LABEL_TEMPLATES).format(l=rng.choice(lw), c=rng.choice(cw))
        for _ in range(rng.randint(2, 4))
    ]
    core += [
        rng.choice(CATEGORY_TEMPLATES).format(c=rng.choice(cw), c2=rng.choice(cw))
        for _ in range(rng.randint(1, 3))
    ]
    if len(labels) > 1 and rng.random() < 0.25:
        other = rng.choice([lab for lab in labels if lab != label])
        core.append(f"Maybe it is partly {rng.choice(label_words(other))} too, not sure.")
    tier = fields.get("customer_tier")
    if isinstance(tier, str) and tier in TIER_SENTENCES and rng.random() < 0.5:
        core.append(TIER_SENTENCES[tier])
    rng.shuffle(core)
    opening = rng.choice(OPENINGS.get(channel, OPENINGS["email"]))
    closing = rng.choice(CLOSINGS.get(channel, CLOSINGS["email"]))
    text = " ".join([opening, *core])
    target = rng.randint(100, TICKET_MAX_CHARS)
    for _ in range(6):
        if len(text) >= target:
            break
        filler = rng.choice(FILLER_SENTENCES)
        if len(text) + len(filler) + len(closing) + 2 > TICKET_MAX_CHARS:
            break
        text = f"{text} {filler}"
    if closing and len(text) + len(closing) + 1 <= TICKET_MAX_CHARS:
        text = f"{text} {closing}"
    return text.lower() if channel == "chat" else text


def report_request(rng: random.Random, report_type: str, fields: dict[str, object]) -> str:
    """A request for a report of type `report_type`, naming audience, topic and length."""
    audience = str(fields.get("audience", "internal"))
    words = category_words(report_type)
    picked = rng.sample(words, k=min(3, len(words)))
    topic = rng.choice(REPORT_TOPICS)
    parts = [
        rng.choice(REPORT_OPENINGS).format(t=report_type, a=audience) + f" on {topic}.",
        f"Cover the {', '.join(picked[:-1])} and {picked[-1]}.",
    ]
    extra = _AUDIENCE_SENTENCES.get(audience)
    if extra and rng.random() < 0.7:
        parts.append(rng.choice(extra))
    if rng.random() < 0.5:
        parts.append(f"Use last month's {topic} data and mention the {rng.choice(words)}.")
    length = fields.get("length_words")
    if isinstance(length, (int, float)):
        parts.append(f"About {int(length)} words.")
    return " ".join(parts)


def report_text(rng: random.Random, report_type: str, audience: str, on_topic: bool) -> str:
    """A short generated report: on topic (its type's words) or drifting off it."""
    words = category_words(report_type) if on_topic else REPORT_TOPICS
    a, b = rng.sample(words, k=2)
    head = report_type.capitalize() if on_topic else "Notes"
    return f"{head} for {audience} readers: {a} and {b} are the main points; details follow."
