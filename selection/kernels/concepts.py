"""PASER step 5, the negative-transfer filter: key concepts of each sample and the concept consistency graph.

Concepts are RAKE keyphrases (Rose et al., "Automatic keyword extraction from individual documents"): the text is
cut into candidate phrases at stop words (scikit-learn's English list) and punctuation, each word is scored by
degree/frequency, a phrase by the sum of its words' scores, and the best `max_concepts` phrases are kept.

The graph links each concept of an accepted sample's instruction to each concept its response adds (a response
concept with a word that the instruction does not use). A new sample contradicts the graph when the concepts of its
instruction (two at least) are all already linked to some common response concepts, and its own response names
none of them: the same question answered otherwise ("capital", "australia" -> "canberra" accepted, then
"capital", "australia" -> "sydney"). Such a sample is rejected with the concepts and the answer it contradicts;
an accepted sample adds its links. Samples are checked in selection order, so the better-ranked sample wins.
The work per sample is bounded by the concepts kept (at most `max_concepts` on each side).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

_WORD = re.compile(r"[a-z0-9][a-z0-9'+#\-]*")
_SPLIT = re.compile(r"[^\w\s'+#\-]|\s-\s|_{2,}")


def _stem(word: str) -> str:
    """A crude English stem (plural and tense endings stripped), enough to see a restated instruction word."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def stop_words() -> frozenset[str]:
    """The English stop words of scikit-learn (a dependency of this stage)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def keyphrases(text: str, max_concepts: int, stops: frozenset[str]) -> list[str]:
    """The best `max_concepts` RAKE keyphrases of `text` (lower case, best first; ties in order of appearance)."""
    phrases: list[tuple[str, ...]] = []
    for chunk in _SPLIT.split(text.lower()):
        current: list[str] = []
        for word in _WORD.findall(chunk):
            word = word.strip("'-")
            if not word or word in stops or word.isdigit() and len(word) < 2:
                if current:
                    phrases.append(tuple(current))
                current = []
            else:
                current.append(word)
        if current:
            phrases.append(tuple(current))
    phrases = [p for p in phrases if len(p) <= 4]
    if not phrases:
        return []
    freq: dict[str, int] = defaultdict(int)
    degree: dict[str, int] = defaultdict(int)
    for p in phrases:
        for w in p:
            freq[w] += 1
            degree[w] += len(p)
    best: dict[str, tuple[float, int]] = {}
    for i, p in enumerate(phrases):
        name = " ".join(p)
        if name not in best:
            best[name] = (sum(degree[w] / freq[w] for w in p), i)
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[1][1]))
    return [name for name, _ in ranked[:max_concepts]]


@dataclass
class ConceptGraph:
    """Links from instruction concepts to the response concepts accepted with them (see the module docstring)."""

    max_concepts: int = 8
    stops: frozenset[str] = field(default_factory=stop_words)
    links: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def concepts(self, instruction: str, response: str) -> tuple[list[str], list[str]]:
        """The sample's instruction concepts and the response concepts the instruction does not name (a phrase
        whose every word, plural or tense stripped, occurs in the instruction is a restatement, not an answer)."""
        asked = keyphrases(instruction, self.max_concepts, self.stops)
        named = {_stem(w) for w in _WORD.findall(instruction.lower())}
        answered = [
            c
            for c in keyphrases(response, 4 * self.max_concepts, self.stops)
            if not all(_stem(w) in named for w in c.split())
        ]
        return asked, answered[: self.max_concepts]

    def conflict(self, asked: list[str], answered: list[str]) -> str | None:
        """Why the sample contradicts the accepted ones (None: it does not)."""
        if len(asked) < 2 or not answered:
            return None
        neighbours = [self.links.get(c) for c in asked]
        if any(not n for n in neighbours):
            return None
        common = set.intersection(*sorted((n for n in neighbours if n), key=len))
        if not common or common.intersection(answered):
            return None
        before = ", ".join(sorted(common)[:3])
        return (
            f"concept conflict: {', '.join(asked)} -> {', '.join(answered[:3])}, "
            f"but accepted samples answer {before}"
        )

    def accept(self, asked: list[str], answered: list[str]) -> None:
        for c in asked:
            self.links[c].update(answered)

    def check(self, instruction: str, response: str) -> str | None:
        """Check a sample and, when it is consistent, add its links; the reason when it is rejected."""
        asked, answered = self.concepts(instruction, response)
        reason = self.conflict(asked, answered)
        if reason is None:
            self.accept(asked, answered)
        return reason
