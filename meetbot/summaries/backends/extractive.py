"""The extractive summarizer: the default; deterministic, no model, no network; it picks the meeting's own sentences."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass

from meetbot.errors import SummaryError
from meetbot.schemas.transcripts import ActionItem, SummaryBody, TranscriptBody
from meetbot.summaries.backend import Style, Summarizer, has_speech, match_speaker, speaker_names

log = logging.getLogger("meetbot.summaries")

MODEL_NAME = "extractive"
SUMMARY_SENTENCES: dict[Style, int] = {"brief": 3, "detailed": 7}
SUMMARY_SHARE: dict[Style, int] = {"brief": 4, "detailed": 2}  # at most 1 in N sentences of a short transcript
KEY_POINTS: dict[Style, int] = {"brief": 3, "detailed": 5}
MAX_ACTION_ITEMS = 20
SHORT_SENTENCE_WORDS = 5  # sentences shorter than this score half
LONG_SENTENCE_WORDS = 40  # and longer ones are scaled down towards it
DUPLICATE_OVERLAP = 0.5  # key points sharing this much of their words with an earlier one are skipped

_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being below between both
    but by can cannot could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself me more most my myself no nor not of off on once
    only or other ought our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where which
    while who whom why with would you your yours yourself yourselves
    aren't can't couldn't didn't doesn't don't hadn't hasn't haven't he'd he'll he's here's how's i'd i'll i'm i've
    isn't it's let's mustn't shan't she'd she'll she's shouldn't that's there's they'd they'll they're they've wasn't
    we'd we'll we're we've weren't what's when's where's who's why's won't wouldn't you'd you'll you're you've
    yeah yes yep yup no nope ok okay um uh uhm erm hmm mm oh ah like just really well also actually basically right
    sure thanks thank please hi hello hey bye going gonna wanna get got go know think mean kind sort thing things lot
    bit will shall may might must need needs still even much many maybe let us said say says something anything
    everything nothing someone somebody everyone everybody anyone one two guys today now good great fine cool
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Capitalised words that start commitments without naming a person ("Tomorrow will be busy").
_NOT_NAME_TEXT = """
    monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
    september october november december tomorrow tonight yesterday week month year time next last first this
"""
NOT_NAMES = STOPWORDS | frozenset(_NOT_NAME_TEXT.split())
# "X should/must/needs to …" is a task even when X is no person; "it should be fine" is not.
_OBLIGATION = re.compile(r"\b(?:should|must|needs? to|has to|have to)$")
STATIVE_SUBJECTS = frozenset({"it", "that", "this", "there", "which", "what", "who", "these", "those", "everything"})
GROUP_SUBJECTS = frozenset({"we", "us", "everyone", "everybody", "someone", "somebody", "all", "team", "y'all"})
FILLERS = re.compile(
    r"^(?:(?:so|okay|ok|um|uh|uhm|hmm|well|and|also|right|yes|yeah|yep|sure|alright|anyway|oh)\b[\s,.]*)+", re.I
)
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "approx", "jr", "sr"})
_SENTENCE_BREAK = re.compile(r"[.!?…]+[\"')\]]*\s+")
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")

# Commitments: a subject, then a modal that says someone is going to do something (not "won't", not "will not").
_COMMITMENT = re.compile(
    r"\b(?P<subj>[A-Za-z][A-Za-z-]*)(?P<modal>'ll|'m going to|'re going to|'s going to|"
    r"(?:\s+(?:also|really|still|just|then|definitely|probably|certainly|actually|first|both|all))?"
    r"\s+(?:will|shall|should|must|can|needs? to|has to|have to|(?:is|are|am) going to|(?:is|are|am) gonna))"
    r"\b(?!')(?!\s+(?:not|never)\b)",
    re.I,
)
_REQUEST = re.compile(r"\b(?:can|could|would|will)\s+you\b(?!\s+(?:believe|imagine|hear|see)\b)|\bplease\b", re.I)
_ASKED_NAME = re.compile(r"\b(?:can|could|will|would)\s+(?P<name>[A-Z][A-Za-z-]*)\s+(?!you\b)", re.I)
_OTHER_CUES = re.compile(
    r"\blet'?s\b|\blet us\b|\bmake sure\b|\baction items?\b|\bto-?dos?\b|\bfollow(?:[- ])?up\b|\bremember to\b|"
    r"\bdon't forget\b|\bdeadline\b|\bby (?:the )?(?:end of (?:the )?(?:day|week|month)|monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday|tomorrow|tonight|next week|eod|eow|noon)\b",
    re.I,
)
# "Let's start with the budget" runs the meeting; it gives nobody anything to do.
_MEETING_FLOW = re.compile(
    r"\blet'?s (?:start|begin|move on|go (?:on|ahead|over|through)|talk|discuss|wrap|look|see|get started|recap|"
    r"turn|jump|switch|continue|kick off|hear|take a look)\b[^.!?]*",
    re.I,
)
_LEADING_VOCATIVE = re.compile(r"^\W*(?P<name>[A-Z][A-Za-z-]*)\s*,")
_TRAILING_VOCATIVE = re.compile(r",\s*(?P<name>[A-Z][A-Za-z-]*)\s*[?.!]*$")
_ACCEPTS = re.compile(
    r"^\W*(?:sure|yes|yeah|yep|ok(?:ay)?|will do|no problem|on it|i can|i will|i'll|absolutely|of course|got it)\b",
    re.I,
)


@dataclass(frozen=True)
class Sentence:
    index: int
    speaker: str | None
    text: str
    words: tuple[str, ...]  # every word, lower-case
    terms: tuple[str, ...]  # the content words, normalised


class ExtractiveSummarizer(Summarizer):
    """Word-frequency sentence scoring with position and length normalisation; cue phrases for action items."""

    name = "extractive"

    def summarize(self, transcript: TranscriptBody, style: Style = "brief", prompt: str | None = None) -> SummaryBody:
        if not has_speech(transcript):
            raise SummaryError("no speech to summarize")
        speakers = speaker_names(transcript)
        sentences = split_sentences(transcript)
        scores = score_sentences(sentences)
        ranked = sorted(sentences, key=lambda s: (-scores[s.index], -len(s.words), s.index))
        candidates = [s for s in ranked if scores[s.index] > 0] or ranked

        count = min(SUMMARY_SENTENCES[style], max(1, math.ceil(len(candidates) / SUMMARY_SHARE[style])))
        summary = _as_prose(sorted(candidates[:count], key=lambda s: s.index))
        actions = action_items(sentences, speakers)
        acted = {text for text, _ in actions}
        key_points = _key_points(candidates, acted, KEY_POINTS[style])
        log.debug(
            "extractive summary made",
            extra={"sentences": len(sentences), "style": style, "summary_sentences": count,
                   "key_points": len(key_points), "action_items": len(actions)},
        )  # fmt: skip
        return SummaryBody(
            summary=summary,
            key_points=key_points,
            action_items=[ActionItem(text=text, owner=owner) for text, owner in actions],
            model=MODEL_NAME,
        )


def split_sentences(transcript: TranscriptBody) -> list[Sentence]:
    """The transcript's sentences with their speakers; a speaker's segments that break mid-sentence are joined."""
    turns: list[tuple[str | None, str]] = []
    for segment in transcript.segments:
        text = " ".join(segment.text.replace("\u2019", "'").split())
        if not text:
            continue
        speaker = segment.speaker.strip() if segment.speaker and segment.speaker.strip() else None
        if turns and turns[-1][0] == speaker and not re.search(r"[.!?…][\"')\]]*$", turns[-1][1]):
            turns[-1] = (speaker, f"{turns[-1][1]} {text}")
        else:
            turns.append((speaker, text))
    sentences: list[Sentence] = []
    for speaker, text in turns:
        for piece in _split_text(text):
            words = tuple(_WORD.findall(piece.lower()))
            if words:
                terms = tuple(_normalise(w) for w in words if w not in STOPWORDS and len(w) > 1 and not w.isdigit())
                sentences.append(Sentence(len(sentences), speaker, piece, words, terms))
    return sentences


def _split_text(text: str) -> list[str]:
    pieces, start = [], 0
    for match in _SENTENCE_BREAK.finditer(text):
        before = text[start : match.start()].split()
        if match.group().startswith(".") and before and before[-1].lower().rstrip(".") in ABBREVIATIONS:
            continue
        pieces.append(text[start : match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    return [piece for piece in pieces if piece]


def _normalise(word: str) -> str:
    """A crude stem: possessives and plurals folded, so "budgets" and "budget's" count as "budget"."""
    word = word.removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def score_sentences(sentences: list[Sentence]) -> dict[int, float]:
    """Each sentence's weight: the frequency of its content words, normalised for length and position."""
    freq = Counter(term for sentence in sentences for term in sentence.terms)
    top = max(freq.values(), default=1)
    last = max(len(sentences) - 1, 1)
    scores: dict[int, float] = {}
    for sentence in sentences:
        distinct = dict.fromkeys(sentence.terms)
        if not distinct:
            scores[sentence.index] = 0.0
            continue
        score = sum(freq[term] / top for term in distinct) / math.sqrt(len(distinct))
        length = len(sentence.words)
        if length < SHORT_SENTENCE_WORDS:
            score *= 0.5
        elif length > LONG_SENTENCE_WORDS:
            score *= LONG_SENTENCE_WORDS / length
        position = sentence.index / last
        if position <= 0.15 or position >= 0.85:  # agendas open a meeting, decisions close it
            score *= 1.1
        if sentence.text.endswith("?"):
            score *= 0.8
        scores[sentence.index] = round(score, 9)  # rounded: no float noise decides an order
    return scores


def _as_prose(sentences: list[Sentence]) -> str:
    """Sentences in order, each run of one speaker's sentences led by the speaker's name."""
    parts: list[str] = []
    previous: str | None = None
    for i, sentence in enumerate(sentences):
        text = _clean(sentence.text)
        if sentence.speaker and (i == 0 or sentence.speaker != previous):
            text = f"{sentence.speaker}: {text}"
        parts.append(text)
        previous = sentence.speaker
    return " ".join(parts)


def _key_points(candidates: list[Sentence], acted: set[str], limit: int) -> list[str]:
    """The best-scoring distinct statements (no questions, no action items), in the order they were said."""
    picked: list[Sentence] = []
    for pool in (
        [s for s in candidates if not s.text.endswith("?") and _clean(s.text) not in acted],
        [s for s in candidates if not s.text.endswith("?")],
        candidates,
    ):
        for sentence in pool:
            if len(picked) >= limit:
                break
            if sentence in picked or any(_overlap(sentence, other) >= DUPLICATE_OVERLAP for other in picked):
                continue
            picked.append(sentence)
        if picked:
            break
    return [_clean(s.text) for s in sorted(picked, key=lambda s: s.index)]


def _overlap(a: Sentence, b: Sentence) -> float:
    ta, tb = set(a.terms), set(b.terms)
    return len(ta & tb) / len(ta | tb) if ta | tb else 1.0


def _clean(text: str) -> str:
    """The sentence without leading fillers ("So, um, …"), starting with a capital."""
    stripped = FILLERS.sub("", text).strip() or text
    return stripped[0].upper() + stripped[1:]


def action_items(sentences: list[Sentence], speakers: list[str]) -> list[tuple[str, str | None]]:
    """(text, owner) of each sentence that commits someone to something or asks for it, in the order said."""
    items: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for i, sentence in enumerate(sentences):
        following = sentences[i + 1] if i + 1 < len(sentences) else None
        found = _action(sentence, following, speakers)
        if found is None:
            continue
        text = _clean(sentence.text)
        if text.casefold() in seen:
            continue
        seen.add(text.casefold())
        items.append((text, found))
        if len(items) >= MAX_ACTION_ITEMS:
            break
    return [(text, owner or None) for text, owner in items]


def _action(sentence: Sentence, following: Sentence | None, speakers: list[str]) -> str | None:
    """None when `sentence` is no action item; else its owner, "" when nobody in particular."""
    text = sentence.text
    if len(sentence.words) < 4:
        return None
    request = _REQUEST.search(text)
    if request:
        return _addressee(sentence, following, speakers) or ""
    asked = _ASKED_NAME.search(text)
    if asked and match_speaker(asked.group("name"), speakers):
        return match_speaker(asked.group("name"), speakers)
    if text.endswith("?"):  # "Should we move it?" asks, it does not assign
        return None
    for match in _COMMITMENT.finditer(text):
        owner = _subject_owner(match, sentence, following, speakers)
        if owner is not None:
            return owner
    if _OTHER_CUES.search(_MEETING_FLOW.sub("", text)):
        return _addressee(sentence, None, speakers) or ""
    return None


def _subject_owner(
    match: re.Match[str], sentence: Sentence, following: Sentence | None, speakers: list[str]
) -> str | None:
    """The owner a commitment's subject names: a speaker, a named person, "" for a group; None when no commitment."""
    subject, modal = match.group("subj"), match.group("modal").strip().lower()
    lowered = subject.lower()
    if lowered == "i":
        return sentence.speaker or ""
    if modal.split()[-1] == "can":  # "we can see…", "it can wait": only "I can" is a promise
        return None
    if lowered in GROUP_SUBJECTS:
        return ""
    if lowered == "you":
        return _addressee(sentence, following, speakers) or ""
    if lowered in ("he", "she", "they"):
        return ""
    if _OBLIGATION.search(modal) and lowered not in STATIVE_SUBJECTS:
        return ""  # "the announcement should mention…": a task, nobody named
    speaker = match_speaker(subject, speakers)
    if speaker:
        return speaker
    if subject[0].isupper() and lowered not in NOT_NAMES and subject[1:].islower():
        return subject  # someone named who is not on the call ("Dave will handle it")
    return None


def _addressee(sentence: Sentence, following: Sentence | None, speakers: list[str]) -> str | None:
    """Whom a request speaks to: a speaker named with a comma ("Alice, can you…"), else whoever says yes next.

    `following` is None where only a name counts (a "we" or "let's" cue is not answered by "okay").
    """
    for pattern in (_LEADING_VOCATIVE, _TRAILING_VOCATIVE):
        found = pattern.search(sentence.text)
        if found:
            speaker = match_speaker(found.group("name"), speakers)
            if speaker and speaker != sentence.speaker:
                return speaker
    if (
        following is not None
        and following.speaker
        and following.speaker != sentence.speaker
        and _ACCEPTS.search(following.text)
    ):
        return following.speaker
    return None
