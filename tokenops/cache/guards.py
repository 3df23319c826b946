"""Why two similar questions may still need different answers: the semantic cache's vetoes.

A sentence embedding scores "Is the clinic open on Sundays?" and "... closed on Sundays?" as
near-identical, and so it does an order number with two digits swapped, "Hackney" and
"Hounslow", or "adults" and "children". Each check here compares the two texts' words and
names the first difference that changes the answer, or returns None:

- `number`: numbers, amounts, times, dates, weekdays, months and relative days differ (number
  words count as digits: "ten days" is "10 days", "two-bed" is "2-bed"; "same-day" is not "next-day").
- `negation`: the two sides' polarities differ. A side is negated by "not", "don't", "never",
  "non-", "without", "in the absence of", or a verb of stopping ("stop watering", "avoid",
  "prevent"); idioms that deny nothing ("not only", "whether or not") do not count. A word whose
  opposite the other side has (open/closed, check-in/check-out, a word from the other end of a
  scale: increase/smaller, outstanding/inadequate, lawful/illegal) flips it too, so "not
  mandatory" and "optional" agree while "open" and "closed" do not.
- `entity`: a name (a capitalised word inside a sentence, an acronym, a word with digits) on one
  side appears nowhere on the other ("Sam" is not "Sarah" shortened).
- `swap`: the two texts say the same except that a word was replaced by a different word
  ("adults" -> "children", "flight" -> "package holiday"), the same two things sit on the other
  sides of a direction word ("Word to PDF" / "PDF to Word"), or a role is replaced by its
  counterpart (tenant/landlord, employer/employee). Spelling slips ("statment"), contractions
  ("can't" / "cannot"), greetings and sign-offs ("Morning!", "hi", "cheers") and answer particles
  ("No, ...") are not replacements.

The checks are deliberately lexical and cheap (no model); `tokenops eval cache` measures what
each one catches and what it costs in answers not served.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

Conflict = Literal["number", "negation", "entity", "swap"]
CHECKS: tuple[Conflict, ...] = ("number", "negation", "entity", "swap")

_WORD = re.compile(r"[£$€]?\d[\d,.:]*(?:\s?(?:am|pm|%|k|m|bn))?|[A-Za-z][A-Za-z'’\-]*")
_CONTRACTIONS = {
    "can't": "can not",
    "cannot": "can not",
    "won't": "will not",
    "shan't": "shall not",
    "n't": " not",
    "'re": " are",
    "'s": " is",
    "'m": " am",
    "'ve": " have",
    "'ll": " will",
    "'d": " would",
}
_NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "hundred": 100, "thousand": 1000, "million": 1000000,
    "third": 3, "fourth": 4, "fifth": 5, "twice": 2, "dozen": 12,
}  # fmt: skip
_TIME_WORDS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday mondays tuesdays wednesdays thursdays fridays "
    "saturdays sundays weekday weekdays weekend weekends today tomorrow yesterday tonight morning afternoon "
    "evening night midnight midday noon january february march april june july august september october "
    "november december spring summer autumn winter daily weekly monthly yearly annually annual hourly".split()
)
_NEGATIONS = frozenset(
    "not no never none nothing nobody nowhere neither nor without non absence absent lack lacking stop avoid prevent "
    "skip omit omitting except excluding eliminate".split()
)
"""Words that negate what follows, verbs of stopping included ("stop watering", "avoid"). "non-members" is read as
"non members", so it agrees with "not a member"."""
_NOT_NEGATIONS = frozenset({("not", "only"), ("no", "matter"), ("no", "doubt")})
"""Idioms that deny nothing ("not only ... but also")."""
_OPPOSITES = (
    ("open", "closed"), ("open", "close"), ("add", "remove"), ("add", "delete"), ("include", "exclude"),
    ("included", "excluded"), ("allow", "block"),
    ("enable", "disable"), ("start", "end"), ("pause", "resume"), ("upgrade", "downgrade"),
    ("increase", "decrease"), ("increase", "reduce"), ("raise", "lower"), ("buy", "sell"), ("send", "receive"),
    ("import", "export"), ("upload", "download"), ("join", "leave"), ("lock", "unlock"),
    ("subscribe", "unsubscribe"), ("refundable", "non-refundable"), ("before", "after"), ("most", "least"),
    ("best", "worst"), ("more", "less"), ("more", "fewer"), ("max", "min"), ("maximum", "minimum"),
    ("highest", "lowest"), ("cheapest", "dearest"), ("compulsory", "optional"),
    ("mandatory", "optional"), ("required", "optional"), ("accept", "reject"), ("accept", "decline"),
    ("approve", "reject"), ("approve", "deny"), ("win", "lose"), ("inside", "outside"), ("above", "below"),
    ("early", "late"), ("earliest", "latest"), ("hot", "cold"), ("safe", "unsafe"),
    ("possible", "impossible"), ("able", "unable"), ("paid", "unpaid"), ("free", "paid"), ("public", "private"),
    ("input", "output"), ("pros", "cons"), ("advantages", "disadvantages"), ("benefits", "risks"),
    ("always", "never"), ("connect", "disconnect"), ("activate", "deactivate"), ("install", "uninstall"),
    ("encrypt", "decrypt"), ("follow", "unfollow"), ("block", "unblock"), ("hide", "show"),
    ("freeze", "unfreeze"), ("cancel", "renew"), ("cancel", "book"), ("arrive", "depart"),
    ("arrivals", "departures"),
    ("in", "out"), ("on", "off"), ("internal", "external"), ("deposit", "withdraw"), ("credit", "debit"),
    ("borrow", "lend"),
    ("keep", "lose"), ("gain", "lose"), ("pass", "fail"), ("success", "failure"),
)  # fmt: skip
_POLES = (
    ("increase raise higher larger bigger more extend boost maximum max longer grow up",
     "decrease reduce lower smaller less fewer shorten minimum min shorter shrink down"),
    ("good properly outstanding excellent best working correct correctly healthy positive",
     "bad poor inadequate worst fault faulty broken wrong incorrect failing unhealthy negative"),
    ("legal lawful lawfully legally allowed permitted permit allow",
     "illegal unlawful unlawfully illegally banned forbidden prohibited prohibit ban forbid"),
)  # fmt: skip
"""Scales with two ends: a word from one end replaced by any word from the other flips the question."""
_OPPOSITE = (
    {(a, b) for a, b in _OPPOSITES}
    | {(b, a) for a, b in _OPPOSITES}
    | {(x, y) for up, down in _POLES for x in up.split() for y in down.split()}
    | {(y, x) for up, down in _POLES for x in up.split() for y in down.split()}
)
_CONVERSES = (
    ("tenant", "landlord"), ("employer", "employee"), ("buyer", "seller"), ("sender", "recipient"),
    ("lender", "borrower"), ("teacher", "student"), ("doctor", "patient"), ("parent", "child"),
    ("customer", "supplier"), ("host", "guest"), ("payer", "payee"),
)  # fmt: skip
"""Two roles of one relation: "notice a tenant gives" is not "notice a landlord gives"."""
_CONVERSE = {(a, b) for a, b in _CONVERSES} | {(b, a) for a, b in _CONVERSES}
_FILLER = frozenset(
    "hi hello hey there okay ok so please thanks thank you um uh well just quick question quickly actually "
    "really basically kindly anyway right yeah yes sorry excuse me i was wondering wonder could would can "
    "you tell let know hiya cheers er erm like silly bother team advance usually generally typically normally "
    "need needs".split()
)
_STOP = frozenset(
    "a an the of to for in on at by with from as is are was were be been being am do does did doing have has "
    "had i me my mine we our us you your it its this that these those there here what which who whom whose "
    "when where why how and or but if then so than too very can could would should will shall may might must "
    "get got any some all about into onto out up just also still much many there's what's it's i'm i've "
    "i'd i'll whats whos hows wheres whens thats theres".split()
)


_OPENING = re.compile(
    r"^(?:\s*(?:(?:hi|hello|hey|hiya)(?: there| team| all)?|er|erm|um|uh|so|okay|ok)\b[\s,!.:;-]*"
    r"|\s*(?:good )?(?:morning|afternoon|evening)[,!.:;]+|\s*(?:yes|no|yeah|sorry|right|well)[,!.:;]+)+"
)
"""Greetings and answer particles opening a text: "Morning! How ...", "No, the parameter ..."."""
_CLOSING = re.compile(r"(?:\s*(?:cheers|thanks(?: in advance)?|thank you|ta)[\s!.]*)+$")


def _normalise(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'")
    lowered = _CLOSING.sub("", _OPENING.sub("", text.lower()))
    for short, long in _CONTRACTIONS.items():
        lowered = lowered.replace(short, long)
    return lowered.replace("non-", "non ")


def words(text: str) -> list[str]:
    """Lowercase words and number tokens, contractions expanded ("don't" -> "do not")."""
    return [w.strip("'-") for w in _WORD.findall(_normalise(text)) if w.strip("'-")]


_SHORT = 6
"""Texts of at most this many content words are "short": every word of a question that short carries
meaning, so one-sided numbers or names and replaced words veto a hit; longer texts are reworded more
freely, and there only a changed value (on both sides) does."""
_SWAP_OVERLAP = 0.6
_SWAP_WORDS = 3


def _number(token: str) -> str | None:
    if token[0] in "£$€" or token[0].isdigit():
        digits = token.lstrip("£$€").replace(",", "").rstrip(".:")
        unit = re.sub(r"^[\d.:\s]+", "", digits).replace(" ", "")
        value = re.sub(r"[^\d.:]", "", digits).rstrip(".")
        return (token[0] if token[0] in "£$€" else "") + value + unit
    if token in _NUMBER_WORDS:
        return str(_NUMBER_WORDS[token])
    if "-" in token:  # "two-bed", "same-day"
        parts = token.split("-")
        if any(p in _NUMBER_WORDS for p in parts):
            return "-".join(str(_NUMBER_WORDS.get(p, p)) for p in parts)
        if parts[0] in _RELATIVE and parts[-1] in _PERIODS:
            return token
    if token in _TIME_WORDS:
        return token.removesuffix("s") if token.endswith(("days", "ends")) else token
    return None


_RELATIVE = frozenset("same next last previous following this".split())
_PERIODS = frozenset("day week month year night hour".split())


def numbers(text: str) -> set[str]:
    """Numbers, amounts, times and date words of a text ("ten" is "10", "Sundays" is "sunday")."""
    return {n for w in words(text) if (n := _number(w)) is not None}


def _variants(word: str) -> set[str]:
    """The word and its likely stems ("stopped" -> "stop", "watering" -> "water")."""
    out = {word}
    for suffix in ("s", "es", "ed", "d", "ing", "ly", "ped", "ping"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            out.add(word[: -len(suffix)])
    return out


def _negated(ws: list[str]) -> bool:
    """Some word negates (idioms aside: "not only", "whether or not")."""
    for i, w in enumerate(ws):
        if w.startswith("no-"):
            return True
        if not _variants(w) & _NEGATIONS or (i and ws[i - 1] == "or"):
            continue
        if (w, ws[i + 1] if i + 1 < len(ws) else "") not in _NOT_NEGATIONS:
            return True
    return False


_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non", "non-", "de", "anti")


def _prefixed(x: str, y: str) -> bool:
    """`y` is `x` negated by a prefix: suitable / unsuitable, successful / unsuccessful, like / dislike."""
    if min(len(x), len(y)) < 4:
        return False  # "to" / "into"
    return any(y == p + x for p in _PREFIXES) or any(x == p + y for p in _PREFIXES)


_NAME = re.compile(r"(?<![.!?:]\s)(?<!^)(?<![\"'`(\[])\b([A-Z][a-zA-Z]+|[A-Z]{2,}\w*|[a-z]*\d+[a-z]+\w*)")


def entities(text: str) -> set[str]:
    """Names in a text: capitalised words not opening a sentence, acronyms, and codes mixing digits and letters."""
    return {m.group(1).lower() for m in _NAME.finditer(text.strip()) if m.group(1).lower() not in ("i", "ok")}


def _close(a: str, b: str) -> bool:
    """The same word: a spelling slip or an inflection ("statment", "eggs")."""
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    if len(short) >= 3 and (long.startswith(short) or (len(short) >= 4 and long.startswith(short[:-1]))):
        return True
    return min(len(a), len(b)) >= 4 and SequenceMatcher(None, a, b).ratio() >= 0.8


def _content(ws: list[str]) -> list[str]:
    return [w for w in ws if w not in _FILLER and w not in _STOP and _number(w) is None]


@dataclass(frozen=True, slots=True)
class _Text:
    text: str
    words: list[str]
    content: list[str]

    @classmethod
    def of(cls, text: str) -> _Text:
        ws = words(text)
        return cls(text, ws, _content(ws))


def conflict(a: str, b: str, checks: Iterable[Conflict] = CHECKS) -> Conflict | None:
    """The first check that says `a` and `b` need different answers, or None."""
    ta, tb = _Text.of(a), _Text.of(b)
    short = min(len(ta.content), len(tb.content)) <= _SHORT
    for check in checks:
        if check == "number" and _numbers_differ(ta, tb, short):
            return check
        if check == "negation" and _negation(ta, tb):
            return check
        if check == "entity" and _entity(ta, tb, short):
            return check
        if check == "swap" and (
            (short and _swapped(ta, tb)) or _redirected(ta.words, tb.words) or _reordered(ta, tb) or _converse(ta, tb)
        ):
            return check
    return None


def _numbers_differ(ta: _Text, tb: _Text, short: bool) -> bool:
    na, nb = numbers(ta.text), numbers(tb.text)
    if na == nb:
        return False
    return short or bool(na - nb and nb - na)  # long texts: a value changed, not merely left out


def _negation(ta: _Text, tb: _Text) -> bool:
    """The polarities differ: a negation on one side only, or a word and its opposite, but not both
    ("not mandatory" / "optional" agree)."""
    flipped = _negated(ta.words) != _negated(tb.words)
    return flipped != (_opposites(ta, tb) % 2 == 1)


def _parts(ws: list[str]) -> set[str]:
    return {p for w in ws for p in (w, *w.split("-")) if p}


def _opposites(ta: _Text, tb: _Text) -> int:
    """How many words of one side have their opposite, not shared, on the other side (each word used once)."""
    pa, pb = _parts(ta.words), _parts(tb.words)
    gone, new = sorted(pa - pb), sorted(pb - pa)
    used: set[str] = set()
    count = 0
    for x in gone:
        vx = _variants(x)
        for y in new:
            if y in used:
                continue
            if _prefixed(x, y) or any((u, v) in _OPPOSITE for u in vx for v in _variants(y)):
                used.add(y)
                count += 1
                break
    return count


def _lone(names: set[str], other: _Text) -> set[str]:
    lowered = other.text.lower()
    return {n for n in names if n not in lowered and not any(_close(n, w) for w in other.words)}


def _entity(ta: _Text, tb: _Text, short: bool) -> bool:
    lone_a, lone_b = _lone(entities(ta.text), tb), _lone(entities(tb.text), ta)
    return bool(lone_a and lone_b) or (short and bool(lone_a or lone_b))


def _swapped(ta: _Text, tb: _Text) -> bool:
    """Nearly the same words, except that a few were replaced by unrelated ones ("adults" -> "children")."""
    ca, cb = ta.content, tb.content
    matcher = SequenceMatcher(None, ca, cb, autojunk=False)
    same = sum(size for _, _, size in matcher.get_matching_blocks())
    if same < _SWAP_OVERLAP * max(len(ca), len(cb), 1):
        return False  # a rewording: left to the embedding and the other checks
    in_a, in_b = Counter(ca), Counter(cb)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        gone = [w for w in ca[i1:i2] if w not in in_b and not any(_close(w, x) for x in cb)]
        new = [w for w in cb[j1:j2] if w not in in_a and not any(_close(w, x) for x in ca)]
        if (gone or new) and len(gone) <= _SWAP_WORDS and len(new) <= _SWAP_WORDS:
            return True  # a word replaced, or a qualifier added ("gift" -> "gift card", "flu in babies")
    return False


_DIRECTIONS = frozenset({"from", "to", "into", "onto", "off", "for", "than", "vs", "versus"})


def _attached(ws: list[str]) -> set[tuple[str, str]]:
    """(preposition, the first content word after it): "from savings", "to current"."""
    out = set()
    for i, w in enumerate(ws):
        if w in _DIRECTIONS:
            head = next((x for x in ws[i + 1 :] if x not in _STOP and x not in _FILLER), None)
            if head is not None:
                out.add((w, head))
    return out


def _redirected(wa: list[str], wb: list[str]) -> bool:
    """The same things in the other direction: "from savings to current" / "from current to savings"."""
    pa, pb = _attached(wa), _attached(wb)
    heads_b, preps_b = {h for _, h in pb}, {p for p, _ in pb}
    return any(h in heads_b and p in preps_b for p, h in pa - pb)


def _converse(ta: _Text, tb: _Text) -> bool:
    """One role replaced by its counterpart: "tenant" -> "landlord", "employer" -> "employee"."""
    pa, pb = _parts(ta.content), _parts(tb.content)
    gone, new = pa - pb, pb - pa
    return any((u, v) in _CONVERSE for x in gone for y in new for u in _variants(x) for v in _variants(y))


def _reordered(ta: _Text, tb: _Text) -> bool:
    """The same two things on the other sides of a direction word: "Word to PDF" / "PDF to Word"."""
    wa, wb = ta.words, tb.words
    for i, w in enumerate(wa):
        if w not in _DIRECTIONS:
            continue
        before = next((x for x in reversed(wa[:i]) if x in ta.content), None)
        after = next((x for x in wa[i + 1 :] if x in ta.content), None)
        if before is None or after is None or before == after:
            continue
        for k, v in enumerate(wb):
            head, tail = wb[:k], wb[k + 1 :]
            if v == w and after in head and before in tail and before not in head and after not in tail:
                return True
    return False
