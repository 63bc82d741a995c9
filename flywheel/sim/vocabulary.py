"""Words the simulated prompts are made of, and the truth they carry.

Every category value has its own vocabulary, and so does every ticket label, so
that a prompt's words carry signal about its category and its true answer. The
label vocabularies are disjoint from everything else: the true label of a ticket
is a function of its text alone (`truth_label`): the label whose words occur
most often, ties broken by a stable hash of the text.
"""

from __future__ import annotations

import re

from .seeding import stable_seed

CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    # ticket_triage.product
    "billing": tuple(
        "invoice charge payment card subscription plan receipt statement vat tax billing "
        "renewal prorated discount coupon pricing checkout bank transfer paypal overcharged "
        "debit annual monthly upgrade downgrade balance credit quote purchase order".split()
    ),
    "technical": tuple(
        "api endpoint server timeout crash error stacktrace sdk integration webhook latency "
        "database sync upload export dashboard browser mobile app android ios version "
        "release deploy config certificate ssl dns cache query performance".split()
    ),
    "account": tuple(
        "login password username email profile settings sso saml mfa 2fa authenticator "
        "permissions role admin team invite seat workspace organization verification "
        "session device recovery security deactivate merge owner".split()
    ),
    "shipping": tuple(
        "package parcel courier tracking shipment warehouse dispatch carrier ups fedex dhl "
        "postcode address customs pallet box label delivered doorstep depot freight "
        "express standard international signature handling transit".split()
    ),
    # report_generation.report_type
    "summary": tuple(
        "summary recap overview highlights digest brief key points takeaways outline "
        "condensed synopsis abstract headline snapshot roundup main".split()
    ),
    "analysis": tuple(
        "analysis breakdown drivers correlation segment cohort variance root cause "
        "comparison benchmark deep dive factors elasticity attribution funnel churn "
        "distribution anomaly".split()
    ),
    "forecast": tuple(
        "forecast projection outlook next quarter trend scenario estimate pipeline "
        "growth seasonality demand prediction target run rate horizon budget plan "
        "expected range confidence interval".split()
    ),
}

LABEL_WORDS: dict[str, tuple[str, ...]] = {
    "refund": tuple(
        "refund refunded reimburse reimbursement money back chargeback cancel cancellation "
        "return returned compensation credited reversal dispute twice duplicate".split()
    ),
    "bug": tuple(
        "bug broken fails failing glitch defect regression exception error-500 unresponsive "
        "freezes hangs corrupt malfunction misbehaves".split()
    ),
    "access": tuple(
        "locked lockout access denied unauthorized forbidden reset blocked suspended "
        "cannot-login expired revoked disabled unlock reactivate".split()
    ),
    "delivery": tuple(
        "late delayed missing lost damaged undelivered stuck rerouted redelivery "
        "never-arrived overdue wrong-address misdelivered held".split()
    ),
    "other": tuple(
        "feedback suggestion question partnership compliment feature-request survey "
        "curious wondering idea inquiry general press careers".split()
    ),
}

FILLER_SENTENCES: tuple[str, ...] = (
    "I tried again this morning.",
    "Please advise as soon as you can.",
    "This has happened a couple of times now.",
    "My colleague saw the same thing yesterday.",
    "I already checked the help center.",
    "Not sure who else to ask about this.",
    "We rely on this for our daily work.",
    "Thanks in advance for looking into it.",
    "Let me know if you need more details.",
    "I can share screenshots if that helps.",
    "It was fine until last week.",
    "Our team is getting a bit frustrated.",
    "Happy to jump on a call.",
    "The reference number is in my previous message.",
)
OPENINGS: dict[str, tuple[str, ...]] = {
    "email": ("Subject: help needed\n\nHi team,", "Hello,", "Dear support,", "Good morning,"),
    "chat": ("hi", "hey there", "hello, quick one", "hi!"),
    "phone": ("Call transcript. Caller says:", "Phone note from agent:", "Voicemail transcription:"),
}
CLOSINGS: dict[str, tuple[str, ...]] = {
    "email": ("Best regards, Sam", "Thanks, Alex", "Kind regards, Priya", "Cheers, Jordan"),
    "chat": ("thx", "ty", "thanks!", ""),
    "phone": ("Caller asked for a callback.", "Call ended.", "Customer was polite."),
}
TIER_SENTENCES: dict[str, str] = {
    "free": "I am on the free plan.",
    "pro": "We are a pro customer.",
    "enterprise": "We are an enterprise account with an SLA.",
}
LABEL_TEMPLATES: tuple[str, ...] = (
    "The {l} situation started after the {c} change.",
    "Can you look into the {l} thing with my {c}?",
    "I think this is about {l} and the {c}.",
    "We need the {l} sorted before the {c} deadline.",
    "Still waiting on the {l} for the {c}.",
    "Everything around the {c} is {l} right now.",
)
CATEGORY_TEMPLATES: tuple[str, ...] = (
    "It concerns the {c} on our side.",
    "Our {c} and {c2} look odd since Monday.",
    "This is about {c} and {c2}.",
    "The {c} shows something unexpected.",
)
REPORT_OPENINGS: tuple[str, ...] = (
    "Write a {t} for the {a} audience",
    "Please prepare a {t} for {a} readers",
    "Draft a {t} aimed at the {a} team",
    "We need a {t} to share with {a} stakeholders",
)
REPORT_TOPICS: tuple[str, ...] = tuple(
    "revenue support-tickets onboarding retention marketing operations hiring logistics "
    "inventory customer-satisfaction product-usage infrastructure".split()
)

_WORD = re.compile(r"[a-z0-9-]+")
_TRAILING = ("", ".", ",", ";", ":", "!", "?")
_LABEL_OF_WORD: dict[str, str] = {w: lab for lab, words in LABEL_WORDS.items() for w in words}
_LABEL_OF_TOKEN: dict[str, str] = {w + p: lab for w, lab in _LABEL_OF_WORD.items() for p in _TRAILING}
_GENERIC = tuple(f"w{i}" for i in range(24))


def category_words(category: str) -> tuple[str, ...]:
    """The vocabulary of a category value (generic words for a value without one)."""
    return CATEGORY_WORDS.get(category, tuple(f"{category}-{w}" for w in _GENERIC))


def label_words(label: str) -> tuple[str, ...]:
    """The vocabulary of a label (generic words for a label without one)."""
    return LABEL_WORDS.get(label, tuple(f"{label}-{w}" for w in _GENERIC))


def truth_label(text: str, labels: list[str] | tuple[str, ...]) -> str:
    """The true label of a ticket text: the label whose words occur most, ties by a stable hash.

    A word is a whitespace-separated token of the lower-cased text, with at most
    one trailing punctuation mark (`.,;:!?`).

    >>> truth_label("My package is late and still missing. Please refund.", ["refund", "delivery"])
    'delivery'
    """
    counts = dict.fromkeys(labels, 0)
    if all(lab in LABEL_WORDS for lab in labels):
        hits = [lab for lab in map(_LABEL_OF_TOKEN.get, text.lower().split()) if lab is not None]
    else:
        hits = [_generic_label(w, counts) or _LABEL_OF_WORD.get(w) for w in _WORD.findall(text.lower())]
    for lab in hits:
        if lab in counts:
            counts[lab] += 1
    best = max(counts.values())
    top = [lab for lab in labels if counts[lab] == best]
    if len(top) == 1:
        return top[0]
    return top[stable_seed("truth", text) % len(top)]


def _generic_label(word: str, counts: dict[str, int]) -> str | None:
    head = word.rsplit("-", 1)[0]
    return head if head in counts and head not in LABEL_WORDS else None
